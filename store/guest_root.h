// Opening a guest root: the admin's path is made canonical once, here, and from then on the
// guest is reached only through the fd. A root must be a directory on the pool's
// filesystem (links cannot cross filesystems), and neither may contain the other.
#pragma once

#include <string>

#include "store/fd.h"
#include "store/index.h"
#include "store/pool.h"

namespace unify {

struct GuestRoot {
    std::string path;  // canonical
    Fd fd;
    FileStat st;
};

// An administrator-given path: made canonical (realpath), then opened and checked.
Result<GuestRoot> open_guest_root(const Pool& pool, const std::string& path);
// A root as the index records it (canonical when it was registered): opened and checked the
// same way, without resolving it again.
Result<GuestRoot> open_guest_root(const Pool& pool, const GuestRecord& guest);

// Guest names go into messages, `NAME:/path` targets and the index: [A-Za-z0-9._-]+,
// not starting with '-' or '.'.
Result<void> check_guest_name(const std::string& name);

// True if `inner` is `outer` or lies below it (both canonical).
bool path_within(const std::string& inner, const std::string& outer);

}  // namespace unify
