#include "gc/gc.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <memory>
#include <mutex>
#include <ostream>
#include <thread>
#include <unordered_map>
#include <unordered_set>

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
    // An entangled object found garbage (entangled_garbage): where its shared extents lay at
    // the first look. Empty for any other candidate.
    std::vector<Span> shared;
};

// What the first look at an object says.
enum class Held {
    elsewhere,   // another name links it, or it shares blocks FIEMAP gives no address for
    pool_alone,  // garbage
    entangled,   // a reflink object some of whose blocks the filesystem flags shared
};
struct Look {
    Held held = Held::elsewhere;
    std::vector<Span> shared;  // entangled: where its shared extents lie on the device
};

// Garbage is an object held by the pool alone, as the filesystem says. A hardlink pool: no
// other name links it (link count 1). A reflink pool: also no extent of it is shared with
// another file (FIEMAP_EXTENT_SHARED): no guest file shares its blocks any more (each wrote, was
// upgraded or was deleted). An object with shared extents is entangled: the flag cannot say
// whether the sharer is a guest file or another object (entangled_garbage decides). Removing a
// reflink object can never lose guest data, whatever this says: a guest file is its own inode
// holding its own reference to every block it shares, and the filesystem frees a block only
// with its last reference; an object removed too early would only cost a future import the
// saving. fd: the object open for reading, or -1 to open `name` in dirfd if need be.
Result<Look> look_at(const Pool& pool, int dirfd, const std::string& name, const FileStat& st,
                     const std::string& shown, int fd = -1) {
    if (st.nlink != 1 || !st.is_reg()) return Look{};
    if (!pool.settings().reflink()) return Look{Held::pool_alone, {}};
    Fd opened;
    if (fd < 0) {
        auto o = open_read(dirfd, name, shown);
        if (!o) return std::unexpected(o.error());
        opened = std::move(*o);
        fd = opened.get();
    }
    auto extents = file_extents(fd, shown);
    if (!extents) return std::unexpected(extents.error());
    if (!any_shared(*extents)) return Look{Held::pool_alone, {}};
    auto spans = shared_spans(*extents);
    if (!spans || spans->empty()) return Look{};
    return Look{Held::entangled, std::move(*spans)};
}

// A shared extent of an entangled object, tagged with the object (its number among them).
struct OwnedSpan {
    uint64_t start;
    uint64_t end;
    uint32_t owner;
};

// Per owner: whether every one of its spans overlaps a span of another owner; sorts `spans`
// by start. Sorted so, a span overlaps an earlier one of another owner iff the furthest end
// another owner reached before it passes its start, and a later one iff the nearest start of
// another owner after it is before its end. The best two owners each way are enough to know
// one that is not the span's own: one sort and two passes, whatever the overlaps.
std::vector<bool> overlapped_by_others(std::vector<OwnedSpan>& spans, size_t owners) {
    constexpr uint32_t kNone = UINT32_MAX;
    struct Best {
        uint64_t at;
        uint32_t owner;
    };
    std::sort(spans.begin(), spans.end(),
              [](const OwnedSpan& a, const OwnedSpan& b) { return a.start < b.start; });
    std::vector<bool> hit(spans.size(), false);
    Best far1{0, kNone}, far2{0, kNone};  // far2: the furthest end of an owner not far1's
    for (size_t i = 0; i < spans.size(); ++i) {
        const OwnedSpan& x = spans[i];
        if ((far1.owner != x.owner ? far1.at : far2.at) > x.start) hit[i] = true;
        if (x.owner == far1.owner) {
            far1.at = std::max(far1.at, x.end);
        } else if (x.end > far1.at) {
            far2 = far1;
            far1 = {x.end, x.owner};
        } else if (x.end > far2.at) {
            far2 = {x.end, x.owner};
        }
    }
    Best near1{UINT64_MAX, kNone}, near2{UINT64_MAX, kNone};  // nearest starts after, likewise
    for (size_t i = spans.size(); i-- > 0;) {
        const OwnedSpan& x = spans[i];
        if ((near1.owner != x.owner ? near1.at : near2.at) < x.end) hit[i] = true;
        if (x.owner == near1.owner) {
            near1.at = std::min(near1.at, x.start);
        } else if (x.start < near1.at) {
            near2 = near1;
            near1 = {x.start, x.owner};
        } else if (x.start < near2.at) {
            near2 = {x.start, x.owner};
        }
    }
    std::vector<bool> all(owners, true);
    for (size_t i = 0; i < spans.size(); ++i)
        if (!hit[i]) all[spans[i].owner] = false;
    return all;
}

