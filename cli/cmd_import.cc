// unify import NAME ROOT: lock, import, print the summary.
#include <iostream>

#include "cli/command.h"
#include "cli/format.h"
#include "importer/import.h"

namespace unify {

namespace {

struct ImportArgs {
    ImportOptions opt;
    std::vector<std::string> excludes;
    uint64_t min_size = 1;
    CLI::Option* exclude_opt = nullptr;
    CLI::Option* min_size_opt = nullptr;
};

int run_import(const Globals& g, ImportArgs& a) {
    ImportOptions opt = a.opt;
    if (*a.exclude_opt) opt.excludes = a.excludes;
    if (*a.min_size_opt) opt.min_size = a.min_size;
    opt.verbose = g.verbose;
    opt.jobs = g.jobs;
    auto s =
        open_session(g, "import " + opt.name + (opt.dry_run ? " --dry-run" : ""), !opt.dry_run);
    if (!s) return report(s.error());
    auto sum = import_guest(*s->pool, opt, std::cerr);
    if (!sum) return report(sum.error());
    if (g.quiet) return kExitOk;
    std::string would = sum->dry_run ? " (dry run: would be)" : "";
    std::cout << "import " << sum->name << " from " << sum->root
              << (sum->dry_run ? " (dry run, nothing changed)" : "") << "\n"
              << "  files seen        " << format_count(sum->files_seen) << "\n"
              << "  already linked    " << format_count(sum->already_linked) << "\n"
              << "  newly linked      " << format_count(sum->newly_linked) << would << "\n"
              << "  new objects       " << format_count(sum->new_objects) << " ("
              << format_bytes(sum->bytes_new_objects) << ", made from newly linked files)" << would
              << "\n"
              << "  bytes saved       " << format_bytes(sum->bytes_saved) << would << "\n";
    if (sum->temps_swept)
        std::cout << "  temporaries swept " << format_count(sum->temps_swept)
                  << " (left by an interrupted run)\n";
    if (!sum->skipped.empty()) {
        std::cout << "  skipped:\n";
        for (const auto& [reason, n] : sum->skipped)
            std::cout << "    " << format_count(n) << "  " << reason << "\n";
    }
    return kExitOk;
}

}  // namespace

Command add_import_command(CLI::App& app, const Globals& g) {
    auto a = std::make_shared<ImportArgs>();
    auto sub = app.add_subcommand(
        "import",
        "register guest NAME at ROOT (first time) and link its eligible files into the pool.\n"
        "Eligible: regular files of at least --min-size bytes outside the default exclusions\n"
        "(/etc /var /tmp /dev /proc /sys /run /home /root /mnt /boot /media /srv /lost+found)\n"
        "and outside every --exclude glob. Symlinks, devices, fifos, sockets and directories\n"
        "are never changed; mount points are not crossed.");
    sub->add_option("NAME", a->opt.name, "guest name")->required();
    sub->add_option("ROOT", a->opt.root, "guest root directory")->required();
    sub->add_flag("-n,--dry-run", a->opt.dry_run, "change nothing; report what would be done");
    a->exclude_opt = sub->add_option(
        "--exclude", a->excludes,
        "glob to leave private; with '/' it matches the whole guest path, else the file name; "
        "remembered for later imports of the guest");
    a->min_size_opt =
        sub->add_option("--min-size", a->min_size, "smallest file to unify, in bytes (default 1)");
    return {sub, [&g, a] { return run_import(g, *a); }};
}

}  // namespace unify
