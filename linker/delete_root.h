// unify forget NAME --delete-root: delete a guest's whole root without copying anything.
// On a stock kernel the guest's object links carry the object's immutable flag, so neither
// rm nor the guest can delete them, and unsharing first would copy the whole guest just to
// delete it. Two passes, both through directory fds below the root (openat2 RESOLVE_BENEATH
// | RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV, unlinkat, AT_SYMLINK_NOFOLLOW): never following a
// symlink, never leaving the root, never crossing a mount point.
//   1. links: the guest's link records, grouped by object; each object's paths that still
//      are its inode are unlinked inside one protection window of that object
//      (Pool::with_links_allowed, recorded in the intent log), then their records dropped.
//   2. the rest, as `rm -rf --one-file-system` would, depth first, then the root directory
//      itself. A file that cannot be unlinked (EPERM) and is a pool object whose link the
//      index did not record (a killed import) is unlinked inside its object's window too.
// The guest's own immutable and append-only flags are not lifted: such a file (or a file in
// such a directory) is left, like a mount point below the root, and the run fails naming
// them, so that the admin decides (`chattr -i -a` on exactly those paths, or umount) and
// runs forget again. The guest's record is deleted only once the root is gone.
// Every step is idempotent: after a kill, forget --delete-root again finishes the job (a root
// that is already gone is fine). The caller holds the pool lock.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

#include "store/index.h"
#include "store/pool.h"
#include "store/progress.h"

namespace unify {

struct DeleteRootSummary {
    bool root_was_gone = false;
    uint64_t linked = 0;  // object links unlinked (each inside its object's window)
    uint64_t files = 0;   // other regular files
    uint64_t dirs = 0;    // directories, the root included
    uint64_t other = 0;   // symlinks, devices, fifos, sockets
    uint64_t records_dropped = 0;
    std::vector<std::string> left;  // what could not be deleted, and why (host paths)
};

Result<DeleteRootSummary> delete_guest_root(Pool& pool, const GuestRecord& guest, bool dry_run,
                                            bool verbose, const ProgressFn& progress,
                                            std::ostream& log);

}  // namespace unify
