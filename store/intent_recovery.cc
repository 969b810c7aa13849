// Finishing a killed writer's intent (store/intent.h): a window only needs the flag back; an
// adopted object must also be hashed now that it is frozen, and withdrawn from the pool if
// the guest wrote to it before the flag was set (its guest file stays as the guest left it).
#include <fcntl.h>
#include <unistd.h>

#include "store/hasher.h"
#include "store/pool.h"

namespace unify {

namespace {

// Returns what was done, for the log.
Result<std::string> finish(const Pool& pool, const Intent& in) {
    std::string shown = pool.path() + "/objects/" + in.object_name;
    auto slash = in.object_name.find('/');
    std::string base = slash == std::string::npos ? "" : in.object_name.substr(slash + 1);
    auto id = ObjectId::from_hex(base.substr(0, 64));
    if (!id || in.object_name.find("..") != std::string::npos)
        return fail(pool.path() + "/intent names '" + in.object_name + "', not an object");
    int fd = openat(pool.objects_fd(), in.object_name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) return std::string();  // it never got a name, or gc took it
        return sys_fail("open", shown);
    }
    Fd f(fd);
    if (auto r = pool.protection().protect(fd, shown); !r) return std::unexpected(r.error());
    if (in.op == IntentOp::window)
        return "protected " + shown + " again (its window was cut short)";
    auto h = hash_fd(fd, shown);
    if (!h) return std::unexpected(h.error());
    auto x = read_xattrs(fd, shown);
    if (!x) return std::unexpected(x.error());
    auto st = stat_fd(fd, shown);
    if (!st) return std::unexpected(st.error());
    ObjectId now =
        make_object_id(h->sha256, Identity::of(*st, std::move(*x)), pool.settings().ignore_mtime);
    if (now == *id) return "verified " + shown + " (its import was cut short)";
    if (auto r = pool.protection().unprotect(fd, shown); !r) return std::unexpected(r.error());
    if (unlinkat(pool.objects_fd(), in.object_name.c_str(), 0) != 0)
        return sys_fail("unlinkat", shown);
    return "withdrew " + shown + ": it changed before it was protected";
}

}  // namespace

Result<std::string> Pool::prepare_writer() {
    auto log = IntentLog::open(fd(), path_);
    if (!log) return std::unexpected(log.error());
    intent_ = std::move(*log);
    std::string done;
    for (const Intent& in : intent_.pending()) {
        auto d = finish(*this, in);
        if (!d) return std::unexpected(context(d.error(), "finishing an interrupted operation"));
        if (!d->empty()) done += (done.empty() ? "" : "\n") + *d;
    }
    for (size_t slot = 0; slot < kIntentSlots; ++slot) intent_.end(slot);
    return done;
}

}  // namespace unify
