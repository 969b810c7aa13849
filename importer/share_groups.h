// Pass 5 of import in a reflink pool, on worker threads (issue 15's parallel link phase, in
// the mode that needs no window): each group's members are cloned into or deduplicated
// against their object, a group at a time per worker, its members in order. The calls that
// cost are the kernel's (FIDEDUPERANGE locks both inodes, compares their pages and reads the
// ones that are not cached, one at a time), so groups wait side by side instead of in turn.
// Nothing here writes the index or counts: each member's outcome comes back, and the
// importer records them in group order on its own thread, the index's one writer.
#pragma once

#include <string>
#include <vector>

#include "importer/walker.h"
#include "importer/warm_sources.h"
#include "linker/object_maker.h"
#include "store/pool.h"

namespace unify {

struct ShareOutcome {
    // pending: not tried (an error or an interrupt stopped the workers first).
    enum Kind { pending, made, shared, changed, flagged, unshareable, unreadable, failed };
    Kind kind = pending;
    MadeObject object;     // made: the new object; shared: set if the clone found it existed
    bool already = false;  // shared: it was the object's blocks before (Shared::already)
    Error error;           // unreadable: why; failed: what stops the import
};

struct ShareGroup {
    // A provisional id (importer/known_contents.h) becomes the real one, the hash of the
    // clone its first member made, before any other member is deduplicated against it.
    ObjectId id;
    bool provisional = false;
    bool has_object = false;  // the pool holds it already: every member is deduplicated
    uint32_t replica = 0;
    std::vector<size_t> members;         // indices into the batch
    std::vector<ShareOutcome> outcomes;  // one per member
    // What the members are deduplicated against first (importer/warm_sources.h): a recorded
    // sharer of the object; once a member made the object by its clone, that member's file.
    std::optional<WarmSource> warm;
};

// `root`: the guest root as shown in messages.
void share_groups(const Pool& pool, std::vector<ShareGroup>& groups,
                  const std::vector<WalkEntry>& batch, const std::string& root, unsigned threads);

}  // namespace unify
