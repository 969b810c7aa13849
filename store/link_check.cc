#include "store/link_check.h"

#include <ostream>

#include "store/guest_path.h"

namespace unify {

Result<LinkChecker::Guest*> LinkChecker::open_guest(Txn& txn, uint32_t id) {
    auto it = guests_.find(id);
    if (it == guests_.end()) {
        auto g = txn.guest(id);
        if (!g) return std::unexpected(g.error());
        std::optional<Guest> entry;
        if (*g) {
            entry = Guest{**g, Fd(), std::nullopt};
            auto root = open_guest_root(pool_, **g);
            if (root) {
                entry->root = std::move(root->fd);
            } else {
                entry->error = root.error();
                if (warn_)
                    *warn_ << "unify: warning: guest '" << (*g)->name
                           << "': " << root.error().message << "; its links are not checked\n";
            }
        }
        it = guests_.emplace(id, std::move(entry)).first;
    }
    return it->second ? &*it->second : nullptr;
}

Result<const GuestRecord*> LinkChecker::guest(Txn& txn, uint32_t id) {
    auto g = open_guest(txn, id);
    if (!g) return std::unexpected(g.error());
    return *g ? &(*g)->rec : nullptr;
}

const Error* LinkChecker::root_error(uint32_t id) const {
    auto it = guests_.find(id);
    if (it == guests_.end() || !it->second || !it->second->error) return nullptr;
    return &*it->second->error;
}

Result<std::optional<FileStat>> LinkChecker::object(const ObjectId& id, uint32_t replica) {
    auto key = std::make_pair(id, replica);
    auto it = objects_.find(key);
    if (it == objects_.end()) {
        auto st = pool_.stat_object(id, replica);
        if (!st) return std::unexpected(st.error());
        it = objects_.emplace(key, *st).first;
    }
    return it->second;
}

Result<LinkChecker::State> LinkChecker::check(Txn& txn, const LinkRecord& l) {
    auto obj = object(l.id, l.replica);
    if (!obj) return std::unexpected(obj.error());
    if (!*obj) return State::stale;
    return check(txn, l, **obj);
}

Result<LinkChecker::State> LinkChecker::check(Txn& txn, const LinkRecord& l,
                                              const FileStat& object) {
    auto g = open_guest(txn, l.guest);
    if (!g) return std::unexpected(g.error());
    if (!*g || !(*g)->root.valid()) return State::unchecked;
    if (pool_.settings().reflink()) return shares_blocks(**g, l, object);
    auto st = stat_guest_path((*g)->root.get(), l.path, join_path((*g)->rec.root, l.path));
    if (!st) return unreachable(st.error());
    return *st && (*st)->same_inode(object) ? State::holds : State::stale;
}

LinkChecker::State LinkChecker::unreachable(Error e) {
    path_error_ = std::move(e);
    return State::unreachable;
}

// The guest file is the inode that was recorded, as long as the object, and maps every byte
// to the object's blocks. A write gave it private blocks, a package upgrade replaced it by
// another inode: either way it no longer shares, and the record is stale.
Result<LinkChecker::State> LinkChecker::shares_blocks(const Guest& g, const LinkRecord& l,
                                                      const FileStat& object) {
    std::string shown = join_path(g.rec.root, l.path);
    auto f = open_recorded_file(g.root.get(), l.path, l.ino, shown);
    if (!f) return unreachable(f.error());
    if (!*f || (*f)->st.size != object.size) return State::stale;
    auto key = std::make_pair(l.id, l.replica);
    auto it = extents_.find(key);
    if (it == extents_.end()) {
        auto obj = pool_.open_object(l.id, l.replica);
        if (!obj) return std::unexpected(obj.error());
        auto ext = file_extents(obj->get(), pool_.object_shown(l.id, l.replica));
        if (!ext) return std::unexpected(ext.error());
        it = extents_.emplace(key, std::move(*ext)).first;
    }
    auto mine = file_extents((*f)->fd.get(), shown);
    if (!mine) return unreachable(mine.error());
    return same_blocks(*mine, it->second, object.size) ? State::holds : State::stale;
}

}  // namespace unify
