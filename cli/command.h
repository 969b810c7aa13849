// The command table: each command lives in its own cli/cmd_*.cc, adds its subcommand and
// options to the app, and returns what to run once parsing chose it.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <vector>

#include "cli/session.h"

namespace unify {

struct Command {
    CLI::App* sub;
    std::function<int()> run;
};

Command add_init_command(CLI::App& app, const Globals& g);
Command add_import_command(CLI::App& app, const Globals& g);
Command add_gc_command(CLI::App& app, const Globals& g);
Command add_who_command(CLI::App& app, const Globals& g);
Command add_status_command(CLI::App& app, const Globals& g);
Command add_unshare_command(CLI::App& app, const Globals& g);
Command add_list_command(CLI::App& app, const Globals& g);
Command add_verify_command(CLI::App& app, const Globals& g);
Command add_reindex_command(CLI::App& app, const Globals& g);
Command add_forget_command(CLI::App& app, const Globals& g);

}  // namespace unify
