#include "store/identify.h"

namespace unify {

Result<Identified> identify_fd(int fd, const std::string& shown, const IdRules& rules) {
    Identified out;
    // Content-only ids (reflink pools) leave the xattrs to each guest inode: not read.
    auto x = rules.content_only ? Result<Xattrs>{} : read_xattrs(fd, shown);
    if (!x) return std::unexpected(x.error());
    auto h = hash_fd(fd, shown);
    if (!h) return std::unexpected(h.error());
    auto st = stat_fd(fd, shown);
    if (!st) return std::unexpected(st.error());
    out.hash = *h;
    out.st = *st;
    out.xattrs = std::move(*x);
    out.id = rules.id_of(h->sha256, Identity::of(out.st, out.xattrs));
    return out;
}

}  // namespace unify
