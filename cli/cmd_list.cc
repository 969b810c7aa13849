// unify list: guests from the index (no lock).
#include <iostream>

#include "cli/command.h"
#include "cli/format.h"
#include "cli/json.h"

namespace unify {

namespace {

int run_list(const Globals& g) {
    auto s = open_session(g, "list", false);
    if (!s) return report(s.error());
    auto txn = s->pool->index().read();
    if (!txn) return report(txn.error());
    auto guests = (*txn)->guests();
    if (!guests) return report(guests.error());
    if (g.json) {
        print_json(list_json(*guests));
        return kExitOk;
    }
    if (guests->empty()) {
        std::cout << "no guests yet (add one with unify import NAME ROOT)\n";
        return kExitOk;
    }
    std::vector<std::vector<std::string>> rows = {{"NAME", "ROOT", "LAST IMPORT"}};
    for (const auto& gr : *guests)
        rows.push_back({gr.name, printable(gr.root), format_time(gr.last_import)});
    std::cout << aligned_columns(rows);
    return kExitOk;
}

}  // namespace

Command add_list_command(CLI::App& app, const Globals& g) {
    auto sub = app.add_subcommand("list", "list guests with their roots and last import");
    return {sub, [&g] { return run_list(g); }};
}

}  // namespace unify
