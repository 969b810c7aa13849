// unify verify: is every object what its id says, protected as the pool's mode requires, and
// does the index agree with the pool? (In a reflink pool also: which recorded sharers still
// share their object's blocks.) In passes:
//   1. per shard (all 256), list POOL/objects/xx: names "<64 hex>" and "<64 hex>.N" are
//      objects, anything else is a stray file; look up each object's index record;
//   2. check the shard's objects on all cores (a parallel loop over a pre-sized vector):
//        content   default: XXH3-64 and size against the record (cheap: no SHA-256);
//                  --full, or no record: SHA-256 of the bytes;
//        metadata  the id again from the content SHA-256 (the record's, or --full's) and the
//                  object's identity (type+mode, owner, mtime, xattrs): must be its name;
//        flag      Protection::is_protected for the pool's mode;
//      and list the records of this shard that no object file stands for (missing objects);
//   3. name the guest paths that link each damaged or missing object (index, then checked
//      on the filesystem as `who` does);
//   4. --quarantine: repair or move aside, under the pool lock (see quarantine below).
// What counts: damaged objects, missing objects and wrong index records (an object that is
// what its id says, with a record of other hashes) make verify fail (exit 1). An object
// file without a record (unindexed) is what an import killed before its index commit
// leaves; the next import of a guest that has the file records it and gc removes it if no
// guest links it, so it is reported but does not fail verify. Stray files are reported too
// (gc removes those that nothing links) and do not fail it either.
//
// quarantine, per damaged object:
//   - only unprotected (content and metadata matched): protect it again, then hash it with
//     SHA-256 now that nobody can write it; if it matches its id it is repaired in place;
//   - otherwise: every guest path that links it gets a private copy of what it has now
//     (linker/unshare.h: same content and metadata, so the guest sees no change, but the
//     file is no longer shared and no longer protected, so the guest can restore it, e.g.
//     by reinstalling its package); the object is then moved to
//     POOL/quarantine/<name>.<UTC timestamp> (mode 0700 directory, a rename inside the pool
//     filesystem: the flag is lifted for the rename and set again after), and its index
//     record and link records go (the record stays if another replica of the id is left).
//     No import can link it again; the next import of a guest that has a good copy makes
//     a fresh, correct object.
//   Missing objects: their record and link records are dropped. Wrong records: rewritten
//   from the object.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include "store/pool.h"
#include "store/progress.h"

namespace unify {

struct VerifyOptions {
    bool full = false;        // SHA-256 of every object instead of XXH3 against the record
    bool quarantine = false;  // repair or move aside damaged objects (needs the lock)
    bool verbose = false;     // a line per object checked
    unsigned jobs = 0;        // 0: one per core
    ProgressFn progress;      // optional: called per shard
};

struct VerifyLink {
    std::string guest;
    std::string path;  // inside the guest
};

// A recorded link whose path could not be checked (EACCES, EIO, ...): reported, and the run
// goes on with the other links, objects and guests.
struct UncheckedLink {
    std::string guest;
    std::string path;   // inside the guest
    std::string error;  // names the call, the host path and errno
};

struct DamagedObject {
    std::string name;  // "ab/<hex>" or "ab/<hex>.N", relative to POOL/objects
    ObjectId id;
    uint32_t replica = 0;
    bool content = false;           // the bytes do not match the record (or the id)
    bool metadata = false;          // mode, owner, mtime or xattrs no longer match the id
    bool unprotected = false;       // the pool's protection flag is not set
    bool recorded = true;           // it has an index record (else content and metadata are one)
    std::vector<VerifyLink> links;  // guest paths that are this inode now
    // Recorded paths that could not be checked: --quarantine leaves such an object in place,
    // since the path may still link it and would keep a link nobody records.
    std::vector<UncheckedLink> unchecked;
    // --quarantine: what was done ("protected again ...", "moved to ..."), or why not.
    std::string action;
    bool fixed = false;  // --quarantine succeeded for it
};

struct MissingObject {
    ObjectId id;
    std::vector<VerifyLink> links;  // as recorded: there is no inode left to check them with
    std::string action;
};

struct VerifySummary {
    uint64_t objects_checked = 0;
    uint64_t bytes_checked = 0;
    std::vector<DamagedObject> damaged;
    std::vector<MissingObject> missing;  // records without any object file
    std::vector<std::string> unindexed;  // object files without a record (names as above)
    std::vector<std::string> strays;     // other entries of the shards (host paths)
    // Objects that are what their id says but whose index record has another size, XXH3 or
    // SHA-256: the index is wrong, not the object. --quarantine rewrites those records.
    std::vector<std::string> bad_records;
    bool bad_records_fixed = false;
    // Objects that are what their id says but carry inode flags a guest set through its name
    // (store/protect.h guest_flags): names as above, and the flags. --quarantine clears them.
    std::vector<std::pair<std::string, unsigned>> flagged;
    bool flags_cleared = false;
    // A gc was killed between its unlinks and its commit (Pool::gc_interrupted): the records
    // of what it removed are counted missing until `unify gc` runs again and drops them.
    bool gc_interrupted = false;
    // Reflink pools: every link record checked on the filesystem (store/link_check.h), and
    // those whose file no longer shares all the object's blocks. Not damage: a guest may
    // write its own file; the next import of the guest drops or renews such records.
    uint64_t sharers_checked = 0;
    std::vector<VerifyLink> sharers_gone;
    std::vector<UncheckedLink> sharers_unchecked;  // reported; not damage either
    bool ok() const {
        return damaged.empty() && missing.empty() && bad_records.empty() &&
               (flagged.empty() || flags_cleared);
    }
};

// The caller holds the pool lock (also without --quarantine: an import running beside it
// would show half-made objects). Errors that stop the run (an unreadable shard, the index)
// come back as the Error; what is wrong with single objects lands in the summary.
Result<VerifySummary> verify_pool(Pool& pool, const VerifyOptions& opt, std::ostream& log);

// The problems of `d` as one line: "content does not match ...; not protected".
std::string describe(const DamagedObject& d, bool full);

// What --quarantine does for a damaged object, for one named "ab/<hex>[.N]": the next
// writer's answer to an object a killed writer's protection window left unprotected and that
// changed meanwhile (Pool::Recovery::changed). Returns what was done.
Result<std::string> quarantine_object(Pool& pool, const std::string& name, std::ostream& log);

}  // namespace unify
