#include "linker/scatter.h"

#include <fcntl.h>
#include <unistd.h>

#include <map>
#include <ostream>
#include <unordered_set>

#include "linker/object_maker.h"
#include "linker/private_copy.h"
#include "linker/replace.h"
#include "store/fault.h"
#include "store/guest_root.h"
#include "store/lease.h"

namespace unify {

namespace {

struct Scattered {
    size_t copies = 0;
    size_t not_linked = 0;
};

// Every recorded name of the object (id, replica) onto its own copy, then the pool's name
// onto a fresh object. Runs with the lease held; the object's flag is lifted again for the
// renames over its names (not for the copies) and set once they are done.
// `restore`: the metadata the object had before a guest changed it in a window, which the
// copies and the fresh object get instead of its own.
Result<Scattered> scatter_object(Pool& pool, Txn& txn, const ObjectId& id, uint32_t replica,
                                 int object_fd, const Metadata* restore) {
    const std::string shown = pool.object_shown(id, replica);
    Scattered out;
    std::vector<LinkRecord> links;
    auto listed = txn.for_each_link_of_object(id, [&](const LinkRecord& l) {
        if (l.replica == replica) links.push_back(l);
        return true;
    });
    if (!listed) return std::unexpected(listed.error());
    auto rec = txn.object(id);
    if (!rec) return std::unexpected(rec.error());

    // 1. A copy beside every name, from the object's own bytes (each checked against them).
    std::map<uint32_t, GuestRoot> roots;
    DirTimes dir_times;
    CopyDirs dirs(dir_times);
    std::vector<Prepared> ready;
    Result<void> outcome;
    for (size_t i = 0; outcome && i < links.size(); ++i) {
        const LinkRecord& l = links[i];
        auto root = roots.find(l.guest);
        if (root == roots.end()) {
            auto g = txn.guest(l.guest);
            if (!g || !*g) {
                outcome = g ? fail("object " + shown + ": a link record names guest id " +
                                   std::to_string(l.guest) + ", which is not registered")
                            : std::unexpected(g.error());
                break;
            }
            auto opened = open_guest_root(pool, **g);
            if (!opened) {
                outcome = std::unexpected(opened.error());
                break;
            }
            root = roots.emplace(l.guest, std::move(*opened)).first;
        }
        auto p =
            prepare_copy(pool, root->second.fd.get(), root->second.path, l, *rec, i, dirs, restore);
        if (!p)
            outcome = std::unexpected(p.error());
        else if (*p)
            ready.push_back(std::move(**p));
        else if (auto d = txn.delete_link(l.guest, l.path); d)
            ++out.not_linked;
        else
            outcome = d;
    }
    // 2. Durable together (guests and pool share one filesystem), before any replaces a name.
    if (outcome && !ready.empty()) {
        fault_point("scatter.sync");
        if (syncfs(object_fd) != 0) outcome = sys_fail("syncfs", shown);
    }
    // 3. Renamed over the names. Only now is the flag lifted (a rename over a name of an
    // immutable inode is refused): while it is off, a guest holding an fd on the object can
    // chmod it again, and the other guests see that until their name is moved, so the copies
    // and the syncfs are made with the flag set.
    if (outcome)
        if (auto r = pool.protection().unprotect(object_fd, shown); !r) outcome = r;
    size_t installed = 0;
    for (; outcome && installed < ready.size(); ++installed) {
        const Prepared& p = ready[installed];
        const LinkRecord& l = links[p.index];
        fault_point("scatter.rename");  // the flag is off: a guest's fchmod gets in here
        auto r = rename_over(p.gp.dir.get(), p.tmp, p.gp.name, p.now, p.shown);
        if (!r) {
            renamed_into_place(p);  // rename_over removed the copy: the directory changed
            outcome = std::unexpected(r.error());
        } else if (*r != Replaced::done) {
            discard(p);
            ++out.not_linked;
        } else {
            renamed_into_place(p);
            ++out.copies;
        }
        if (outcome) {
            if (auto d = txn.delete_link(l.guest, l.path); !d) outcome = d;
        }
    }
    for (size_t k = installed; k < ready.size(); ++k) discard(ready[k]);
    dir_times.restore();
    // 4. The pool's name: a fresh object, so that no later link reaches the writer's inode.
    if (outcome) {
        auto made = renew_object(pool, id, replica, object_fd, restore);
        if (!made) outcome = std::unexpected(made.error());
    }
    // Names nobody recorded (a link a guest made during the window) stay unwritable by path.
    auto again = pool.protection().protect(object_fd, shown);
    if (!outcome) return std::unexpected(outcome.error());
    if (!again) return std::unexpected(again.error());
    return out;
}

}  // namespace

// The scatter of a window, or of one that had no index at hand, logged. `restore`: as for
// scatter_object.
static Result<void> scatter_logged(Pool& pool, Txn* txn, const ObjectId& id, uint32_t replica,
                                   int object_fd, const Metadata* restore, std::ostream& log) {
    std::unique_ptr<Txn> own;
    if (!txn) {
        auto w = pool.index().write();
        if (!w) return std::unexpected(w.error());
        own = std::move(*w);
    }
    auto done = scatter_object(pool, txn ? *txn : *own, id, replica, object_fd, restore);
    if (own) {
        if (auto c = own->commit(); !c && done) return std::unexpected(c.error());
    }
    if (!done)
        return std::unexpected(context(
            done.error(), "scattering the names of object " + pool.object_shown(id, replica)));
    log << "unify: warning: object " << pool.object_shown(id, replica)
        << (restore ? " had its mode, owner, mtime or xattrs changed through a guest's name of "
                      "it while its protection was lifted; its "
                    : " was opened for writing while its protection was lifted, on a "
                      "filesystem where the immutable flag does not stop that writer "
                      "afterwards; its ")
        << done->copies << " linked paths were given private copies of its bytes"
        << (restore ? " with the metadata it had before" : "")
        << " and the pool a fresh object, so that no guest sees the change of another. The "
           "next import shares them again\n";
    return {};
}

Result<void> with_links_guarded(Pool& pool, Txn* txn, const ObjectId& id, uint32_t replica,
                                int object_fd, const std::function<Result<void>()>& act,
                                std::ostream& log, bool* scattered) {
    auto scatter = [&](const Metadata* restore) -> Result<void> {
        if (scattered) *scattered = true;
        return scatter_logged(pool, txn, id, replica, object_fd, restore, log);
    };
    return pool.with_links_allowed(id, replica, object_fd, act, scatter);
}

Result<void> scatter_changed(Pool& pool, Txn& txn, const ObjectId& id, uint32_t replica,
                             const Metadata& restore, std::ostream& log) {
    auto fd = pool.open_object(id, replica);
    if (!fd) return std::unexpected(fd.error());
    // As in a window: a writer waits in open() while the names move (if the lease can be had;
    // the copies are checked against the recorded content either way).
    bool leased = take_read_lease(fd->get()) == LeaseTry::held;
    auto r = scatter_logged(pool, &txn, id, replica, fd->get(), &restore, log);
    if (leased) drop_lease(fd->get());
    return r;
}

}  // namespace unify
