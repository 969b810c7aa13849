#include "gc/gc.h"

#include <fcntl.h>
#include <unistd.h>

#include <memory>
#include <mutex>
#include <ostream>
#include <thread>
#include <unordered_map>

#include "importer/guest_root.h"
#include "importer/hash_batch.h"
#include "store/fault.h"
#include "store/guest_path.h"
#include "store/interrupt.h"

namespace unify {

namespace {

struct Candidate {
    std::string name;  // "<hex>" or "<hex>.N"
    uint64_t size;
};

// gc --reconcile: records of paths that are not (or no longer) their object, in every guest.
Result<void> reconcile_links(Pool& pool, const GcOptions& opt, std::ostream& log, GcSummary& sum) {
    auto rtxn = pool.index().read();
    if (!rtxn) return std::unexpected(rtxn.error());
    auto guests = (*rtxn)->guests();
    if (!guests) return std::unexpected(guests.error());
    (*rtxn)->commit();
    uint64_t links_checked = 0, guests_done = 0;
    for (const auto& g : *guests) {
        auto root = open_guest_root(pool, g.root);
        bool root_gone = !root && (root.error().err == ENOENT);
        if (!root && !root_gone) return std::unexpected(root.error());
        auto txn = opt.dry_run ? pool.index().read() : pool.index().write();
        if (!txn) return std::unexpected(txn.error());
        std::vector<std::string> stale;
        std::unordered_map<std::string, std::optional<FileStat>> objects;
        Result<void> visit_error;
        auto visit = [&](const LinkRecord& l) -> bool {
            ++links_checked;
            std::string key = Pool::object_name(l.id, l.replica);
            auto it = objects.find(key);
            if (it == objects.end()) {
                auto st = pool.stat_object(l.id, l.replica);
                if (!st) {
                    visit_error = std::unexpected(st.error());
                    return false;
                }
                it = objects.emplace(key, *st).first;
            }
            bool linked = false;
            if (!root_gone && it->second) {
                auto st = stat_guest_path(root->fd.get(), l.path, join_path(g.root, l.path));
                if (!st) {
                    visit_error = std::unexpected(st.error());
                    return false;
                }
                linked = *st && (*st)->same_inode(*it->second);
            }
            if (!linked) stale.push_back(l.path);
            return true;
        };
        if (auto r = (*txn)->for_each_link_of_guest(g.id, visit); !r) return r;
        if (!visit_error) return visit_error;
        for (const auto& path : stale) {
            if (opt.verbose) log << "drop record " << g.name << ":" << path << "\n";
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
    std::vector<std::vector<Candidate>> found(256);
    std::vector<uint64_t> seen(256, 0);
    std::vector<Error> errors(256);
    std::vector<bool> failed(256, false);
    std::mutex progress_mutex;  // the callback is never called concurrently
    uint64_t shards_done = 0, objects_checked = 0;
    parallel_for(256, opt.jobs, [&](size_t s) {
        uint8_t b = uint8_t(s);
        std::string shard = to_hex(&b, 1), shown = pool.path() + "/objects/" + shard;
        auto dir = open_beneath(pool.objects_fd(), shard, O_RDONLY | O_DIRECTORY, shown);
        auto entries = dir ? read_dir(dir->get(), shown)
                           : Result<std::vector<DirEntry>>(std::unexpected(dir.error()));
        if (!entries) {
            errors[s] = entries.error();
            failed[s] = true;
            return;
        }
        for (const auto& e : *entries) {
            auto st = stat_at(dir->get(), e.name, join_path(shown, e.name));
            if (!st) {
                errors[s] = st.error();
                failed[s] = true;
                return;
            }
            ++seen[s];
            if (st->nlink == 1 && st->is_reg()) found[s].push_back({e.name, st->size});
        }
        if (opt.progress) {
            std::lock_guard hold(progress_mutex);
            objects_checked += seen[s];
            opt.progress({.phase = "gc: checking objects",
                          .unit = "objects",
                          .done = objects_checked,
                          .part = ++shards_done,
                          .parts = 256});
        }
    });
    for (size_t s = 0; s < 256; ++s) {
        if (failed[s]) return std::unexpected(errors[s]);
        sum.objects_seen += seen[s];
    }
    uint64_t candidates = 0, handled = 0;
    for (const auto& f : found) candidates += f.size();
    // One write transaction per 4,096 removals, not per shard: each commit is an fdatasync,
    // and 256 of them were most of the time of removing 1,000 objects.
    constexpr uint64_t kPerTxn = 4096;
    std::unique_ptr<Txn> txn;
    uint64_t in_txn = 0;
    for (size_t s = 0; s < 256; ++s) {
        if (found[s].empty()) continue;
        uint8_t b = uint8_t(s);
        std::string shard = to_hex(&b, 1);
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
            std::string name = shard + "/" + c.name, shown = pool.path() + "/objects/" + name;
            auto id = ObjectId::from_hex(c.name.substr(0, 64));
            if (opt.verbose) log << "remove object " << name << " (" << c.size << " bytes)\n";
            ++sum.objects_removed;
            sum.bytes_reclaimed += c.size;
            if (opt.dry_run) continue;
            int fd = openat(pool.objects_fd(), name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
            if (fd < 0) {
                outcome = sys_fail("open", shown);
                break;
            }
            Fd f(fd);
            // Checked again under the lock, just before acting: only the pool holds it.
            auto st = stat_fd(fd, shown);
            if (!st) {
                outcome = std::unexpected(st.error());
                break;
            }
            if (st->nlink != 1) {
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
            if (unlinkat(pool.objects_fd(), name.c_str(), 0) != 0) {
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
    if (opt.jobs == 0) opt.jobs = std::max(1u, std::thread::hardware_concurrency());
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
