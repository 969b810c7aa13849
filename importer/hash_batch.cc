#include "importer/hash_batch.h"

#include "store/guest_file.h"

namespace unify {

namespace {

Hashed hash_one(const WalkEntry& e, const std::string& shown, bool ignore_mtime) {
    Hashed h;
    auto f = open_guest_file(e.dir->get(), e.name, shown);
    if (!f) {
        int err = f.error().err;
        if (guest_file_changed(err)) {
            h.state = Hashed::changed;
            return h;
        }
        h.state = (err == EACCES || err == EIO) ? Hashed::unreadable : Hashed::failed;
        h.error = f.error();
        return h;
    }
    int fd = f->fd.get();
    // One look after reading is enough: it also tells a name swapped for another inode
    // between the walk and the open (same_inode in unchanged()).
    auto x = read_xattrs(fd, shown);
    auto c = x ? hash_fd(fd, shown) : Result<ContentHash>(std::unexpected(x.error()));
    if (!c) {
        h.state =
            (c.error().err == EIO || c.error().err == EACCES) ? Hashed::unreadable : Hashed::failed;
        h.error = c.error();
        return h;
    }
    auto after = stat_fd(fd, shown);
    if (!after || !after->unchanged(e.st) || c->size != e.st.size) {
        h.state = Hashed::changed;
        return h;
    }
    h.state = Hashed::ok;
    h.hash = *c;
    h.xattrs = std::move(*x);
    h.id = make_object_id(c->sha256, Identity::of(e.st, h.xattrs), ignore_mtime);
    return h;
}

}  // namespace

std::vector<Hashed> hash_batch(const std::vector<WalkEntry>& batch, const std::vector<bool>& wanted,
                               const std::string& root_shown, bool ignore_mtime, unsigned jobs) {
    std::vector<Hashed> out(batch.size());
    parallel_for(batch.size(), jobs, [&](size_t i) {
        if (!wanted[i]) return;
        out[i] = hash_one(batch[i], join_path(root_shown, batch[i].path), ignore_mtime);
    });
    return out;
}

}  // namespace unify
