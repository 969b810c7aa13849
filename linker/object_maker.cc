#include "linker/object_maker.h"

#include <fcntl.h>
#include <unistd.h>

#include <ctime>

#include "linker/copy.h"
#include "store/fault.h"

namespace unify {

namespace {

// Removes a just-linked object name again, lifting protection first where needed.
void withdraw(const Pool& pool, const ObjectId& id, uint32_t replica, int fd) {
    if (fd >= 0) (void)pool.protection().unprotect(fd, pool.object_shown(id, replica));
    unlinkat(pool.objects_fd(), Pool::object_name(id, replica).c_str(), 0);
}

// Hashes the protected object again and derives its id from what is there now.
Result<std::pair<ObjectId, ContentHash>> rehash(const Pool& pool, int fd, const std::string& shown,
                                                FileStat& st) {
    auto h = hash_fd(fd, shown);
    if (!h) return std::unexpected(h.error());
    auto x = read_xattrs(fd, shown);
    if (!x) return std::unexpected(x.error());
    auto s = stat_fd(fd, shown);
    if (!s) return std::unexpected(s.error());
    st = *s;
    return std::make_pair(
        make_object_id(h->sha256, Identity::of(st, std::move(*x)), pool.settings().ignore_mtime),
        *h);
}

ObjectRecord record_of(const ContentHash& h) {
    ObjectRecord rec;
    rec.size = h.size;
    rec.xxh3 = h.xxh3;
    rec.content = h.sha256;
    rec.created = time(nullptr);
    return rec;
}

}  // namespace

static Result<MadeObject> adopt_unlogged(const Pool& pool, const ObjectId& id, int dirfd,
                                  const std::string& name, const FileStat& hashed,
                                  const std::string& shown) {
    MadeObject out;
    std::string obj_name = Pool::object_name(id), obj_shown = pool.object_shown(id);
    fault_point("adopt.link");
    if (linkat(dirfd, name.c_str(), pool.objects_fd(), obj_name.c_str(), 0) != 0) {
        if (errno == EPERM) return MadeObject{MadeObject::refused};
        if (errno == ENOENT) return MadeObject{MadeObject::changed};
        return sys_fail("linkat", shown + " -> " + obj_shown);
    }
    // The name may have been swapped for another inode between hashing and linkat.
    auto st = stat_at(pool.objects_fd(), obj_name, obj_shown);
    if (!st) {
        withdraw(pool, id, 0, -1);
        return std::unexpected(st.error());
    }
    if (!st->same_inode(hashed)) {
        withdraw(pool, id, 0, -1);
        return out;
    }
    int fd = openat(pool.objects_fd(), obj_name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        int err = errno;
        withdraw(pool, id, 0, -1);
        return sys_fail("open", obj_shown, err);
    }
    Fd f(fd);
    fault_point("adopt.protect");
    if (auto p = pool.protection().protect(fd, obj_shown); !p) {
        withdraw(pool, id, 0, fd);
        return std::unexpected(p.error());
    }
    auto again = rehash(pool, fd, obj_shown, out.st);
    if (!again) {
        withdraw(pool, id, 0, fd);
        return std::unexpected(again.error());
    }
    if (again->first != id) {  // written between the first hash and the flag
        withdraw(pool, id, 0, fd);
        return out;
    }
    out.outcome = MadeObject::made;
    out.rec = record_of(again->second);
    return out;
}

static Result<MadeObject> copy_unlogged(const Pool& pool, const ObjectId& id, uint32_t replica,
                                 int src_fd, const FileStat& st, const Xattrs& xattrs,
                                 const Digest& content, const std::string& shown) {
    MadeObject out;
    std::string tmp_shown = pool.path() + "/tmp/(unnamed)";
    std::string obj_name = Pool::object_name(id, replica),
                obj_shown = pool.object_shown(id, replica);
    int tfd = openat(pool.tmp_fd(), ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (tfd < 0) return sys_fail("open(O_TMPFILE)", pool.path() + "/tmp");
    Fd tmp(tfd);
    auto h = copy_with_metadata(src_fd, st, xattrs, tfd, shown, tmp_shown);
    if (!h) return std::unexpected(h.error());
    auto src_now = stat_fd(src_fd, shown);
    if (!src_now) return std::unexpected(src_now.error());
    if (h->sha256 != content || !src_now->unchanged(st)) return out;
    auto again = rehash(pool, tfd, tmp_shown, out.st);
    if (!again) return std::unexpected(again.error());
    if (again->first != id)
        return fail("copying " + shown + " into the pool did not reproduce its metadata " +
                    "(an xattr or owner the pool's filesystem cannot store?)");
    std::string fdpath = "/proc/self/fd/" + std::to_string(tfd);
    // AT_SYMLINK_FOLLOW on the magic link gives the O_TMPFILE inode a name without needing
    // CAP_DAC_READ_SEARCH for AT_EMPTY_PATH.
    fault_point("copy.link");
    if (linkat(AT_FDCWD, fdpath.c_str(), pool.objects_fd(), obj_name.c_str(), AT_SYMLINK_FOLLOW) !=
        0)
        return sys_fail("linkat", obj_shown);
    if (auto p = pool.protection().protect(tfd, obj_shown); !p) {
        withdraw(pool, id, replica, tfd);
        return std::unexpected(p.error());
    }
    auto final_st = stat_fd(tfd, obj_shown);
    if (!final_st) return std::unexpected(final_st.error());
    out.st = *final_st;
    out.outcome = MadeObject::made;
    out.rec = record_of(*h);
    return out;
}

// From the first link into the pool until the object is protected and verified, the intent
// log names it; a failure leaves the record for the next writer to finish.
Result<MadeObject> adopt_object(const Pool& pool, const ObjectId& id, int dirfd,
                                const std::string& name, const FileStat& hashed,
                                const std::string& shown) {
    pool.intent().begin(IntentOp::adopt, Pool::object_name(id));
    auto r = adopt_unlogged(pool, id, dirfd, name, hashed, shown);
    if (r) pool.intent().end();
    return r;
}

Result<MadeObject> copy_object(const Pool& pool, const ObjectId& id, uint32_t replica, int src_fd,
                               const FileStat& st, const Xattrs& xattrs, const Digest& content,
                               const std::string& shown) {
    pool.intent().begin(IntentOp::adopt, Pool::object_name(id, replica));
    auto r = copy_unlogged(pool, id, replica, src_fd, st, xattrs, content, shown);
    if (r) pool.intent().end();
    return r;
}

Result<MadeObject> make_replica(const Pool& pool, const ObjectId& id, uint32_t replica) {
    auto src = pool.open_object(id, 0);
    if (!src) return std::unexpected(src.error());
    std::string shown = pool.object_shown(id, 0);
    auto st = stat_fd(src->get(), shown);
    if (!st) return std::unexpected(st.error());
    auto x = read_xattrs(src->get(), shown);
    if (!x) return std::unexpected(x.error());
    auto h = hash_fd(src->get(), shown);
    if (!h) return std::unexpected(h.error());
    auto made = copy_object(pool, id, replica, src->get(), *st, *x, h->sha256, shown);
    if (made && made->outcome != MadeObject::made)
        return fail("object " + shown + " changed while a replica was made: run unify verify");
    return made;
}

}  // namespace unify
