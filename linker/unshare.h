// unify unshare: give a guest private copies of its linked files again (all of them, the
// paths named, or the files of the packages named), e.g. before a package upgrade on a stock
// kernel, where the guest cannot replace a protected file itself. Each copy is made beside
// the path under a temporary name, with the object's content and metadata, and renamed over
// the link atomically. In a reflink pool the file keeps its inode and only gets blocks of
// its own (linker/reflink.h: a plain copy deduplicated over it).
// Durability comes per batch, not per file: a batch's copies are all written, then made
// durable together by one syncfs of the guest's filesystem, and only then renamed over
// their links, then the index commits. A crash (or power loss) at any point leaves each path
// either the object or a complete copy (invariant 1); what it leaves is at most the batch's
// temporary copies, which the next run reuses.
#pragma once

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include "store/guest_root.h"
#include "store/pool.h"
#include "store/progress.h"

namespace unify {

struct UnshareOptions {
    std::string name;
    std::vector<std::string> paths;  // guest paths ("/usr/bin/ls") or host paths; empty: all
    bool dry_run = false;
    bool verbose = false;
    ProgressFn progress;  // optional: called per file
    unsigned jobs = 0;    // threads writing copies; 0: one per core
    // Installed packages whose linked files (and generated __pycache__ files) are unshared,
    // read from the guest's own database (importer/package_links.h); with paths, the union.
    std::vector<std::string> packages;
};

struct PackageUnshared {
    std::string package;
    std::string db;  // "dpkg", "rpm", "pacman"
    uint64_t unshared = 0;
    uint64_t bytes_copied = 0;
};

struct UnshareSummary {
    uint64_t unshared = 0;
    uint64_t bytes_copied = 0;
    uint64_t not_linked = 0;  // recorded, but the path was no longer the object: record dropped
    std::vector<PackageUnshared> packages;  // per package named, in the order given
};

// A link to unshare, and the package (index into UnshareSummary::packages) it belongs to.
struct UnshareTarget {
    LinkRecord link;
    std::optional<size_t> package;
};
// Chooses the links to unshare, once the guest and its root are open. Without one, unshare
// takes every link of the guest, or exactly the recorded paths in opt.paths; `unify unshare`
// passes importer/unshare_select.h's, which resolves paths inside the guest and reads its
// package database.
using LinkSelector = std::function<Result<std::vector<UnshareTarget>>(
    Txn& txn, const GuestRecord& guest, const GuestRoot& root, UnshareSummary& sum)>;

Result<UnshareSummary> unshare_guest(Pool& pool, const UnshareOptions& opt, std::ostream& log,
                                     const LinkSelector& select = {});

}  // namespace unify
