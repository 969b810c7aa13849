// The two passes of delete_root.h. A Deleter holds the run's state: the root, the figures,
// and (built only when first needed) the pool's objects by inode.
#include "linker/delete_root.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <map>
#include <ostream>
#include <set>
#include <unordered_map>

#include "linker/scatter.h"
#include "store/fault.h"
#include "store/guest_path.h"
#include "store/guest_root.h"
#include "store/interrupt.h"
#include "store/printable.h"
#include "store/tree_walk.h"

namespace unify {

namespace {

constexpr size_t kObjectsPerCommit = 256;

struct Target {
    GuestPath gp;
    std::string shown;
};

class Deleter {
  public:
    Deleter(Pool& pool, const GuestRecord& g, uint64_t root_dev, bool dry_run, bool verbose,
            const ProgressFn& progress, std::ostream& log)
        : pool_(pool),
          g_(g),
          dry_(dry_run),
          verbose_(verbose),
          progress_(progress),
          log_(log),
          root_dev_(root_dev) {}

    Result<void> links(const GuestRoot& root);
    Result<void> tree(int dirfd, const std::string& shown);
    Result<void> root_dir(const GuestRoot& root);
    DeleteRootSummary sum;

  private:
    Result<void> remove(int dirfd, const std::string& name, const FileStat& st,
                        const std::string& shown);
    Result<std::optional<std::pair<ObjectId, uint32_t>>> object_of(const FileStat& st);
    Result<bool> unlink_in_window(const ObjectId& id, uint32_t replica,
                                  const std::vector<Target>& targets);
    void tick() {
        ++done_;
        if (progress_ && done_ % 64 == 0)
            progress_({.phase = "delete", .unit = "entries", .done = done_});
    }

