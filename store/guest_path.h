// Reaching a recorded guest path again (who, gc, unshare) without trusting the guest: the
// parent directory is opened beneath the root with openat2 (no symlinks, no mounts, no
// escape), and the last component is looked at with AT_SYMLINK_NOFOLLOW.
#pragma once

#include <optional>
#include <string>

#include "store/fd.h"
#include "store/sys.h"

namespace unify {

struct GuestPath {
    Fd dir;            // the parent directory
    std::string name;  // the last component
};

// path: inside the guest, starting with '/'. A missing or symlinked parent gives an empty
// optional (the path is simply no longer there), other failures an error.
Result<std::optional<GuestPath>> open_guest_parent(int root_fd, const std::string& path,
                                                   const std::string& shown);

// Why open_guest_parent found `path` gone, where that is a mount point: the first directory
// on its way, from the root, that is one ("/usr/local/mnt"), since RESOLVE_NO_XDEV refuses
// to cross it (EXDEV); empty when no directory of it is. For the commands an admin names a
// path to (who, unshare, import --explain): `ls` shows the file, so "does not exist in the
// guest" would send them looking for the wrong thing. The lookups that find recorded paths
// again (gc, unshare, forget, link checks) keep taking such a path as gone: the walk never
// links below a mount point, and what a later mount hides the guest no longer sees either.
Result<std::optional<std::string>> mount_point_above(int root_fd, const std::string& path,
                                                     const std::string& root_shown);

// "/vservers/web1/lib/x" or "lib/x" -> "/lib/x": the guest path as written, not resolved (a
// host path inside `root` is taken as the guest path it is).
std::string guest_path_as_written(const std::string& root, const std::string& path);

// stat of the guest path, or empty if it is gone or not reachable without a symlink.
Result<std::optional<FileStat>> stat_guest_path(int root_fd, const std::string& path,
                                                const std::string& shown);

// The recorded guest path opened for reading, if it still is the regular file with inode
// `ino`; empty when it is gone, reached only through a symlink, or another inode (a reflink
// pool's sharer that a package upgrade replaced, say).
struct OpenedGuestFile {
    Fd fd;
    FileStat st;
};
Result<std::optional<OpenedGuestFile>> open_recorded_file(int root_fd, const std::string& path,
                                                          uint64_t ino, const std::string& shown);

}  // namespace unify
