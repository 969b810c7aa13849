// unify import: register a guest on first import, then walk it, hash what changed, and make
// every eligible file a link to its object.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include "importer/walker.h"
#include "store/pool.h"
#include "store/progress.h"

namespace unify {

struct ImportOptions {
    std::string name;
    std::string root;
    bool dry_run = false;
    // The user's rules in order, "+GLOB" (include) or "-GLOB" (exclude); unset: the
    // guest's stored ones (importer/rules.h).
    std::optional<std::vector<std::string>> rules;
    std::optional<uint64_t> min_size;  // unset: stored, else default_min_size()
    unsigned jobs = 0;                 // 0: one per core
    bool verbose = false;
    ProgressFn progress;  // optional: called after every batch (files walked, bytes hashed)
};

struct ImportSummary {
    std::string name;
    std::string root;
    bool dry_run = false;
    uint64_t files_seen = 0;
    uint64_t already_linked = 0;
    uint64_t newly_linked = 0;  // paths that are links to an object now and were not before,
                                // the first path of each new object included
    uint64_t new_objects = 0;
    uint64_t bytes_new_objects = 0;
    uint64_t bytes_saved = 0;
    uint64_t temps_swept = 0;
    uint64_t records_dropped = 0;  // records of paths that are no longer their object
    // Linked paths the rules now keep private (an --exclude added, --min-size raised, a new
    // configuration file): given private copies, as `unshare` does (dry run: would be).
    uint64_t made_private = 0;
    SkipCounts skipped;
    std::string package_dbs;            // package databases read: "dpkg", "none", ...
    uint64_t config_files = 0;          // configuration files they name
    std::vector<std::string> warnings;  // package databases not read, damaged objects met
};

// `log` gets -v lines and warnings about single files; errors that stop the import come
// back as the Error, after everything done so far has been recorded in the index.
Result<ImportSummary> import_guest(Pool& pool, const ImportOptions& opt, std::ostream& log);

}  // namespace unify
