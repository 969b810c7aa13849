// Reflink pools: which file a guest file is best deduplicated against. The kernel's compare
// (FIDEDUPERANGE) reads both files' pages, and an object is an inode of its own, made by a
// clone and never read since (linker/reflink.h): its pages come from the disk, one at a time,
// even where the same bytes are cached under another guest's file. A file that shares the
// object's blocks (the guest file this run cloned it from, or one a record says shares it)
// has its pages cached where the guests were just made or read, as duperemove's are: the
// compare runs on those, and the result is then checked to map the object's blocks
// (share_object), or deduplicated against the object itself after all. Nothing here is
// trusted: a guest may have changed its file since (the compare refuses it, or the check does).
#pragma once

#include <optional>
#include <string>
#include <unordered_map>

#include "store/guest_root.h"
#include "store/index.h"
#include "store/object_id.h"
#include "store/pool.h"

namespace unify {

// A recorded sharer of an object: path (in the guest whose root is open at root_fd) and inode.
struct WarmSource {
    int root_fd = -1;
    std::string path;
    uint64_t ino = 0;
    std::string shown;  // for messages
};

class WarmSources {
  public:
    // own_root: the importing guest's root, open as long as this lives.
    WarmSources(const Pool& pool, uint32_t own_guest, const GuestRoot& own_root)
        : pool_(pool), own_guest_(own_guest), own_root_(own_root) {}

    // A sharer of `id` to compare against: the first link record of it, among the index's
    // first 8 guests, whose guest root can be opened (this guest's own, from an earlier
    // batch, too); none: the object itself is compared against.
    Result<std::optional<WarmSource>> find(Txn& txn, const ObjectId& id);

  private:
    Result<int> root_of(Txn& txn, uint32_t guest, std::string& root_path);

    const Pool& pool_;
    uint32_t own_guest_;
    const GuestRoot& own_root_;
    struct Root {
        GuestRoot root;
        bool open = false;
    };
    std::unordered_map<uint32_t, Root> roots_;  // other guests', opened once, or not at all
};

}  // namespace unify
