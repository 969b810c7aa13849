// The index: an LMDB environment in POOL/index, the fast mirror of what the filesystem
// says (docs/DESIGN.md invariant 5). Its tables (format version 4, lean: about 118 bytes per
// link record on real guests, free pages included; how, in index.cc):
//   guests   name -> GuestRecord          (plus "#id" -> name, for id lookups)
//   objects  object number (4) -> id + ObjectRecord
//   objids   "i" -> fixed-size duplicates: id's first 4 bytes + object number
//   dirs     guest (4) -> fixed-size duplicates: hash of (parent, name) (4) + directory number
//   dirpaths directory number (4) -> guest, parent number, bases of its links, name
//   links    directory number (4) + name -> the rest of a LinkRecord (varints, from the bases)
//   byobject guest (4) -> fixed-size duplicates: object number + directory number, one for
//            each directory with links to the object: the reverse mapping, for `who`. Guest
//            first so that one guest's entries are contiguous and importing a new guest
//            costs the same however many there are.
// Numbers are big endian and never reused; a guest's root directory has parent 0. A name too
// long for an LMDB key (511 bytes) is keyed by 0x00 + its SHA-256; the record keeps it whole.
// Nothing outside index.cc knows about LMDB.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "store/object_id.h"
#include "store/result.h"

namespace unify {

struct GuestRecord {
    uint32_t id = 0;
    std::string name;
    std::string root;         // absolute, normalised host path
    int64_t last_import = 0;  // unix seconds, 0 = never completed
    // The guest's own rules, kept for re-import: "+GLOB" (--include) or "-GLOB" (--exclude),
    // in order. A record of format 1 held plain exclude globs; they are read as "-GLOB".
    std::vector<std::string> excludes;
    uint64_t min_size = 1;
    // What the last import found: the package databases read ("dpkg", "rpm, pacman",
    // "none"; "" = not recorded, imported by an older unify), and how many configuration
    // files they name.
    std::string package_dbs;
    uint64_t config_files = 0;
    // The root directory as its last import found it: forget --delete-root deletes nothing
    // through another directory put at the path since. 0: not known (an older unify's).
    uint64_t root_dev = 0;
    uint64_t root_ino = 0;

    bool operator==(const GuestRecord&) const = default;
};

struct ObjectRecord {
    uint64_t size = 0;
    uint64_t xxh3 = 0;  // of the content, for a cheap verify
    Digest content{};   // SHA-256 of the content alone
    int64_t created = 0;
    uint32_t replicas = 1;  // overflow replicas made on EMLINK: objects/xx/<hex>.1 ...
};

struct LinkRecord {
    uint32_t guest = 0;
    std::string path;  // inside the guest, starting with '/'
    ObjectId id;
    uint32_t replica = 0;
    // What the guest path was when it was linked: an unchanged path is not hashed again.
    uint64_t ino = 0;
    uint64_t size = 0;
    int64_t mtime_ns = 0;
    int64_t ctime_ns = 0;
};

// A link record without its object's id, which costs a lookup of its own: what import's look
// at a walked path needs to tell whether the path is unchanged since it was linked.
struct LinkStamp {
    std::string path;
    uint64_t ino = 0;
    uint64_t size = 0;
    int64_t mtime_ns = 0;
    int64_t ctime_ns = 0;
};

// Callbacks return false to stop the iteration early.
using LinkVisitor = std::function<bool(const LinkRecord&)>;
using ObjectVisitor = std::function<bool(const ObjectId&, const ObjectRecord&)>;

class Txn {
  public:
    virtual ~Txn() = default;

    virtual Result<std::optional<GuestRecord>> guest(const std::string& name) = 0;
    virtual Result<std::optional<GuestRecord>> guest(uint32_t id) = 0;
    virtual Result<std::vector<GuestRecord>> guests() = 0;

