// unify unshare NAME [PATH...] [--package PKG...]: lock, copy back, print.
#include <iostream>

#include "cli/command.h"
#include "cli/format.h"
#include "cli/json.h"
#include "cli/progress.h"
#include "importer/unshare_select.h"
#include "linker/unshare.h"

namespace unify {

namespace {

int run_unshare(const Globals& g, UnshareOptions opt) {
    auto s = open_session(g, "unshare " + opt.name, !opt.dry_run);
    if (!s) return report(s.error());
    opt.verbose = g.verbose;
    opt.jobs = g.jobs;
    ProgressLine progress(progress_wanted(g));
    opt.progress = progress.callback();
    auto sum = unshare_guest(*s->pool, opt, progress.log(), unshare_selector(opt, progress.log()));
    progress.finish();
    // Each private copy takes room before the link it replaces frees anything; what was done
    // so far stays done, and a re-run goes on from there.
    if (!sum)
        return report_full(sum.error(), "the paths made private so far stay so; free some space",
                           "unshare");
    if (g.json) {
        print_json(unshare_json(opt, *sum));
        return kExitOk;
    }
    if (g.quiet) return kExitOk;
    std::string would = opt.dry_run ? " (dry run: would be)" : "";
    std::vector<std::pair<std::string, std::string>> fields = {
        {"files made private", format_count(sum->unshared) + would},
        {"bytes copied", format_bytes(sum->bytes_copied) + would},
    };
    if (sum->not_linked)
        fields.push_back({"records dropped",
                          format_count(sum->not_linked) + " (paths no longer linked)" + would});
    std::cout << "unshare " << opt.name << (opt.dry_run ? " (dry run, nothing changed)" : "")
              << "\n";
    for (const auto& p : sum->packages)
        std::cout << "  package " << p.package << " (" << p.db << "): " << format_count(p.unshared)
                  << " files made private, " << format_bytes(p.bytes_copied) << " copied" << would
                  << "\n";
    std::cout << aligned_fields(fields);
    // A dry run made nothing garbage.
    if (!opt.dry_run) std::cout << "run `unify gc` to reclaim objects no guest links any more\n";
    return kExitOk;
}

}  // namespace

Command add_unshare_command(CLI::App& app, const Globals& g) {
    auto o = std::make_shared<UnshareOptions>();
    auto sub = app.add_subcommand(
        "unshare",
        "give guest NAME private copies of the listed paths, of the files of the listed "
        "packages, or of all its links");
    sub->add_option("NAME", o->name, "guest name")->required();
    sub->add_option("PATH", o->paths,
                    "guest paths (/usr/bin/ls; resolved through the guest's own symlinks, so "
                    "dpkg -L output works) or host paths");
    sub->add_option("-p,--package", o->packages,
                    "the linked files of these installed packages (dpkg, rpm or pacman "
                    "database of the guest), with the __pycache__ files beside their .py files")
        ->take_all();
    sub->add_flag("-n,--dry-run", o->dry_run, "change nothing; report what would be done");
    return {sub, [&g, o] { return run_unshare(g, *o); }};
}

}  // namespace unify
