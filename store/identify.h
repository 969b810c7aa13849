// Identifying a file: what object id its bytes and metadata give *now*. Every place that
// must re-derive an id from an open file (the re-hash of a new object after its flag is set,
// the re-read of an unsettled guest file under its lease, verify, reindex, finishing a killed
// writer's intent) calls this, so they cannot disagree on what an id covers.
#pragma once

#include <string>

#include "store/hasher.h"
#include "store/object_id.h"
#include "store/sys.h"

namespace unify {

struct Identified {
    ObjectId id;
    ContentHash hash;
    FileStat st;  // taken after the bytes were read: a write meanwhile shows in it
    Xattrs xattrs;
};

// Reads fd's xattrs, then all its bytes (from offset 0), then its stat, and derives the id.
Result<Identified> identify_fd(int fd, const std::string& shown, const IdRules& rules);

// The same with XXH3 alone (quick_hash_fd): no xattrs, hash.sha256 and id unset. For a
// candidate that a byte compare confirms (importer/known_contents.h).
Result<Identified> quick_identify_fd(int fd, const std::string& shown);

}  // namespace unify
