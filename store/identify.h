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

class Pool;

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

// An object a file may be a copy of: its id, which replica to read, and what its index record
// says of its content (size, SHA-256, XXH3).
struct Candidate {
    ObjectId id;
    uint32_t replica = 0;
    ContentHash content;
};

// identify_fd without SHA-256, for a file whose bytes are those of an object already in the
// pool: a guest imported after the first is mostly such files, and SHA-256 was a third of
// its import's time. The file is read and compared byte by byte with the object (`object_fd`,
// pages that are cached: they are the first guest's file). The content's SHA-256 is then the
// record's, but only if the object's own id commits to it (its stat and xattrs with that
// SHA-256 give its id): the index alone is not trusted for an id, the object's name is, as
// everywhere (a linked path is the object its id names). nullopt when a byte, the length or
// that commitment differs: the caller hashes the file in full.
Result<std::optional<Identified>> identify_as_object(int fd, const std::string& shown,
                                                     int object_fd, const std::string& object_shown,
                                                     const Candidate& object, const IdRules& rules);

// identify_fd, or identify_as_object first with candidate's object in `pool` where a candidate
// is given. An object that cannot be opened is passed over (the file is hashed): what is
// wrong with it is for the link step or `unify verify` to say.
Result<Identified> identify_file(int fd, const std::string& shown, const IdRules& rules,
                                 const Pool* pool, const Candidate* candidate);

// The id of a file whose bytes are known to be `content` without reading them: a read lease
// taken before its stat was found unmoved since `content` was read from it, and still held
// (lease_held), proves nothing wrote it since (store/lease.h). Its xattrs and stat are read
// now, so metadata changed meanwhile (chmod, setxattr: no lease stops those) shows in the id.
Result<Identified> identify_unwritten(int fd, const std::string& shown, const IdRules& rules,
                                      const ContentHash& content);

}  // namespace unify
