// forget, as three passes: look the guest up; unshare all its links (unless keep_links);
// delete the guest record, which takes every link record left with it.
#include "linker/forget.h"

#include <ostream>

#include "store/guest_registry.h"
#include "store/guest_root.h"

namespace unify {

namespace {

Result<GuestRecord> find_guest(Pool& pool, const std::string& name) {
    auto txn = pool.index().read();
    if (!txn) return std::unexpected(txn.error());
    auto g = (*txn)->guest(name);
    if (!g) return std::unexpected(g.error());
    (*txn)->commit();
    if (!*g) return fail("forget: no guest named '" + name + "' (see unify list)");
    return **g;
}

Result<uint64_t> count_links(Pool& pool, uint32_t guest) {
    auto txn = pool.index().read();
    if (!txn) return std::unexpected(txn.error());
    uint64_t n = 0;
    auto r = (*txn)->for_each_link_of_guest(guest, [&](const LinkRecord&) {
        ++n;
        return true;
    });
    if (!r) return std::unexpected(r.error());
    (*txn)->commit();
    return n;
}

}  // namespace

Result<ForgetSummary> forget_guest(Pool& pool, const ForgetOptions& opt, std::ostream& log) {
    auto g = find_guest(pool, opt.name);
    if (!g) return std::unexpected(g.error());
    ForgetSummary sum{opt.name, g->root, opt.keep_links, opt.dry_run};
    std::string what = "forget " + opt.name;

    sum.delete_root = opt.delete_root;
    // 1. Delete the root (nothing copied), or give the guest its files back as private copies.
    if (opt.delete_root) {
        auto d = delete_guest_root(pool, *g, opt.dry_run, opt.verbose, opt.progress, log);
        if (!d) return std::unexpected(context(d.error(), what));
        sum.deleted = std::move(*d);
        if (!sum.deleted.left.empty()) {
            std::string list;
            for (size_t k = 0; k < sum.deleted.left.size() && k < 10; ++k)
                list += "\n  " + sum.deleted.left[k];
            if (sum.deleted.left.size() > 10)
                list += "\n  ... and " + std::to_string(sum.deleted.left.size() - 10) + " more";
            size_t n = sum.deleted.left.size();
            return fail(what + ": " + std::to_string(n) + (n == 1 ? " path" : " paths") +
                        " could not be deleted; the guest stays registered (run forget "
                        "--delete-root again once they are dealt with):" +
                        list);
        }
    } else if (!opt.keep_links && !pool.settings().reflink()) {
        // (A reflink pool's guest files are ordinary files of their own: only records go.)
        if (auto root = open_guest_root(pool, *g); !root) {
            if (root.error().err == ENOENT)
                return fail(what + ": the guest root " + g->root +
                                " is gone; use --keep-links to only unregister the guest",
                            ENOENT);
            return std::unexpected(context(root.error(), what));
        }
        UnshareOptions u{opt.name, {}, opt.dry_run, opt.verbose, opt.progress};
        auto r = unshare_guest(pool, u, log);
        if (!r) return std::unexpected(context(r.error(), what));
        sum.unshared = *r;
    }
    // (Unshare dropped the records of the links it handled; none are left without keep_links.)
    // With --delete-root: the records of a root that was gone already, or of links it could
    // not reach.
    if (opt.keep_links || opt.delete_root || pool.settings().reflink()) {
        auto n = count_links(pool, g->id);
        if (!n) return std::unexpected(context(n.error(), what));
        sum.records_dropped = *n;
    }
    if (opt.dry_run) return sum;

    // 2. Unregister: the guest and whatever link records it still has, in one transaction.
    auto txn = pool.index().write();
    if (!txn) return std::unexpected(txn.error());
    if (auto r = (*txn)->delete_guest(g->id); !r) return std::unexpected(context(r.error(), what));
    if (auto r = (*txn)->commit(); !r) return std::unexpected(context(r.error(), what));
    // guests.conf outlives the index: without this a reindex would bring the guest back.
    if (auto r = sync_guest_registry(pool); !r) return std::unexpected(context(r.error(), what));
    if (opt.verbose) log << "forget guest " << opt.name << " (" << g->root << ")\n";
    return sum;
}

}  // namespace unify
