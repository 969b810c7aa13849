// Import, as a list of passes over bounded batches of the walk:
//   1. open and check the root, register the guest (or check it is the same guest);
//   2. walk a batch; sweep temporaries an interrupted run left behind;
//   3. skip paths the index says are already linked and that still are (one statx each);
//   4. hash the rest on all cores;
//   5. group by object id and apply: make missing objects, link the other paths over
//      them inside one protection window per object, record it all in one LMDB write
//      transaction per batch. In a reflink pool the one step that differs is how a path
//      comes to share its object (share_members, linker/reflink.h): a clone makes the
//      object, a dedupe shares it; no lease, no window, no replica.
#include "importer/import.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/vfs.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <functional>
#include <future>
#include <memory>
#include <ostream>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "importer/guest_file.h"
#include "importer/hash_batch.h"
#include "importer/known_contents.h"
#include "importer/package_db.h"
#include "importer/settle.h"
#include "importer/share_groups.h"
#include "importer/warm_sources.h"
#include "linker/dir_times.h"
#include "linker/object_maker.h"
#include "linker/reflink.h"
#include "linker/replace.h"
#include "linker/scatter.h"
#include "linker/unshare.h"
#include "store/fault.h"
#include "store/fd_limit.h"
#include "store/guest_registry.h"
#include "store/guest_root.h"
#include "store/identify.h"
#include "store/interrupt.h"
#include "store/link_check.h"
#include "store/mounts.h"
#include "store/parallel.h"
#include "store/printable.h"
#include "store/trash.h"

namespace unify {

namespace {

constexpr size_t kMaxBatch = 4096;

// Smallest file compared with a candidate object instead of hashed (Importer::candidate_of).
constexpr uint64_t kCompareFrom = 16 * 1024;

// Object groups recorded per write transaction within a batch. Each commit waits for two
// flushes (data, then meta page), on the main thread while the other core has little to do:
// g2..g4 into a pool with g1 made 39 commits at 512 groups and 18 at 2,048, and waited about
// 60 ms less in fdatasync in all (strace -T). RssAnon stayed where it was: a synthetic guest
// imported into the 100-guest pool peaked at 9.3 MiB at 512 groups and at 4,096.
constexpr size_t kGroupsPerTxn = 2048;

// Reflink pools: share_groups' threads per job. A dedupe is the kernel's work and its waits
// for pages; g1..g4 on an XFS image: 3.7 s serial, 3.0 s at 2 per job, no better at 4.
constexpr unsigned kShareThreadsPerJob = 2;

// Deep trees keep one fd per directory level open, and an unsettled file its lease from the
// hash pass until it is linked (importer/settle.h): per file at most two fds, and two batches
// in flight (Importer::run), so batches stay inside the fd limit.
size_t batch_size() {
    return std::min(kMaxBatch, fd_room() / 4);
}

uint64_t path_key(const std::string& path) {
    return XXH3_64bits(path.data(), path.size());
}

struct ObjectState {
    uint32_t replica = 0;  // the replica new links go to
    std::optional<FileStat> st;
    bool recorded = false;  // the index has its ObjectRecord
};

class Importer {
  public:
    Importer(Pool& pool, const ImportOptions& opt, std::ostream& log)
        : pool_(pool), opt_(opt), log_(log) {}
    Result<ImportSummary> run();

  private:
    Result<void> register_guest();
    struct Stage;
    struct Prepared;
    Result<bool> walk_batch(Walker& walker, size_t max, Stage& st);
    void check_and_hash(Stage& st);
    Result<std::vector<Hashed>> take_checked(Stage& st);
    Result<Prepared> prepare_batch(const std::vector<WalkEntry>& batch) const;
    Result<std::optional<Candidate>> candidate_of(Txn& txn, const WalkEntry& e) const;
    struct Groups {
        std::vector<ObjectId> order;
        std::unordered_map<ObjectId, std::vector<size_t>> members;
    };
    Result<void> group_batch(const std::vector<WalkEntry>& batch, std::vector<Hashed>& hashed,
                             Groups& g, const std::vector<bool>* only = nullptr);
    Result<void> apply_batch(std::vector<WalkEntry>& batch, std::vector<Hashed>& hashed);
    Result<void> predict_batch(std::vector<WalkEntry>& batch, std::vector<Hashed>& hashed);
    struct Temp {
        bool removable = false;
        std::optional<ObjectId> object;  // the object it links, if that is what it is
        uint32_t replica = 0;
    };
    Result<Temp> classify_temp(Txn& txn, const WalkEntry& e);
    Result<std::optional<ObjectId>> temp_content_id(const WalkEntry& e);
    Result<void> sweep_temp(Txn& txn, const WalkEntry& e);
    Result<std::vector<std::string>> stale_records(const Rules& rules,
                                                   std::vector<std::string>& excluded);
    Result<void> make_excluded_private(const std::vector<std::string>& excluded);
    Result<void> drop_records(const std::vector<std::string>& paths);
    Result<bool> already_linked(Txn& txn, const WalkEntry& e, std::vector<uint64_t>& seen) const;
    // A member's read lease taken ahead (lease_members): same, busy or changed, or the
    // error that stops the import; `lease` is held while it is same.
    struct Leased {
        Result<Recheck> state = Recheck::same;
        Fd lease;
    };
    using Leases = std::unordered_map<size_t, Leased>;
    using Pending = std::unordered_map<ObjectId, std::vector<size_t>>;
    Leases lease_members(const std::vector<ObjectId>& order, const Pending& pending,
                         const std::vector<WalkEntry>& batch, std::vector<Hashed>& hashed);
    Result<void> apply_group(Txn& txn, const ObjectId& id, std::vector<size_t>& pending,
                             std::vector<WalkEntry>& batch, std::vector<Hashed>& hashed,
                             Leases& leases);
    using Held = std::unordered_map<size_t, Fd>;
    Result<void> record_replaced(Txn& txn, const ObjectId& id, const ObjectState& obj,
                                 const WalkEntry& e, Replaced r);
    Result<Replaced> link_member(const ObjectId& id, const std::string& object_name,
                                 const std::string& tmp, const WalkEntry& e,
                                 Held::const_iterator lease, Held::const_iterator none);
    Result<std::vector<size_t>> take_leases(const std::vector<size_t>& pending,
                                            std::vector<WalkEntry>& batch, Leases& leases,
                                            std::unordered_map<size_t, Fd>& held);
    struct LinkWork;
    Result<void> link_batch(Txn& txn, const std::vector<ObjectId>& order, Pending& pending,
                            std::vector<WalkEntry>& batch, std::vector<Hashed>& hashed,
                            Leases& leases);
    void link_group(LinkWork& w, unsigned worker, std::vector<WalkEntry>& batch,
                    std::atomic<bool>& stop);
    Result<void> record_linked(Txn& txn, LinkWork& w, std::vector<WalkEntry>& batch);
    Result<void> predict_group(Txn& txn, const ObjectId& id, const std::vector<size_t>& members,
                               const std::vector<WalkEntry>& batch);
    std::string damaged_object(const ObjectState& obj, const std::vector<size_t>& members,
                               const std::vector<WalkEntry>& batch) const;
    void skip_busy_object(const Error& e, std::vector<size_t>& members,
                          std::vector<WalkEntry>& batch);
    bool refuse_damaged(const ObjectId& id, const ObjectState& obj,
                        const std::vector<size_t>& members, const std::vector<WalkEntry>& batch);
    std::vector<size_t> split_linked(const ObjectState& obj, const std::vector<size_t>& members,
                                     const std::vector<WalkEntry>& batch,
                                     std::vector<size_t>& linked);
    Result<bool> lease_before_acting(size_t i, const WalkEntry& e, Leases& leases, Fd& lease);
    Result<void> make_object(Txn& txn, const ObjectId& id, ObjectState& obj,
                             std::vector<size_t>& pending, std::vector<WalkEntry>& batch,
                             std::vector<Hashed>& hashed, Leases& leases);
    Result<void> link_members(Txn& txn, const ObjectId& id, ObjectState& obj,
                              std::vector<size_t>& pending, std::vector<WalkEntry>& batch,
                              std::unordered_map<size_t, Fd>& leases);
    Result<void> next_replica(Txn& txn, const ObjectId& id, ObjectState& obj);
    Result<std::vector<size_t>> prepare_group(Txn& txn, const ObjectId& id,
                                              const std::vector<size_t>& members,
                                              std::vector<WalkEntry>& batch,
                                              std::vector<Hashed>& hashed);
    Result<void> share_batch(Txn& txn, const Groups& g, std::vector<WalkEntry>& batch,
                             std::vector<Hashed>& hashed);
    Result<void> record_shared(Txn& txn, const ObjectId& id, ObjectState& obj, const WalkEntry& e,
                               const ShareOutcome& out);
    Result<ObjectState*> object_state(Txn& txn, const ObjectId& id);
    Result<void> object_made(Txn& txn, const ObjectId& id, ObjectState& obj, const MadeObject& made,
                             const WalkEntry& e);
    Result<void> adopt_new_objects(Txn& txn, const std::vector<ObjectId>& order, Pending& groups,
                                   std::vector<WalkEntry>& batch, const std::vector<Hashed>& hashed,
                                   Leases& leases);
    Result<void> record_link(Txn& txn, const WalkEntry& e, const ObjectId& id, uint32_t replica,
                             const FileStat& obj);
    void count_saved(const WalkEntry& e);
    void skip_file(const WalkEntry& e, const char* reason, const std::string& detail = "");
    // The walked member opened to be read; an invalid Fd once it is skipped (changed since
    // the walk, or unreadable: importer/guest_file.h).
    Result<Fd> open_member(const WalkEntry& e);
    // For messages only: escaped (store/printable.h).
    std::string shown(const WalkEntry& e) const { return printable(join_path(root_.path, e.path)); }
    bool unsettled(const WalkEntry& e) const { return e.st.ctime_ns >= settle_cutoff_; }

