// Files unify creates where it does not own every name: a guest directory (the guest sees
// names with inotify and controls what stands at any of them) and the pool (a killed run
// may have left something behind). Such a file is never opened by name: it is made unnamed
// (O_TMPFILE), filled, and only then given a name nobody could have guessed, with linkat,
// which fails instead of writing through whatever stands there (EEXIST: another name).
#pragma once

#include <string>

#include "store/fd.h"
#include "store/result.h"

namespace unify {

// `bytes` random bytes (getrandom) in hex.
std::string random_hex(size_t bytes);

// An unnamed regular file in dirfd, O_RDWR, mode 0600 (O_TMPFILE).
Result<Fd> create_unnamed(int dirfd, const std::string& shown);

// linkat of the unnamed file fd to dirfd/name; errno kept (EEXIST, EMLINK ...).
Result<void> link_unnamed(int fd, int dirfd, const std::string& name, const std::string& shown);

// Names the unnamed file fd `prefix` + random hex in dirfd, trying another name on EEXIST.
Result<std::string> link_unnamed_fresh(int fd, int dirfd, const std::string& prefix,
                                       const std::string& shown);

// Replaces dirfd/name by a file holding `data`, durably: unnamed file, write, fsync, fresh
// name, renameat over `name`, fsync of the directory.
Result<void> replace_small_file(int dirfd, const std::string& name, const std::string& data,
                                const std::string& shown);

}  // namespace unify
