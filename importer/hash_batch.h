// The parallel pass of import: hash every file of a batch on all cores, as a plain parallel
// loop over a pre-sized vector (no queues, no futures). Each file is opened relative to its
// directory fd without following symlinks, and must be the walked, unchanged inode after it
// is read; otherwise it is marked changed and left for the next run.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "importer/walker.h"
#include "store/fd.h"
#include "store/hasher.h"
#include "store/identify.h"
#include "store/object_id.h"
#include "store/parallel.h"

namespace unify {

struct Hashed {
    enum State { pending, ok, changed, unreadable, failed } state = pending;
    ObjectId id;
    ContentHash hash;
    Xattrs xattrs;
    Error error;  // when failed or unreadable
    // Only size and XXH3 were read (quick_hash_batch): `id` is a candidate the kernel's
    // compare must confirm, and hash.sha256 is unset.
    bool quick = false;
    // Reflink pools, with quick: no object had this size and XXH3 when the import began, so
    // `id` only stands for them (provisional_id) and the object's real id is the hash of the
    // clone that makes it (clone_object). Never written to the index.
    bool provisional = false;
    // Hardlink pools: the object it was compared with and has the bytes of, if any; its
    // re-read under a lease compares it with that object again (importer/settle.h).
    // Shared, not inline: a batch holds 4,096 of these twice, and most have none.
    std::shared_ptr<const Candidate> copy_of;
    // Hardlink pools, a file with a ctime at or after hash_batch's lease_from (unsettled:
    // importer/settle.h): a read lease taken before its first byte was read and still held
    // after the last. While it stays unbroken nothing has written the file since before the
    // read, so the id above is proof of its bytes and its re-read under a lease is spared
    // (Importer::lease_members). Invalid where the lease was refused (some fd open for
    // writing), is not supported, or broke during the read: then it is re-read as before.
    Fd lease;
};

// One Hashed per entry, in the same order; entries with wanted[i] false stay pending. Never
// fails as a whole: per-file errors land in Hashed::state / error. Files whose ctime is at or
// after lease_from are read under a read lease (Hashed::lease); INT64_MAX: none.
std::vector<Hashed> hash_batch(const std::vector<WalkEntry>& batch, const std::vector<bool>& wanted,
                               const std::string& root_shown, const IdRules& rules, unsigned jobs,
                               int64_t lease_from = INT64_MAX);

// hash_batch where candidates[i] names an object that file i may be a copy of: it is compared
// with that object instead of hashed (identify_as_object), and hashed only if it differs or
// the object cannot be opened. An empty candidates vector: none.
using Candidates = std::vector<std::shared_ptr<const Candidate>>;
std::vector<Hashed> hash_batch(const std::vector<WalkEntry>& batch, const std::vector<bool>& wanted,
                               const std::string& root_shown, const IdRules& rules, unsigned jobs,
                               const Pool& pool, const Candidates& candidates, int64_t lease_from);

// The same with XXH3 only (quick_hash_fd): Hashed::quick set, no id.
std::vector<Hashed> quick_hash_batch(const std::vector<WalkEntry>& batch,
                                     const std::vector<bool>& wanted, const std::string& root_shown,
                                     unsigned jobs);

}  // namespace unify
