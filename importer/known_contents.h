// Reflink pools: which object holds given content, by size and XXH3, read once per import
// from the index's object records. Most files of a guest imported after the first are
// already in the pool, and for them SHA-256 was most of an import's time (34 % of the
// samples of g1..g4 on XFS): hash_known() reads such a file with XXH3 alone and takes the
// object of the same size and XXH3 as its candidate. That is safe only because the candidate
// is then confirmed by the kernel: FIDEDUPERANGE compares every byte of the file with the
// object's under lock and shares nothing that differs, so a file recorded as sharing an
// object has its bytes. A file the compare refuses (a collision, which a guest can make on
// purpose, or a write meanwhile) is hashed in full and imported as any other
// (Importer::share_batch): a collision costs time, never a wrong record. Content no object
// has is not hashed with SHA-256 from the guest either: its object's id is the hash of the
// clone that makes it (provisional_id below), so new bytes are read with SHA-256 once.
#pragma once

#include <optional>
#include <vector>

#include "importer/hash_batch.h"
#include "store/index.h"

namespace unify {

class KnownContents {
  public:
    // Reads every object record of the index, once per import: 100,000 objects cost about
    // 0.1 s and 5 MB (48 bytes each, sorted, no allocation per object).
    Result<void> load(Index& index);
    // The object of that size and XXH3; none if no object has them, or several do.
    std::optional<ObjectId> find(uint64_t size, uint64_t xxh3) const;
    // Whether any object has that size.
    bool has_size(uint64_t size) const;
    bool empty() const { return sorted_.empty(); }

  private:
    struct Entry {
        uint64_t size, xxh3;
        ObjectId id;
        bool operator<(const Entry& o) const {
            return size != o.size ? size < o.size : xxh3 < o.xxh3;
        }
    };
    std::vector<Entry> sorted_;  // by size, then XXH3
};

// A stand-in id for content no object had: files of one size and XXH3 group under it, the
// first one's clone is hashed for the real id, the others are deduplicated against that
// object (the kernel's compare again). Half of the bytes of a real id are a fixed pattern, so
// it cannot be the SHA-256 of anything in practice (2^-128).
ObjectId provisional_id(uint64_t size, uint64_t xxh3);

// hash_batch for a reflink pool: every wanted file is read with XXH3 alone (Hashed::quick).
// If `known` has its size and XXH3 it gets that object's id as a candidate; otherwise it gets
// provisional_id (Hashed::provisional). New content was read twice with SHA-256 before this,
// the guest's file and then the clone: 31-38 % of the samples of a reflink import of g1 or g4.
//
// With skip_unique, a file whose size no object has and no other wanted file of the batch
// has is not read at all: its XXH3 could find no candidate and group it with nothing, so it
// is provisional straight away (XXH3 0 in its stand-in id, which no other file of the batch
// shares) and its clone, hashed in full, gives its id; a clone that finds its object in the
// pool (content an earlier batch made) is shared like any other. About a third of a first
// reflink import's reading. Not for a dry run: there the stand-in ids of all batches are
// compared with each other (Importer::dry_new_), and (size, 0) would stand for any content.
std::vector<Hashed> hash_known(const std::vector<WalkEntry>& batch, const std::vector<bool>& wanted,
                               const std::string& root_shown, unsigned jobs,
                               const KnownContents& known, bool skip_unique);

}  // namespace unify
