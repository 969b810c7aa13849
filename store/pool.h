// The pool directory (mode 0700), on the same filesystem as every guest root:
//   pool.conf           settings fixed at init: protection mode, mtime policy, token
//   objects/xx/<id>     one inode per object; xx = first byte of the id in hex, so 10M
//                       objects make ~39k entries per shard. <id>.N are overflow replicas
//                       made when an object reaches the filesystem's link limit (EMLINK)
//   tmp/                scratch files while an object is being written
//   lock                flock()ed by the one writer; holds that writer's pid and command
//   index/              the LMDB index (store/index.h)
// Every operation works relative to the long-lived fds opened here.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "store/fd.h"
#include "store/index.h"
#include "store/intent.h"
#include "store/object_id.h"
#include "store/protect.h"
#include "store/sys.h"

namespace unify {

struct PoolSettings {
    ProtectMode protect = ProtectMode::immutable;
    bool ignore_mtime = false;
    std::string token;  // random; part of every temporary name unify makes in a guest
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
    const PoolSettings& settings() const { return settings_; }
    const Protection& protection() const { return protection_; }
    const FileStat& stat() const { return stat_; }
    int fd() const { return dir_.get(); }
    int objects_fd() const { return objects_.get(); }
    int tmp_fd() const { return tmp_.get(); }
    Index& index() { return *index_; }

    // "ab/<hex>" or "ab/<hex>.N", relative to objects_fd().
    static std::string object_name(const ObjectId& id, uint32_t replica = 0);
    std::string object_shown(const ObjectId& id, uint32_t replica = 0) const;
    Result<std::optional<FileStat>> stat_object(const ObjectId& id, uint32_t replica = 0) const;
    Result<Fd> open_object(const ObjectId& id, uint32_t replica = 0) const;
    // Writers only: opens POOL/intent and finishes what a killed writer left in it (see
    // store/intent.h). Returns a line for the log, empty if nothing was pending.
    Result<std::string> prepare_writer();
    const IntentLog& intent() const { return intent_; }
    // Protection::with_links_allowed, with the window recorded in the intent log so that an
    // object left unprotected by a kill is protected again by the next writer.
    Result<void> with_links_allowed(const ObjectId& id, uint32_t replica, int object_fd,
                                    const std::function<Result<void>()>& act) const;

    // ".unify-<token>.": the prefix of every temporary name unify makes inside a guest.
    std::string temp_prefix() const { return ".unify-" + settings_.token + "."; }

  private:
    std::string path_;
    PoolSettings settings_;
    Protection protection_{ProtectMode::none};
    FileStat stat_;
    Fd dir_, objects_, tmp_;
    std::unique_ptr<Index> index_;
    IntentLog intent_;
};

}  // namespace unify
