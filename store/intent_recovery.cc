// Finishing a killed writer's intent (store/intent.h): a window only needs the flag back; an
// adopted object must also be hashed now that it is frozen, and withdrawn from the pool if
// the guest wrote to it before the flag was set (its guest file stays as the guest left it).
#include <unistd.h>

#include <initializer_list>

#include "store/identify.h"
#include "store/pool.h"

namespace unify {

namespace {

// Returns what was done, for the log.
Result<std::string> finish(const Pool& pool, const Intent& in) {
    std::string shown = pool.object_shown(in.object_name);
    auto slash = in.object_name.find('/');
    auto parsed = slash == 2 ? Pool::parse_object_file(in.object_name.substr(3)) : std::nullopt;
    if (!parsed || in.object_name.compare(0, 2, Pool::shard_name(parsed->first.bytes[0])) != 0)
        return fail(pool.path() + "/intent names '" + in.object_name + "', not an object");
    const ObjectId* id = &parsed->first;
    auto f = pool.open_object(in.object_name);
    if (!f) {
        if (f.error().err == ENOENT) return std::string();  // it never got a name, or gc took it
        return std::unexpected(f.error());
    }
    int fd = f->get();
    if (auto r = pool.protection().protect(fd, shown); !r) return std::unexpected(r.error());
    if (in.op == IntentOp::window)
        return "protected " + shown + " again (its window was cut short)";
    auto now = identify_fd(fd, shown, pool.settings().id_rules());
    if (!now) return std::unexpected(now.error());
    if (now->id == *id) return "verified " + shown + " (its import was cut short)";
    if (auto r = pool.protection().unprotect(fd, shown); !r) return std::unexpected(r.error());
    if (unlinkat(pool.objects_fd(), in.object_name.c_str(), 0) != 0)
        return sys_fail("unlinkat", shown);
    return "withdrew " + shown + ": it changed before it was protected";
}

// Temporaries a killed writer named but never renamed into place, in the pool (which only
// unify writes, under the lock): ".guests.conf.tmp.*" and ".pool.conf.tmp.*"
// (replace_small_file) in POOL, "renew.*" (renew_object) and "trash.*" (store/trash.h) in
// POOL/tmp. Removed by name.
Result<size_t> sweep_pool_temporaries(const Pool& pool) {
    size_t swept = 0;
    auto sweep = [&](int dirfd, const std::string& shown,
                     std::initializer_list<const char*> prefixes) -> Result<void> {
        auto entries = read_dir(dirfd, shown);
        if (!entries) return std::unexpected(entries.error());
        for (const auto& e : *entries)
            for (const char* p : prefixes)
                if (e.name.starts_with(p)) {
                    if (unlinkat(dirfd, e.name.c_str(), 0) != 0 && errno != ENOENT)
                        return sys_fail("unlinkat", join_path(shown, e.name));
                    ++swept;
                }
        return {};
    };
    if (auto r = sweep(pool.fd(), pool.path(), {".guests.conf.tmp.", ".pool.conf.tmp."}); !r)
        return std::unexpected(r.error());
    if (auto r = sweep(pool.tmp_fd(), pool.path() + "/tmp", {"renew.", "trash."}); !r)
        return std::unexpected(r.error());
    return swept;
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
    auto swept = sweep_pool_temporaries(*this);
    if (!swept) return std::unexpected(swept.error());
    if (*swept)
        done += (done.empty() ? "" : "\n") + std::string("removed ") + std::to_string(*swept) +
                " temporary file(s) a killed writer left in " + path_;
    return done;
}

}  // namespace unify
