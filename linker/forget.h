// unify forget: unregister a guest so that gc can reclaim what only it used. First every
// link of the guest is unshared (linker/unshare.h: each path gets a private copy again, so
// the guest's files stay exactly what they were), then its record and any link records left
// are deleted in one index transaction. With keep_links only the records go: the guest's
// files stay hard links to their objects (for a root that is about to be deleted), and gc
// reclaims those objects once the files are gone. In a reflink pool forget only drops the
// records, always: each guest file is its own inode already, and gc reclaims an object once
// no file shares its blocks. With delete_root the guest's whole root
// is deleted instead, nothing copied (linker/delete_root.h), and then its record.
// The caller holds the pool lock for the whole run.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <string>

#include "linker/delete_root.h"
#include "linker/unshare.h"
#include "store/pool.h"
#include "store/progress.h"

namespace unify {

struct ForgetOptions {
    std::string name;
    bool keep_links = false;
    bool dry_run = false;
    bool verbose = false;
    ProgressFn progress;  // optional: passed on to unshare (per file)
    bool delete_root = false;
};

struct ForgetSummary {
    std::string name;
    std::string root;
    bool keep_links = false;
    bool dry_run = false;
    UnshareSummary unshared;       // the links made private again; zero with keep_links
    uint64_t records_dropped = 0;  // link records deleted with the guest (keep_links)
    // Names of pool objects in the root that no record named (a guest's links made in a
    // protection window): made private with the rest (counted in `unshared` too).
    uint64_t unrecorded = 0;
    bool delete_root = false;
    DeleteRootSummary deleted;  // with delete_root
};

Result<ForgetSummary> forget_guest(Pool& pool, const ForgetOptions& opt, std::ostream& log);

}  // namespace unify
