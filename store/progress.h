// Progress of a long command (import, gc, unshare), reported to whoever wants to show it.
// The library only counts and calls back; drawing (cli/progress.h) is the caller's business,
// so nothing here knows about terminals.
#pragma once

#include <cstdint>
#include <functional>

namespace unify {

struct Progress {
    const char* phase = "";      // "import", "gc: checking links", "unshare", ...
    const char* unit = "files";  // what `done` counts
    uint64_t done = 0;           // units handled so far in this phase
    uint64_t bytes = 0;          // import: bytes hashed so far; else 0
    // Share of the phase that is done, when its size is known (parts > 0): a percentage
    // and an ETA can be shown. Import walks as it goes and does not know it (parts == 0).
    uint64_t part = 0;
    uint64_t parts = 0;
};

// Called on the thread that runs the command, or under a lock the library holds: never
// concurrently. It must be cheap: it is called at least once per batch, shard or file.
using ProgressFn = std::function<void(const Progress&)>;

}  // namespace unify
