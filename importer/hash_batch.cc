#include "importer/hash_batch.h"

#include <fcntl.h>

#include <atomic>
#include <thread>

namespace unify {

void parallel_for(size_t n, unsigned jobs, const std::function<void(size_t)>& body) {
    if (jobs <= 1 || n < 2) {
        for (size_t i = 0; i < n; ++i) body(i);
        return;
    }
    std::atomic<size_t> next{0};
    auto worker = [&] {
        for (size_t i; (i = next.fetch_add(1)) < n;) body(i);
    };
    std::vector<std::thread> threads;
    for (unsigned t = 1; t < jobs; ++t) threads.emplace_back(worker);
    worker();
    for (auto& t : threads) t.join();
}

namespace {

Hashed hash_one(const WalkEntry& e, const std::string& shown, bool ignore_mtime) {
    Hashed h;
    int fd = openat(e.dir->get(), e.name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOATIME);
    if (fd < 0 && errno == EPERM)  // O_NOATIME on a file we do not own without CAP_FOWNER
        fd = openat(e.dir->get(), e.name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT || errno == ELOOP) {
            h.state = Hashed::changed;
            return h;
        }
        h.state = (errno == EACCES || errno == EIO) ? Hashed::unreadable : Hashed::failed;
        h.error = sys_fail("open", shown).error();
        return h;
    }
    Fd f(fd);
    auto before = stat_fd(fd, shown);
    if (!before) {
        h.state = Hashed::failed;
        h.error = before.error();
        return h;
    }
    if (!before->unchanged(e.st)) {
        h.state = Hashed::changed;
        return h;
    }
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