    Pool& pool_;
    const GuestRecord& g_;
    bool dry_, verbose_;
    const ProgressFn& progress_;
    std::ostream& log_;
    uint64_t root_dev_;
    uint64_t done_ = 0;
    std::set<std::string> counted_links_;  // dry run: pass 1's paths, not counted again
    std::optional<Pool::ByInode> by_inode_;
};

// Unlinks each target inside one window of its object. False if the object vanished.
Result<bool> Deleter::unlink_in_window(const ObjectId& id, uint32_t replica,
                                       const std::vector<Target>& targets) {
    auto obj = pool_.open_object(id, replica);
    if (!obj) {
        if (obj.error().err == ENOENT) return false;
        return std::unexpected(obj.error());
    }
    auto act = [&]() -> Result<void> {
        for (const auto& t : targets) {
            fault_point("delete.unlink");
            if (unlinkat(t.gp.dir.get(), t.gp.name.c_str(), 0) == 0) {
                ++sum.linked;
                if (verbose_) log_ << "delete " << printable(t.shown) << "\n";
                continue;
            }
            if (errno == ENOENT) continue;
            if (errno == EPERM) {  // the guest flagged the directory immutable/append-only
                sum.left.push_back(t.shown +
                                   ": its directory is flagged immutable or "
                                   "append-only by the guest");
                continue;
            }
            return sys_fail("unlinkat", t.shown);
        }
        return {};
    };
    if (auto r = with_links_guarded(pool_, nullptr, id, replica, obj->get(), act, log_); !r)
        return std::unexpected(r.error());
    return true;
}

// Pass 1: every recorded link, one window per object, records dropped per batch of objects.
Result<void> Deleter::links(const GuestRoot& root) {
    std::map<std::pair<ObjectId, uint32_t>, std::vector<std::string>> by_object;
    {
        auto txn = pool_.index().read();
        if (!txn) return std::unexpected(txn.error());
        auto r = (*txn)->for_each_link_of_guest(g_.id, [&](const LinkRecord& l) {
            by_object[{l.id, l.replica}].push_back(l.path);
            return true;
        });
        if (!r) return r;
        (*txn)->commit();
    }
    std::vector<std::string> drop;
    auto commit = [&]() -> Result<void> {
        if (dry_ || drop.empty()) return {};
        auto txn = pool_.index().write();
        if (!txn) return std::unexpected(txn.error());
        for (const auto& p : drop)
            if (auto d = (*txn)->delete_link(g_.id, p); !d) return d;
        if (auto c = (*txn)->commit(); !c) return c;
        drop.clear();
        return {};
    };
    size_t objects = 0;
    for (const auto& [key, paths] : by_object) {
        if (interrupted()) return std::unexpected(interrupted_error());
        auto obj_st = pool_.stat_object(key.first, key.second);
        if (!obj_st) return std::unexpected(obj_st.error());
        std::vector<Target> targets;
        for (const auto& path : paths) {
            std::string shown = join_path(root.path, path);
            auto gp = open_guest_parent(root.fd.get(), path, shown);
            if (!gp) return std::unexpected(gp.error());
            if (*gp && *obj_st) {
                auto st = stat_if_exists((*gp)->dir.get(), (*gp)->name, shown);
                if (!st) return std::unexpected(st.error());
                if (*st && (*st)->same_inode(**obj_st)) targets.push_back({std::move(**gp), shown});
            }
            tick();
        }
        sum.records_dropped += paths.size();
        if (dry_) {
            sum.linked += targets.size();
            for (const auto& t : targets) {
                counted_links_.insert(t.shown);
                if (verbose_) log_ << "would delete " << printable(t.shown) << "\n";
            }
            continue;
        }
        if (!targets.empty())
            if (auto r = unlink_in_window(key.first, key.second, targets); !r)
                return std::unexpected(r.error());
        drop.insert(drop.end(), paths.begin(), paths.end());
        if (++objects % kObjectsPerCommit == 0)
            if (auto c = commit(); !c) return c;
    }
    return commit();
}

// The pool object whose inode `st` is, if any: a link the index does not record.
Result<std::optional<std::pair<ObjectId, uint32_t>>> Deleter::object_of(const FileStat& st) {
    using Found = std::optional<std::pair<ObjectId, uint32_t>>;
    if (st.dev != pool_.stat().dev || st.nlink < 2) return Found();
    if (!by_inode_) {
        by_inode_.emplace();
        if (auto all = pool_.objects_by_inode(*by_inode_); !all) {
            by_inode_.reset();
            return std::unexpected(all.error());
        }
    }
    auto it = by_inode_->find(st.ino);
    if (it == by_inode_->end()) return Found();
    auto obj = pool_.stat_object(it->second.first, it->second.second);
    if (!obj) return std::unexpected(obj.error());
    if (!*obj || !(*obj)->same_inode(st)) return Found();
    return Found(it->second);
}

// One entry that is not a directory to walk (or a walked directory, now empty).
Result<void> Deleter::remove(int dirfd, const std::string& name, const FileStat& st,
                             const std::string& shown) {
    tick();
    uint64_t& counter = st.is_dir() ? sum.dirs : st.is_reg() ? sum.files : sum.other;
    if (dry_) {
        if (counted_links_.count(shown)) return {};
        ++counter;
        if (verbose_)
            log_ << "would delete " << printable(shown) << (st.is_dir() ? "/" : "") << "\n";
        return {};
    }
    fault_point(st.is_dir() ? "delete.rmdir" : "delete.remove");
    if (unlinkat(dirfd, name.c_str(), st.is_dir() ? AT_REMOVEDIR : 0) == 0) {
        ++counter;
        if (verbose_) log_ << "delete " << printable(shown) << (st.is_dir() ? "/" : "") << "\n";
        return {};
    }
    int err = errno;
    if (err == ENOENT) return {};
    if (st.is_dir() && err == ENOTEMPTY) {
        if (sum.left.empty())
            sum.left.push_back(shown + ": not empty (files appeared while it was deleted)");
        return {};
    }
    if (err != EPERM) return sys_fail("unlinkat", shown);
    if (st.is_reg()) {
        auto obj = object_of(st);
        if (!obj) return std::unexpected(obj.error());
        if (*obj) {
            auto here = open_beneath(dirfd, ".", O_RDONLY | O_DIRECTORY, shown);
            if (!here) return std::unexpected(here.error());
            std::vector<Target> t;
            t.push_back({GuestPath{std::move(*here), name}, shown});
            if (auto r = unlink_in_window((*obj)->first, (*obj)->second, t); !r)
                return std::unexpected(r.error());
            return {};
        }
    }
    sum.left.push_back(shown +
                       ": flagged immutable or append-only by the guest (or its "
                       "directory is); unify does not lift a guest's own flags");
    return {};
}

// Pass 2: depth first, like rm -rf --one-file-system, relative to directory fds.
Result<void> Deleter::tree(int dirfd, const std::string& shown) {
    TreeVisitor v;
    v.enter = [&](const TreeItem& it) -> Result<TreeStep> {
        if (!it.st.is_dir()) return TreeStep::leave;
        if (it.st.mount_root || it.st.dev != root_dev_) {
            sum.left.push_back(it.shown + ": a mount point; not crossed");
            return TreeStep::skip;
        }
        return TreeStep::into;
    };
    v.leave = [&](const TreeItem& it) { return remove(it.dirfd, it.name, it.st, it.shown); };
    v.changed = [&](const TreeItem& it, int err) -> Result<void> {
        sum.left.push_back(it.shown + ": changed while it was deleted (" +
                           std::string(strerror(err)) + ")");
        return {};
    };
    return walk_tree(dirfd, shown, v);
}

// The root directory itself, through its parent (host territory, the admin's own path).
Result<void> Deleter::root_dir(const GuestRoot& root) {
    auto slash = root.path.rfind('/');
    std::string parent = slash == 0 ? "/" : root.path.substr(0, slash);
    std::string name = root.path.substr(slash + 1);
    auto dir = open_dir_path(parent);
    if (!dir) return std::unexpected(dir.error());
    auto st = stat_if_exists(dir->get(), name, root.path);
    if (!st) return std::unexpected(st.error());
    if (!*st || !(*st)->same_inode(root.st))
        return fail(root.path + " changed while it was deleted");
    return remove(dir->get(), name, **st, root.path);
}

// The pool, or a directory above it, must not be the root about to be deleted, whichever
// way the root's path reaches it (a bind mount, which the path checks of open_guest_root
// cannot see).
Result<void> pool_outside(const Pool& pool, const GuestRoot& root) {
    for (std::string p = pool.real_path();;) {
        auto st = stat_at(AT_FDCWD, p, p);
        if (!st) return std::unexpected(st.error());
        if (st->same_inode(root.st))
            return fail("guest root " + root.path + " is the directory " + p +
                        ", which holds the pool " + pool.real_path() + ": nothing was deleted");
        if (p == "/") return {};
        auto slash = p.rfind('/');
        p = slash == 0 ? "/" : p.substr(0, slash);
    }
}

}  // namespace

Result<DeleteRootSummary> delete_guest_root(Pool& pool, const GuestRecord& guest, bool dry_run,
                                            bool verbose, const ProgressFn& progress,
                                            std::ostream& log) {
    auto root = open_guest_root(pool, guest);
    if (!root) {
        // Gone already (a run killed after removing it): only the records are left to drop.
        if (root.error().err != ENOENT) return std::unexpected(root.error());
        DeleteRootSummary gone;
        gone.root_was_gone = true;
        return gone;
    }
    if (auto r = pool_outside(pool, *root); !r) return std::unexpected(r.error());
    if (guest.root_ino && (root->st.dev != guest.root_dev || root->st.ino != guest.root_ino))
        return fail("guest root " + root->path + " is not the directory guest " + guest.name +
                    " was last imported from (device and inode differ): it was replaced, or "
                    "another directory moved there; nothing was deleted. If it is the guest's "
                    "(restored from a backup, say), import it again first");
    Deleter d(pool, guest, root->st.dev, dry_run, verbose, progress, log);
    // 1. Object links, inside their objects' windows.
    if (auto r = d.links(*root); !r) return std::unexpected(r.error());
    // 2. Everything else below the root, then the root.
    if (auto r = d.tree(root->fd.get(), root->path); !r) return std::unexpected(r.error());
    if (!d.sum.left.empty()) return d.sum;
    if (auto r = d.root_dir(*root); !r) return std::unexpected(r.error());
    return d.sum;
}

}  // namespace unify
