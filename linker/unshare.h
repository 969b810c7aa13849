// unify unshare: give a guest private copies of its linked files again (all of them, or the
// paths named), e.g. before a package upgrade on a stock kernel, where the guest cannot
// replace a protected file itself. Each copy is made beside the path under a temporary
// name, with the object's content and metadata, and renamed over the link atomically.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

#include "store/pool.h"
#include "store/progress.h"

namespace unify {

struct UnshareOptions {
    std::string name;
    std::vector<std::string> paths;  // guest paths ("/usr/bin/ls") or host paths; empty: all
    bool dry_run = false;
    bool verbose = false;
    ProgressFn progress;  // optional: called per file
};

struct UnshareSummary {
    uint64_t unshared = 0;
    uint64_t bytes_copied = 0;
    uint64_t not_linked = 0;  // recorded, but the path was no longer the object: record dropped
};

Result<UnshareSummary> unshare_guest(Pool& pool, const UnshareOptions& opt, std::ostream& log);

}  // namespace unify
