#include "linker/unshare.h"

#include <fcntl.h>
#include <unistd.h>

#include <ostream>
#include <unordered_set>

#include "importer/guest_root.h"
#include "linker/copy.h"
#include "linker/replace.h"
#include "store/fault.h"
#include "store/fresh_file.h"
#include "store/guest_path.h"
#include "store/interrupt.h"

namespace unify {

namespace {

constexpr size_t kBatch = 1024;

// "/vservers/web1/usr/bin/ls" or "/usr/bin/ls" -> "/usr/bin/ls".
std::string guest_path_of(const std::string& p, const std::string& root) {
    if (path_within(p, root) && p.size() > root.size()) return p.substr(root.size());
    return p;
}

enum class Outcome { unshared, not_linked };

// Removes, by name, the copies a killed unshare named but never renamed into place
// (".unify-<token>.copy.<random>"), once per directory per run.
void sweep_copies(const Pool& pool, int dirfd, const std::string& dir,
                  std::unordered_set<std::string>& swept) {
    if (!swept.insert(dir).second) return;
    auto entries = read_dir(dirfd, dir);
    if (!entries) return;  // the unshare itself reports what is wrong with the directory
    const std::string prefix = pool.temp_prefix() + "copy.";
    for (const auto& e : *entries)
        if (e.name.compare(0, prefix.size(), prefix) == 0) unlinkat(dirfd, e.name.c_str(), 0);
}

Result<Outcome> unshare_one(Pool& pool, int root_fd, const std::string& root, const LinkRecord& l,
                            const std::optional<ObjectRecord>& rec,
                            std::unordered_set<std::string>& swept) {
    std::string shown = join_path(root, l.path);
    auto gp = open_guest_parent(root_fd, l.path, shown);
    if (!gp) return std::unexpected(gp.error());
    if (!*gp) return Outcome::not_linked;
    auto obj = pool.open_object(l.id, l.replica);
    if (!obj) {
        if (obj.error().err == ENOENT) return Outcome::not_linked;
        return std::unexpected(obj.error());
    }
    std::string obj_shown = pool.object_shown(l.id, l.replica);
    auto obj_st = stat_fd(obj->get(), obj_shown);
    if (!obj_st) return std::unexpected(obj_st.error());
    auto now = stat_if_exists((*gp)->dir.get(), (*gp)->name, shown);
    if (!now) return std::unexpected(now.error());
    if (!*now || !(*now)->same_inode(*obj_st)) return Outcome::not_linked;

    auto xattrs = read_xattrs(obj->get(), obj_shown);
    if (!xattrs) return std::unexpected(xattrs.error());
    int dirfd = (*gp)->dir.get();
    sweep_copies(pool, dirfd, l.path.substr(0, l.path.rfind('/') + 1), swept);
    // The copy is made unnamed in the guest's directory and named only when complete, at a
    // random name (store/fresh_file.h): nothing the guest planted is ever opened or written.
    // A run killed after the link leaves a "copy." temporary that import sweeps by name.
    fault_point("unshare.create");
    auto t = create_unnamed(dirfd, shown + " (copy)");
    if (!t) return std::unexpected(t.error());
    int tfd = t->get();
    auto h = copy_with_metadata(obj->get(), *obj_st, *xattrs, tfd, obj_shown, shown);
    if (h && rec && h->sha256 != rec->content)
        h = fail("object " + obj_shown + " does not match its recorded content; run unify verify");
    if (h && fsync(tfd) != 0) h = sys_fail("fsync", shown);
    if (!h) return std::unexpected(h.error());
    auto named = link_unnamed_fresh(tfd, dirfd, pool.temp_prefix() + "copy.", shown);
    if (!named) return std::unexpected(named.error());
    const std::string& tmp = *named;
    Result<Replaced> replaced = Replaced::changed;
    auto act = [&]() -> Result<void> {
        replaced = rename_over(dirfd, tmp, (*gp)->name, **now, shown);
        return replaced ? Result<void>() : std::unexpected(replaced.error());
    };
    if (auto r = pool.with_links_allowed(l.id, l.replica, obj->get(), act); !r) {
        // The window may fail before act() ran (the flag could not be lifted): the copy must
        // not stay behind in the guest. After a rename the name is gone and this is a no-op.
        unlinkat(dirfd, tmp.c_str(), 0);
        return std::unexpected(r.error());
    }
    if (*replaced == Replaced::done) return Outcome::unshared;
    if (*replaced == Replaced::refused)
        return fail("renameat(" + shown +
                        "): refused (EPERM) although the object's protection "
                        "was lifted; is the path flagged immutable by the guest?",
                    EPERM);
    return Outcome::not_linked;
}

}  // namespace

Result<UnshareSummary> unshare_guest(Pool& pool, const UnshareOptions& opt, std::ostream& log) {
    UnshareSummary sum;
    auto rtxn = pool.index().read();
    if (!rtxn) return std::unexpected(rtxn.error());
    auto g = (*rtxn)->guest(opt.name);
    if (!g) return std::unexpected(g.error());
    if (!*g) return fail("unshare: no guest named '" + opt.name + "' (see unify list)");
    std::vector<LinkRecord> links;
    if (opt.paths.empty()) {
        auto r = (*rtxn)->for_each_link_of_guest((*g)->id, [&](const LinkRecord& l) {
            links.push_back(l);
            return true;
        });
        if (!r) return std::unexpected(r.error());
    } else {
        for (const auto& p : opt.paths) {
            std::string gp = guest_path_of(p, (*g)->root);
            auto l = (*rtxn)->link((*g)->id, gp);
            if (!l) return std::unexpected(l.error());
            if (!*l) {
                log << "unify: " << opt.name << ":" << gp << " is not unified; nothing to do\n";
                continue;
            }
            links.push_back(**l);
        }
    }
    (*rtxn)->commit();
    auto root = open_guest_root(pool, (*g)->root);
    if (!root) return std::unexpected(context(root.error(), "unshare " + opt.name));

    auto progress = [&](size_t done) {
        if (opt.progress)
            opt.progress({.phase = "unshare",
                          .unit = "files",
                          .done = done,
                          .part = done,
                          .parts = links.size()});
    };
    std::unordered_set<std::string> swept;  // directories whose stale copies are gone
    for (size_t start = 0; start < links.size(); start += kBatch) {
        auto txn = opt.dry_run ? pool.index().read() : pool.index().write();
        if (!txn) return std::unexpected(txn.error());
        Result<void> outcome;
        size_t end = std::min(links.size(), start + kBatch);
        for (size_t i = start; i < end; ++i) {
            progress(i);
            if (interrupted()) {
                outcome = std::unexpected(interrupted_error());
                break;
            }
            const LinkRecord& l = links[i];
            auto rec = (*txn)->object(l.id);
            if (!rec) {
                outcome = std::unexpected(rec.error());
                break;
            }
            if (opt.dry_run) {
                ++sum.unshared;
                sum.bytes_copied += *rec ? (*rec)->size : 0;
                continue;
            }
            auto r = unshare_one(pool, root->fd.get(), root->path, l, *rec, swept);
            if (!r) {
                outcome = std::unexpected(r.error());
                break;
            }
            if (*r == Outcome::unshared) {
                ++sum.unshared;
                sum.bytes_copied += *rec ? (*rec)->size : 0;
                if (opt.verbose) log << "unshare " << join_path(root->path, l.path) << "\n";
            } else {
                ++sum.not_linked;
            }
            if (auto d = (*txn)->delete_link(l.guest, l.path); !d) {
                outcome = d;
                break;
            }
        }
        auto c = (*txn)->commit();
        if (!outcome) return std::unexpected(context(outcome.error(), "unshare " + opt.name));
        if (!c) return std::unexpected(c.error());
        progress(end);
    }
    return sum;
}

}  // namespace unify
