// unify import NAME ROOT: lock, import, print the summary.
#include <iostream>

#include "cli/command.h"
#include "cli/format.h"
#include "cli/json.h"
#include "cli/progress.h"
#include "importer/explain.h"
#include "importer/import.h"
#include "importer/rules.h"

namespace unify {

namespace {

struct ImportArgs {
    ImportOptions opt;
    std::vector<std::string> excludes;
    uint64_t min_size = 1;
    CLI::Option* exclude_opt = nullptr;
    CLI::Option* min_size_opt = nullptr;
    std::vector<std::string> includes, exclude_from;
    std::string explain;
    CLI::Option* include_opt = nullptr;
    CLI::Option* exclude_from_opt = nullptr;
    CLI::Option* explain_opt = nullptr;
    CLI::App* sub = nullptr;
};

// The rule order and the default list, for `unify import --help`.
std::string import_rules_help() {
    std::string s =
        "Rules, first match wins:\n"
        "  1. configuration files named by the guest's package database (dpkg conffiles, rpm\n"
        "     %config, pacman backup files) stay private, wherever they are;\n"
        "  2. the user's rules, in the order given (--exclude, --include, --exclude-from);\n"
        "     they are stored with the guest and used again until a run gives new ones\n"
        "     (--exclude-from /dev/null clears them);\n"
        "  3. the default rules (a hardlink pool's list leaves out those marked\n"
        "     'reflink pools'):\n";
    for (const Rule& r : default_rules(ShareMode::reflink))
        s += "       " + std::string(r.include ? "+ " : "- ") + r.glob +
             std::string(r.glob.size() < 24 ? 24 - r.glob.size() : 1, ' ') + r.note + "\n";
    s += "A path no rule matches is unified. A rule that matches a directory covers all below\n"
         "it; '*' does not match '/'.";
    return s;
}

// The rule options in the order their values came: the command line's (parse_order), then
// any from the configuration file ([import] in unify.conf), which parse_order does not list:
// its includes first (so that they can make exceptions to its excludes), then its excludes,
// then its exclude-from files. CLI11 gives an option either the command line's values or the
// file's, never both.
std::vector<const CLI::Option*> rule_order(const ImportArgs& a) {
    std::vector<const CLI::Option*> order;
    std::map<const CLI::Option*, size_t> seen;
    for (const CLI::Option* o : a.sub->parse_order()) {
        order.push_back(o);
        ++seen[o];
    }
    for (const CLI::Option* o : {a.include_opt, a.exclude_opt, a.exclude_from_opt})
        for (size_t k = seen[o]; k < o->results().size(); ++k) order.push_back(o);
    return order;
}

// The user's rules in command-line order ("+GLOB"/"-GLOB"): --exclude, --include and the
// lines of each --exclude-from file, interleaved as given. Unset: none given on this run.
Result<std::optional<std::vector<std::string>>> user_rules(const ImportArgs& a) {
    if (!*a.exclude_opt && !*a.include_opt && !*a.exclude_from_opt) return std::nullopt;
    std::vector<std::string> out;
    std::map<const CLI::Option*, size_t> used;
    for (const CLI::Option* o : rule_order(a)) {
        if (o != a.exclude_opt && o != a.include_opt && o != a.exclude_from_opt) continue;
        size_t k = used[o]++;
        if (k >= o->results().size()) continue;
        const std::string& v = o->results()[k];
        if (o == a.exclude_from_opt) {
            auto lines = read_rule_file(v);
            if (!lines) return std::unexpected(lines.error());
            out.insert(out.end(), lines->begin(), lines->end());
        } else {
            out.push_back((o == a.include_opt ? "+" : "-") + v);
        }
    }
    return out;
}

int run_import(const Globals& g, ImportArgs& a) {
    ImportOptions opt = a.opt;
    auto rules = user_rules(a);
    if (!rules) return report(rules.error());
    if (*rules) opt.rules = **rules;
    if (*a.min_size_opt) opt.min_size = a.min_size;
    opt.verbose = g.verbose;
    opt.jobs = g.jobs;
    if (*a.explain_opt) {  // no lock, no change
        auto s = open_session(g, "import --explain", false);
        if (!s) return report(s.error());
        auto line = explain_path(*s->pool, opt, a.explain, std::cerr);
        if (!line) return report(line.error());
        if (g.json) {
            Json j = {{"command", "import"}, {"name", opt.name}};
            put_path(j, "explain", a.explain);
            j["answer"] = *line;  // printable already (importer/explain.cc)
            print_json(j);
            return kExitOk;
        }
        std::cout << *line << "\n";
        return kExitOk;
    }
    auto s =
        open_session(g, "import " + opt.name + (opt.dry_run ? " --dry-run" : ""), !opt.dry_run);
    if (!s) return report(s.error());
    ProgressLine progress(progress_wanted(g));
    opt.progress = progress.callback();
    auto sum = import_guest(*s->pool, opt, progress.log());
    progress.finish();
    // Objects are made (copies of files a guest has under several names) before their paths
    // are linked, which is what frees space: a re-run on a full disk stops the same way until
    // something is freed first.
    if (!sum)
        return report_full(sum.error(),
                           "free some space (`unify gc` removes the objects this run made but "
                           "could not link yet)",
                           "import");
    if (g.json) {
        print_json(import_json(*sum));
        return kExitOk;
    }
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
    std::cout << "  package database  " << describe_package_dbs(sum->package_dbs, sum->config_files)
              << "\n";
    for (const auto& w : sum->warnings) std::cout << "  warning: " << w << "\n";
    if (sum->made_private)
        std::cout << "  made private      " << format_count(sum->made_private) << would
                  << " (linked, and now kept private by the rules)\n";
    if (sum->records_dropped)
        std::cout << "  records dropped   " << format_count(sum->records_dropped) << would
                  << " (paths removed or replaced since they were linked)\n";
    if (sum->temps_swept)
        std::cout << "  temporaries swept " << format_count(sum->temps_swept)
                  << " (left by an interrupted run)\n";
    if (!sum->skipped.empty()) {
        std::cout << "  skipped:\n";
        uint64_t config_met = 0;
        for (const auto& [reason, n] : sum->skipped) {
            std::cout << "    " << format_count(n) << "  " << reason << "\n";
            if (reason.starts_with("configuration file of a package")) config_met += n;
        }
        // Why two numbers: the package database line counts every configuration file the
        // database names, the skip list only those the walk met one by one.
        if (config_met && config_met < sum->config_files)
            std::cout << "  (of the " << format_count(sum->config_files)
                      << " configuration files the package database names, the walk met "
                      << format_count(config_met)
                      << "; the others are in directories not walked, such as /etc, or not in "
                         "the guest)\n";
    }
    return kExitOk;
}

}  // namespace

Command add_import_command(CLI::App& app, const Globals& g) {
    auto a = std::make_shared<ImportArgs>();
    auto sub = app.add_subcommand(
        "import",
        "register guest NAME at ROOT (first time) and link its eligible files into the pool.\n"
        "Eligible: regular files of at least --min-size bytes that the rules let be unified.\n"
        "Symlinks, devices, fifos, sockets and directories are never changed; mount points\n"
        "are not crossed.");
    sub->footer(import_rules_help());
    sub->add_option("NAME", a->opt.name, "guest name")->required();
    sub->add_option("ROOT", a->opt.root, "guest root directory")->required();
    sub->add_flag("-n,--dry-run", a->opt.dry_run, "change nothing; report what would be done");
    const char* exclude_help =
        "GLOB to keep private (rule '- GLOB'); with '/' it matches the whole guest path, else "
        "one path component";
    a->exclude_opt = sub->add_option("--exclude", a->excludes, exclude_help)->type_name("GLOB");
    a->include_opt = sub->add_option("--include", a->includes,
                                     "GLOB to unify (rule '+ GLOB'), also below an excluded tree")
                         ->type_name("GLOB");
    a->exclude_from_opt =
        sub->add_option("--exclude-from", a->exclude_from,
                        "FILE of rules, one a line: '+ GLOB', '- GLOB', '# comment'")
            ->type_name("FILE");
    a->explain_opt = sub->add_option("--explain", a->explain,
                                     "tell whether PATH would be unified and which rule decides; "
                                     "imports nothing, takes no lock")
                         ->type_name("PATH");
    a->min_size_opt = sub->add_option("--min-size", a->min_size,
                                      "smallest file to unify, in bytes (default 1; 65536 in a "
                                      "reflink pool)")
                          // CLI11 reads "-5" into a uint64_t as 2^64 - 5, which would be kept.
                          ->check(CLI::Validator(
                              [](std::string& v) {
                                  return v.find('-') == std::string::npos
                                             ? std::string()
                                             : "a size in bytes, not negative: " + v;
                              },
                              "BYTES"));
    a->sub = sub;
    return {sub, [&g, a] { return run_import(g, *a); }};
}

}  // namespace unify