    virtual Result<std::optional<ObjectRecord>> object(const ObjectId& id) = 0;
    // Every object whose hex id starts with `hex_prefix` (lower case, any length).
    virtual Result<std::vector<ObjectId>> objects_with_prefix(const std::string& hex_prefix) = 0;
    virtual Result<void> for_each_object(const ObjectVisitor& visit) = 0;

    virtual Result<std::optional<LinkRecord>> link(uint32_t guest, const std::string& path) = 0;
    virtual Result<void> for_each_link_of_guest(uint32_t guest, const LinkVisitor& visit) = 0;
    // The same two without the object ids.
    virtual Result<std::optional<LinkStamp>> link_stamp(uint32_t guest,
                                                        const std::string& path) = 0;
    virtual Result<void> for_each_link_stamp_of_guest(
        uint32_t guest, const std::function<bool(const LinkStamp&)>& visit) = 0;
    // How many link records the guest has: its directories' keys counted, nothing decoded.
    virtual Result<uint64_t> count_links_of_guest(uint32_t guest) = 0;
    // max_guests: look at that many guests' links at most (from guest 0 up; each costs its
    // seeks whether it has links of the object or not).
    virtual Result<void> for_each_link_of_object(const ObjectId& id, const LinkVisitor& visit,
                                                 uint32_t max_guests = UINT32_MAX) = 0;
    // Only the links of `id` named `name` (the last component), one lookup in each directory
    // that holds a link of it instead of a scan of all of that directory's links (a real
    // guest's /usr/bin has a thousand). False when some such directory has no link of that
    // name to it: then only for_each_link_of_object sees every link.
    // part, parts: the guests cut by number into `parts` runs in order, only run `part` (`who`
    // looks at them on several threads, each with its own read transaction: each guest costs
    // its seeks whether it holds the object or not). The parts' links, one after the other,
    // are the whole answer in the same order.
    virtual Result<bool> for_each_link_of_object_named(const ObjectId& id, std::string_view name,
                                                       const LinkVisitor& visit, uint32_t part = 0,
                                                       uint32_t parts = 1) = 0;

    // Write transactions only (a read transaction fails them).
    // put_guest with id 0 allocates the next free id and stores it in `g`.
    virtual Result<void> put_guest(GuestRecord& g) = 0;
    // Removes the guest and every link record of it.
    virtual Result<void> delete_guest(uint32_t id) = 0;
    virtual Result<void> put_object(const ObjectId& id, const ObjectRecord& rec) = 0;
    virtual Result<void> delete_object(const ObjectId& id) = 0;
    // Replaces any earlier record of (guest, path), keeping byobject in step.
    virtual Result<void> put_link(const LinkRecord& link) = 0;
    virtual Result<void> delete_link(uint32_t guest, const std::string& path) = 0;

    // Write: commit; read: just ends it. The transaction is unusable afterwards.
    virtual Result<void> commit() = 0;
    // Write transactions only: commits what was written so far and goes on in a new write
    // transaction, so a long run of writes does not hold every page it dirtied in memory.
    // New link records may be held back until commit() (they are written in key order);
    // readers of this transaction see them. On failure the transaction is unusable.
    virtual Result<void> renew() = 0;
};

class Index {
  public:
    virtual ~Index() = default;
    // dir: the index directory (POOL/index). create: make the directory and tables.
    static Result<std::unique_ptr<Index>> open(const std::string& dir, bool create);

    virtual Result<std::unique_ptr<Txn>> read() = 0;
    virtual Result<std::unique_ptr<Txn>> write() = 0;
    // Frees blocks the filesystem allocated past the end of the data file ahead of writes
    // (XFS's speculative preallocation). Takes the write transaction, so the pool lock's
    // holder should call it: no other writer can then grow the file meanwhile.
    virtual Result<void> give_back_preallocation() = 0;
    // Link records deleted through this index since it was opened (in any transaction, also
    // one not committed): import's stale pass trusts its own count only if none was.
    virtual uint64_t links_deleted() const = 0;
};

}  // namespace unify
