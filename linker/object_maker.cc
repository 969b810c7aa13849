#include "linker/object_maker.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <ctime>

#include "linker/copy.h"
#include "store/fault.h"
#include "store/fresh_file.h"
#include "store/identify.h"
#include "store/lease.h"
#include "store/parallel.h"

namespace unify {

namespace {

// Removes a just-linked object name again, lifting protection first where needed.
void withdraw(const Pool& pool, const ObjectId& id, uint32_t replica, int fd) {
    if (fd >= 0) (void)pool.protection().unprotect(fd, pool.object_shown(id, replica));
    unlinkat(pool.objects_fd(), Pool::object_name(id, replica).c_str(), 0);
}

// Hashes the protected object again and derives its id from what is there now.
Result<Identified> rehash(const Pool& pool, int fd, const std::string& shown) {
    return identify_fd(fd, shown, pool.settings().id_rules());
}

}  // namespace

ObjectRecord record_of(const ContentHash& h) {
    ObjectRecord rec;
    rec.size = h.size;
    rec.xxh3 = h.xxh3;
    rec.content = h.sha256;
    rec.created = time(nullptr);
    return rec;
}

// Links the guest's inode into the pool and protects it; the object is not verified yet.
// On `made`, fd is open on the protected object.
static Result<MadeObject> adopt_link_protect(const Pool& pool, const ObjectId& id, int dirfd,
                                             const std::string& name, const FileStat& hashed,
                                             const std::string& shown, Fd& fd) {
    MadeObject out;
    std::string obj_name = Pool::object_name(id), obj_shown = pool.object_shown(id);
    // A writer that changed the file since it was hashed (a settled file on ext4 is not
    // leased: the flag stops later writes) is caught here, a few syscalls before the flag,
    // not only by the re-hash after it, by when its next write has failed with EPERM.
    auto before = stat_at(dirfd, name, shown);
    if (!before) {
        if (before.error().err == ENOENT) return MadeObject{MadeObject::changed};
        return std::unexpected(before.error());
    }
    if (!before->unchanged(hashed)) return MadeObject{MadeObject::changed};
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
    auto opened = pool.open_object(id);
    if (!opened) {
        withdraw(pool, id, 0, -1);
        return std::unexpected(opened.error());
    }
    fd = std::move(*opened);
    int f = fd.get();
    fault_point("adopt.protect");
    if (auto p = pool.protection().protect(f, obj_shown); !p) {
        withdraw(pool, id, 0, f);
        return std::unexpected(p.error());
    }
    out.outcome = MadeObject::made;
    return out;
}

// The protected object hashed again: made if it is still what `id` says, else withdrawn.
static Result<MadeObject> adopt_verify(const Pool& pool, const ObjectId& id, int fd,
                                       const Result<Identified>& again,
                                       const std::function<bool()>& unwritten) {
    MadeObject out;
    if (!again) {
        withdraw(pool, id, 0, fd);
        return std::unexpected(again.error());
    }
    // Written between the first hash and the flag; or, where the flag does not stop fds
    // opened before it (XFS, btrfs, tmpfs), opened for writing since the guest's file was
    // leased: that writer would write the object for ever once the lease is let go.
    if (again->id != id || (unwritten && !unwritten())) {
        withdraw(pool, id, 0, fd);
        return out;
    }
    out.outcome = MadeObject::made;
    out.st = again->st;
    out.rec = record_of(again->hash);
    return out;
}

static Result<MadeObject> adopt_unlogged(const Pool& pool, const ObjectId& id, int dirfd,
                                         const std::string& name, const FileStat& hashed,
                                         const std::string& shown,
                                         const std::function<bool()>& unwritten) {
    Fd fd;
    auto linked = adopt_link_protect(pool, id, dirfd, name, hashed, shown, fd);
    if (!linked || linked->outcome != MadeObject::made) return linked;
    return adopt_verify(pool, id, fd.get(), rehash(pool, fd.get(), pool.object_shown(id)),
                        unwritten);
}

// `over`: the object's name exists and is replaced (renamed over from POOL/tmp) instead of
// made.
// `as`: metadata for the copy other than src_fd's own (st still says what src_fd must stay).
static Result<MadeObject> copy_unlogged(const Pool& pool, const ObjectId& id, uint32_t replica,
                                        int src_fd, const FileStat& st, const Xattrs& xattrs,
                                        const Digest& content, const std::string& shown,
                                        bool over = false, const Metadata* as = nullptr) {
    MadeObject out;
    std::string tmp_shown = pool.path() + "/tmp/(unnamed)";
    std::string obj_name = Pool::object_name(id, replica),
                obj_shown = pool.object_shown(id, replica);
    auto tmp = create_unnamed(pool.tmp_fd(), pool.path() + "/tmp");
    if (!tmp) return std::unexpected(tmp.error());
    int tfd = tmp->get();
    auto h = copy_with_metadata(src_fd, as ? as->st : st, as ? as->xattrs : xattrs, tfd, shown,
                                tmp_shown);
    if (!h) return std::unexpected(h.error());
    auto src_now = stat_fd(src_fd, shown);
    if (!src_now) return std::unexpected(src_now.error());
    // With `as` the source's metadata is not copied, and a guest may still be changing it
    // through its name of the object (a renew in a scatter's window): only what tells of its
    // bytes must hold.
    bool held =
        as ? src_now->same_inode(st) && src_now->size == st.size && src_now->mtime_ns == st.mtime_ns
           : src_now->unchanged(st);
    if (h->sha256 != content || !held) return out;
    auto again = rehash(pool, tfd, tmp_shown);
    if (!again) return std::unexpected(again.error());
    out.st = again->st;
    if (again->id != id)
        return fail("copying " + shown + " into the pool did not reproduce its metadata " +
                    "(an xattr or owner the pool's filesystem cannot store?)");
    fault_point("copy.link");
    if (over) {
        auto named = link_unnamed_fresh(tfd, pool.tmp_fd(), "renew.", tmp_shown);
        if (!named) return std::unexpected(named.error());
        if (renameat(pool.tmp_fd(), named->c_str(), pool.objects_fd(), obj_name.c_str()) != 0) {
            int e = errno;
            unlinkat(pool.tmp_fd(), named->c_str(), 0);
            errno = e;
            return sys_fail("renameat", pool.path() + "/tmp/" + *named + " -> " + obj_shown);
        }
    } else if (auto l = link_unnamed(tfd, pool.objects_fd(), obj_name, obj_shown); !l) {
        return std::unexpected(l.error());
    }
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
                                const std::string& shown, const std::function<bool()>& unwritten) {
    pool.intent().begin(IntentOp::adopt, Pool::object_name(id));
    auto r = adopt_unlogged(pool, id, dirfd, name, hashed, shown, unwritten);
    if (r) pool.intent().end();
    return r;
}

std::vector<Result<MadeObject>> adopt_objects(const Pool& pool,
                                              const std::vector<AdoptRequest>& requests,
                                              unsigned jobs) {
    std::vector<Result<MadeObject>> out(requests.size(), MadeObject{});
    const size_t chunk = kWorkSlots - 1;
    for (size_t base = 0; base < requests.size(); base += chunk) {
        size_t n = std::min(chunk, requests.size() - base);
        std::vector<Fd> fds(n);
        // Parallel: links and flags, each object in its own intent slot from its link on (a
        // first guest's import is mostly this; on the main thread the other core idled).
        parallel_for(n, jobs, [&](size_t k) {
            const AdoptRequest& r = requests[base + k];
            pool.intent().begin(IntentOp::adopt, Pool::object_name(r.id), 1 + k);
            out[base + k] =
                adopt_link_protect(pool, r.id, r.dirfd, r.name, r.hashed, r.shown, fds[k]);
            if (!out[base + k] || out[base + k]->outcome != MadeObject::made)
                pool.intent().end(1 + k);  // nothing left in the pool, or a failure to report
        });
        // Parallel: read every frozen object again, or only its metadata where the guest
        // file's lease vouches for its bytes. Asked after every flag of the chunk is set.
        std::vector<Result<Identified>> again(n, std::unexpected(Error{}));
        parallel_for(n, jobs, [&](size_t k) {
            if (!fds[k].valid()) return;
            const AdoptRequest& r = requests[base + k];
            const IdRules rules = pool.settings().id_rules();
            std::string shown = pool.object_shown(r.id);
            again[k] = r.lease_fd >= 0 && lease_held(r.lease_fd)
                           ? identify_unwritten(fds[k].get(), shown, rules, r.content)
                           : identify_file(fds[k].get(), shown, rules, &pool, r.copy_of.get());
        });
        // Serial: keep or withdraw.
        for (size_t k = 0; k < n; ++k) {
            if (!fds[k].valid()) continue;
            const AdoptRequest& r = requests[base + k];
            out[base + k] = adopt_verify(pool, r.id, fds[k].get(), again[k], r.unwritten);
            if (out[base + k]) pool.intent().end(1 + k);
        }
    }
    return out;
}

Result<MadeObject> copy_object(const Pool& pool, const ObjectId& id, uint32_t replica, int src_fd,
                               const FileStat& st, const Xattrs& xattrs, const Digest& content,
                               const std::string& shown) {
    pool.intent().begin(IntentOp::adopt, Pool::object_name(id, replica));
    auto r = copy_unlogged(pool, id, replica, src_fd, st, xattrs, content, shown);
    if (r) pool.intent().end();
    return r;
}

Result<MadeObject> renew_object(const Pool& pool, const ObjectId& id, uint32_t replica, int src_fd,
                                const Metadata* as) {
    std::string shown = pool.object_shown(id, replica);
    auto now = rehash(pool, src_fd, shown);
    if (!now) return std::unexpected(now.error());
    // With `as`, only the content must be what it was: the copy's own re-hash (copy_unlogged)
    // checks that content and `as` give the id.
    if (!as && now->id != id)
        return fail("object " + shown + " no longer matches its id: run unify verify");
    fault_point("renew.copy");  // in a scatter's window: a guest's fchmod gets in here
    auto made = copy_unlogged(pool, id, replica, src_fd, now->st, now->xattrs, now->hash.sha256,
                              shown, true, as);
    if (made && made->outcome != MadeObject::made)
        return fail("object " + shown + " changed while it was copied: run unify verify");
    return made;
}

Result<MadeObject> make_replica(const Pool& pool, const ObjectId& id, uint32_t replica) {
    auto src = pool.open_object(id, 0);
    if (!src) return std::unexpected(src.error());
    std::string shown = pool.object_shown(id, 0);
    auto now = rehash(pool, src->get(), shown);
    if (!now) return std::unexpected(now.error());
    auto made =
        copy_object(pool, id, replica, src->get(), now->st, now->xattrs, now->hash.sha256, shown);
    if (made && made->outcome != MadeObject::made)
        return fail("object " + shown + " changed while a replica was made: run unify verify");
    return made;
}

}  // namespace unify
