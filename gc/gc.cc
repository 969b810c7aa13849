#include "gc/gc.h"

#include <fcntl.h>
#include <unistd.h>

#include <memory>
#include <mutex>
#include <ostream>
#include <thread>
#include <unordered_map>

#include "store/extents.h"
#include "store/fault.h"
#include "store/interrupt.h"
#include "store/link_check.h"
#include "store/mounts.h"
#include "store/parallel.h"
#include "store/printable.h"
#include "store/trash.h"

namespace unify {

namespace {

struct Candidate {
    std::string name;  // "<hex>" or "<hex>.N"
    uint64_t size;
};

// Garbage is an object held by the pool alone, as the filesystem says, never the index. A
// hardlink pool: no other name links it (link count 1). A reflink pool: also no extent of it
// is shared with another file (FIEMAP_EXTENT_SHARED): no guest file shares its blocks any
// more (each wrote, was upgraded or was deleted). Removing a reflink object can never lose
// guest data, whatever this says: a guest file is its own inode holding its own reference to
// every block it shares, and the filesystem frees a block only with its last reference; an
// object removed too early would only cost a future import the saving.
Result<bool> held_by_pool_alone(const Pool& pool, int dirfd, const std::string& name,
                                const FileStat& st, const std::string& shown) {
    if (st.nlink != 1 || !st.is_reg()) return false;
    if (!pool.settings().reflink()) return true;
    auto fd = open_read(dirfd, name, shown);
    if (!fd) return std::unexpected(fd.error());
    auto extents = file_extents(fd->get(), shown);
    if (!extents) return std::unexpected(extents.error());
    return !any_shared(*extents);
}

// gc --reconcile: records of paths that are not (or no longer) their object, in every guest.
Result<void> reconcile_links(Pool& pool, const GcOptions& opt, std::ostream& log, GcSummary& sum) {
    auto rtxn = pool.index().read();
    if (!rtxn) return std::unexpected(rtxn.error());
    auto guests = (*rtxn)->guests();
    if (!guests) return std::unexpected(guests.error());
    (*rtxn)->commit();
    LinkChecker links(pool);
    uint64_t links_checked = 0, guests_done = 0;
    for (const auto& g : *guests) {
        auto txn = opt.dry_run ? pool.index().read() : pool.index().write();
        if (!txn) return std::unexpected(txn.error());
        std::vector<std::string> stale;
        bool root_gone = false;
        Result<void> visit_error;
        auto visit = [&](const LinkRecord& l) -> bool {
            ++links_checked;
            auto state = links.check(**txn, l);
            if (state && *state == LinkChecker::State::unchecked) {
                // A root that is gone has no links left; any other reason to fail stops gc.
                const Error* e = links.root_error(g.id);
                if (e && e->err == ENOENT)
                    root_gone = true;
                else
                    state = std::unexpected(e ? *e : Error{"guest " + g.name + " vanished"});
            }
            if (!state) {
                visit_error = std::unexpected(state.error());
                return false;
            }
            if (*state == LinkChecker::State::unreachable) {
                // Whether it holds is not known, so the record stays; the command fails at
                // the end, after the other records and guests.
                log << "unify: warning: " << g.name << ":" << l.path
                    << " could not be checked; its record is kept: " << links.path_error().message
                    << "\n";
                ++sum.links_unchecked;
                return true;
            }
            if (*state != LinkChecker::State::holds) stale.push_back(l.path);
            return true;
        };
        if (auto r = (*txn)->for_each_link_of_guest(g.id, visit); !r) return r;
        if (!visit_error) return visit_error;
        for (const auto& path : stale) {
            if (opt.verbose) log << "drop record " << g.name << ":" << printable(path) << "\n";
            if (!opt.dry_run) {
                if (auto r = (*txn)->delete_link(g.id, path); !r) return r;
            }
        }
        sum.links_dropped += stale.size();
        if (auto r = (*txn)->commit(); !r) return r;
        if (root_gone)
            log << "unify: warning: root " << g.root << " of guest '" << g.name
                << "' is gone; dropped its " << stale.size() << " link records\n";
        if (opt.progress)
            opt.progress({.phase = "gc: checking links",
                          .unit = "links",
                          .done = links_checked,
                          .part = ++guests_done,
                          .parts = guests->size()});
    }
    return {};
}

// Per shard: statx in parallel (read-only), then remove on this thread.
Result<void> collect_objects(Pool& pool, const GcOptions& opt, std::ostream& log, GcSummary& sum) {
    std::vector<std::vector<Candidate>> found(kShards);
    std::vector<uint64_t> seen(kShards, 0);
    std::vector<Error> errors(kShards);
    std::vector<bool> failed(kShards, false);
    std::mutex progress_mutex;  // the callback is never called concurrently
    uint64_t shards_done = 0, objects_checked = 0;
    parallel_for(kShards, opt.jobs, [&](size_t s) {
        auto shard = pool.list_shard(s);
        if (!shard) {
            errors[s] = shard.error();
            failed[s] = true;
            return;
        }
        for (const auto& e : shard->entries) {
            auto st = stat_at(shard->dir.get(), e.name, join_path(shard->shown, e.name));
            if (!st) {
                errors[s] = st.error();
                failed[s] = true;
                return;
            }
            ++seen[s];
            auto alone = held_by_pool_alone(pool, shard->dir.get(), e.name, *st,
                                            join_path(shard->shown, e.name));
            if (!alone) {
                errors[s] = alone.error();
                failed[s] = true;
                return;
            }
            if (*alone) found[s].push_back({e.name, st->size});
        }
        if (opt.progress) {
            std::lock_guard hold(progress_mutex);
            objects_checked += seen[s];
            opt.progress({.phase = "gc: checking objects",
                          .unit = "objects",
                          .done = objects_checked,
                          .part = ++shards_done,
                          .parts = kShards});
        }
    });
    for (size_t s = 0; s < kShards; ++s) {
        if (failed[s]) return std::unexpected(errors[s]);
        sum.objects_seen += seen[s];
    }
    uint64_t candidates = 0, handled = 0;
    for (const auto& f : found) candidates += f.size();
    // One write transaction per 4,096 removals, not per shard: each commit is an fdatasync,
    // and 256 of them were most of the time of removing 1,000 objects.
    constexpr uint64_t kPerTxn = 4096;
    // Where an unlink waits for a trim, objects leave their name here and are unlinked on
    // threads (store/trash.h); the name is gone either way before the record is looked at.
    bool trims = !opt.dry_run && unlink_trims(pool.stat().mnt_id);
    Trash trash(pool.tmp_fd(), pool.path() + "/tmp", 4 * opt.jobs);
    std::unique_ptr<Txn> txn;
    uint64_t in_txn = 0;
    for (size_t s = 0; s < kShards; ++s) {
        if (found[s].empty()) continue;
        std::string shard = Pool::shard_name(s);
        if (!txn) {
            auto t = opt.dry_run ? pool.index().read() : pool.index().write();
            if (!t) return std::unexpected(t.error());
            txn = std::move(*t);
        }
        Result<void> outcome;
        for (const auto& c : found[s]) {
            if (interrupted()) {
                outcome = std::unexpected(interrupted_error());
                break;
            }
            std::string name = shard + "/" + c.name, shown = pool.object_shown(name);
            auto id = ObjectId::from_hex(c.name.substr(0, 64));
            if (opt.verbose) log << "remove object " << name << " (" << c.size << " bytes)\n";
            ++sum.objects_removed;
            sum.bytes_reclaimed += c.size;
            if (opt.dry_run) continue;
            auto f = pool.open_object(name);
            if (!f) {
                outcome = std::unexpected(f.error());
                break;
            }
            int fd = f->get();
            fault_point("gc.check");  // a link added here is what the check below catches
            // Checked again under the lock, just before acting: only the pool holds it.
            auto st = stat_fd(fd, shown);
            if (!st) {
                outcome = std::unexpected(st.error());
                break;
            }
            auto alone = held_by_pool_alone(pool, pool.objects_fd(), name, *st, shown);
            if (!alone) {
                outcome = std::unexpected(alone.error());
                break;
            }
            if (!*alone) {
                --sum.objects_removed;
                sum.bytes_reclaimed -= c.size;
                continue;
            }
            fault_point("gc.unprotect");
            if (auto r = pool.protection().unprotect(fd, shown); !r) {
                outcome = r;
                break;
            }
            fault_point("gc.unlink");
            if (trims) {
                if (auto r = trash.take(pool.objects_fd(), name, *st, shown); !r) {
                    outcome = r;
                    break;
                }
            } else if (unlinkat(pool.objects_fd(), name.c_str(), 0) != 0) {
                outcome = sys_fail("unlinkat", shown);
                break;
            }
            if (!id) continue;  // not an object name; removed as garbage all the same
            // The record goes only when no replica of the id is left.
            auto rec = txn->object(*id);
            if (!rec) {
                outcome = std::unexpected(rec.error());
                break;
            }
            uint32_t replicas = *rec ? (*rec)->replicas : 1;
            bool any_left = false;
            for (uint32_t r = 0; r < replicas && !any_left; ++r) {
                auto left = pool.stat_object(*id, r);
                any_left = left && *left;
            }
            if (!any_left) {
                if (auto r = txn->delete_object(*id); !r) {
                    outcome = r;
                    break;
                }
            }
        }
        in_txn += found[s].size();
        handled += found[s].size();
        if (!outcome || in_txn >= kPerTxn || handled == candidates) {
            auto freed = trash.drain();
            if (outcome && !freed) outcome = freed;
            auto c = txn->commit();
            txn.reset();
            in_txn = 0;
            if (!outcome) return outcome;
            if (!c) return c;
        }
        if (opt.progress)
            opt.progress({.phase = "gc: removing objects",
                          .unit = "objects",
                          .done = sum.objects_removed,
                          .part = handled,
                          .parts = candidates});
    }
    return {};
}

}  // namespace

Result<GcSummary> collect_garbage(Pool& pool, const GcOptions& opt_in, std::ostream& log) {
    GcOptions opt = opt_in;
    opt.jobs = jobs_or_cores(opt.jobs);
    GcSummary sum;
    if (opt.reconcile) {
        if (auto r = reconcile_links(pool, opt, log, sum); !r)
            return std::unexpected(context(r.error(), "gc"));
    }
    if (auto r = collect_objects(pool, opt, log, sum); !r)
        return std::unexpected(context(r.error(), "gc"));
    return sum;
}

}  // namespace unify
