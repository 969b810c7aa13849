// unify reindex: lock, rebuild the index from the pool and the guest roots (repair/reindex.h).
// It opens the pool without its index, which is what it replaces.
#include <iostream>

#include "cli/command.h"
#include "cli/format.h"
#include "cli/json.h"
#include "cli/progress.h"
#include "repair/reindex.h"

namespace unify {

namespace {

int run_reindex(const Globals& g) {
    auto s = open_session(g, "reindex", true, false);
    if (!s) return report(s.error());
    ReindexOptions opt;
    opt.verbose = g.verbose;
    opt.jobs = g.jobs;
    ProgressLine progress(progress_wanted(g));
    opt.progress = progress.callback();
    auto sum = reindex_pool(*s->pool, opt, progress.log());
    progress.finish();
    if (!sum) return report(sum.error());
    if (g.json) {
        Json j;
        j["command"] = "reindex";
        j["guests"] = sum->guests;
        put_path(j, "guests_from", sum->guests_from);
        j["objects"] = sum->objects;
        j["object_files"] = sum->object_files;
        j["bytes"] = sum->bytes;
        j["links"] = sum->links;
        j["not_recorded"] = sum->mismatched;
        j["strays"] = sum->strays;
        Json incomplete = Json::array();
        for (size_t i = 0; i < sum->guests_incomplete.size(); ++i) {
            Json o;
            put_path(o, "message", sum->guests_incomplete[i]);
            incomplete.push_back(std::move(o));
        }
        j["guests_incomplete"] = std::move(incomplete);
        put_path(j, "old_index", sum->old_index);
        print_json(j);
        return kExitOk;
    }
    if (g.quiet) return kExitOk;
    std::cout << "reindex " << s->pool->path() << "\n"
              << "  guests            " << format_count(sum->guests)
              << (sum->guests_from.empty() ? "" : " (from " + sum->guests_from + ")") << "\n"
              << "  objects           " << format_count(sum->objects) << " ("
              << format_count(sum->object_files) << " files, " << format_bytes(sum->bytes) << ")\n"
              << "  links             " << format_count(sum->links) << "\n";
    if (sum->mismatched)
        std::cout << "  not recorded      " << format_count(sum->mismatched)
                  << " objects that do not match their id (run `unify verify`)\n";
    if (sum->strays) std::cout << "  stray files       " << format_count(sum->strays) << "\n";
    for (const auto& m : sum->guests_incomplete) std::cout << "  incomplete        " << m << "\n";
    std::cout << "  old index         "
              << (sum->old_index.empty() ? "none" : "moved to " + sum->old_index) << "\n";
    return kExitOk;
}

}  // namespace

Command add_reindex_command(CLI::App& app, const Globals& g) {
    auto sub = app.add_subcommand(
        "reindex",
        "rebuild the index from the pool and the guest roots, after it was lost or damaged; "
        "the old one is moved to POOL/index.old.<time>");
    return {sub, [&g] { return run_reindex(g); }};
}

}  // namespace unify
