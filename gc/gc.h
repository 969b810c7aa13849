// unify gc: statx every object in parallel, shard by shard; an object whose link count is 1
// (and, in a reflink pool, none of whose extents is shared: FIEMAP) is held by the pool
// alone: lift its protection, unlink it, drop its record. That decision
// reads only the pool, never the index, so no stale or missing record can make gc keep
// garbage or remove a linked object; its cost is one statx per object, like
// `find POOL -links 1`, whatever the number of guests and links. In a reflink pool an object
// whose shared extents all overlap other objects' is garbage too unless a record of it holds:
// there the index is read, for those objects only, and only to keep one (gc.cc says why and
// what that gets wrong).
// Link records that still name a removed object are not looked for (that is a seek per
// guest per object): the next import of their guest drops them, as it drops every record
// of its guest whose path is no longer linked (importer/import.cc), and `who` checks each
// path it reports. With reconcile, a first pass checks every link record of every guest
// against its path (one statx per link) and drops the stale ones at once.
// It runs under the pool lock, so no import can be about to link an object it removes
// (the race Nix's optimiser has).
#pragma once

#include <cstdint>
#include <iosfwd>

#include "store/pool.h"
#include "store/progress.h"

namespace unify {

struct GcOptions {
    bool dry_run = false;
    bool verbose = false;
    unsigned jobs = 0;  // 0: one per core
    bool reconcile = false;
    ProgressFn progress;  // optional: called per guest (pass 1) and per shard (pass 2)
};

struct GcSummary {
    uint64_t objects_seen = 0;
    uint64_t objects_removed = 0;
    uint64_t bytes_reclaimed = 0;
    uint64_t links_dropped = 0;
    // Index records of objects no file stands for (beside those removed by this run): a gc
    // killed before its commit left them.
    uint64_t object_records_dropped = 0;
    // --reconcile: records whose path could not be checked (each named on the log); they are
    // kept, the run goes on, and the command fails at the end.
    uint64_t links_unchecked = 0;
};

Result<GcSummary> collect_garbage(Pool& pool, const GcOptions& opt, std::ostream& log);

}  // namespace unify