    Pool& pool_;
    const ImportOptions& opt_;
    std::ostream& log_;
    GuestRoot root_;
    GuestRecord guest_;
    ImportSummary sum_;
    std::unordered_map<ObjectId, ObjectState> objects_;      // this batch's view of the pool
    std::unordered_set<ObjectId> dry_new_;                   // dry run: objects it would make
    std::unordered_map<uint64_t, uint64_t> replaced_links_;  // ino -> paths replaced
    std::unordered_set<uint64_t> copied_from_;               // inodes a new object copies
    // XXH3 of every path that is linked at the end of this run, for stale_records.
    std::vector<uint64_t> seen_;
    uint64_t links_deleted_ = pool_.index().links_deleted();  // before this run's first write
    int64_t settle_cutoff_ = settle_cutoff_ns();              // see importer/settle.h
    // Settled files are leased too (importer/settle.h): the flag does not stop earlier fds.
    bool guard_writers_ = false;
    uint64_t bytes_hashed_ = 0;  // for opt_.progress
    DirTimes dir_times_;         // guest directories get their times back after each batch
    uint64_t fs_block_ = 4096;   // the guests' filesystem's block size (count_saved)
    // Where an unlink waits for the device to trim (store/mounts.h), the guests' displaced
    // files are unlinked beside the link loop, 4 per job: the wait is the disk's, not a core's
    // (a second guest imported in half the time; 8 vs 32 at once made no odds). Elsewhere the
    // extra rename into POOL/tmp cost 10-15 % and they are unlinked in place. Emptied at each
    // batch's end.
    bool trims_ = false;
    // Windows side by side (link_batch) where the flag stops writers that opened a file before
    // it was set (ext4): elsewhere a broken window is answered by scatter, which writes the
    // index, and windows stay one at a time.
    bool parallel_windows_ = false;
    Trash trash_{pool_.tmp_fd(), pool_.path() + "/tmp", 4 * opt_.jobs};
    // Reflink pools: the pool's objects by size and XXH3 when the run began
    // (importer/known_contents.h); read only, also by the hashing stage's threads.
    KnownContents known_;
    std::optional<WarmSources> warm_;  // reflink pools (importer/warm_sources.h)
    // Hardlink pools: the guest, imported before, whose object at a walked path is the
    // candidate the file is compared with instead of hashed (candidate_of). The oldest one:
    // guests are mostly made from one distribution, so the same path mostly holds the same
    // bytes.
    std::optional<uint32_t> reference_guest_;
};

Result<void> Importer::register_guest() {
    auto txn = pool_.index().write();
    if (!txn) return std::unexpected(txn.error());
    auto existing = (*txn)->guest(opt_.name);
    if (!existing) return std::unexpected(existing.error());
    auto all = (*txn)->guests();
    if (!all) return std::unexpected(all.error());
    for (const auto& g : *all) {
        if (g.name == opt_.name) continue;
        if (!pool_.settings().reflink() && g.last_import &&
            (!reference_guest_ || g.id < *reference_guest_))
            reference_guest_ = g.id;
        if (g.root == root_.path)
            return fail("guest root " + root_.path + " is already registered as guest '" + g.name +
                        "'; one root belongs to one guest name");
        if (path_within(root_.path, g.root) || path_within(g.root, root_.path))
            return fail("guest root " + root_.path + " overlaps the root of guest '" + g.name +
                        "' (" + g.root + "); guest roots must not contain each other");
    }
    if (*existing && (*existing)->root != root_.path)
        return fail("guest '" + opt_.name + "' is registered with root " + (*existing)->root +
                    ", not " + root_.path + "; use another name, or `unify forget " + opt_.name +
                    "` first");
    GuestRecord fresh{0, opt_.name, root_.path};
    fresh.min_size = default_min_size(pool_.settings().share);
    guest_ = existing->value_or(fresh);
    if (opt_.rules) guest_.excludes = *opt_.rules;
    if (opt_.min_size) guest_.min_size = *opt_.min_size;
    // The admin named this root: it is the guest's directory from now on.
    guest_.root_dev = root_.st.dev;
    guest_.root_ino = root_.st.ino;
    if (opt_.dry_run) return {};
    // A re-import with the same rules and root: the record and the registry stand as they
    // are, and the run saves a commit and a rewrite of the registry (each an fsync or two).
    if (*existing && **existing == guest_) return {};
    if (auto r = (*txn)->put_guest(guest_); !r) return r;
    if (auto r = (*txn)->commit(); !r) return r;
    // The guest list must outlive the index (unify reindex reads it from POOL/guests.conf).
    return sync_guest_registry(pool_);
}

Result<ObjectState*> Importer::object_state(Txn& txn, const ObjectId& id) {
    auto it = objects_.find(id);
    if (it != objects_.end()) return &it->second;
    ObjectState s;
    auto rec = txn.object(id);
    if (!rec) return std::unexpected(rec.error());
    if (*rec) s.replica = (*rec)->replicas ? (*rec)->replicas - 1 : 0;
    s.recorded = rec->has_value();
    auto st = pool_.stat_object(id, s.replica);
    if (!st) return std::unexpected(st.error());
    if (!*st && s.replica) {  // the index knew of a replica that is gone: fall back
        s.replica = 0;
        st = pool_.stat_object(id, 0);
        if (!st) return std::unexpected(st.error());
    }
    s.st = *st;
    return &objects_.emplace(id, s).first->second;
}

Result<bool> Importer::already_linked(Txn& txn, const WalkEntry& e,
                                      std::vector<uint64_t>& seen) const {
    auto rec = txn.link_stamp(guest_.id, e.path);  // the object's id is not needed here
    if (!rec) return std::unexpected(rec.error());
    if (!*rec || (*rec)->ino != e.st.ino || (*rec)->size != e.st.size ||
        (*rec)->mtime_ns != e.st.mtime_ns)
        return false;
    // A reflink pool records the guest's own inode: any write, chmod or dedupe by someone
    // else moves its ctime, so an equal ctime means it still holds the blocks it was given.
    if (pool_.settings().reflink()) {
        if ((*rec)->ctime_ns != e.st.ctime_ns) return false;
        seen.push_back(path_key(e.path));
        return true;
    }
    // One statx, the walk's: the path is the inode the index recorded as its object, and
    // that inode is alive, so it is still the object unless the object was deleted and its
    // inode number reused by a file that the guest then gave the same size, mtime-ns and
    // protection. A pool changed behind the index's back is `unify verify`'s to find.
    if (e.st.nlink < 2) return false;  // the pool's name for it is gone
    if (pool_.protection().mode() != ProtectMode::none && !e.st.immutable) return false;
    seen.push_back(path_key(e.path));
    return true;
}

Result<void> Importer::record_link(Txn& txn, const WalkEntry& e, const ObjectId& id,
                                   uint32_t replica, const FileStat& obj) {
    // Hardlink: the path is the object's inode. Reflink: the guest's own inode as walked,
    // before it was made to share (a dedupe leaves its times alone).
    const FileStat& s = pool_.settings().reflink() ? e.st : obj;
    LinkRecord rec{guest_.id, e.path, id, replica, s.ino, s.size, s.mtime_ns, s.ctime_ns};
    seen_.push_back(path_key(e.path));
    return txn.put_link(rec);
}

void Importer::count_saved(const WalkEntry& e) {
    // A path hard-linked elsewhere frees its blocks only when its last link is replaced; an
    // inode an object was copied from frees no more than the copy took. Only such inodes
    // are remembered, so memory does not grow with the guest.
    // What is freed is the blocks the inode held (a sparse file's holes hold none).
    // A name walked after others of its inode were replaced (a later batch) shows the link
    // count left, down to 1: the inode is known by replaced_links_ then, and is counted once
    // (kCounted), never again for each later name (20,001 names of one 5-byte file were
    // counted as 31.6 MB saved).
    constexpr uint64_t kCounted = UINT64_MAX;
    uint64_t freed = e.st.blocks * 512;
    // A dedupe frees the blocks of the file's data only: XFS's speculative preallocation past
    // the end of a file just written (kept after its second close) stays the guest's until
    // XFS trims it. An unlinked inode frees all of its blocks.
    if (pool_.settings().reflink())
        freed = std::min(freed, (e.st.size + fs_block_ - 1) / fs_block_ * fs_block_);
    auto known = replaced_links_.find(e.st.ino);
    if (known == replaced_links_.end() && e.st.nlink == 1) {
        sum_.bytes_saved += freed;
        return;
    }
    uint64_t& n = replaced_links_[e.st.ino];
    if (n == kCounted) return;
    if (pool_.settings().reflink()) {  // the inode's blocks go the first time any name shares
        if (++n == 1) sum_.bytes_saved += freed;
        return;
    }
    if (++n >= e.st.nlink) {
        if (!copied_from_.count(e.st.ino)) sum_.bytes_saved += freed;
        n = kCounted;
    }
}

void Importer::skip_file(const WalkEntry& e, const char* reason, const std::string& detail) {
    ++sum_.skipped[reason];
    if (opt_.verbose || !detail.empty())
        log_ << "unify: skipped " << shown(e) << ": " << reason
             << (detail.empty() ? "" : " (" + detail + ")") << "\n";
}

Result<Fd> Importer::open_member(const WalkEntry& e) {
    auto src = open_guest_file(e, shown(e));
    if (!src) return std::unexpected(src.error());
    if (src->state == GuestFile::ok) return std::move(src->fd);
    skip_file(e, src->state == GuestFile::changed ? skip::kChanged : skip::kUnreadable,
              src->error.message);
    return Fd();
}

// The id of what is at temporary name e (its content, and the metadata the pool's ids
// cover), or nothing when it cannot be read.
Result<std::optional<ObjectId>> Importer::temp_content_id(const WalkEntry& e) {
    auto src = open_guest_file(e, shown(e));
    if (!src) return std::unexpected(src.error());
    if (src->state != GuestFile::ok) return std::nullopt;
    auto got = identify_fd(src->fd.get(), shown(e), pool_.settings().id_rules());
    if (!got) return std::nullopt;  // unreadable: left alone, with the warning below
    return got->id;
}

// One of our own temporary names, left by an interrupted run. Removable:
//  - a link to the object its name says, or, for an unshare's "copy." name (which names no
//    object), to the object its content says: what an exchange displaced, or a link that
//    never got swapped in (removed within the object's window);
//  - an unshare's private copy that never got swapped in;
//  - the guest's original that a link's RENAME_EXCHANGE displaced when the run was killed
//    before its unlink: exactly the object's content and metadata (its path already holds
//    the object). The name alone proves nothing: a guest sees it with inotify.
// Anything else at such a name is the guest's and is left alone, and so is a ".kept" name.
Result<Importer::Temp> Importer::classify_temp(Txn& txn, const WalkEntry& e) {
    Temp t;
    std::string rest = e.name.substr(pool_.temp_prefix().size());
    bool copy = rest.compare(0, 5, "copy.") == 0;
    std::optional<ObjectId> id = ObjectId::from_hex(rest.substr(0, 64));
    if (rest.ends_with(".kept")) {  // a guest's file a swap had to leave (linker/replace.cc)
        copy = false;
        id.reset();
    }
    if (copy) {
        auto c = temp_content_id(e);
        if (!c) return std::unexpected(c.error());
        id = *c;
    }
    if (id) {
        auto s = object_state(txn, *id);
        if (!s) return std::unexpected(s.error());
        if ((*s)->st && (*s)->st->same_inode(e.st)) {
            t.removable = true;
            t.object = *id;
            t.replica = (*s)->replica;
        } else if ((*s)->st && !copy && !pool_.settings().reflink()) {
            auto c = temp_content_id(e);
            if (!c) return std::unexpected(c.error());
            t.removable = *c == *id;
        }
    }
    t.removable = t.removable || copy;
    if (!t.removable)
        log_ << "unify: warning: " << shown(e)
             << " looks like a temporary name of this pool but is not one of its objects; "
                "left alone\n";
    return t;
}

Result<void> Importer::sweep_temp(Txn& txn, const WalkEntry& e) {
    auto t = classify_temp(txn, e);
    if (!t) return std::unexpected(t.error());
    if (!t->removable) return {};
    auto act = [&]() -> Result<void> {
        fault_point("sweep.unlink");
        dir_times_.before(e.dir->get());
        if (unlinkat(e.dir->get(), e.name.c_str(), 0) != 0 && errno != ENOENT)
            return sys_fail("unlinkat", shown(e));
        dir_times_.after(e.dir->get());
        ++sum_.temps_swept;
        return {};
    };
    if (!t->object) return act();
    auto fd = pool_.open_object(*t->object, t->replica);
    if (!fd) return std::unexpected(fd.error());
    return with_links_guarded(pool_, &txn, *t->object, t->replica, fd->get(), act, log_);
}

// Records a new object and, when the guest's inode became it, the link of that path.
Result<void> Importer::object_made(Txn& txn, const ObjectId& id, ObjectState& obj,
                                   const MadeObject& made, const WalkEntry& e) {
    if (auto r = txn.put_object(id, made.rec); !r) return r;
    obj.st = made.st;
    obj.replica = 0;
    obj.recorded = true;
    ++sum_.new_objects;
    sum_.bytes_new_objects += made.rec.size;
    // A reflink object is a clone of this inode: its other names, shared after it, free
    // nothing either (count_saved).
    if (pool_.settings().reflink() && e.st.nlink > 1) ++replaced_links_[e.st.ino];
    if (opt_.verbose) log_ << "new object " << id.hex() << " from " << shown(e) << "\n";
    if (e.st.nlink != 1 && !pool_.settings().reflink()) return {};  // a copy: not the path
    ++sum_.newly_linked;
    return record_link(txn, e, id, 0, *obj.st);
}

// The batch's new objects whose first path is a single-link inode are adopted together, so
// their verifying re-reads run on all cores; each such path leaves its group. Its lease
// (lease_members) is asked again once the object is protected. The rest (copies, a path
// that changed or is busy) go through apply_group one by one.
Result<void> Importer::adopt_new_objects(Txn& txn, const std::vector<ObjectId>& order,
                                         Pending& groups, std::vector<WalkEntry>& batch,
                                         const std::vector<Hashed>& hashed, Leases& leases) {
    std::vector<AdoptRequest> requests;
    std::vector<Fd> held;  // the leases, held until every object is protected
    for (const ObjectId& id : order) {
        auto state = object_state(txn, id);
        if (!state) return std::unexpected(state.error());
        if ((*state)->st || groups[id].empty()) continue;
        size_t i = groups[id].front();
        const WalkEntry& e = batch[i];
        if (e.st.nlink != 1) continue;
        std::function<bool()> unwritten;
        int lease_fd = -1;
        if (auto l = leases.find(i); l != leases.end()) {
            // Busy, changed or failed: make_object takes it and says so.
            if (!l->second.state || *l->second.state != Recheck::same) continue;
            lease_fd = l->second.lease.get();
            unwritten = [lease_fd] { return lease_intact(lease_fd); };
            held.push_back(std::move(l->second.lease));
            leases.erase(l);
        }
        requests.push_back({id, e.dir->get(), e.name, e.st, shown(e), std::move(unwritten),
                            hashed[i].copy_of, lease_fd, hashed[i].hash});
    }
    auto made = adopt_objects(pool_, requests, opt_.jobs);
    for (size_t k = 0; k < requests.size(); ++k) {
        const ObjectId& id = requests[k].id;
        std::vector<size_t>& members = groups[id];
        WalkEntry& e = batch[members.front()];
        members.erase(members.begin());
        if (!made[k]) return std::unexpected(made[k].error());
        if (made[k]->outcome != MadeObject::made) {
            skip_file(e, made[k]->outcome == MadeObject::changed ? skip::kChanged : skip::kFlagged);
            continue;
        }
        if (auto r = object_made(txn, id, objects_[id], *made[k], e); !r) return r;
    }
    return {};
}

// The members of a group that already are the object's inode (linked before, but the index
// has no record of it): they are counted, and recorded by the real run. The rest is returned.
// What in the object's inode contradicts its id, judged by a member that hashed to it and is
// another inode: the size, and in a hardlink pool the metadata every linked path shows. ""
// when nothing does. Its bytes are verify --full's to check: reading them here would cost
// every linked file a second read.
std::string Importer::damaged_object(const ObjectState& obj, const std::vector<size_t>& members,
                                     const std::vector<WalkEntry>& batch) const {
    if (!obj.st) return "";
    const FileStat& o = *obj.st;
    for (size_t i : members) {
        const FileStat& m = batch[i].st;
        if (o.same_inode(m)) continue;
        auto differs = [](const char* what, auto has, auto want) {
            return std::string(what) + " " + std::to_string(has) + ", the id says " +
                   std::to_string(want);
        };
        if (o.size != m.size) return differs("size", o.size, m.size);
        const IdRules rules = pool_.settings().id_rules();
        if (rules.content_only) return "";
        if (o.mode != m.mode) {
            char has[16], want[16];
            snprintf(has, sizeof has, "%o", o.mode);
            snprintf(want, sizeof want, "%o", m.mode);
            return std::string("mode ") + has + ", the id says " + want;
        }
        if (o.uid != m.uid) return differs("uid", o.uid, m.uid);
        if (o.gid != m.gid) return differs("gid", o.gid, m.gid);
        if (!rules.ignore_mtime && o.mtime_ns != m.mtime_ns)
            return differs("mtime (ns)", o.mtime_ns, m.mtime_ns);
        return "";
    }
    return "";
}

// A damaged object (damaged_object) gets no member: each keeps its own file, counted as
// skipped, and the import warns once.
bool Importer::refuse_damaged(const ObjectId& id, const ObjectState& obj,
                              const std::vector<size_t>& members,
                              const std::vector<WalkEntry>& batch) {
    std::string why = damaged_object(obj, members, batch);
    if (why.empty()) return false;
    std::string warning = "object " + pool_.object_shown(id, obj.replica) +
                          " does not match its id (" + why +
                          "): no guest file is linked to it; run unify verify";
    log_ << "unify: warning: " << warning << "\n";
    sum_.warnings.push_back(warning);
    for (size_t i : members)
        if (!obj.st->same_inode(batch[i].st)) skip_file(batch[i], skip::kDamagedObject);
    return true;
}

std::vector<size_t> Importer::split_linked(const ObjectState& obj,
                                           const std::vector<size_t>& members,
                                           const std::vector<WalkEntry>& batch,
                                           std::vector<size_t>& linked) {
    std::vector<size_t> pending;
    for (size_t i : members) {
        if (obj.st && obj.st->same_inode(batch[i].st))
            linked.push_back(i);
        else
            pending.push_back(i);
    }
    sum_.already_linked += linked.size();
    return pending;
}

// Before unify adopts or links a path: an unsettled one (changed in the last minute or so) is
// leased and re-read (importer/settle.h); where the immutable flag does not stop fds opened
// earlier (guard_writers_: XFS, btrfs, tmpfs) a settled one is leased too, so a file that
// any process holds open for writing is never adopted or linked. All of a batch's members
// are leased ahead, on all cores: for just-made copies the re-reads were a quarter of the
// main thread's time (g4 on ext4).
// A settled file that adopt_new_objects will make an object of is leased too, everywhere:
// a lease that holds until its flag is set spares the object's re-read (AdoptRequest::
// lease_fd), which was most of a first guest's import. If some fd has it open for writing,
// it goes unleased and is re-read after its flag as before (on ext4 the flag stops that fd).
Importer::Leases Importer::lease_members(const std::vector<ObjectId>& order, const Pending& pending,
                                         const std::vector<WalkEntry>& batch,
                                         std::vector<Hashed>& hashed) {
    fault_point("lease.ahead");  // a guest writing here, after the hash, before any lease
    std::vector<size_t> need;
    std::vector<bool> to_adopt;  // need[k] is leased only to spare its object's re-read
    std::vector<bool> adopted;   // need[k] becomes the object: its flag comes soon
    for (const ObjectId& id : order) {
        const std::vector<size_t>& members = pending.at(id);
        // adopt_new_objects' choice: a group with no object yet adopts its first path.
        bool adopts =
            !members.empty() && !objects_.at(id).st && batch[members.front()].st.nlink == 1;
        for (size_t i : members) {
            bool guard = guard_writers_ || unsettled(batch[i]);
            if (!guard && !(adopts && i == members.front())) continue;
            need.push_back(i);
            to_adopt.push_back(!guard);
            adopted.push_back(adopts && i == members.front());
        }
    }
    std::vector<Leased> got(need.size());
    const IdRules rules = pool_.settings().id_rules();
    parallel_for(need.size(), opt_.jobs, [&](size_t k) {
        const WalkEntry& e = batch[need[k]];
        Leased& l = got[k];
        Hashed& h = hashed[need[k]];
        if (!unsettled(e))
            l.state = lease_unwritten(e, l.lease, shown(e));
        else if (h.lease.valid())  // read under it: asking it is the re-read
            l.state = lease_since_read(h.lease, l.lease);
        else
            l.state = lease_and_recheck(e, h.id, rules, l.lease, shown(e), &pool_, h.copy_of.get());
        // A just-made file's pages are still dirty, and its flag, one at a time on the main
        // thread (make_object), would wait for them to be written (ext4): g2 just copied
        // waited 156 ms there. Written back from now on, while the batch goes on.
        if (adopted[k] && unsettled(e) && l.state && *l.state == Recheck::same)
            start_writeback(l.lease.get());
    });
    // The hash pass's leases of files that are not acted on let their writers go now.
    for (Hashed& h : hashed) h.lease = Fd();
    Leases out;
    for (size_t k = 0; k < need.size(); ++k) {
        // Refused or failed, a lease taken only to spare a re-read is not taken at all.
        if (to_adopt[k] && (!got[k].state || *got[k].state == Recheck::busy)) continue;
        out.emplace(need[k], std::move(got[k]));
    }
    return out;
}

// Member i's lease from lease_members, now `lease`. False: skipped, counted (busy or changed).
Result<bool> Importer::lease_before_acting(size_t i, const WalkEntry& e, Leases& leases,
                                           Fd& lease) {
    auto l = leases.find(i);
    if (l == leases.end()) return true;  // settled, and the flag stops every writer
    Leased got = std::move(l->second);
    leases.erase(l);
    if (!got.state) return std::unexpected(got.state.error());
    if (*got.state == Recheck::same) {
        lease = std::move(got.lease);
        return true;
    }
    skip_file(e, *got.state == Recheck::busy ? skip::kBusy : skip::kChanged);
    return false;
}

// A member that yields no object (changed, flagged, unreadable) is skipped and counted.
Result<void> Importer::make_object(Txn& txn, const ObjectId& id, ObjectState& obj,
                                   std::vector<size_t>& pending, std::vector<WalkEntry>& batch,
                                   std::vector<Hashed>& hashed, Leases& leases) {
    while (!obj.st && !pending.empty()) {
        size_t i = pending.front();
        pending.erase(pending.begin());
        WalkEntry& e = batch[i];
        Fd lease;
        auto ok = lease_before_acting(i, e, leases, lease);
        if (!ok) return std::unexpected(ok.error());
        if (!*ok) continue;
        Result<MadeObject> made = MadeObject{};
        if (e.st.nlink == 1) {
            // The inode itself becomes the object: no path outside this guest gains protection.
            // Its lease, if any, is asked again once the object is protected.
            made = adopt_object(pool_, id, e.dir->get(), e.name, e.st, shown(e),
                                [&] { return !lease.valid() || lease_intact(lease.get()); });
        } else {
            auto src = open_member(e);
            if (!src) return std::unexpected(src.error());
            if (!src->valid()) continue;
            made = copy_object(pool_, id, 0, src->get(), e.st, hashed[i].xattrs,
                               hashed[i].hash.sha256, shown(e));
        }
        if (!made) return std::unexpected(made.error());
        if (made->outcome != MadeObject::made) {
            skip_file(e, made->outcome == MadeObject::changed ? skip::kChanged : skip::kFlagged);
            continue;
        }
        if (auto r = object_made(txn, id, obj, *made, e); !r) return r;
        if (e.st.nlink != 1) {
            copied_from_.insert(e.st.ino);
            pending.insert(pending.begin(), i);  // the copy still has to replace the path
        }
    }
    return {};
}

// EMLINK: the object's inode is full; further links go to the next replica with the same id,
// made now unless an earlier (interrupted) run made it already.
Result<void> Importer::next_replica(Txn& txn, const ObjectId& id, ObjectState& obj) {
    uint32_t replica = obj.replica + 1;
    auto there = pool_.stat_object(id, replica);
    if (!there) return std::unexpected(there.error());
    ObjectRecord made_rec;
    if (*there) {
        obj.st = **there;
    } else {
        auto made = make_replica(pool_, id, replica);
        if (!made) return std::unexpected(made.error());
        obj.st = made->st;
        made_rec = made->rec;
    }
    obj.replica = replica;
    auto rec = txn.object(id);
    if (!rec) return std::unexpected(rec.error());
    ObjectRecord updated = rec->value_or(made_rec);
    updated.replicas = replica + 1;
    if (auto r = txn.put_object(id, updated); !r) return r;
    log_ << "unify: object " << id.hex() << " reached the link limit; made replica " << replica
         << "\n";
    return {};
}

// What link_over came to for one member (not EMLINK), counted and recorded.
Result<void> Importer::record_replaced(Txn& txn, const ObjectId& id, const ObjectState& obj,
                                       const WalkEntry& e, Replaced r) {
    if (r == Replaced::changed) {
        skip_file(e, skip::kChanged);
        return {};
    }
    if (r == Replaced::refused) {
        skip_file(e, skip::kFlagged);
        return {};
    }
    ++sum_.newly_linked;
    count_saved(e);
    if (opt_.verbose) log_ << "link " << shown(e) << " -> " << id.hex() << "\n";
    return record_link(txn, e, id, obj.replica, *obj.st);
}

// One member linked over its path, inside its object's window: link_over with the member's
// lease (`lease`, or `none` where it needs none) asked just before the rename, the
// directory's times kept.
Result<Replaced> Importer::link_member(const ObjectId& id, const std::string& object_name,
                                       const std::string& tmp, const WalkEntry& e,
                                       Held::const_iterator lease, Held::const_iterator none) {
    dir_times_.before(e.dir->get());
    // Read again when its link count moved since the walk (replace.h): the bytes, xattrs
    // and metadata must still give the object's id, and nothing may change while they are
    // read (the stat identify_fd takes after reading is the one link_over just took).
    auto recheck = [&](const FileStat& now) {
        auto f = open_guest_file(e, shown(e));
        if (!f || f->state != GuestFile::ok) return false;
        auto again = identify_fd(f->fd.get(), shown(e), pool_.settings().id_rules());
        return again && again->st.unchanged(now) && again->id == id;
    };
    auto r = link_over(
        pool_.objects_fd(), object_name, e.dir->get(), e.name, e.st,
        [&] { return lease == none || lease_intact(lease->second.get()); }, recheck, tmp,
        trims_ ? &trash_ : nullptr, shown(e));
    dir_times_.after(e.dir->get());
    return r;
}

// Links every pending member over its path, in one protection window per object inode.
Result<void> Importer::link_members(Txn& txn, const ObjectId& id, ObjectState& obj,
                                    std::vector<size_t>& pending, std::vector<WalkEntry>& batch,
                                    std::unordered_map<size_t, Fd>& leases) {
    while (!pending.empty()) {
        auto fd = pool_.open_object(id, obj.replica);
        if (!fd) return std::unexpected(fd.error());
        bool full = false;
        std::string name = Pool::object_name(id, obj.replica);
        auto act = [&]() -> Result<void> {
            while (!pending.empty()) {
                WalkEntry& e = batch[pending.front()];
                std::string tmp = pool_.temp_prefix() + id.hex() + ".";
                auto r = link_member(id, name, tmp, e, leases.find(pending.front()), leases.end());
                if (!r) return std::unexpected(r.error());
                if (*r == Replaced::emlink) {
                    full = true;
                    return {};
                }
                pending.erase(pending.begin());
                if (auto rl = record_replaced(txn, id, obj, e, *r); !rl) return rl;
            }
            return {};
        };
        bool scattered = false;
        if (auto r =
                with_links_guarded(pool_, &txn, id, obj.replica, fd->get(), act, log_, &scattered);
            !r) {
            if (r.error().err != EAGAIN) return r;
            skip_busy_object(r.error(), pending, batch);
            return {};
        }
        // A window a writer broke into gave the pool's name a fresh inode (linker/scatter.h).
        if (scattered) {
            auto now = pool_.stat_object(id, obj.replica);
            if (!now) return std::unexpected(now.error());
            if (*now) obj.st = **now;
        }
        if (!full) break;
        if (auto r = next_replica(txn, id, obj); !r) return r;
    }
    return {};
}

// An object some process holds open for writing refused its window before anything was
// lifted (store/protect.h): the paths that wanted it are skipped as busy, and the import goes
// on. A guest's writable mapping of a file adopted on ext4 must not stop every other guest's
// import for as long as it lasts.
void Importer::skip_busy_object(const Error& e, std::vector<size_t>& members,
                                std::vector<WalkEntry>& batch) {
    log_ << "unify: warning: " << e.message << "\n";
    sum_.warnings.push_back(e.message);
    for (size_t i : members) skip_file(batch[i], skip::kBusy);
    members.clear();
}

// Steps 1 and 2 of pass 5 for one object, in either mode: what is on disk but not in the
// index gets its record. Returns the members still to act on.
Result<std::vector<size_t>> Importer::prepare_group(Txn& txn, const ObjectId& id,
                                                    const std::vector<size_t>& members,
                                                    std::vector<WalkEntry>& batch,
                                                    std::vector<Hashed>& hashed) {
    auto state = object_state(txn, id);
    if (!state) return std::unexpected(state.error());
    ObjectState& obj = **state;
    // 0. An object changed behind unify's back (a disk's fault, root's chattr and write) must
    //    not take the place of good guest files: what the id promises is looked at first.
    if (refuse_damaged(id, obj, members, batch)) return std::vector<size_t>{};
    // 1. An object on disk without a record: a run was killed before its index commit. The
    //    members were hashed just now against this id, so their hash is the object's.
    if (obj.st && !obj.recorded) {
        const ContentHash& h = hashed[members.front()].hash;
        ObjectRecord rec{h.size, h.xxh3, h.sha256, time(nullptr), obj.replica + 1};
        if (auto r = txn.put_object(id, rec); !r) return std::unexpected(r.error());
        obj.recorded = true;
    }
    // 2. Members that already are the object only lack their record.
    std::vector<size_t> linked;
    std::vector<size_t> pending = split_linked(obj, members, batch, linked);
    for (size_t i : linked)
        if (auto r = record_link(txn, batch[i], id, obj.replica, *obj.st); !r)
            return std::unexpected(r.error());
    return pending;
}

// Steps 3 to 5 of pass 5 for one object in a hardlink pool: `pending` are the paths of this
// batch that hashed to `id` and are not linked yet (prepare_group), leased ahead where they
// need it (lease_members).
Result<void> Importer::apply_group(Txn& txn, const ObjectId& id, std::vector<size_t>& pending,
                                   std::vector<WalkEntry>& batch, std::vector<Hashed>& hashed,
                                   Leases& leases) {
    ObjectState& obj = objects_[id];
    // 3. No object yet: make it from the first member that yields it.
    if (auto r = make_object(txn, id, obj, pending, batch, hashed, leases); !r) return r;
    // 4. Each member's lease (or why it is skipped); the lease is asked once more just before
    //    each rename.
    std::unordered_map<size_t, Fd> held;
    auto rechecked = take_leases(pending, batch, leases, held);
    if (!rechecked) return std::unexpected(rechecked.error());
    // 5. Every other member is linked over its path.
    return link_members(txn, id, obj, *rechecked, batch, held);
}

// Step 4 for one group: the members whose lease holds (or that need none), their leases
// moved into `held`; the others are skipped and counted.
Result<std::vector<size_t>> Importer::take_leases(const std::vector<size_t>& pending,
                                                  std::vector<WalkEntry>& batch, Leases& leases,
                                                  std::unordered_map<size_t, Fd>& held) {
    std::vector<size_t> rechecked;
    for (size_t i : pending) {
        Fd lease;
        auto ok = lease_before_acting(i, batch[i], leases, lease);
        if (!ok) return std::unexpected(ok.error());
        if (!*ok) continue;
        if (lease.valid()) held[i] = std::move(lease);
        rechecked.push_back(i);
    }
    return rechecked;
}

// One group of link_batch: what link_members does for it, on a worker thread with an intent
// slot of its own, stopping at EMLINK (the rest goes on serially, for next_replica).
struct Importer::LinkWork {
    ObjectId id;
    uint32_t replica = 0;
    std::vector<size_t> members;
    std::unordered_map<size_t, Fd> held;        // their leases
    std::vector<std::optional<Replaced>> done;  // per member; unset: not tried
    std::optional<Error> error;
    // A guest changed the object's metadata in the window: what it was before, for the
    // scatter that record_linked runs with the index (linker/scatter.h scatter_changed).
    std::optional<Metadata> changed;
    std::optional<Error> busy;  // the window was refused: an fd open for writing on the object
};

// Steps 3 to 5 of a hardlink batch with the objects' windows side by side (parallel_windows_):
// objects are made and leases taken here, in order; each group's members are linked inside
// its object's window on worker threads; then what each came to is recorded here, in order,
// also past a failure, whose error is returned after.
Result<void> Importer::link_batch(Txn& txn, const std::vector<ObjectId>& order, Pending& pending,
                                  std::vector<WalkEntry>& batch, std::vector<Hashed>& hashed,
                                  Leases& leases) {
    std::vector<LinkWork> work;
    for (const ObjectId& id : order) {
        if (interrupted()) return std::unexpected(interrupted_error());
        ObjectState& obj = objects_[id];
        if (auto r = make_object(txn, id, obj, pending[id], batch, hashed, leases); !r) return r;
        LinkWork w{id, obj.replica, {}, {}, {}, {}};
        auto rechecked = take_leases(pending[id], batch, leases, w.held);
        if (!rechecked) return std::unexpected(rechecked.error());
        if (rechecked->empty() || !obj.st) continue;
        w.members = std::move(*rechecked);
        work.push_back(std::move(w));
    }
    std::atomic<bool> stop{false};
    // Worker w's windows use intent slot 1 + w, free again since the batch adoption ended.
    unsigned workers = std::min<unsigned>(opt_.jobs, kWorkSlots - 1);
    parallel_for_worker(work.size(), workers,
                        [&](size_t k, unsigned w) { link_group(work[k], w, batch, stop); });
    Result<void> first;
    size_t applied = 0;
    for (LinkWork& w : work) {
        auto r = record_linked(txn, w, batch);
        if (!r && first) first = r;
        if (++applied % kGroupsPerTxn == 0)
            if (auto rn = txn.renew(); !rn) return rn;
    }
    if (!first) return first;
    if (interrupted()) return std::unexpected(interrupted_error());
    return {};
}

void Importer::link_group(LinkWork& w, unsigned worker, std::vector<WalkEntry>& batch,
                          std::atomic<bool>& stop) {
    w.done.assign(w.members.size(), std::nullopt);
    if (stop.load(std::memory_order_relaxed) || interrupted()) return;
    auto fd = pool_.open_object(w.id, w.replica);
    if (!fd) {
        w.error = fd.error();
        stop = true;
        return;
    }
    std::string name = Pool::object_name(w.id, w.replica);
    std::string tmp = pool_.temp_prefix() + w.id.hex() + ".";
    auto act = [&]() -> Result<void> {
        for (size_t k = 0; k < w.members.size(); ++k) {
            if (stop.load(std::memory_order_relaxed) || interrupted()) return {};
            size_t i = w.members[k];
            auto r = link_member(w.id, name, tmp, batch[i], w.held.find(i), w.held.end());
            if (!r) return std::unexpected(r.error());
            w.done[k] = *r;
            if (*r == Replaced::emlink) return {};
        }
        return {};
    };
    Metadata before;  // filled (a nonzero inode) only when the window reports changed metadata
    if (auto r = pool_.with_links_allowed(w.id, w.replica, fd->get(), act, {}, 1 + worker, &before);
        !r) {
        // EUCLEAN alone could also be the filesystem's own (XFS: corruption) from act().
        if (r.error().err == EUCLEAN && before.st.ino) {
            w.changed = std::move(before);  // not this import's failure: answered in order
        } else if (r.error().err == EAGAIN) {
            w.busy = r.error();  // nothing was lifted, no member linked
        } else {
            w.error = r.error();
            stop = true;
        }
    }
    // A writer waiting on a lease goes on now, not at the batch's end; the close of the last
    // fd on a displaced inode, which frees its blocks, is this thread's work too.
    for (size_t k = 0; k < w.members.size(); ++k)
        if (w.done[k] && *w.done[k] != Replaced::emlink) w.held.erase(w.members[k]);
}

// What link_group did for one group, counted and recorded; a group that stopped at EMLINK
// goes on with its next replica here, one window at a time.
Result<void> Importer::record_linked(Txn& txn, LinkWork& w, std::vector<WalkEntry>& batch) {
    ObjectState& obj = objects_[w.id];
    if (w.busy) {
        skip_busy_object(*w.busy, w.members, batch);
        return {};
    }
    std::vector<size_t> rest;
    for (size_t k = 0; k < w.members.size(); ++k) {
        if (!w.done[k]) continue;
        if (*w.done[k] == Replaced::emlink) {
            rest.assign(w.members.begin() + k, w.members.end());
            break;
        }
        if (auto r = record_replaced(txn, w.id, obj, batch[w.members[k]], *w.done[k]); !r) return r;
    }
    if (w.changed) {
        // The links just recorded are among the names that get private copies.
        if (auto r = scatter_changed(pool_, txn, w.id, w.replica, *w.changed, log_); !r) return r;
        auto now = pool_.stat_object(w.id, w.replica);
        if (!now) return std::unexpected(now.error());
        if (*now) obj.st = **now;
    }
    if (w.error) return std::unexpected(*w.error);
    if (rest.empty()) return {};
    if (auto r = next_replica(txn, w.id, obj); !r) return r;
    return link_members(txn, w.id, obj, rest, batch, w.held);
}

// Pass 5 in a reflink pool, the other side of the share seam: steps 1 and 2 here, then every
// group's members are cloned or deduplicated on worker threads (importer/share_groups.h),
// then what each one came to is recorded here, in order. The guest's paths, inodes and
// metadata stay as they are; no lease guards a share, since the object is the pool's alone
// and the kernel compares the bytes under lock (a new object's clone is hashed under one,
// briefly: linker/reflink.h). Each group with an object gets a recorded sharer to compare
// with first (importer/warm_sources.h).
Result<void> Importer::share_batch(Txn& txn, const Groups& g, std::vector<WalkEntry>& batch,
                                   std::vector<Hashed>& hashed) {
    std::vector<ShareGroup> work;
    for (const ObjectId& id : g.order) {
        const std::vector<size_t>& members = g.members.at(id);
        // Content no object had (importer/known_contents.h): nothing to look up.
        if (hashed[members.front()].provisional) {
            work.push_back({id, true, false, 0, members, {}, {}});
            continue;
        }
        auto pending = prepare_group(txn, id, members, batch, hashed);
        if (!pending) return std::unexpected(pending.error());
        if (pending->empty()) continue;
        const ObjectState& obj = objects_[id];
        work.push_back({id, false, obj.st.has_value(), obj.replica, std::move(*pending), {}, {}});
        if (!obj.st || opt_.dry_run) continue;
        auto warm = warm_->find(txn, id);
        if (!warm) return std::unexpected(warm.error());
        work.back().warm = std::move(*warm);
    }
    share_groups(pool_, work, batch, root_.path, kShareThreadsPerJob * opt_.jobs);
    // A candidate taken by XXH3 that the kernel's compare refused is hashed in full below and
    // goes round once more with its real id (importer/known_contents.h).
    std::vector<bool> again(batch.size(), false);
    bool retry = false;
    for (ShareGroup& s : work)
        for (size_t k = 0; k < s.members.size(); ++k)
            if (hashed[s.members[k]].quick && s.outcomes[k].kind == ShareOutcome::changed) {
                again[s.members[k]] = retry = true;
                s.outcomes[k].kind = ShareOutcome::pending;
            }
    // Everything the workers did is recorded, also past a failed member: the first error is
    // returned after.
    Result<void> first;
    size_t applied = 0;
    for (const ShareGroup& s : work) {
        // A provisional id is the real one by now, if any member made or found the object.
        // Only an object the clone found in the pool needs its state read (is it recorded?);
        // a made one gets its state from object_made, and the others have theirs already.
        bool found = std::any_of(s.outcomes.begin(), s.outcomes.end(),
                                 [](const ShareOutcome& o) { return o.object.existed; });
        auto state = found ? object_state(txn, s.id) : &objects_[s.id];
        if (!state) {
            if (first) first = std::unexpected(state.error());
            continue;
        }
        ObjectState& obj = **state;
        for (size_t k = 0; k < s.members.size(); ++k) {
            auto r = record_shared(txn, s.id, obj, batch[s.members[k]], s.outcomes[k]);
            if (!r && first) first = r;
        }
        if (++applied % kGroupsPerTxn == 0)
            if (auto r = txn.renew(); !r) return r;
    }
    if (!first) return first;
    if (interrupted()) return std::unexpected(interrupted_error());
    if (!retry) return {};
    std::vector<Hashed> full =
        hash_batch(batch, again, root_.path, pool_.settings().id_rules(), opt_.jobs);
    for (size_t i = 0; i < batch.size(); ++i)
        if (again[i]) hashed[i] = std::move(full[i]);
    Groups regrouped;
    if (auto r = group_batch(batch, hashed, regrouped, &again); !r) return r;
    return share_batch(txn, regrouped, batch, hashed);
}

// What one member of a reflink group came to (share_groups), counted and recorded.
Result<void> Importer::record_shared(Txn& txn, const ObjectId& id, ObjectState& obj,
                                     const WalkEntry& e, const ShareOutcome& out) {
    switch (out.kind) {
        case ShareOutcome::pending:
            return {};
        case ShareOutcome::failed:
            return std::unexpected(out.error);
        case ShareOutcome::made:
            return object_made(txn, id, obj, out.object, e);
        case ShareOutcome::changed:
            skip_file(e, skip::kChanged);
            return {};
        case ShareOutcome::flagged:
            skip_file(e, skip::kRefused);
            return {};
        case ShareOutcome::unshareable:
            skip_file(e, skip::kInline);
            return {};
        case ShareOutcome::unreadable:
            skip_file(e, skip::kUnreadable, out.error.message);
            return {};
        case ShareOutcome::shared:
            break;
    }
    // The clone of a provisional group found its object in the pool: one a killed run left
    // unrecorded has the record of the clone's bytes, which are its name's.
    if (out.object.existed) {
        if (!obj.st) obj.st = out.object.st;
        if (!obj.recorded) {
            if (auto r = txn.put_object(id, out.object.rec); !r) return r;
            obj.recorded = true;
        }
    }
    ++sum_.newly_linked;
    if (!out.already) count_saved(e);
    if (opt_.verbose) log_ << "share " << shown(e) << " -> " << id.hex() << "\n";
    return record_link(txn, e, id, obj.replica, *obj.st);
}

// import --dry-run: what apply_group would count, with nothing touched.
Result<void> Importer::predict_group(Txn& txn, const ObjectId& id,
                                     const std::vector<size_t>& members,
                                     const std::vector<WalkEntry>& batch) {
    auto state = object_state(txn, id);
    if (!state) return std::unexpected(state.error());
    ObjectState& obj = **state;
    if (refuse_damaged(id, obj, members, batch)) return {};
    // Every member would be linked and its record written: not stale (stale_records).
    for (size_t i : members) seen_.push_back(path_key(batch[i].path));
    std::vector<size_t> linked;
    std::vector<size_t> pending = split_linked(obj, members, batch, linked);
    // The first path of a new object becomes the object (adopted): linked, nothing saved.
    size_t start = 0;
    if (!obj.st && dry_new_.insert(id).second && !pending.empty()) {
        ++sum_.new_objects;
        const FileStat& made = batch[pending[0]].st;
        sum_.bytes_new_objects += made.size;
        ++sum_.newly_linked;
        if (pool_.settings().reflink() && made.nlink > 1)
            ++replaced_links_[made.ino];  // as object_made
        start = 1;
    }
    for (size_t k = start; k < pending.size(); ++k) {
        ++sum_.newly_linked;
        const WalkEntry& e = batch[pending[k]];
        // As share_object will find: a file that already is the object's blocks frees nothing.
        if (pool_.settings().reflink() && obj.st) {
            auto f = open_guest_file(e, shown(e));
            if (!f) return std::unexpected(f.error());
            if (f->state == GuestFile::ok) {
                auto already =
                    already_shares(pool_, id, obj.replica, f->fd.get(), e.st.size, shown(e));
                if (!already) return std::unexpected(already.error());
                if (*already) continue;
            }
        }
        count_saved(e);
    }
    return {};
}

// After a complete walk: the records of this guest's paths that this run did not find linked
// (removed, replaced by a directory or symlink, changed and skipped, newly excluded) are
// checked against the filesystem once more; those that no longer hold are stale. The other
// guests' records are not read: this costs what this guest has.
// `excluded` gets the paths still linked that the rules now keep private (the admin added an
// --exclude or raised --min-size, or a package made the file a configuration file): the walk
// skipped them, and left linked they would stay protected, which a package upgrade of a stock
// kernel's guest then cannot replace.
Result<std::vector<std::string>> Importer::stale_records(const Rules& rules,
                                                         std::vector<std::string>& excluded) {
    std::sort(seen_.begin(), seen_.end());
    seen_.erase(std::unique(seen_.begin(), seen_.end()), seen_.end());
    auto txn = pool_.index().read();
    if (!txn) return std::unexpected(txn.error());
    // Each path in seen_ has a record (already linked, or recorded by this run) unless a dry
    // run only predicted it or this run deleted records (a scatter): otherwise as many records
    // as paths means that none went unseen, and none is stale or newly excluded. The pass
    // below decodes every record: 3 ms of a 30 ms re-import of a 10,000-file guest.
    if (!opt_.dry_run && pool_.index().links_deleted() == links_deleted_) {
        auto n = (*txn)->count_links_of_guest(guest_.id);
        if (!n) return std::unexpected(n.error());
        if (*n == seen_.size()) return std::vector<std::string>{};
    }
    // Paths first (no object ids: most were seen), the records of the others after.
    std::vector<std::string> unseen_paths;
    auto r = (*txn)->for_each_link_stamp_of_guest(guest_.id, [&](const LinkStamp& l) {
        if (!std::binary_search(seen_.begin(), seen_.end(), path_key(l.path)))
            unseen_paths.push_back(l.path);
        return true;
    });
    if (!r) return std::unexpected(r.error());
    std::vector<LinkRecord> unseen;
    for (const std::string& path : unseen_paths) {
        auto l = (*txn)->link(guest_.id, path);
        if (!l) return std::unexpected(l.error());
        if (*l) unseen.push_back(std::move(**l));
    }
    LinkChecker links(pool_);
    std::vector<std::string> stale;
    for (const LinkRecord& l : unseen) {
        auto state = links.check(**txn, l);
        if (!state) return std::unexpected(state.error());
        if (*state == LinkChecker::State::unreachable) return std::unexpected(links.path_error());
        if (*state == LinkChecker::State::holds) {
            RuleMatch m = rules.match(l.path);
            if (m == RuleMatch::package_config || m == RuleMatch::default_exclusion ||
                m == RuleMatch::user_exclusion || l.size < rules.min_size())
                excluded.push_back(l.path);
            continue;
        }
        if (opt_.verbose)
            log_ << "drop record " << printable(join_path(root_.path, l.path)) << "\n";
        stale.push_back(l.path);
    }
    sum_.records_dropped = stale.size();
    return stale;
}

// What unify unshare NAME PATH... does, for the paths the rules now keep private.
Result<void> Importer::make_excluded_private(const std::vector<std::string>& excluded) {
    sum_.made_private = excluded.size();
    if (excluded.empty() || opt_.dry_run) return {};
    UnshareOptions u;
    u.name = opt_.name;
    u.paths = excluded;
    u.verbose = opt_.verbose;
    u.jobs = opt_.jobs;
    auto r = unshare_guest(pool_, u, log_);
    if (!r) return std::unexpected(r.error());
    sum_.made_private = r->unshared;
    sum_.records_dropped += r->not_linked;
    return {};
}

Result<void> Importer::drop_records(const std::vector<std::string>& paths) {
    if (paths.empty()) return {};
    auto txn = pool_.index().write();
    if (!txn) return std::unexpected(txn.error());
    for (const auto& p : paths)
        if (auto r = (*txn)->delete_link(guest_.id, p); !r) return r;
    return (*txn)->commit();
}

// What prepare_batch found for a batch, merged by take_checked on this thread.
struct Importer::Prepared {
    std::vector<bool> wanted;    // to be hashed
    Candidates candidates;       // hardlink pools (candidate_of); empty if none
    std::vector<uint64_t> seen;  // path keys of the paths already linked
    std::vector<size_t> sparse;  // reflink pools: all holes, skipped
    uint64_t already_linked = 0;
};

// Which paths of a walked batch need hashing: not our temporaries, not paths that are
// already linked. Reads the index only, in a read transaction of its own: it runs on the
// hashing stage's thread while this thread walks the next batch and writes the previous
// one. That one's writes may or may not be seen, as before, when this ran ahead of them:
// they are its own paths', and a path judged linked from an older snapshot is left as it
// is, which is what any earlier run would have done.
Result<Importer::Prepared> Importer::prepare_batch(const std::vector<WalkEntry>& batch) const {
    auto txn = pool_.index().read();
    if (!txn) return std::unexpected(txn.error());
    Prepared p;
    p.wanted.assign(batch.size(), false);
    for (size_t i = 0; i < batch.size(); ++i) {
        if (batch[i].temp) continue;
        auto linked = already_linked(**txn, batch[i], p.seen);
        if (!linked) return std::unexpected(linked.error());
        if (*linked) ++p.already_linked;
        // All holes: nothing to share, and an object cloned from it would hold no extent, so
        // gc would take it for one nobody shares and leave the records behind.
        if (!*linked && pool_.settings().reflink() && batch[i].st.size && !batch[i].st.blocks) {
            p.sparse.push_back(i);
            continue;
        }
        p.wanted[i] = !*linked;
        if (p.wanted[i] && reference_guest_) {
            auto c = candidate_of(**txn, batch[i]);
            if (!c) return std::unexpected(c.error());
            if (*c) {
                p.candidates.resize(batch.size());
                p.candidates[i] = std::make_shared<const Candidate>(std::move(**c));
            }
        }
    }
    (*txn)->commit();
    return p;
}

// The object the reference guest has at e's path, if it has e's size: e is most likely a
// copy of it, and comparing bytes with it is cheaper than SHA-256 (identify_as_object).
Result<std::optional<Candidate>> Importer::candidate_of(Txn& txn, const WalkEntry& e) const {
    // The compare costs about six system calls more than hashing (the object opened, stat,
    // xattrs, read, closed): below about 10 KB, SHA-256 of the file alone is cheaper (100-byte
    // synthetic guests imported 5 % slower with every file compared).
    if (e.st.size < kCompareFrom) return std::nullopt;
    auto l = txn.link(*reference_guest_, e.path);
    if (!l) return std::unexpected(l.error());
    if (!*l || (*l)->size != e.st.size) return std::nullopt;
    auto rec = txn.object((*l)->id);
    if (!rec) return std::unexpected(rec.error());
    if (!*rec || (*rec)->size != e.st.size) return std::nullopt;
    return Candidate{(*l)->id, (*l)->replica, {(*rec)->content, (*rec)->xxh3, (*rec)->size}};
}

// The hashed batch (or the entries `only` marks), grouped by object id in walk order; files
// that could not be hashed are skipped and counted here.
Result<void> Importer::group_batch(const std::vector<WalkEntry>& batch, std::vector<Hashed>& hashed,
                                   Groups& g, const std::vector<bool>* only) {
    for (size_t i = 0; i < batch.size(); ++i) {
        if (batch[i].temp || (only && !(*only)[i])) continue;
        Hashed& h = hashed[i];
        switch (h.state) {
            case Hashed::pending:
                break;
            case Hashed::changed:
                skip_file(batch[i], skip::kChanged);
                break;
            case Hashed::unreadable:
                skip_file(batch[i], skip::kUnreadable, h.error.message);
                break;
            case Hashed::failed:
                return std::unexpected(h.error);
            case Hashed::ok: {
                bytes_hashed_ += h.hash.size;
                auto& members = g.members[h.id];
                if (members.empty()) g.order.push_back(h.id);
                members.push_back(i);
                break;
            }
        }
    }
    return {};
}

// Pass 5 for a batch, in one write transaction: sweep, adopt, link, record.
Result<void> Importer::apply_batch(std::vector<WalkEntry>& batch, std::vector<Hashed>& hashed) {
    auto txn_r = pool_.index().write();
    if (!txn_r) return std::unexpected(txn_r.error());
    Txn& txn = **txn_r;
    objects_.clear();
    // Whatever happens below, what was done to the filesystem gets recorded.
    auto finish = [&](Result<void> r) -> Result<void> {
        dir_times_.restore();
        auto freed = trash_.drain();
        auto c = txn.commit();
        if (!r) return r;
        if (!freed) return freed;
        return c;
    };
    for (const WalkEntry& e : batch)
        if (e.temp)
            if (auto r = sweep_temp(txn, e); !r) return finish(r);
    Groups g;
    if (auto r = group_batch(batch, hashed, g); !r) return finish(r);
    if (pool_.settings().reflink()) return finish(share_batch(txn, g, batch, hashed));
    Pending pending;
    for (const ObjectId& id : g.order) {
        auto p = prepare_group(txn, id, g.members[id], batch, hashed);
        if (!p) return finish(std::unexpected(p.error()));
        pending[id] = std::move(*p);
    }
    Leases leases = lease_members(g.order, pending, batch, hashed);
    if (auto r = adopt_new_objects(txn, g.order, pending, batch, hashed, leases); !r)
        return finish(r);
    if (parallel_windows_) return finish(link_batch(txn, g.order, pending, batch, hashed, leases));
    size_t applied = 0;
    for (const ObjectId& id : g.order) {
        if (interrupted()) return finish(std::unexpected(interrupted_error()));
        if (auto r = apply_group(txn, id, pending[id], batch, hashed, leases); !r) return finish(r);
        // What is linked so far is recorded now: the pages a write transaction dirties stay
        // in memory until it ends (bench P6). Each group's files are done before it counts.
        if (++applied % kGroupsPerTxn == 0)
            if (auto r = txn.renew(); !r) return finish(r);
    }
    return finish({});
}

// import --dry-run's pass 5: the same grouping, counted by predict_group; a read transaction.
Result<void> Importer::predict_batch(std::vector<WalkEntry>& batch, std::vector<Hashed>& hashed) {
    auto txn = pool_.index().read();
    if (!txn) return std::unexpected(txn.error());
    objects_.clear();
    for (const WalkEntry& e : batch)
        if (e.temp)
            if (auto t = classify_temp(**txn, e); !t) return std::unexpected(t.error());
    Groups g;
    if (auto r = group_batch(batch, hashed, g); !r) return r;
    for (const ObjectId& id : g.order)
        if (auto r = predict_group(**txn, id, g.members[id], batch); !r) return r;
    return (*txn)->commit();
}

// A batch walked (on this thread), then checked against the index and hashed in the
// background.
struct Importer::Stage {
    std::vector<WalkEntry> batch;
    std::future<Result<std::pair<Prepared, std::vector<Hashed>>>> checked;
};

Result<bool> Importer::walk_batch(Walker& walker, size_t max, Stage& st) {
    st.batch.clear();
    return walker.next_batch(st.batch, max);
}

void Importer::check_and_hash(Stage& st) {
    // The background thread only reads the batch; it stays put until the future is taken.
    using Out = Result<std::pair<Prepared, std::vector<Hashed>>>;
    st.checked = in_background([this, &st]() -> Out {
        auto p = prepare_batch(st.batch);
        if (!p) return std::unexpected(p.error());
        auto hashed =
            pool_.settings().reflink()
                ? hash_known(st.batch, p->wanted, root_.path, opt_.jobs, known_, !opt_.dry_run)
                : hash_batch(st.batch, p->wanted, root_.path, pool_.settings().id_rules(),
                             opt_.jobs, pool_, p->candidates,
                             opt_.dry_run ? INT64_MAX : settle_cutoff_);
        return std::pair{std::move(*p), std::move(hashed)};
    });
}

// The checked and hashed batch, its counts and skips taken into this run's.
Result<std::vector<Hashed>> Importer::take_checked(Stage& st) {
    auto out = st.checked.get();
    if (!out) return std::unexpected(out.error());
    Prepared& p = out->first;
    sum_.already_linked += p.already_linked;
    seen_.insert(seen_.end(), p.seen.begin(), p.seen.end());
    for (size_t i : p.sparse) skip_file(st.batch[i], skip::kSparse);
    return std::move(out->second);
}

Result<ImportSummary> Importer::run() {
    if (auto r = check_guest_name(opt_.name); !r) return std::unexpected(r.error());
    auto root = open_guest_root(pool_, opt_.root);
    if (!root) return std::unexpected(root.error());
    root_ = std::move(*root);
    guard_writers_ = flag_spares_earlier_writers(root_.fd.get());
    if (struct statfs sfs; fstatfs(root_.fd.get(), &sfs) == 0 && sfs.f_bsize > 0)
        fs_block_ = uint64_t(sfs.f_bsize);
    trims_ = unlink_trims(root_.st.mnt_id);
    parallel_windows_ = !guard_writers_;
    // Before anything is registered: an unreadable package database stops the import.
    auto packages = read_package_config(root_.fd.get(), root_.path);
    if (!packages) return std::unexpected(context(packages.error(), "import " + opt_.name));
    if (auto r = register_guest(); !r) return std::unexpected(r.error());
    sum_.name = opt_.name;
    sum_.root = root_.path;
    sum_.dry_run = opt_.dry_run;
    sum_.package_dbs = packages->databases();
    sum_.config_files = packages->files.size();
    sum_.warnings = packages->warnings;
    for (const auto& w : packages->warnings) log_ << "unify: warning: " << w << "\n";
    guest_.package_dbs = sum_.package_dbs;
    guest_.config_files = sum_.config_files;

    if (pool_.settings().reflink()) {
        if (auto r = known_.load(pool_.index()); !r)
            return std::unexpected(context(r.error(), "import " + opt_.name));
        warm_.emplace(pool_, guest_.id, root_);
    }
    Rules rules(guest_.excludes, guest_.min_size, &*packages, pool_.settings().share);
    // The walk gets its own fd on the root already checked, not the path opened again.
    auto walk_fd = open_beneath(root_.fd.get(), "", O_RDONLY | O_DIRECTORY, root_.path);
    if (!walk_fd) return std::unexpected(walk_fd.error());
    Walker walker(std::move(*walk_fd), root_.path, rules, pool_.stat(), pool_.temp_prefix(),
                  opt_.jobs);
    // A writer opening a leased file makes the kernel send SIGIO, whose default kills us; we
    // ask each lease instead (importer/settle.h).
    signal(SIGIO, SIG_IGN);
    // A pipeline of two batches, as mold overlaps its passes: while this thread walks the
    // next batch, the current one is checked against the index and hashed on all cores; while
    // this thread links the current one (syscalls, LMDB write transactions), the next one is
    // checked and hashed. Both batches' directory fds are open at once; batch_size allows
    // for it.
    const size_t max_batch = batch_size();
    Stage stages[2];
    Result<void> outcome;
    auto more = walk_batch(walker, max_batch, stages[0]);
    if (more) check_and_hash(stages[0]);
    for (size_t k = 0; outcome; ++k) {
        if (!more) {
            outcome = std::unexpected(more.error());
            break;
        }
        Stage& cur = stages[k % 2];
        Stage& next = stages[(k + 1) % 2];
        bool last = !*more;
        if (!last) more = walk_batch(walker, max_batch, next);
        auto hashed = take_checked(cur);
        if (!hashed) {
            outcome = std::unexpected(hashed.error());
            break;
        }
        if (!last && more) check_and_hash(next);
        outcome =
            opt_.dry_run ? predict_batch(cur.batch, *hashed) : apply_batch(cur.batch, *hashed);
        if (opt_.progress)
            opt_.progress({.phase = "import",
                           .unit = "files",
                           .done = walker.files_seen(),
                           .bytes = bytes_hashed_});
        if (last) break;
    }
    // An error above may leave the other stage hashing: wait for it before its batch goes.
    for (Stage& st : stages)
        if (st.checked.valid()) st.checked.wait();
    sum_.files_seen = walker.files_seen();
    for (const auto& [reason, n] : walker.skipped()) sum_.skipped[reason] += n;
    std::vector<std::string> stale, excluded;
    if (outcome) {
        auto s = stale_records(rules, excluded);
        if (s) stale = std::move(*s);
        if (!s) outcome = std::unexpected(s.error());
    }
    if (outcome) outcome = make_excluded_private(excluded);
    if (!outcome) return std::unexpected(context(outcome.error(), "import " + opt_.name));
    if (opt_.dry_run) return sum_;

    // Last: the stale records go, and the guest's record notes the completed import.
    if (auto r = drop_records(stale); !r)
        return std::unexpected(context(r.error(), "import " + opt_.name));
    {
        auto txn = pool_.index().write();
        if (!txn) return std::unexpected(txn.error());
        guest_.last_import = time(nullptr);
        if (auto r = (*txn)->put_guest(guest_); !r) return std::unexpected(r.error());
        if (auto r = (*txn)->commit(); !r) return std::unexpected(r.error());
        if (auto r = sync_guest_registry(pool_); !r) return std::unexpected(r.error());
    }
    return sum_;
}

}  // namespace

Result<ImportSummary> import_guest(Pool& pool, const ImportOptions& opt, std::ostream& log) {
    ImportOptions o = opt;
    o.jobs = jobs_or_cores(o.jobs);
    Importer imp(pool, o, log);
    return imp.run();
}

}  // namespace unify
