#include "store/identify.h"

#include "store/pool.h"

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

Result<std::optional<Identified>> identify_as_object(int fd, const std::string& shown,
                                                     int object_fd, const std::string& object_shown,
                                                     const Candidate& object,
                                                     const IdRules& rules) {
    auto ost = stat_fd(object_fd, object_shown);
    if (!ost) return std::unexpected(ost.error());
    auto ox = rules.content_only ? Result<Xattrs>{} : read_xattrs(object_fd, object_shown);
    if (!ox) return std::unexpected(ox.error());
    if (ost->size != object.content.size ||
        rules.id_of(object.content.sha256, Identity::of(*ost, std::move(*ox))) != object.id)
        return std::nullopt;
    Identified out;
    auto x = rules.content_only ? Result<Xattrs>{} : read_xattrs(fd, shown);
    if (!x) return std::unexpected(x.error());
    auto same = same_bytes_fd(fd, object_fd, shown, object_shown);
    if (!same) return std::unexpected(same.error());
    if (!*same) return std::nullopt;
    auto st = stat_fd(fd, shown);
    if (!st) return std::unexpected(st.error());
    out.hash = object.content;
    out.st = *st;
    out.xattrs = std::move(*x);
    out.id = rules.id_of(out.hash.sha256, Identity::of(out.st, out.xattrs));
    return out;
}

Result<Identified> identify_unwritten(int fd, const std::string& shown, const IdRules& rules,
                                      const ContentHash& content) {
    Identified out;
    auto x = rules.content_only ? Result<Xattrs>{} : read_xattrs(fd, shown);
    if (!x) return std::unexpected(x.error());
    auto st = stat_fd(fd, shown);
    if (!st) return std::unexpected(st.error());
    out.hash = content;
    out.st = *st;
    out.xattrs = std::move(*x);
    // A size other than the content's gives no id at all.
    out.id = st->size == content.size
                 ? rules.id_of(content.sha256, Identity::of(out.st, out.xattrs))
                 : ObjectId{};
    return out;
}

Result<Identified> identify_file(int fd, const std::string& shown, const IdRules& rules,
                                 const Pool* pool, const Candidate* candidate) {
    if (candidate) {
        auto obj = pool->open_object(candidate->id, candidate->replica);
        if (obj) {
            auto copy = identify_as_object(fd, shown, obj->get(),
                                           pool->object_shown(candidate->id, candidate->replica),
                                           *candidate, rules);
            if (!copy) return std::unexpected(copy.error());
            if (*copy) return std::move(**copy);
        }
    }
    return identify_fd(fd, shown, rules);
}

}  // namespace unify
