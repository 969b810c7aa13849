#include "importer/warm_sources.h"

#include "store/sys.h"

namespace unify {

// -1 where the guest is gone from the index or its root cannot be opened now: that sharer is
// passed over (the object itself is always there to compare against). An index that cannot
// be read is an error.
Result<int> WarmSources::root_of(Txn& txn, uint32_t guest, std::string& root_path) {
    if (guest == own_guest_) {
        root_path = own_root_.path;
        return own_root_.fd.get();
    }
    auto it = roots_.find(guest);
    if (it == roots_.end()) {
        Root r;
        auto g = txn.guest(guest);
        if (!g) return std::unexpected(g.error());
        if (*g) {
            if (auto opened = open_guest_root(pool_, **g)) {
                r.root = std::move(*opened);
                r.open = true;
            }
        }
        it = roots_.emplace(guest, std::move(r)).first;
    }
    root_path = it->second.root.path;
    return it->second.open ? it->second.root.fd.get() : -1;
}

Result<std::optional<WarmSource>> WarmSources::find(Txn& txn, const ObjectId& id) {
    std::optional<WarmSource> found;
    std::optional<Error> failed;
    // The first guests only: each guest costs the lookup its seeks, and content that only
    // late guests of a big host share would make every such file look through all of them.
    constexpr uint32_t kGuestsLookedAt = 8;
    auto r = txn.for_each_link_of_object(
        id,
        [&](const LinkRecord& l) {
            std::string root_path;
            auto fd = root_of(txn, l.guest, root_path);
            if (!fd) {
                failed = fd.error();
                return false;
            }
            if (*fd < 0 || l.replica != 0) return true;
            found = WarmSource{*fd, l.path, l.ino, join_path(root_path, l.path)};
            return false;
        },
        kGuestsLookedAt);
    if (!r) return std::unexpected(r.error());
    if (failed) return std::unexpected(*failed);
    return found;
}

}  // namespace unify
