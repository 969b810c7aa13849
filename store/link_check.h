// "Does this link record still hold?": the recorded guest path is, now, the inode of its
// object (a hardlink pool), or the recorded guest inode and every byte of it still in the
// object's blocks (a reflink pool: FIEMAP of both, store/extents.h). `who`, verify, `gc
// --reconcile` and import's stale-record pass all ask it here. The path is reached from the guest's
// root without trusting the guest (store/guest_path.h); each guest root is opened once, and checked
// as every root is (store/guest_root.h), and each object file is looked at once.
#pragma once

#include <iosfwd>
#include <map>
#include <optional>
#include <unordered_map>

#include "store/extents.h"
#include "store/guest_root.h"
#include "store/index.h"
#include "store/pool.h"

namespace unify {

class LinkChecker {
  public:
    // warn: where to say, once per guest, that a root cannot be opened (may be null).
    explicit LinkChecker(const Pool& pool, std::ostream* warn = nullptr)
        : pool_(pool), warn_(warn) {}

    enum class State {
        holds,
        stale,      // the path is gone or another inode, or the object file is gone
        unchecked,  // the guest is not in the index, or its root cannot be opened
        // The path is there but could not be looked at (EACCES, EIO, ...): path_error() says
        // why. Its own state, not an error, so that one guest's path cannot end a check of
        // every guest's links (who, verify, gc --reconcile go on with the others).
        unreachable,
    };
    // Against the object file the record names.
    Result<State> check(Txn& txn, const LinkRecord& l);
    // Against a given inode (verify: the object file it is looking at).
    Result<State> check(Txn& txn, const LinkRecord& l, const FileStat& object);

    // The object file of (id, replica), looked at once; nullopt if it is gone.
    Result<std::optional<FileStat>> object(const ObjectId& id, uint32_t replica);
    // The guest of a record, looked up once; nullptr if the index has none.
    Result<const GuestRecord*> guest(Txn& txn, uint32_t id);
    // Why the root of guest `id` could not be opened, after check() said unchecked.
    const Error* root_error(uint32_t id) const;
    // Why the path could not be looked at, after the last check() said unreachable.
    const Error& path_error() const { return path_error_; }

  private:
    struct Guest {
        GuestRecord rec;
        Fd root;                     // valid once opened
        std::optional<Error> error;  // why it could not be opened
    };
    Result<Guest*> open_guest(Txn& txn, uint32_t id);
    Result<State> shares_blocks(const Guest& g, const LinkRecord& l, const FileStat& object);
    State unreachable(Error e);

    const Pool& pool_;
    std::ostream* warn_;
    std::unordered_map<uint32_t, std::optional<Guest>> guests_;  // nullopt: not in the index
    std::map<std::pair<ObjectId, uint32_t>, std::optional<FileStat>> objects_;
    std::map<std::pair<ObjectId, uint32_t>, std::vector<Extent>> extents_;  // reflink pools
    Error path_error_;
};

}  // namespace unify