// A reflink object with nlink 1 whose blocks are flagged shared, as pass 2 saw it.
struct Entangled {
    ObjectId id;
    uint32_t replica;
    uint64_t size;
};

// Which entangled objects are garbage all the same: those whose every shared extent overlaps
// another object's, and that no link record verifiably names. The first half finds objects
// that share blocks with each other (an appended or partly rewritten guest file imported
// again is cloned into a new object still sharing the old one's blocks; once no guest file
// shares either, each object's only sharer is the other, and the flag alone kept both for
// ever). Overlap, not cover: btrfs flags a whole file extent shared when another file uses
// any part of its on-disk extent (measured: a 977-block extent flagged shared against an
// object holding 976 of its blocks). The second half keeps what a guest still uses: a record
// that holds (the guest's inode maps every byte to the object's blocks, store/link_check.h),
// or that cannot be checked (a root that cannot be opened now). What this gets wrong: a file
// no record names (a forgotten guest's, a snapshot's, a record gone stale before the guest's
// next import) that shares blocks with such objects does not keep them. Nothing of it is lost
// (its own inode holds its blocks); the pool loses only the object a future import would
// have shared it with. The index is read only for objects that overlap another: in a pool
// whose objects share blocks with guest files alone, not at all. Each object found garbage
// goes to its shard's list in `found`.
Result<void> entangled_garbage(Pool& pool, const std::vector<std::vector<Entangled>>& entangled,
                               std::vector<std::vector<OwnedSpan>>& spans,
                               std::vector<std::vector<Candidate>>& found) {
    std::vector<uint32_t> first(kShards + 1, 0);  // shard s owns [first[s], first[s + 1])
    for (size_t s = 0; s < kShards; ++s) first[s + 1] = first[s] + entangled[s].size();
    if (first[kShards] == 0) return {};
    std::vector<OwnedSpan> all;
    for (size_t s = 0; s < kShards; ++s) {
        for (OwnedSpan x : spans[s]) {
            x.owner += first[s];
            all.push_back(x);
        }
        spans[s] = {};
    }
    std::vector<bool> overlapped = overlapped_by_others(all, first[kShards]);
    if (std::find(overlapped.begin(), overlapped.end(), true) == overlapped.end()) return {};

    auto txn = pool.index().read();
    if (!txn) return std::unexpected(txn.error());
    LinkChecker links(pool);
    std::map<uint32_t, std::pair<size_t, Candidate>> garbage;  // owner -> shard, candidate
    for (size_t s = 0; s < kShards; ++s) {
        for (uint32_t i = 0; i < entangled[s].size(); ++i) {
            if (!overlapped[first[s] + i]) continue;
            const Entangled& e = entangled[s][i];
            bool used = false;
            Result<void> visit_error;
            auto r = (*txn)->for_each_link_of_object(e.id, [&](const LinkRecord& l) {
                auto state = links.check(**txn, l);
                if (!state) {
                    visit_error = std::unexpected(state.error());
                    return false;
                }
                used = *state != LinkChecker::State::stale;
                return !used;
            });
            if (!r) return r;
            if (!visit_error) return visit_error;
            if (!used)
                garbage[first[s] + i] = {
                    s, {Pool::object_name(e.id, e.replica).substr(3), e.size, {}}};
        }
    }
    for (const OwnedSpan& x : all) {
        auto g = garbage.find(x.owner);
        if (g != garbage.end()) g->second.second.shared.push_back({x.start, x.end});
    }
    for (auto& [owner, g] : garbage) found[g.first].push_back(std::move(g.second));
    return (*txn)->commit();
}

