#include "store/share_mode.h"

#include "store/extents.h"

namespace unify {

std::string to_string(ShareMode m) {
    return m == ShareMode::reflink ? "reflink" : "hardlink";
}

std::optional<ShareMode> parse_share_mode(const std::string& s) {
    if (s == "hardlink") return ShareMode::hardlink;
    if (s == "reflink") return ShareMode::reflink;
    return std::nullopt;
}

Result<ShareMode> choose_share_mode(const std::string& requested, int dirfd,
                                    const std::string& shown) {
    if (requested == "hardlink") return ShareMode::hardlink;
    auto probe = probe_shared_extents(dirfd, shown);
    if (probe) return ShareMode::reflink;
    if (requested == "auto" && no_shared_extents(probe.error().err)) return ShareMode::hardlink;
    if (requested == "auto") return std::unexpected(probe.error());
    return std::unexpected(context(
        probe.error(), "--share reflink needs XFS (made with reflink=1, the default) or btrfs"));
}

}  // namespace unify
