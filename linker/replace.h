// Atomic replacement of a guest path (docs/DESIGN.md invariant 1): the new inode is first given
// a unique temporary name in the same directory, the path is checked to still be exactly
// what was hashed, and renameat2(RENAME_EXCHANGE) swaps it in; what the exchange displaced is
// checked again and put back if it is not what was hashed (a file renamed over the path
// between the check and the swap). The path is never missing, not even for a microsecond,
// and a path that changed since it was hashed is left alone.
#pragma once

#include <functional>
#include <string>

#include "store/sys.h"
#include "store/trash.h"

namespace unify {

enum class Replaced {
    done,
    changed,  // the path is no longer what was hashed: left alone
    refused,  // EPERM: the guest's own immutable/append-only flag on the path
    emlink,   // the object has reached the filesystem's link limit
};

// Links objects_fd/object_name over dirfd/name. With stock immutable protection this must
// run inside Pool::with_links_allowed of the object (which also records the window in the
// intent log). `still_unwritten` is asked just before the rename (import: the read lease of
// an unsettled file is intact, importer/settle.h). The temporary is named temp_prefix +
// random hex; a name that exists already (planted by the guest) is never used. The guest's
// displaced file goes to `trash` (store/trash.h), or is unlinked here if it is null.
// `recheck` is asked, with what the path is now, when only its link count and ctime moved
// since `expected`: unify's own replacement of another name of the inode does that, but so
// can a guest that also wrote, and ctime cannot tell them apart. True only if the file, read
// again now, still gives the object's id and did not change while it was read.
Result<Replaced> link_over(int objects_fd, const std::string& object_name, int dirfd,
                           const std::string& name, const FileStat& expected,
                           const std::function<bool()>& still_unwritten,
                           const std::function<bool(const FileStat& now)>& recheck,
                           const std::string& temp_prefix, Trash* trash, const std::string& shown);

// Renames the prepared private file dirfd/temp_name over dirfd/name, which must still be the
// inode `expected` (unshare: the object link). On failure the temporary is removed.
Result<Replaced> rename_over(int dirfd, const std::string& temp_name, const std::string& name,
                             const FileStat& expected, const std::string& shown);

}  // namespace unify
