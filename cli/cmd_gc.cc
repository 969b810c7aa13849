// unify gc: lock, (with --reconcile, check every link record,) remove objects only the pool links.
#include <iostream>

#include "cli/command.h"
#include "cli/format.h"
#include "cli/json.h"
#include "cli/progress.h"
#include "gc/gc.h"

namespace unify {

namespace {

int run_gc(const Globals& g, bool dry_run, bool reconcile) {
    auto s = open_session(g, std::string("gc") + (dry_run ? " --dry-run" : ""), true);
    if (!s) return report(s.error());
    ProgressLine progress(progress_wanted(g));
    auto sum = collect_garbage(
        *s->pool, GcOptions{dry_run, g.verbose, g.jobs, reconcile, progress.callback()},
        progress.log());
    progress.finish();
    if (!sum) return report(sum.error());
    // The rest was done; the records that could not be checked (each named in a warning)
    // still make the run fail, as its job was to check them all.
    auto done = [&]() {
        if (!sum->links_unchecked) return kExitOk;
        // Not report(): under --json the summary above is the one document on stdout.
        std::cerr << "unify: error: " << format_count(sum->links_unchecked)
                  << " link records could not be checked and were kept (see the warnings "
                     "above); gc did the rest\n";
        return kExitError;
    };
    if (g.json) {
        print_json(gc_json(*sum, dry_run));
        return done();
    }
    if (g.quiet) return done();
    std::string would = dry_run ? "would be " : "";
    std::vector<std::pair<std::string, std::string>> rows = {
        {"objects seen", format_count(sum->objects_seen)},
        {"objects " + would + "removed", format_count(sum->objects_removed)},
        {"bytes " + would + "reclaimed", format_bytes(sum->bytes_reclaimed)},
        {"stale link records " + would + "dropped", format_count(sum->links_dropped)},
    };
    // Only after a gc that was killed before its commit, or objects removed by hand.
    if (sum->object_records_dropped)
        rows.push_back({"records of objects without a file " + would + "dropped",
                        format_count(sum->object_records_dropped)});
    std::cout << "gc" << (dry_run ? " (dry run, nothing changed)" : "") << "\n"
              << aligned_fields(rows);
    return done();
}

}  // namespace

Command add_gc_command(CLI::App& app, const Globals& g) {
    auto dry_run = std::make_shared<bool>(false);
    auto reconcile = std::make_shared<bool>(false);
    auto sub = app.add_subcommand("gc", "remove objects no guest links any more");
    sub->add_flag("-n,--dry-run", *dry_run, "change nothing; report what would be removed");
    sub->add_flag("--reconcile", *reconcile,
                  "also check every guest's link records against its paths and drop the stale "
                  "ones (one statx per link; import already does this for its own guest)");
    return {sub, [&g, dry_run, reconcile] { return run_gc(g, *dry_run, *reconcile); }};
}

}  // namespace unify
