#include "linker/reflink.h"

#include "store/extents.h"
#include "store/fault.h"
#include "store/fresh_file.h"
#include "store/identify.h"

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

}  // namespace

Result<MadeObject> clone_object(const Pool& pool, const std::optional<ObjectId>& expected,
                                int guest_fd, const FileStat& walked, const std::string& shown) {
    std::string obj_shown =
        expected ? pool.object_shown(*expected) : pool.path() + "/tmp (a new object)";
    auto tmp = scratch(pool);
    if (!tmp) return std::unexpected(tmp.error());
    fault_point("reflink.clone");  // a guest writing here is what the check below catches
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
    // Hash what is published: the clone, which only the pool can reach.
    auto now = identify_fd(tmp->get(), obj_shown, pool.settings().id_rules());
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

Result<bool> already_shares(const Pool& pool, const ObjectId& id, uint32_t replica, int guest_fd,
                            uint64_t size, const std::string& shown) {
    auto mine = file_extents(guest_fd, shown);
    if (!mine) return std::unexpected(mine.error());
    if (!any_shared(*mine)) return false;
    auto obj = pool.open_object(id, replica);
    if (!obj) return std::unexpected(obj.error());
    auto theirs = file_extents(obj->get(), pool.object_shown(id, replica));
    if (!theirs) return std::unexpected(theirs.error());
    return same_blocks(*mine, *theirs, size);
}

Result<Shared> share_object(const Pool& pool, const ObjectId& id, uint32_t replica, int guest_fd,
                            uint64_t size, const std::string& shown) {
    // A copy that already is the object's blocks needs no dedupe, and frees nothing.
    auto already = already_shares(pool, id, replica, guest_fd, size, shown);
    if (!already) return std::unexpected(already.error());
    if (*already) return Shared::already;
    auto obj = pool.open_object(id, replica);
    if (!obj) return std::unexpected(obj.error());
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