// The check just before the unlink: the object is still what the first look found garbage. An
// entangled one may have lost sharers meanwhile (the other object went first), never gained
// one: each extent shared now lies where a shared extent lay then.
bool still_garbage(const Candidate& c, const Look& now) {
    if (now.held == Held::pool_alone) return true;
    if (now.held != Held::entangled || c.shared.empty()) return false;
    return std::all_of(now.shared.begin(), now.shared.end(), [&](const Span& x) {
        return std::any_of(c.shared.begin(), c.shared.end(),
                           [&](const Span& b) { return b.start <= x.start && x.end <= b.end; });
    });
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

// The index records of the objects this run removed the last file of, and, after a gc killed
// before its commit (kGcUnlinking found at the start), of every object no file stands for.
// The link records that name such an object go too where a re-import would not see they are
// stale: in a reflink pool a record can look unchanged (one statx) though its file no longer
// shares the object, and after a killed gc the object is not known to have had no guest
// name. A hardlink pool's records of what this run removed are left to the guests' imports:
// the object had no other name, so no guest path is the inode such a record names, and the
// re-import sees that; one lookup per guest and object would cost more than gc's whole walk.
Result<void> drop_records(Pool& pool, const GcOptions& opt, std::ostream& log,
                          const std::vector<ObjectId>& removed, bool after_kill, GcSummary& sum) {
    if (removed.empty() && !after_kill) return {};
    auto txn = opt.dry_run ? pool.index().read() : pool.index().write();
    if (!txn) return std::unexpected(txn.error());
    std::vector<std::pair<ObjectId, bool>> gone;  // and whether this run removed it
    for (const ObjectId& id : removed) gone.push_back({id, true});
    if (after_kill) {
        std::unordered_set<ObjectId> now(removed.begin(), removed.end());
        std::vector<std::pair<ObjectId, uint32_t>> records;
        auto listed = (*txn)->for_each_object([&](const ObjectId& id, const ObjectRecord& rec) {
            if (!now.count(id)) records.push_back({id, rec.replicas});
            return true;
        });
        if (!listed) return listed;
        for (const auto& [id, replicas] : records) {
            bool any = false;
            for (uint32_t r = 0; r < std::max(replicas, 1u) && !any; ++r) {
                auto st = pool.stat_object(id, r);
                if (!st) return std::unexpected(st.error());
                any = st->has_value();
            }
            if (!any) gone.push_back({id, false});
        }
    }
    for (const auto& [id, now] : gone) {
        std::vector<std::pair<uint32_t, std::string>> naming;
        if (!now || pool.settings().reflink()) {
            auto r = (*txn)->for_each_link_of_object(id, [&](const LinkRecord& l) {
                naming.emplace_back(l.guest, l.path);
                return true;
            });
            if (!r) return r;
        }
        if (opt.verbose && !now)
            log << "drop the record of object " << id.hex() << ", which has no file, and "
                << naming.size() << " link records naming it\n";
        sum.links_dropped += naming.size();
        if (!now) ++sum.object_records_dropped;
        if (opt.dry_run) continue;
        for (const auto& [g, path] : naming)
            if (auto d = (*txn)->delete_link(g, path); !d) return d;
        if (auto d = (*txn)->delete_object(id); !d) return d;
    }
    if (auto c = (*txn)->commit(); !c) return c;
    if (!opt.dry_run && unlinkat(pool.fd(), kGcUnlinking, 0) != 0 && errno != ENOENT)
        return sys_fail("unlinkat", pool.path() + "/" + kGcUnlinking);
    return {};
}

// Made (and made durable: a power cut may keep the unlinks and lose the commit) before the
// first unlink of a run.
Result<void> mark_unlinking(const Pool& pool) {
    int fd = openat(pool.fd(), kGcUnlinking, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) return sys_fail("open", pool.path() + "/" + kGcUnlinking);
    close(fd);
    if (fsync(pool.fd()) != 0) return sys_fail("fsync", pool.path());
    return {};
}

// Per shard: statx in parallel (read-only), then remove on this thread.
Result<void> collect_objects(Pool& pool, const GcOptions& opt, std::ostream& log, GcSummary& sum) {
    std::vector<std::vector<Candidate>> found(kShards);
    std::vector<std::vector<Entangled>> entangled(kShards);
    std::vector<std::vector<OwnedSpan>> spans(kShards);
    std::vector<uint64_t> seen(kShards, 0);
    std::vector<ObjectId> removed;  // the last file of each gone
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
            auto look =
                look_at(pool, shard->dir.get(), e.name, *st, join_path(shard->shown, e.name));
            if (!look) {
                errors[s] = look.error();
                failed[s] = true;
                return;
            }
            if (look->held == Held::pool_alone) found[s].push_back({e.name, st->size, {}});
            if (look->held != Held::entangled) continue;
            // A file that names no object is kept: no record could say who uses it.
            auto object = Pool::parse_object_file(e.name);
            if (!object) continue;
            auto owner = uint32_t(entangled[s].size());
            entangled[s].push_back({object->first, object->second, st->size});
            for (const Span& x : look->shared) spans[s].push_back({x.start, x.end, owner});
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
    if (auto r = entangled_garbage(pool, entangled, spans, found); !r) return r;
    entangled.clear();
    spans.clear();
    uint64_t candidates = 0, handled = 0;
    for (const auto& f : found) candidates += f.size();
    // One write transaction per 4,096 removals, not per shard: each commit is an fdatasync,
    // and 256 of them were most of the time of removing 1,000 objects.
    constexpr uint64_t kPerTxn = 4096;
    // Where an unlink waits for a trim, objects leave their name here and are unlinked on
    // threads (store/trash.h); the name is gone either way before the record is looked at.
    bool trims = !opt.dry_run && unlink_trims(pool.stat().mnt_id);
    bool after_kill = pool.gc_interrupted(), marked = after_kill;
    Trash trash(pool.tmp_fd(), pool.path() + "/tmp", 4 * opt.jobs);
    std::unique_ptr<Txn> txn;
    uint64_t in_txn = 0;
    for (size_t s = 0; s < kShards; ++s) {
        if (found[s].empty()) continue;
        std::string shard = Pool::shard_name(s);
        if (!txn) {
            // Read only: the records of what goes are dropped after, all in one transaction.
            auto t = pool.index().read();
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
            if (opt.verbose)
                log << "remove object " << name << " (" << c.size << " bytes"
                    << (c.shared.empty() ? "" : ", sharing blocks only with other objects")
                    << ")\n";
            ++sum.objects_removed;
            sum.bytes_reclaimed += c.size;
            if (opt.dry_run) {
                if (id) removed.push_back(*id);
                continue;
            }
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
            auto look = look_at(pool, pool.objects_fd(), name, *st, shown, fd);
            if (!look) {
                outcome = std::unexpected(look.error());
                break;
            }
            if (!still_garbage(c, *look)) {
                --sum.objects_removed;
                sum.bytes_reclaimed -= c.size;
                continue;
            }
            if (!marked) {
                if (auto r = mark_unlinking(pool); !r) {
                    outcome = r;
                    break;
                }
                marked = true;
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
            if (!any_left) removed.push_back(*id);  // its records go below
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
    return drop_records(pool, opt, log, removed, after_kill, sum);
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
