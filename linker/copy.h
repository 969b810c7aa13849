// A faithful copy of one file into an already open, empty destination: content, then
// owner, mode, xattrs and times, in the order that keeps them (chown clears setuid bits and
// security.capability, so those come after it).
#pragma once

#include "store/hasher.h"
#include "store/sys.h"

namespace unify {

Result<ContentHash> copy_with_metadata(int src_fd, const FileStat& src_st, const Xattrs& xattrs,
                                       int dst_fd, const std::string& src_shown,
                                       const std::string& dst_shown);

}  // namespace unify
