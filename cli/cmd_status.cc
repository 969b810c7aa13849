// unify status [NAME]: figures from the index (no lock).
#include <iostream>

#include "cli/command.h"
#include "cli/format.h"
#include "cli/json.h"
#include "importer/explain.h"
#include "query/status.h"

namespace unify {

namespace {

int run_status(const Globals& g, const std::string& name) {
    auto s = open_session(g, "status", false);
    if (!s) return report(s.error());
    auto st = pool_status(*s->pool, name.empty() ? std::nullopt : std::optional(name));
    if (!st) return report(st.error());
    if (g.json) {
        print_json(status_json(*s->pool, *st));
        return kExitOk;
    }
    const auto& set = s->pool->settings();
    if (set.reflink())
        std::cout << "pool " << s->pool->path() << " (share reflink)\n";
    else
        std::cout << "pool " << s->pool->path() << " (protection " << to_string(set.protect)
                  << (set.ignore_mtime ? ", mtime ignored" : "") << ")\n";
    std::cout << "  share mode        " << to_string(set.share) << "\n"
              << "  objects           " << format_count(st->objects) << "\n"
              << "  bytes in pool     " << format_bytes(st->pool_bytes) << "\n"
              << "  guests            " << format_count(st->guest_count) << "\n"
              << "  linked paths      " << format_count(st->links) << "\n"
              << "  bytes unshared    " << format_bytes(st->logical_bytes)
              << " (what the linked files would take without sharing)\n"
              << "  bytes saved       " << format_bytes(st->bytes_saved) << "\n";
    for (const auto& gs : st->guests)
        std::cout << "guest " << gs.guest.name << " (" << gs.guest.root << ")\n"
                  << "  files linked      " << format_count(gs.files_linked) << " ("
                  << format_bytes(gs.bytes_linked) << ")\n"
                  << "  bytes saved       " << format_bytes(gs.bytes_saved) << "\n"
                  << "  last import       " << format_time(gs.guest.last_import) << "\n"
                  << "  package database  "
                  << (gs.guest.last_import == 0 && gs.guest.package_dbs.empty()
                          ? "not recorded (no import of it completed)"
                          : describe_package_dbs(gs.guest.package_dbs, gs.guest.config_files))
                  << "\n"
                  << "  user rules        " << describe_rules(gs.guest.excludes) << "\n";
    return kExitOk;
}

}  // namespace

Command add_status_command(CLI::App& app, const Globals& g) {
    auto name = std::make_shared<std::string>();
    auto sub = app.add_subcommand("status", "pool and per-guest figures");
    sub->add_option("NAME", *name, "only this guest");
    return {sub, [&g, name] { return run_status(g, *name); }};
}

}  // namespace unify
