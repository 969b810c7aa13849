// How a pool shares a file among guests, fixed at init (`unify init --share`):
//   hardlink  every guest path becomes a hard link to the object's inode; the inode is
//             protected (store/protect.h) so that no guest changes it for the others. Any
//             filesystem; ids cover content and metadata (store/object_id.h).
//   reflink   every guest file keeps its own inode and metadata and shares the object's
//             blocks (store/extents.h); a write gives the writer private blocks, so there is
//             nothing to protect. XFS (reflink=1) and btrfs; ids cover content only.
// Everything above the one step "make this guest file share that object" is the same in
// both modes (docs/DESIGN.md, "The share seam").
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "store/result.h"

namespace unify {

enum class ShareMode { hardlink, reflink };

std::string to_string(ShareMode m);

// The smallest file import shares when the guest has no --min-size of its own. In a reflink
// pool each shared file costs a FIDEDUPERANGE, a filesystem transaction that compares both
// files however small they are, and 64 KiB is a good cut: on four Debian guests the 10,685
// duplicate files below 4 KiB are 64 % of the calls and 7 % of the bytes, those below 64 KiB
// 93 % and 26 %, and the four imports took 1.16 s instead of 3.78 s (bench/RESULTS.md).
constexpr uint64_t kReflinkMinSize = 64 * 1024;
inline uint64_t default_min_size(ShareMode m) {
    return m == ShareMode::reflink ? kReflinkMinSize : 1;
}
std::optional<ShareMode> parse_share_mode(const std::string& s);

// --share auto|hardlink|reflink for a pool directory: auto takes reflink where a clone
// between two scratch files in dirfd works, else hardlink; reflink where it does not work
// is an error that names the filesystem.
Result<ShareMode> choose_share_mode(const std::string& requested, int dirfd,
                                    const std::string& shown);

}  // namespace unify
