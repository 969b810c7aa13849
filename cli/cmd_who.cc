// unify who TARGET: read the index (no lock), check each path, print.
#include <iostream>

#include "cli/command.h"
#include "cli/format.h"
#include "cli/json.h"
#include "query/who.h"

namespace unify {

namespace {

int run_who(const Globals& g, const std::string& target) {
    auto s = open_session(g, "who", false);
    if (!s) return report(s.error());
    auto ans = who(*s->pool, target, g.jobs);
    if (!ans) return report(ans.error());
    // A path that could not be checked is not part of the answer, and says why.
    for (const auto& u : ans->unchecked)
        std::cerr << "unify: warning: " << u.guest << ":" << printable(u.path)
                  << " could not be checked, not listed: " << printable(u.error) << "\n";
    if (g.json) {
        print_json(who_json(*ans));
        return kExitOk;
    }
    if (!ans->unified) {
        std::cout << printable(ans->target) << " is not unified: " << ans->why_not
                  << "; it is private to its guest\n";
        return kExitOk;
    }
    std::cout << "object " << ans->id.hex() << "\n"
              << "size   " << format_bytes(ans->size) << "\n"
              << "shared by " << ans->links.size() << " path" << (ans->links.size() == 1 ? "" : "s")
              << " (checked on the filesystem):\n";
    std::vector<std::vector<std::string>> rows;
    for (const auto& l : ans->links) rows.push_back({l.guest, printable(l.path)});
    std::cout << aligned_columns(rows, 2);
    return kExitOk;
}

}  // namespace

Command add_who_command(CLI::App& app, const Globals& g) {
    auto target = std::make_shared<std::string>();
    auto sub = app.add_subcommand(
        "who",
        "list the guests and paths sharing a file (TARGET: a host path inside a guest, "
        "NAME:/path, or an object id prefix of 8+ hex digits)");
    sub->add_option("TARGET", *target, "what to look up")->required();
    return {sub, [&g, target] { return run_who(g, *target); }};
}

}  // namespace unify
