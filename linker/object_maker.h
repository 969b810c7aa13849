// Making a new object, always "hash what you publish" (docs/DESIGN.md invariant 2):
//   adopt  the guest's own inode becomes the object (no data written): link it into the
//          pool, protect it, then hash it again now that nobody can write it, or, where a
//          read lease held from before the last look at its stat to after the flag proves
//          nobody wrote it since it was hashed, read its metadata again. Only for an inode
//          with one link, so no path outside the import gains protection.
//   copy   a private copy in POOL/tmp (O_TMPFILE) that nobody else can reach, hashed while it
//          is written; for inodes with other hard links, and for overflow replicas.
// An inode that changed under us yields `changed` and leaves nothing behind in the pool.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "store/hasher.h"
#include "store/identify.h"
#include "store/index.h"
#include "store/pool.h"

namespace unify {

struct MadeObject {
    // unshareable: reflink pools only (linker/reflink.h), the filesystem keeps the file's
    // data where no other file can share it (btrfs inline data).
    enum Outcome { made, changed, refused, unshareable } outcome = changed;
    FileStat st;  // of the object, after it was protected
    ObjectRecord rec;
    // clone_object: the id of the clone's bytes, and whether the pool had that object
    // already (the guest file then shares the clone's blocks, not the object's).
    ObjectId id;
    bool existed = false;
};

// The index's record of an object with this content, created now.
ObjectRecord record_of(const ContentHash& h);

// `unwritten`, if given, is asked once the object is protected: false (the guest's read
// lease was broken: a writer waits to open it) withdraws the object, outcome `changed`.
Result<MadeObject> adopt_object(const Pool& pool, const ObjectId& id, int dirfd,
                                const std::string& name, const FileStat& hashed,
                                const std::string& shown,
                                const std::function<bool()>& unwritten = {});

// adopt_object for many objects at once, as import makes a batch's new objects: links and
// flags on this thread, then the verifying re-reads (or, under a lease, reads of metadata) on
// `jobs` threads. One intent slot per object in flight, so a crash anywhere leaves each for
// the next writer to verify.
struct AdoptRequest {
    ObjectId id;
    int dirfd;
    std::string name;
    FileStat hashed;
    std::string shown;
    std::function<bool()> unwritten;  // as for adopt_object
    // The object it had the bytes of when it was hashed (importer/hash_batch.h Hashed::copy_of):
    // the re-read after the flag compares with that object again instead of SHA-256.
    std::shared_ptr<const Candidate> copy_of;
    // The guest file open with a read lease taken before `hashed` was compared with its stat,
    // and `content`, what hashing it gave. If the lease still holds once the object is
    // protected (lease_held), nothing wrote the file from before that compare until the flag
    // stopped every writer, so its bytes are not read again: its id is `content` with the
    // metadata it has then (identify_unwritten). -1: read again, as adopt_object does.
    int lease_fd = -1;
    ContentHash content;
};
std::vector<Result<MadeObject>> adopt_objects(const Pool& pool,
                                              const std::vector<AdoptRequest>& requests,
                                              unsigned jobs);

// src_fd must be open on the inode hashed as `st` (content `content`).
Result<MadeObject> copy_object(const Pool& pool, const ObjectId& id, uint32_t replica, int src_fd,
                               const FileStat& st, const Xattrs& xattrs, const Digest& content,
                               const std::string& shown);

// The pool's name of `id` (replica) becomes a fresh copy of src_fd, verified against the id
// and protected; the inode it named keeps only its other names. Runs inside the object's
// window (linker/scatter.h), whose intent record covers the name. `as`: the metadata the copy
// gets instead of src_fd's own (a guest changed it in a window); the copy must then give the
// id with it.
Result<MadeObject> renew_object(const Pool& pool, const ObjectId& id, uint32_t replica, int src_fd,
                                const Metadata* as = nullptr);

// Another inode for `id` once `replica - 1` has reached the link limit (EMLINK).
Result<MadeObject> make_replica(const Pool& pool, const ObjectId& id, uint32_t replica);

}  // namespace unify
