// Finishing a killed writer's intent (store/intent.h): the object gets its flag back and is
// hashed now that it is frozen. Between the kill and now any guest that links it could write
// it, change its metadata, or open it for writing (an fd the flag does not stop on XFS,
// btrfs and tmpfs). An adopted object that changed is withdrawn from the pool (its guest
// file stays as the guest left it); a shared object that changed is named for the
// quarantine (Recovery::changed); one still held open for writing where the flag spares
// that fd stops every writer until the admin ends that process.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <initializer_list>

#include "store/identify.h"
#include "store/lease.h"
#include "store/pool.h"
#include "store/protect.h"

namespace unify {

namespace {

// Returns what was done, for the log; `changed` is set for a window's object that no longer
// gives its id.
Result<std::string> finish(const Pool& pool, const Intent& in, bool& changed) {
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
    // A read lease cannot be had while any fd is open for writing on the inode.
    LeaseTry lease = take_read_lease(fd);
    bool held_open = lease == LeaseTry::busy && flag_spares_earlier_writers(fd);
    auto protected_ = pool.protection().protect(fd, shown);
    if (lease == LeaseTry::held) drop_lease(fd);
    if (!protected_) return std::unexpected(protected_.error());
    bool window = in.op == IntentOp::window;
    if (held_open && window)
        return fail("object " + shown +
                        " is open for writing: a unify killed while its protection was lifted "
                        "left it writable, and on this filesystem the flag set again does not "
                        "stop an fd opened meanwhile, so that process can change it for every "
                        "guest that links it. Find it (fuser -v " +
                        shown + "), stop it, then run unify again",
                    EBUSY);
    auto now = identify_fd(fd, shown, pool.settings().id_rules());
    if (!now) return std::unexpected(now.error());
    if (now->id == *id && !held_open)
        return window ? "protected " + shown +
                            " again (its window was cut short); its content and metadata still "
                            "give its id"
                      : "verified " + shown + " (its import was cut short)";
    if (window) {
        changed = true;
        return std::string();
    }
    if (auto r = pool.protection().unprotect(fd, shown); !r) return std::unexpected(r.error());
    if (unlinkat(pool.objects_fd(), in.object_name.c_str(), 0) != 0)
        return sys_fail("unlinkat", shown);
    return "withdrew " + shown +
           (held_open ? ": its guest file is open for writing"
                      : ": it changed before it was protected");
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

Result<Pool::Recovery> Pool::prepare_writer() {
    auto log = IntentLog::open(fd(), path_);
    if (!log) return std::unexpected(log.error());
    intent_ = std::move(*log);
    Recovery out;
    std::string& done = out.log;
    std::vector<std::string> changed;
    for (const Intent& in : intent_.pending()) {
        bool now_changed = false;
        // An error leaves every intent pending, for the next writer to look at again.
        auto d = finish(*this, in, now_changed);
        if (!d) return std::unexpected(context(d.error(), "finishing an interrupted operation"));
        if (!d->empty()) done += (done.empty() ? "" : "\n") + *d;
        if (now_changed &&
            std::find(changed.begin(), changed.end(), in.object_name) == changed.end())
            changed.push_back(in.object_name);
    }
    if (changed.size() > kPendingSlots)
        return fail("finishing an interrupted operation: " + std::to_string(changed.size()) +
                    " objects changed while a killed unify had left their protection lifted, "
                    "more than can wait for their quarantine here: run unify verify --quarantine");
    // Changed objects move to the pending slots before the work slots are cleared: until the
    // caller's quarantine ends them, every later writer finds them again.
    for (size_t k = 0; k < changed.size(); ++k) {
        intent_.begin(IntentOp::window, changed[k], kWorkSlots + k);
        out.changed.push_back({changed[k], kWorkSlots + k});
    }
    for (size_t slot = 0; slot < kIntentSlots; ++slot)
        if (slot < kWorkSlots || slot >= kWorkSlots + changed.size()) intent_.end(slot);
    auto swept = sweep_pool_temporaries(*this);
    if (!swept) return std::unexpected(swept.error());
    if (*swept)
        done += (done.empty() ? "" : "\n") + std::string("removed ") + std::to_string(*swept) +
                " temporary file(s) a killed writer left in " + path_;
    return out;
}

}  // namespace unify
