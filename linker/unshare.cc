#include "linker/unshare.h"

#include <fcntl.h>
#include <unistd.h>

#include <ostream>

#include "linker/dir_times.h"
#include "linker/private_copy.h"
#include "linker/reflink.h"
#include "linker/replace.h"
#include "linker/scatter.h"
#include "store/fault.h"
#include "store/fd_limit.h"
#include "store/fresh_file.h"
#include "store/guest_path.h"
#include "store/guest_registry.h"
#include "store/guest_root.h"
#include "store/interrupt.h"
#include "store/link_check.h"
#include "store/parallel.h"
#include "store/printable.h"

namespace unify {

namespace {

// Files per batch: one syncfs and one index commit each (a syncfs costs about 10 ms even
// with little to write, so 256 per batch made unshare 1.8x `cp -a` + sync). Each prepared
// copy holds its directory's fd until its rename, so the fd limit bounds it too.
constexpr size_t kMaxBatch = 1024;

enum class Outcome { unshared, not_linked };

// Renames a durable copy over its link, inside the object's protection window.
Result<Outcome> install_copy(Pool& pool, Txn& txn, const LinkRecord& l, const Prepared& p,
                             std::ostream& log) {
    int dirfd = p.gp.dir.get();
    auto obj = pool.open_object(l.id, l.replica);
    if (!obj) {
        discard(p);
        if (obj.error().err == ENOENT) return Outcome::not_linked;
        return std::unexpected(obj.error());
    }
    Result<Replaced> replaced = Replaced::changed;
    auto act = [&]() -> Result<void> {
        replaced = rename_over(dirfd, p.tmp, p.gp.name, p.now, p.shown);
        return replaced ? Result<void>() : std::unexpected(replaced.error());
    };
    if (auto r = with_links_guarded(pool, &txn, l.id, l.replica, obj->get(), act, log); !r) {
        // The window may fail before act() ran (the flag could not be lifted): the copy must
        // not stay behind in the guest. After a rename the name is gone and this is a no-op.
        discard(p);
        return std::unexpected(r.error());
    }
    renamed_into_place(p);  // or removed by rename_over: the directory changed either way
    if (*replaced == Replaced::done) return Outcome::unshared;
    if (*replaced == Replaced::refused)
        return fail("renameat2 RENAME_EXCHANGE(" + p.shown +
                        "): refused (EPERM) although the object's protection "
                        "was lifted; is the path flagged immutable by the guest?",
                    EPERM);
    return Outcome::not_linked;
}

// A run killed between install_copy's exchange and its unlink left the object's link at the
// copy's temporary name, beside a path that is private now (its record stays: the batch's
// transaction never committed). The re-run finds the path not linked and removes such links
// here, inside the object's window (they are the protected inode). Left, a forgotten guest
// would keep an immutable name nobody records, and the object would never be garbage.
Result<void> remove_displaced_links(Pool& pool, Txn& txn, int root_fd, const std::string& root,
                                    const LinkRecord& l, DirTimes& dir_times, std::ostream& log) {
    std::string shown = join_path(root, l.path);
    auto gp = open_guest_parent(root_fd, l.path, shown);
    if (!gp) return std::unexpected(gp.error());
    if (!*gp) return {};
    auto obj = pool.open_object(l.id, l.replica);
    if (!obj) return obj.error().err == ENOENT ? Result<void>() : std::unexpected(obj.error());
    auto obj_st = stat_fd(obj->get(), pool.object_shown(l.id, l.replica));
    if (!obj_st) return std::unexpected(obj_st.error());
    int dirfd = (*gp)->dir.get();
    std::string dir = shown.substr(0, shown.rfind('/'));
    auto entries = read_dir(dirfd, dir);
    if (!entries) return std::unexpected(entries.error());
    const std::string prefix = pool.temp_prefix() + "copy.";
    for (const auto& e : *entries) {
        if (!e.name.starts_with(prefix)) continue;
        std::string name = join_path(dir, e.name);
        auto st = stat_if_exists(dirfd, e.name, name);
        if (!st) return std::unexpected(st.error());
        if (!*st || !(*st)->same_inode(*obj_st)) continue;
        auto act = [&]() -> Result<void> {
            dir_times.before(dirfd);
            if (unlinkat(dirfd, e.name.c_str(), 0) != 0 && errno != ENOENT)
                return sys_fail("unlinkat", name);
            dir_times.after(dirfd);
            return {};
        };
        if (auto r = with_links_guarded(pool, &txn, l.id, l.replica, obj->get(), act, log); !r)
            return r;
        log << "unify: removed " << name << ", a link to object "
            << pool.object_shown(l.id, l.replica) << " that an interrupted unshare left\n";
    }
    return {};
}

// A reflink pool: the guest file keeps its inode, path and metadata and gets blocks of its
// own (linker/reflink.h); nothing is renamed, no window. not_linked when the path is no
// longer the inode that was recorded.
Result<Outcome> unshare_blocks_of(Pool& pool, int root_fd, const std::string& root,
                                  const LinkRecord& l) {
    std::string shown = join_path(root, l.path);
    auto f = open_recorded_file(root_fd, l.path, l.ino, shown);
    if (!f && f.error().err == EWOULDBLOCK)  // our open does not wait for a lease to break
        return fail("unshare " + shown +
                        ": a process holds a lease on it (open: EAGAIN), which an open would "
                        "have to break; the paths before it are private now: run the unshare "
                        "again once that process lets go",
                    EWOULDBLOCK);
    if (!f) return std::unexpected(f.error());
    if (!*f) return Outcome::not_linked;
    auto r = unshare_blocks(pool, (*f)->fd.get(), (*f)->st.size, shown);
    if (!r) return std::unexpected(r.error());
    if (*r == Shared::refused)
        return fail("unshare " + shown +
                        ": refused (EPERM); is it flagged immutable or "
                        "append-only by the guest?",
                    EPERM);
    // changed: a write raced the copy, and gave the file private blocks of its own anyway.
    return *r == Shared::shared ? Outcome::unshared : Outcome::not_linked;
}

// The default selection: every link of the guest, or exactly the recorded paths named.
Result<std::vector<UnshareTarget>> recorded_links(Txn& txn, const GuestRecord& g,
                                                  const GuestRoot& root, const UnshareOptions& opt,
                                                  std::ostream& log) {
    std::vector<UnshareTarget> out;
    if (opt.paths.empty()) {
        auto r = txn.for_each_link_of_guest(g.id, [&](const LinkRecord& l) {
            out.push_back({l, std::nullopt});
            return true;
        });
        if (!r) return std::unexpected(r.error());
        return out;
    }
    for (const auto& p : opt.paths) {
        std::string gp = guest_path_as_written(root.path, p);
        auto l = txn.link(g.id, gp);
        if (!l) return std::unexpected(l.error());
        if (*l)
            out.push_back({**l, std::nullopt});
        else
            log << "unify: " << opt.name << ":" << gp << " is not unified; nothing to do\n";
    }
    return out;
}

}  // namespace

Result<UnshareSummary> unshare_guest(Pool& pool, const UnshareOptions& opt, std::ostream& log,
                                     const LinkSelector& select) {
    UnshareSummary sum;
    auto rtxn = pool.index().read();
    if (!rtxn) return std::unexpected(rtxn.error());
    auto g = (*rtxn)->guest(opt.name);
    if (!g) return std::unexpected(g.error());
    if (!*g) return std::unexpected(no_guest_named(pool, "unshare", opt.name));
    auto root = open_guest_root(pool, **g);
    if (!root) return std::unexpected(context(root.error(), "unshare " + opt.name));
    auto links =
        select ? select(**rtxn, **g, *root, sum) : recorded_links(**rtxn, **g, *root, opt, log);
    if (!links) return std::unexpected(context(links.error(), "unshare " + opt.name));
    (*rtxn)->commit();

    auto progress = [&](size_t done) {
        if (opt.progress)
            opt.progress({.phase = "unshare",
                          .unit = "files",
                          .done = done,
                          .part = done,
                          .parts = links->size()});
    };
    auto count = [&](const UnshareTarget& s, uint64_t bytes) {
        ++sum.unshared;
        sum.bytes_copied += bytes;
        if (s.package) {
            ++sum.packages[*s.package].unshared;
            sum.packages[*s.package].bytes_copied += bytes;
        }
    };
    LinkChecker checker(pool);  // the dry run's look at each path
    DirTimes dir_times;         // guest directories get their times back after each batch
    CopyDirs dirs(dir_times);
    unsigned jobs = jobs_or_cores(opt.jobs);
    const size_t batch = std::min(kMaxBatch, fd_room() / 2);
    for (size_t start = 0; start < links->size(); start += batch) {
        auto txn = opt.dry_run ? pool.index().read() : pool.index().write();
        if (!txn) return std::unexpected(txn.error());
        Result<void> outcome;
        size_t end = std::min(links->size(), start + batch);
        progress(start);
        // 1. The batch's object records (the transaction is this thread's).
        std::vector<std::optional<ObjectRecord>> recs;
        for (size_t i = start; outcome && i < end; ++i) {
            auto rec = (*txn)->object((*links)[i].link.id);
            if (rec)
                recs.push_back(std::move(*rec));
            else
                outcome = std::unexpected(rec.error());
        }
        auto size_of = [&](size_t i) { return recs[i - start] ? recs[i - start]->size : 0; };
        // 2. The copies, written beside their links in parallel (reading, hashing and
        // writing each file is independent of the others); a reflink pool's files get their
        // own blocks in place instead.
        using Made = Result<std::optional<Prepared>>;
        std::vector<Made> made(outcome && !opt.dry_run && !pool.settings().reflink() ? end - start
                                                                                     : 0);
        parallel_for(made.size(), jobs, [&](size_t k) {
            if (interrupted())
                made[k] = std::unexpected(interrupted_error());
            else
                made[k] = prepare_copy(pool, root->fd.get(), root->path, (*links)[start + k].link,
                                       recs[k], start + k, dirs);
        });
        std::vector<Prepared> ready;
        std::vector<uint64_t> sizes;
        size_t i = start;
        for (; outcome && i < end; ++i) {
            const LinkRecord& l = (*links)[i].link;
            if (opt.dry_run) {
                // Looked at as the real run would: a path that is no longer the object (a
                // killed run's, a package upgrade's) only has its record dropped.
                auto state = checker.check(**txn, l);
                if (!state) {
                    outcome = std::unexpected(state.error());
                    break;
                }
                if (*state == LinkChecker::State::stale)
                    ++sum.not_linked;
                else
                    count((*links)[i], size_of(i));
                continue;
            }
            if (pool.settings().reflink()) {
                progress(i);
                if (interrupted()) {
                    outcome = std::unexpected(interrupted_error());
                    break;
                }
                auto r = unshare_blocks_of(pool, root->fd.get(), root->path, l);
                if (!r) {
                    outcome = std::unexpected(r.error());
                    break;
                }
                if (*r == Outcome::unshared) {
                    count((*links)[i], size_of(i));
                    if (opt.verbose)
                        log << "unshare " << printable(join_path(root->path, l.path)) << "\n";
                } else {
                    ++sum.not_linked;
                }
                if (auto d = (*txn)->delete_link(l.guest, l.path); !d) {
                    outcome = d;
                    break;
                }
                continue;
            }
            Made& p = made[i - start];
            if (!p) {
                outcome = std::unexpected(p.error());
                break;
            }
            if (*p) {
                ready.push_back(std::move(**p));
                sizes.push_back(size_of(i));
                continue;
            }
            ++sum.not_linked;
            if (auto d = remove_displaced_links(pool, **txn, root->fd.get(), root->path, l,
                                                dir_times, log);
                !d) {
                outcome = d;
                break;
            }
            if (auto d = (*txn)->delete_link(l.guest, l.path); !d) {
                outcome = d;
                break;
            }
        }
        // What was copied after the first failure is never renamed into place.
        for (size_t k = i - start; k < made.size(); ++k)
            if (made[k] && *made[k]) discard(**made[k]);
        // 3. Make them durable together, before any of them replaces its link: after a
        // crash a renamed path always has its copy's bytes (no fsync per file).
        if (outcome && !ready.empty()) {
            fault_point("unshare.sync");
            if (syncfs(root->fd.get()) != 0) outcome = sys_fail("syncfs", root->path);
        }
        // 4. Rename each over its link, inside its object's protection window.
        size_t installed = 0;
        for (; outcome && installed < ready.size(); ++installed) {
            const Prepared& p = ready[installed];
            const UnshareTarget& s = (*links)[p.index];
            auto r = install_copy(pool, **txn, s.link, p, log);
            if (!r) {
                outcome = std::unexpected(r.error());
                ++installed;  // install_copy removed its copy
                break;
            }
            if (*r == Outcome::unshared) {
                count(s, sizes[installed]);
                if (opt.verbose) log << "unshare " << printable(p.shown) << "\n";
            } else {
                ++sum.not_linked;
            }
            if (auto d = (*txn)->delete_link(s.link.guest, s.link.path); !d) {
                outcome = d;
                ++installed;
                break;
            }
        }
        for (size_t k = installed; k < ready.size(); ++k) discard(ready[k]);
        dir_times.restore();
        auto c = (*txn)->commit();
        if (!outcome) return std::unexpected(context(outcome.error(), "unshare " + opt.name));
        if (!c) return std::unexpected(c.error());
        progress(end);
    }
    return sum;
}

}  // namespace unify
