// The passes of unify reindex (algorithm in reindex.h).
#include "repair/reindex.h"

#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include <algorithm>
#include <ctime>
#include <map>
#include <ostream>
#include <thread>

#include "importer/walker.h"
#include "repair/stamp.h"
#include "store/extents.h"
#include "store/guest_registry.h"
#include "store/guest_root.h"
#include "store/identify.h"
#include "store/interrupt.h"
#include "store/parallel.h"

namespace unify {

namespace {

constexpr size_t kBatch = 4096;
constexpr const char* kIndex = "index";
constexpr const char* kNewIndex = "index.new";

// An object inode, for looking up the inodes the walk meets. In a reflink pool a guest file
// is not the object's inode: the key is then the first physical block of the object's data
// (FIEMAP), which every file sharing all its blocks maps too.
struct InoEntry {
    uint64_t ino;
    uint32_t object;  // into Scan::ids
    uint32_t replica;
    bool operator<(const InoEntry& o) const { return ino < o.ino; }
};

struct Scan {
    std::vector<ObjectId> ids;
    std::vector<InoEntry> inodes;  // sorted by ino after pass 3
};

// One object file of a shard, hashed in parallel.
struct File {
    std::string name;
    ObjectId id;
    uint32_t replica = 0;
    enum State { ok, mismatch, stray, failed } state = ok;
    FileStat st;
    ContentHash hash;
    Error error;
    uint64_t key = 0;  // InoEntry::ino: the inode, or (reflink) the first block; 0: none
};

// A reflink pool's lookup key for an open file: its first physical block, 0 if its data is
// in no block another file could share.
Result<uint64_t> first_block(int fd, const std::string& shown) {
    auto extents = file_extents(fd, shown);
    if (!extents) return std::unexpected(extents.error());
    if (extents->empty() || !shareable(*extents)) return uint64_t(0);
    return extents->front().physical;
}

void hash_file(const Pool& pool, const std::string& name, const std::string& shown, File& f) {
    auto fd = pool.open_object(name);
    if (!fd) {
        f.state = fd.error().err == ELOOP ? File::stray : File::failed;
        f.error = fd.error();
        return;
    }
    auto st = stat_fd(fd->get(), shown);
    if (!st || !st->is_reg() || st->dev != pool.stat().dev) {
        f.state = st ? File::stray : File::failed;
        if (!st) f.error = st.error();
        return;
    }
    auto now = identify_fd(fd->get(), shown, pool.settings().id_rules());
    if (!now) {
        f.state = File::failed;
        f.error = now.error();
        return;
    }
    f.st = now->st;
    f.hash = now->hash;
    if (now->id != f.id) f.state = File::mismatch;
    f.key = f.st.ino;
    if (!pool.settings().reflink()) return;
    auto block = first_block(fd->get(), shown);
    if (!block) {
        f.state = File::failed;
        f.error = block.error();
        return;
    }
    f.key = *block;
}

// Pass 3: record every object of every shard in `index`, and collect the inode table.
Result<void> scan_objects(Pool& pool, Index& index, const ReindexOptions& opt, std::ostream& log,
                          ReindexSummary& sum, Scan& scan) {
    for (size_t s = 0; s < kShards; ++s) {
        if (interrupted()) return std::unexpected(interrupted_error());
        auto listed = pool.list_shard(s);
        if (!listed) return std::unexpected(listed.error());
        const std::string &shard = listed->name, &shown = listed->shown;
        std::vector<std::string> strays;
        std::vector<File> files;
        for (auto& o : listed->objects(strays)) files.push_back(File{o.file, o.id, o.replica});
        for (const auto& name : strays) {
            ++sum.strays;
            log << "unify: warning: " << join_path(shown, name)
                << " is not an object name; not recorded\n";
        }
        parallel_for(files.size(), opt.jobs, [&](size_t i) {
            hash_file(pool, shard + "/" + files[i].name, join_path(shown, files[i].name), files[i]);
        });
        // Replicas of one id are adjacent once sorted; the lowest good one gives the record.
        std::sort(files.begin(), files.end(), [](const File& a, const File& b) {
            return a.id != b.id ? a.id < b.id : a.replica < b.replica;
        });
        std::map<ObjectId, ObjectRecord> records;
        for (const auto& f : files) {
            std::string f_shown = join_path(shown, f.name);
            if (f.state == File::failed) return std::unexpected(f.error);
            if (f.state == File::stray) {
                ++sum.strays;
                log << "unify: warning: " << f_shown
                    << " is not a regular file on the pool's filesystem; not recorded\n";
                continue;
            }
            ++sum.object_files;
            sum.bytes += f.st.size;
            if (f.state == File::mismatch) {
                ++sum.mismatched;
                log << "unify: warning: object " << f_shown
                    << " does not match its id (content or metadata changed); not recorded: "
                       "run `unify verify`\n";
            } else {
                auto [it, fresh] = records.try_emplace(f.id);
                ObjectRecord& rec = it->second;
                if (fresh) {
                    rec.size = f.hash.size;
                    rec.xxh3 = f.hash.xxh3;
                    rec.content = f.hash.sha256;
                    // The creation time is not kept anywhere but in the lost record.
                    rec.created = time(nullptr);
                }
                rec.replicas = f.replica + 1;  // files are sorted: the last one is the highest
            }
            // The guests' links to it are links all the same, also to a damaged object.
            if (scan.ids.empty() || scan.ids.back() != f.id) scan.ids.push_back(f.id);
            if (f.key)
                scan.inodes.push_back(InoEntry{f.key, uint32_t(scan.ids.size() - 1), f.replica});
            if (opt.verbose) log << "object " << shard << "/" << f.name << "\n";
        }
        if (!records.empty()) {
            auto txn = index.write();
            if (!txn) return std::unexpected(txn.error());
            for (const auto& [id, rec] : records)
                if (auto r = (*txn)->put_object(id, rec); !r) return r;
            if (auto r = (*txn)->commit(); !r) return r;
            sum.objects += records.size();
        }
        if (opt.progress)
            opt.progress({.phase = "reindex: objects",
                          .unit = "objects",
                          .done = sum.object_files,
                          .bytes = sum.bytes,
                          .part = s + 1,
                          .parts = kShards});
    }
    std::sort(scan.inodes.begin(), scan.inodes.end());
    return {};
}

const InoEntry* find_inode(const Scan& scan, uint64_t ino) {
    auto it = std::lower_bound(scan.inodes.begin(), scan.inodes.end(), InoEntry{ino, 0, 0});
    return it != scan.inodes.end() && it->ino == ino ? &*it : nullptr;
}

// A reflink pool: the object a guest file shares all its blocks with, if any. Several objects
// may start at the same block (a guest appended to a file: its new object is a clone of the
// old one's blocks plus its own), so each of them is a candidate until its size and every
// block match; the first one looked up used to be the only one, and a guest file of the
// other lost its record.
Result<const InoEntry*> shared_object(const Pool& pool, const Scan& scan, const WalkEntry& e,
                                      const std::string& shown) {
    auto fd = open_guest_read(e.dir->get(), e.name, shown);
    if (!fd) return nullptr;  // gone or swapped meanwhile: not a link now
    auto block = first_block(fd->get(), shown);
    if (!block) return std::unexpected(block.error());
    if (!*block) return nullptr;
    auto [from, to] =
        std::equal_range(scan.inodes.begin(), scan.inodes.end(), InoEntry{*block, 0, 0});
    if (from == to) return nullptr;
    auto mine = file_extents(fd->get(), shown);
    if (!mine) return std::unexpected(mine.error());
    for (auto it = from; it != to; ++it) {
        std::string object_shown = pool.object_shown(scan.ids[it->object], it->replica);
        auto object = pool.open_object(scan.ids[it->object], it->replica);
        if (!object) return std::unexpected(object.error());
        auto ost = stat_fd(object->get(), object_shown);
        if (!ost) return std::unexpected(ost.error());
        if (ost->size != e.st.size) continue;
        auto theirs = file_extents(object->get(), object_shown);
        if (!theirs) return std::unexpected(theirs.error());
        if (same_blocks(*mine, *theirs, e.st.size)) return &*it;
    }
    return nullptr;
}

// Pass 4 for one guest. A root that cannot be walked is a warning: the other guests' links
// are still worth having, and importing the guest again records its links.
Result<void> walk_guest(Pool& pool, Index& index, const GuestRecord& g, const Scan& scan,
                        const ReindexOptions& opt, std::ostream& log, ReindexSummary& sum) {
    auto incomplete = [&](const Error& e) {
        std::string msg = "guest '" + g.name + "': " + e.message;
        log << "unify: warning: " << msg << "; its links are not (all) recorded\n";
        sum.guests_incomplete.push_back(msg);
        return Result<void>();
    };
    auto root = open_guest_root(pool, g);
    if (!root) return incomplete(root.error());
    // The default rules and the guest's include rules only: see reindex.h.
    std::vector<std::string> includes;
    for (const auto& r : g.excludes)
        if (parse_stored_rule(r).include) includes.push_back(r);
    Rules rules(includes, 0, nullptr, pool.settings().share);
    Walker walker(std::move(root->fd), root->path, rules, pool.stat(), pool.temp_prefix(),
                  opt.jobs);
    std::vector<WalkEntry> batch;
    for (bool more = true; more;) {
        if (interrupted()) return std::unexpected(interrupted_error());
        batch.clear();
        auto r = walker.next_batch(batch, kBatch);
        if (!r) return incomplete(r.error());
        more = *r;
        auto txn = index.write();
        if (!txn) return std::unexpected(txn.error());
        for (const auto& e : batch) {
            // Our own temporary names are not links: the next import removes them.
            // A reflink pool's guest may be a btrfs subvolume: st_dev of its own.
            if (e.temp || !e.st.is_reg()) continue;
            if (!pool.settings().reflink() && e.st.dev != pool.stat().dev) continue;
            const InoEntry* obj = nullptr;
            if (pool.settings().reflink()) {
                auto o = shared_object(pool, scan, e, join_path(root->path, e.path));
                if (!o) return std::unexpected(o.error());
                obj = *o;
            } else {
                obj = find_inode(scan, e.st.ino);
            }
            if (!obj) continue;
            // What import's record_link writes: the object's inode, size, mtime and ctime,
            // which are the path's own since it is that inode.
            LinkRecord l{g.id,     e.path,    scan.ids[obj->object], obj->replica,
                         e.st.ino, e.st.size, e.st.mtime_ns,         e.st.ctime_ns};
            if (auto p = (*txn)->put_link(l); !p) return p;
            ++sum.links;
            if (opt.verbose)
                log << "link " << g.name << ":" << e.path << " -> " << l.id.hex() << "\n";
        }
        if (auto c = (*txn)->commit(); !c) return c;
        if (opt.progress)
            opt.progress({.phase = "reindex: links", .unit = "files", .done = walker.files_seen()});
    }
    return {};
}

// Pass 1.
Result<std::vector<GuestRecord>> find_guests(const Pool& pool, std::ostream& log,
                                             ReindexSummary& sum) {
    auto reg = read_guest_registry(pool);
    if (reg) {
        sum.guests_from = join_path(pool.path(), "guests.conf");
        return *reg;
    }
    if (reg.error().err != ENOENT)
        return std::unexpected(
            context(reg.error(),
                    "reading the guest registry (fix or remove it; without it the guests "
                    "are taken from the old index if it can be read)"));
    auto old = Index::open(join_path(pool.path(), kIndex), false);
    if (old) {
        auto txn = (*old)->read();
        if (txn) {
            auto guests = (*txn)->guests();
            if (guests) {
                sum.guests_from = "the old index";
                return *guests;
            }
        }
    }
    log << "unify: warning: no guest registry (" << join_path(pool.path(), "guests.conf")
        << ") and the old index cannot be read: the new index has no guests; import each "
           "guest again to register it and record its links\n";
    return std::vector<GuestRecord>{};
}

// Removes an index directory a killed reindex left (data.mdb and lock.mdb, nothing else).
Result<void> remove_index_dir(const Pool& pool, const char* name) {
    std::string shown = join_path(pool.path(), name);
    auto dir = open_beneath(pool.fd(), name, O_RDONLY | O_DIRECTORY, shown);
    if (!dir) {
        if (dir.error().err == ENOENT) return {};
        return std::unexpected(dir.error());
    }
    auto entries = read_dir(dir->get(), shown);
    if (!entries) return std::unexpected(entries.error());
    for (const auto& e : *entries) {
        if (e.name != "data.mdb" && e.name != "lock.mdb")
            return fail(shown + " holds " + e.name +
                        ", which an index never does; move it away and run reindex again");
        if (unlinkat(dir->get(), e.name.c_str(), 0) != 0)
            return sys_fail("unlink", join_path(shown, e.name));
    }
    if (unlinkat(pool.fd(), name, AT_REMOVEDIR) != 0) return sys_fail("rmdir", shown);
    return {};
}

// Pass 5.
Result<void> swap_in(const Pool& pool, ReindexSummary& sum) {
    std::string base = std::string(kIndex) + ".old." + utc_stamp();
    for (int k = 0;; ++k) {
        std::string name = k ? base + "-" + std::to_string(k) : base;
        if (renameat2(pool.fd(), kIndex, pool.fd(), name.c_str(), RENAME_NOREPLACE) == 0) {
            sum.old_index = join_path(pool.path(), name);
            break;
        }
        if (errno == ENOENT) break;  // there was none
        if (errno == EEXIST && k < 1000) continue;
        return sys_fail("rename",
                        join_path(pool.path(), kIndex) + " -> " + join_path(pool.path(), name));
    }
    if (renameat2(pool.fd(), kNewIndex, pool.fd(), kIndex, RENAME_NOREPLACE) != 0)
        return sys_fail(
            "rename", join_path(pool.path(), kNewIndex) + " -> " + join_path(pool.path(), kIndex));
    if (fsync(pool.fd()) != 0) return sys_fail("fsync", pool.path());
    return {};
}

}  // namespace

Result<ReindexSummary> reindex_pool(Pool& pool, const ReindexOptions& opt_in, std::ostream& log) {
    ReindexOptions opt = opt_in;
    opt.jobs = jobs_or_cores(opt.jobs);
    ReindexSummary sum;
    auto guests = find_guests(pool, log, sum);
    if (!guests) return std::unexpected(context(guests.error(), "reindex"));
    sum.guests = guests->size();

    if (auto r = remove_index_dir(pool, kNewIndex); !r)
        return std::unexpected(context(r.error(), "reindex"));
    {
        auto index = Index::open(join_path(pool.path(), kNewIndex), true);
        if (!index) return std::unexpected(context(index.error(), "reindex"));
        auto put = [&]() -> Result<void> {
            auto txn = (*index)->write();
            if (!txn) return std::unexpected(txn.error());
            for (GuestRecord g : *guests)
                if (auto r = (*txn)->put_guest(g); !r) return r;
            return (*txn)->commit();
        };
        if (auto r = put(); !r) return std::unexpected(context(r.error(), "reindex"));
        Scan scan;
        if (auto r = scan_objects(pool, **index, opt, log, sum, scan); !r)
            return std::unexpected(context(r.error(), "reindex"));
        for (const auto& g : *guests) {
            if (auto r = walk_guest(pool, **index, g, scan, opt, log, sum); !r)
                return std::unexpected(context(r.error(), "reindex: guest '" + g.name + "'"));
        }
    }  // the new environment is closed here, before it is renamed
    if (auto r = swap_in(pool, sum); !r) return std::unexpected(context(r.error(), "reindex"));
    // Now also for a pool whose guests came from the old index.
    if (auto r = write_guest_registry(pool, *guests); !r)
        return std::unexpected(context(r.error(), "reindex: writing the guest registry"));
    return sum;
}

}  // namespace unify
