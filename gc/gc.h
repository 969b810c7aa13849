// unify gc, in two passes:
//   1. reconcile: drop every link record whose guest path is no longer the object's inode
//      (the guest replaced, removed or unshared it behind our back);
//   2. collect: statx every object in parallel, shard by shard; an object whose link count
//      is 1 is held by the pool alone: lift its protection, unlink it, drop its record.
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
    unsigned jobs = 0;    // 0: one per core
    ProgressFn progress;  // optional: called per guest (pass 1) and per shard (pass 2)
};

struct GcSummary {
    uint64_t objects_seen = 0;
    uint64_t objects_removed = 0;
    uint64_t bytes_reclaimed = 0;
    uint64_t links_dropped = 0;
};

Result<GcSummary> collect_garbage(Pool& pool, const GcOptions& opt, std::ostream& log);

}  // namespace unify
