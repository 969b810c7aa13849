#include "store/identify.h"

namespace unify {

Result<Identified> identify_fd(int fd, const std::string& shown, bool ignore_mtime) {
    Identified out;
    auto x = read_xattrs(fd, shown);
    if (!x) return std::unexpected(x.error());
    auto h = hash_fd(fd, shown);
    if (!h) return std::unexpected(h.error());
    auto st = stat_fd(fd, shown);
    if (!st) return std::unexpected(st.error());
    out.hash = *h;
    out.st = *st;
    out.xattrs = std::move(*x);
    out.id = make_object_id(h->sha256, Identity::of(out.st, out.xattrs), ignore_mtime);
    return out;
}

}  // namespace unify
