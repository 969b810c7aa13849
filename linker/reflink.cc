#include "linker/reflink.h"

#include "store/extents.h"
#include "store/fault.h"
#include "store/fresh_file.h"
#include "store/identify.h"
#include "store/lease.h"

namespace unify {

namespace {

// Errnos that leave this one guest file as it is, the import going on: an immutable or
// append-only file (EPERM), an active swap file (ETXTBSY), a range the filesystem will not
// remap (EINVAL).
bool refused(int err) {
    return err == EPERM || err == ETXTBSY || err == EINVAL;
}

Result<Fd> scratch(const Pool& pool) {
    return create_unnamed(pool.tmp_fd(), pool.path() + "/tmp");
}

// The id of what is published: the clone, which only the pool can reach. leased_guest_fd
// (or -1): the file it was cloned from, under a read lease taken before the clone, whose
// cached pages are read instead when the lease held throughout and the file kept its size
// and times; otherwise the clone itself is read. The lease is the proof: no fd could write
// the file while it held (a store through a mapping made earlier needs an fd open for
// writing, which refuses the lease). The stat is a second look; alone it would not do, since
// a write moves the ctime only to the clock's tick on kernels before 6.13.
Result<Identified> hash_of_clone(const Pool& pool, int clone_fd, const std::string& clone_shown,
                                 int leased_guest_fd, const std::string& guest_shown) {
    IdRules rules = pool.settings().id_rules();
    std::optional<FileStat> cloned;
    if (leased_guest_fd >= 0) {
        auto st = stat_fd(leased_guest_fd, guest_shown);
        if (!st) return std::unexpected(st.error());
        cloned = *st;
    }
    fault_point("reflink.hash");  // a write through an fd that made the lease busy
    if (cloned) {
        auto read = identify_fd(leased_guest_fd, guest_shown, rules);
        if (!read) return std::unexpected(read.error());
        bool held = lease_intact(leased_guest_fd);
        drop_lease(leased_guest_fd);
        if (held && read->st.unchanged(*cloned) && read->hash.size == cloned->size) return read;
    }
    return identify_fd(clone_fd, clone_shown, rules);
}

}  // namespace

Result<MadeObject> clone_object(const Pool& pool, const std::optional<ObjectId>& expected,
                                int guest_fd, const FileStat& walked, const std::string& shown) {
    std::string obj_shown =
        expected ? pool.object_shown(*expected) : pool.path() + "/tmp (a new object)";
    auto tmp = scratch(pool);
    if (!tmp) return std::unexpected(tmp.error());
    fault_point("reflink.clone");  // a guest writing here is what the check below catches
    // The clone is an inode of its own, whose pages come from the disk even where the guest
    // file's are cached (it was just read, or just written): reading it for the hash was most
    // of a first import. A read lease held from before the clone until after the guest file
    // is read proves that no fd could write the file meanwhile, so the guest file's pages
    // hold exactly what was cloned, and those are hashed instead. Without the lease (a
    // process holds the file open for writing, or no leases here) the clone is read.
    bool leased = take_read_lease(guest_fd) == LeaseTry::held;
    if (auto r = clone_file(tmp->get(), guest_fd, shown + " -> " + obj_shown); !r) {
        if (refused(r.error().err)) return MadeObject{MadeObject::refused};
        return std::unexpected(r.error());
    }
    if (!expected) {
        auto now = stat_fd(guest_fd, shown);
        if (!now) return std::unexpected(now.error());
        if (!now->unchanged(walked)) return MadeObject{MadeObject::changed};
    }
    // Data the filesystem keeps inline (btrfs, up to 2 KiB) was copied, not shared: such an
    // object would save nothing and share with nobody.
    auto extents = file_extents(tmp->get(), obj_shown);
    if (!extents) return std::unexpected(extents.error());
    if (!shareable(*extents)) return MadeObject{MadeObject::unshareable};
    auto now = hash_of_clone(pool, tmp->get(), obj_shown, leased ? guest_fd : -1, shown);
    if (!now) return std::unexpected(now.error());
    if (expected && now->id != *expected) return MadeObject{MadeObject::changed};
    const ObjectId& id = now->id;
    obj_shown = pool.object_shown(id);
    MadeObject out;
    if (auto l = link_unnamed(tmp->get(), pool.objects_fd(), Pool::object_name(id), obj_shown);
        !l) {
        if (l.error().err != EEXIST) return std::unexpected(l.error());
        // The object is there already (made by an earlier batch of a provisional id): the
        // guest file shares the clone's blocks, which hold the same bytes, and the caller
        // makes it share the object's (share_object).
        out.existed = true;
    }
    auto st = pool.stat_object(id);
    if (!st) return std::unexpected(st.error());
    if (!*st) return fail(obj_shown + ": gone right after it was linked");
    out.id = id;
    out.outcome = MadeObject::made;
    out.st = **st;
    out.rec = record_of(now->hash);
    return out;
}

namespace {

// The guest file maps every byte to the object's blocks (`object`: their extents), where that
// proves it holds the object's bytes (same_bytes_by_blocks: nothing compressed).
Result<bool> holds_object_blocks(int guest_fd, const std::vector<Extent>& object, uint64_t size,
                                 const std::string& shown) {
    auto mine = file_extents(guest_fd, shown);
    if (!mine) return std::unexpected(mine.error());
    return any_shared(*mine) && same_bytes_by_blocks(*mine, object, size);
}

}  // namespace

Result<bool> already_shares(const Pool& pool, const ObjectId& id, uint32_t replica, int guest_fd,
                            uint64_t size, const std::string& shown) {
    auto obj = pool.open_object(id, replica);
    if (!obj) return std::unexpected(obj.error());
    auto theirs = file_extents(obj->get(), pool.object_shown(id, replica));
    if (!theirs) return std::unexpected(theirs.error());
    return holds_object_blocks(guest_fd, *theirs, size, shown);
}

Result<Shared> share_object(const Pool& pool, const ObjectId& id, uint32_t replica, int guest_fd,
                            uint64_t size, const std::string& shown, int warm_fd) {
    auto obj = pool.open_object(id, replica);
    if (!obj) return std::unexpected(obj.error());
    auto theirs = file_extents(obj->get(), pool.object_shown(id, replica));
    if (!theirs) return std::unexpected(theirs.error());
    // A copy that already is the object's blocks needs no dedupe, and frees nothing.
    auto already = holds_object_blocks(guest_fd, *theirs, size, shown);
    if (!already) return std::unexpected(already.error());
    if (*already) return Shared::already;
    // Any failure against the warm file (another guest's, changed since, immutable) only
    // sends the file on to the object, below. A compressed object's blocks would prove
    // nothing afterwards, so there only the object's own compare is made.
    fault_point("reflink.warm");
    if (warm_fd >= 0 && !any_encoded(*theirs)) {
        if (auto r = dedupe_file(warm_fd, guest_fd, size, shown); r && *r == Dedupe::same) {
            auto now = holds_object_blocks(guest_fd, *theirs, size, shown);
            if (!now) return std::unexpected(now.error());
            if (*now) return Shared::shared;
        }
    }
    auto r = dedupe_file(obj->get(), guest_fd, size, shown);
    if (!r && refused(r.error().err)) return Shared::refused;
    if (!r) return std::unexpected(r.error());
    return *r == Dedupe::same ? Shared::shared : Shared::changed;
}

Result<Shared> unshare_blocks(const Pool& pool, int guest_fd, uint64_t size,
                              const std::string& shown) {
    auto copy = scratch(pool);
    if (!copy) return std::unexpected(copy.error());
    // A plain read and write (holes kept), never copy_file_range, which would reflink.
    auto h = copy_and_hash(guest_fd, copy->get(), shown, pool.path() + "/tmp");
    if (!h) return std::unexpected(h.error());
    if (h->size != size) return Shared::changed;
    auto r = dedupe_file(copy->get(), guest_fd, size, shown);
    if (!r && refused(r.error().err)) return Shared::refused;
    if (!r) return std::unexpected(r.error());
    return *r == Dedupe::same ? Shared::shared : Shared::changed;
}

}  // namespace unify
