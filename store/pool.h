// The pool directory (mode 0700), on the same filesystem as every guest root:
//   pool.conf           settings fixed at init: share mode, protection mode, mtime policy, token
//   objects/xx/<id>     one inode per object; xx = first byte of the id in hex, so 10M
//                       objects make ~39k entries per shard. <id>.N are overflow replicas
//                       made when an object reaches the filesystem's link limit (EMLINK)
//   tmp/                scratch files while an object is being written
//   lock                flock()ed by the one writer; holds that writer's pid and command
//   index/              the LMDB index (store/index.h)
//   gc-unlinking        only while a gc removes objects, until it commits (gc/gc.cc)
// Every operation works relative to the long-lived fds opened here.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "store/fd.h"
#include "store/index.h"
#include "store/intent.h"
#include "store/object_id.h"
#include "store/protect.h"
#include "store/share_mode.h"
#include "store/sys.h"

namespace unify {

inline constexpr size_t kShards = 256;  // objects/00 .. objects/ff
// Made before a gc's first unlink and removed by the commit that drops the records of what it
// removed: found by anyone else, a gc was killed in between (the OOM killer), and its records
// of objects that are gone are still there, which the next gc, listing only files, would
// never see again without it (gc/gc.cc).
inline constexpr const char* kGcUnlinking = "gc-unlinking";

struct PoolSettings {
    ShareMode share = ShareMode::hardlink;         // a pool.conf without share= is a hardlink pool
    ProtectMode protect = ProtectMode::immutable;  // none in a reflink pool
    bool ignore_mtime = false;
    std::string token;  // random; part of every temporary name unify makes in a guest

    bool reflink() const { return share == ShareMode::reflink; }
    IdRules id_rules() const { return {ignore_mtime, reflink()}; }
};

class Pool {
  public:
    // Creates the directory and everything in it; fails if `path` exists and is not empty.
    static Result<void> create(const std::string& path, const PoolSettings& settings);
    // with_index=false: only `unify reindex`, which rebuilds the index, opens a pool without
    // it; index() must not be called then. A missing or unreadable index is an error that
    // names it and says to run `unify reindex`.
    static Result<std::unique_ptr<Pool>> open(const std::string& path, bool with_index = true);

    const std::string& path() const { return path_; }
    const std::string& real_path() const { return real_path_; }  // canonical (realpath)
    const PoolSettings& settings() const { return settings_; }
    const Protection& protection() const { return protection_; }
    const FileStat& stat() const { return stat_; }
    int fd() const { return dir_.get(); }
    int objects_fd() const { return objects_.get(); }
    int tmp_fd() const { return tmp_.get(); }
    Index& index() { return *index_; }
    bool has_index() const { return index_ != nullptr; }

    // Object files, all in one place: names, shards, opening.
    // "ab/<hex>" or "ab/<hex>.N", relative to objects_fd().
    static std::string object_name(const ObjectId& id, uint32_t replica = 0);
    // The inverse for a file in a shard: "<64 lower-case hex>" is replica 0 of that id,
    // "<64 hex>.N" (N > 0, no leading zero) replica N; anything else is no object.
    static std::optional<std::pair<ObjectId, uint32_t>> parse_object_file(const std::string& file);
    static std::string shard_name(size_t shard);  // "00" .. "ff"
    std::string object_shown(const ObjectId& id, uint32_t replica = 0) const;
    std::string object_shown(const std::string& name) const;
    Result<std::optional<FileStat>> stat_object(const ObjectId& id, uint32_t replica = 0) const;
    // Read-only, never through a symlink, O_NOATIME where allowed (store/sys.h open_read).
    Result<Fd> open_object(const ObjectId& id, uint32_t replica = 0) const;
    Result<Fd> open_object(const std::string& name) const;  // "ab/<file>"
    // One shard directory and its entries; the loop over all kShards is the caller's (gc
    // runs it in parallel, verify and reindex in order).
    struct Shard {
        std::string name;   // "ab"
        std::string shown;  // POOL/objects/ab
        Fd dir;
        std::vector<DirEntry> entries;

        struct Object {
            std::string file;  // the entry's name
            ObjectId id;
            uint32_t replica = 0;
            uint64_t ino = 0;  // the entry's d_ino
        };
        // The entries that name an object of this shard; the names of the others (strays)
        // are appended to `strays`.
        std::vector<Object> objects(std::vector<std::string>& strays) const;
    };
    Result<Shard> list_shard(size_t shard) const;
    // Every object file by its inode number (the shard listings' d_ino): which object a name
    // found in a guest is, where no record says. Check the inode (stat_object) before
    // trusting an entry: the listing is a moment's.
    using ByInode = std::unordered_map<uint64_t, std::pair<ObjectId, uint32_t>>;
    Result<void> objects_by_inode(ByInode& out) const;
    // Writers only: opens POOL/intent and finishes what a killed writer left in it (see
    // store/intent.h and store/intent_recovery.cc).
    struct Recovery {
        std::string log;  // a line per thing done, empty if nothing was pending
        // Objects a cut-short window left unprotected and that no longer give their id: the
        // guests that link them see the change. The caller quarantines each
        // (repair/verify.h quarantine_object), then ends its intent slot.
        struct Changed {
            std::string name;  // "ab/<hex>[.N]"
            size_t slot;
        };
        std::vector<Changed> changed;
    };
    Result<Recovery> prepare_writer();
    const IntentLog& intent() const { return intent_; }
    // The protection window, the one way to add or drop a name of a protected object: runs
    // `act` with the object's protection lifted where the kernel requires that for link,
    // unlink and rename (stock immutable), recorded in the intent log so that an object left
    // unprotected by a kill is protected again by the next writer (store/protect.h says what
    // is checked after the window). The record is ended only when protection is back.
    // `scatter` answers a writer that got into the window where the flag would not stop it
    // afterwards (Protection::run_lifted; linker/scatter.h is the answer the writers give).
    // `slot`: the intent slot (store/intent.h); windows open side by side each need their own.
    // `tampered`: see Protection::run_lifted.
    Result<void> with_links_allowed(const ObjectId& id, uint32_t replica, int object_fd,
                                    const std::function<Result<void>()>& act,
                                    const ScatterFn& scatter = {}, size_t slot = 0,
                                    Metadata* tampered = nullptr) const;

    // POOL/gc-unlinking is there: the records of objects a killed gc removed are still in
    // the index (verify counts them missing) until a gc runs again.
    bool gc_interrupted() const;

    // ".unify-<token>.": the prefix of every temporary name unify makes inside a guest.
    std::string temp_prefix() const { return ".unify-" + settings_.token + "."; }

  private:
    std::string path_, real_path_;
    PoolSettings settings_;
    Protection protection_{ProtectMode::none};
    FileStat stat_;
    Fd dir_, objects_, tmp_;
    std::unique_ptr<Index> index_;
    IntentLog intent_;
};

}  // namespace unify
