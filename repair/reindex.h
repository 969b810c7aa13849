// unify reindex: rebuild the index from the pool and the guest roots, after it was lost or
// damaged (docs/DESIGN.md invariant 5: the filesystem is the truth, the index its mirror). Passes:
//   1. guests: from POOL/guests.conf (store/guest_registry.h); a pool without one falls back
//      to the guests of the old index if that can still be read, else gets none;
//   2. a fresh index is built in POOL/index.new (one left by a killed reindex is removed
//      first), and the guests are put into it under their old ids;
//   3. objects, shard by shard: every object file is hashed on all cores (SHA-256 + XXH3:
//      the record needs the content SHA-256) and its id checked; a record per id, its
//      replica count from the highest replica file present. An object that does not give
//      its own id is not recorded (run `unify verify`) but its links are;
//   4. links: each guest root is walked (importer/walker.h, by directory fds as import
//      does); every regular file whose inode is an object inode gets the link record import
//      would have written (object id and replica; inode, size, mtime, ctime). Inodes are
//      looked up in a sorted vector of (inode, object, replica) made in pass 3: 16 bytes per
//      object file plus 32 per id, about 48 MB for a million objects;
//   5. swap: POOL/index is renamed to POOL/index.old.<UTC timestamp> (whatever state it is
//      in: it is never read again, except by pass 1 as said), POOL/index.new to POOL/index.
// Until the swap the old index stays where it was, so a reindex that is killed changes
// nothing the other commands see; run it again. It holds the pool lock throughout.
//
// The walk uses the default rules and the guest's include rules, but not its exclude rules,
// its --min-size or its packages' configuration files: a file those keep private now may
// still be a link made before they did (the guest's rules changed, a package came to own the
// file), import keeps the records of such links, and reindex must find them too. A file the
// walk meets is recorded only if its inode is an object's, so walking more finds no more than
// what really is linked.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

#include "store/pool.h"
#include "store/progress.h"

namespace unify {

struct ReindexOptions {
    bool verbose = false;
    unsigned jobs = 0;    // 0: one per core
    ProgressFn progress;  // optional: per shard, then per batch of each guest's walk
};

struct ReindexSummary {
    std::string guests_from;  // "POOL/guests.conf", "the old index", or "" (none found)
    uint64_t guests = 0;
    uint64_t objects = 0;       // ids recorded
    uint64_t object_files = 0;  // replicas included
    uint64_t bytes = 0;         // of all object files
    uint64_t links = 0;
    uint64_t mismatched = 0;  // object files that do not give their id: not recorded
    uint64_t strays = 0;      // other entries of the shards
    // One message per guest whose root could not be walked (all or in part): a warning, not
    // an error; importing the guest again records its links.
    std::vector<std::string> guests_incomplete;
    std::string old_index;  // where the old index went; "" if there was none
};

// The pool must have been opened without its index (Pool::open(path, false)) and the caller
// holds the pool lock.
Result<ReindexSummary> reindex_pool(Pool& pool, const ReindexOptions& opt, std::ostream& log);

}  // namespace unify
