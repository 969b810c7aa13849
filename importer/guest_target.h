// A guest path as an admin names it, made the path inside the guest that it reaches: the
// one resolver for every command that takes a guest path (import --explain, who, unshare).
// Package managers print paths through the guest's own symlinks (dpkg -L prints
// /lib/systemd/... on a merged-/usr guest, where /lib -> usr/lib), so the symlinks in the
// directory part are resolved as the guest sees them (importer/package_db.h GuestResolver):
// an absolute target restarts at the guest root, a relative one that climbs above the root
// is refused (EXDEV). The kernel never follows a guest symlink here (readlinkat, openat2
// RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS), and whoever uses the answer opens it the same way,
// so a guest that swaps a directory for a symlink afterwards gains nothing.
#pragma once

#include <string>

#include "store/guest_path.h"
#include "store/result.h"

namespace unify {

// path: "/usr/bin/ls", "usr/bin/ls", or a host path below `root` ("/vservers/web1/lib/x").
// The last component is kept as it is (a symlink there is the path itself, not followed).
// Returns a normalised absolute guest path ("/usr/lib/x").
Result<std::string> resolve_guest_target(int root_fd, const std::string& root,
                                         const std::string& path);

// Whether `path` (as above) is a directory of the guest, its last component resolved too
// (dpkg -L lists /lib, on a merged-/usr guest a symlink to usr/lib): a path with nothing to
// unshare, and nothing worth a word either. False also where it cannot be told.
bool is_guest_directory(int root_fd, const std::string& root, const std::string& path);

}  // namespace unify
