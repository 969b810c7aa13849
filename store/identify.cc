#include "store/identify.h"

namespace unify {

namespace {

// rules null: XXH3 only, no xattrs, no id.
Result<Identified> identify(int fd, const std::string& shown, const IdRules* rules) {
    Identified out;
    // Content-only ids (reflink pools) leave the xattrs to each guest inode: not read.
    auto x = !rules || rules->content_only ? Result<Xattrs>{} : read_xattrs(fd, shown);
    if (!x) return std::unexpected(x.error());
    auto h = rules ? hash_fd(fd, shown) : quick_hash_fd(fd, shown);
    if (!h) return std::unexpected(h.error());
    auto st = stat_fd(fd, shown);
    if (!st) return std::unexpected(st.error());
    out.hash = *h;
    out.st = *st;
    out.xattrs = std::move(*x);
    if (rules) out.id = rules->id_of(h->sha256, Identity::of(out.st, out.xattrs));
    return out;
}

}  // namespace

Result<Identified> identify_fd(int fd, const std::string& shown, const IdRules& rules) {
    return identify(fd, shown, &rules);
}

Result<Identified> quick_identify_fd(int fd, const std::string& shown) {
    return identify(fd, shown, nullptr);
}

}  // namespace unify
