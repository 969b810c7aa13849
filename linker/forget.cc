// forget, as three passes: look the guest up; unshare all its links (unless keep_links);
// delete the guest record, which takes every link record left with it.
#include "linker/forget.h"

#include <algorithm>
#include <ostream>

#include "store/guest_registry.h"
#include "store/guest_root.h"
#include "store/tree_walk.h"

namespace unify {

namespace {

Result<GuestRecord> find_guest(Pool& pool, const std::string& name) {
    auto txn = pool.index().read();
    if (!txn) return std::unexpected(txn.error());
    auto g = (*txn)->guest(name);
    if (!g) return std::unexpected(g.error());
    (*txn)->commit();
    if (!*g) return std::unexpected(no_guest_named(pool, "forget", name));
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

// Names of pool objects below the guest root that no record names: a guest can add them
// with link() while a protection window has the flag lifted (the lease stops writers, not
// link). Left, they would stay immutable links of a shared object: the admin's rm -rf of the
// forgotten guest fails, and gc never frees the object. Each is recorded here (not in a dry
// run), so that unshare gives it a private copy like the rest; returns their paths.
class PlantedLinks {
  public:
    PlantedLinks(Pool& pool, const GuestRecord& g, uint64_t dev) : pool_(pool), g_(g), dev_(dev) {}

    Result<std::vector<std::string>> find(int root_fd) {
        if (auto all = pool_.objects_by_inode(by_inode_); !all) return std::unexpected(all.error());
        auto txn = pool_.index().read();
        if (!txn) return std::unexpected(txn.error());
        txn_ = txn->get();
        auto walked = walk(root_fd);
        txn_ = nullptr;
        if (!walked) return std::unexpected(walked.error());
        return std::move(paths_);
    }

    Result<void> record() {
        if (found_.empty()) return {};
        auto txn = pool_.index().write();
        if (!txn) return std::unexpected(txn.error());
        for (const auto& l : found_)
            if (auto r = (*txn)->put_link(l); !r) return r;
        return (*txn)->commit();
    }

  private:
    // Mounts inside the root (a bind mount of another guest's tree, say) are not crossed
    // (for_each_linked_file): what is there is not this guest's.
    Result<void> walk(int root_fd) {
        return for_each_linked_file(
            root_fd, g_.root, dev_, [&](const TreeItem& it) -> Result<void> {
                const FileStat& st = it.st;
                auto found = by_inode_.find(st.ino);
                if (found == by_inode_.end()) return {};
                auto obj = pool_.stat_object(found->second.first, found->second.second);
                if (!obj) return std::unexpected(obj.error());
                if (!*obj || !(*obj)->same_inode(st)) return {};
                // A dry run unshared nothing: the recorded names are still here.
                auto rec = txn_->link(g_.id, it.path);
                if (!rec) return std::unexpected(rec.error());
                if (*rec && (*rec)->id == found->second.first) return {};
                found_.push_back({g_.id, it.path, found->second.first, found->second.second, st.ino,
                                  st.size, st.mtime_ns, st.ctime_ns});
                paths_.push_back(it.path);
                return {};
            });
    }

    Pool& pool_;
    const GuestRecord& g_;
    uint64_t dev_;
    Pool::ByInode by_inode_;
    Txn* txn_ = nullptr;  // find's read transaction
    std::vector<LinkRecord> found_;
    std::vector<std::string> paths_;
};

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
        auto root = open_guest_root(pool, *g);
        if (!root) {
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
        // After the recorded links, any name of an object still in the root is one nobody
        // recorded.
        PlantedLinks planted(pool, *g, root->st.dev);
        auto found = planted.find(root->fd.get());
        if (!found) return std::unexpected(context(found.error(), what));
        sum.unrecorded = found->size();
        if (!found->empty()) {
            log << "unify: warning: guest " << opt.name << " has " << found->size()
                << " name(s) of pool objects that no record names (links made while a "
                   "protection window was open); "
                << (opt.dry_run ? "they would be made private too" : "they are made private too")
                << "\n";
            if (!opt.dry_run) {
                if (auto rec = planted.record(); !rec)
                    return std::unexpected(context(rec.error(), what));
                u.paths = *found;
                auto again = unshare_guest(pool, u, log);
                if (!again) return std::unexpected(context(again.error(), what));
                sum.unshared.unshared += again->unshared;
                sum.unshared.bytes_copied += again->bytes_copied;
                sum.unshared.not_linked += again->not_linked;
            }
        }
    }
    // (Unshare dropped the records of the links it handled; none are left without keep_links.)
    // With --delete-root: the records of a root that was gone already, or of links it could
    // not reach.
    if (opt.keep_links || opt.delete_root || pool.settings().reflink()) {
        auto n = count_links(pool, g->id);
        if (!n) return std::unexpected(context(n.error(), what));
        sum.records_dropped = *n;
        // A dry run dropped nothing: the records --delete-root would drop are still counted.
        if (opt.dry_run && opt.delete_root)
            sum.records_dropped -= std::min(sum.records_dropped, sum.deleted.records_dropped);
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
