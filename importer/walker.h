// Walks a guest root depth-first through directory fds only: every directory is opened
// with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV) relative to its
// parent, so a guest that swaps a directory for a symlink mid-walk, or mounts something
// inside its root, leads us nowhere outside it. Files come out in bounded batches, each
// holding a shared fd of its directory, so memory stays flat in the size of the guest. At most
// kOpenDirLevels directory fds of the walk are open (store/tree_walk.h): a guest's chain of
// directories deeper than the fd limit is walked all the same. The files of a batch are
// stat'ed together at its end, on `jobs` threads: a re-import is a walk that stats every file,
// and those statx calls (each a name looked up in the kernel) were most of its time.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "importer/rules.h"
#include "store/fd.h"
#include "store/sys.h"

namespace unify {

struct WalkEntry {
    SharedFd dir;
    std::string name;
    std::string path;  // inside the guest, "/usr/bin/ls"
    FileStat st;
    bool temp = false;  // one of our own temporary names, left by an interrupted run
};

// Reason -> files skipped for it; printed by import as they are.
using SkipCounts = std::map<std::string, uint64_t>;

namespace skip {
inline constexpr const char* kConfigDpkg = "configuration file of a package (dpkg)";
inline constexpr const char* kConfigRpm = "configuration file of a package (rpm)";
inline constexpr const char* kConfigPacman = "configuration file of a package (pacman)";
inline const char* config_reason(PackageDb db) {
    return db == PackageDb::dpkg ? kConfigDpkg : db == PackageDb::rpm ? kConfigRpm : kConfigPacman;
}
inline constexpr const char* kDefaultRule = "excluded by the default rules";
inline constexpr const char* kUserRule = "excluded by --exclude";
inline constexpr const char* kDefaultTree =
    "directories excluded by the default rules (not walked)";
inline constexpr const char* kUserTree = "directories excluded by --exclude (not walked)";
inline constexpr const char* kSymlink = "symlink";
inline constexpr const char* kSpecial = "device, fifo or socket";
inline constexpr const char* kSmall = "smaller than --min-size";
inline constexpr const char* kMount = "mount point (not crossed)";
inline constexpr const char* kPool = "the pool itself";
inline constexpr const char* kVanished = "vanished during the walk";
inline constexpr const char* kChanged = "changed while being imported";
inline constexpr const char* kBusy = "open for writing (a running guest writes it)";
inline constexpr const char* kFlagged = "immutable or append-only flag set in the guest";
inline constexpr const char* kUnreadable = "unreadable";
inline constexpr const char* kDamagedObject =
    "the pool's object for it does not match its id (see unify verify)";
// Reflink pools: FICLONE or FIDEDUPERANGE refused (EPERM, ETXTBSY, EINVAL: linker/reflink.cc).
inline constexpr const char* kRefused =
    "the filesystem refused to share its blocks (an immutable, append-only or "
    "no-copy-on-write flag set in the guest, or a swap file)";
inline constexpr const char* kSparse = "all holes: no blocks to share";
inline constexpr const char* kInline = "too small to share blocks (data inline in metadata)";
}  // namespace skip

class Walker {
  public:
    // root: an open directory fd of the guest root; root_shown: its host path, for messages.
    Walker(Fd root, std::string root_shown, const Rules& rules, const FileStat& pool_dir,
           std::string temp_prefix, unsigned jobs = 1);

    // Appends up to `max` entries to `out`; returns false once the walk is complete.
    Result<bool> next_batch(std::vector<WalkEntry>& out, size_t max);
    const SkipCounts& skipped() const { return skipped_; }
    uint64_t files_seen() const { return files_seen_; }

  private:
    struct Frame {
        SharedFd fd;       // null while closed (kOpenDirLevels)
        std::string path;  // "" for the root
        std::vector<DirEntry> entries;
        size_t next = 0;
        FileStat st;  // taken when its fd is closed, to check the one reopen_parent gives
    };
    Result<void> push_dir(SharedFd fd, std::string path);
    Result<void> pop_dir();
    Result<void> visit(Frame& f, const DirEntry& e, std::vector<WalkEntry>& out);
    Result<void> stat_files(std::vector<WalkEntry>& out, size_t first);
    Result<bool> keep(WalkEntry& e, int err);

    std::string root_shown_;
    const Rules& rules_;
    FileStat pool_dir_;
    std::string temp_prefix_;
    FileStat root_st_;
    std::vector<Frame> stack_;
    // The statx errno of each file this batch appended to `out`, in order; kNotStated until
    // stat_files (a DT_UNKNOWN entry is stat'ed when met, to know whether to walk it).
    static constexpr int kNotStated = -1;
    std::vector<int> stat_err_;
    unsigned jobs_;
    SkipCounts skipped_;
    uint64_t files_seen_ = 0;
    bool started_ = false;
    SharedFd root_;
};

}  // namespace unify
