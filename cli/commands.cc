// The command line: global options, then the command table (one cli/cmd_*.cc each).
#include "cli/commands.h"

#include <cstdlib>
#include <iostream>

#include "cli/command.h"
#include "store/interrupt.h"

namespace unify {

namespace {

constexpr const char* kConfigFile = "/etc/unify/unify.conf";

// CLI11's TOML/INI reader, except that $UNIFY_POOL beats a `pool` from the file: command line,
// then environment, then configuration file, then the built-in default.
class ConfigReader : public CLI::ConfigTOML {
  public:
    std::vector<CLI::ConfigItem> from_config(std::istream& in) const override {
        auto items = CLI::ConfigTOML::from_config(in);
        const char* env = getenv("UNIFY_POOL");
        if (env && *env)
            std::erase_if(items, [](const CLI::ConfigItem& i) {
                return i.parents.empty() && i.name == "pool";
            });
        return items;
    }
};

}  // namespace

int run_cli(int argc, char** argv) {
    CLI::App app{
        "unify: keep one copy of the files many Linux guests share, as protected hard links "
        "into a content-addressed pool."};
    app.footer(
        "Exit codes: 0 ok, 1 error, 2 usage.\n"
        "The pool is --pool DIR, else $UNIFY_POOL, else `pool` in the configuration file, else "
        "/vservers/.pool.");
    // Subcommands inherit this: global options may also follow the subcommand.
    app.fallthrough();
    app.require_subcommand(1, 1);
    Globals g;
    app.add_option("--pool", g.pool, "pool directory")->envname("UNIFY_POOL");
    app.add_flag("--wait", g.wait, "writers: wait for the pool lock instead of failing at once");
    app.add_flag("-v,--verbose", g.verbose, "log every action on stderr");
    app.add_flag("-q,--quiet", g.quiet, "print no summary");
    app.add_option("-j,--jobs", g.jobs, "threads for hashing and gc (default: one per core)");
    app.add_flag("--json", g.json, "print one JSON document on stdout instead of the summary");
    // Global options at the top, subcommand options in [import] etc.; the command line wins.
    // A missing default file is fine; a missing --config FILE is not.
    app.set_config("--config", kConfigFile, "read options from this file");
    app.config_formatter(std::make_shared<ConfigReader>());
    app.allow_config_extras(CLI::config_extras_mode::error);  // a misspelt key is an error

    std::vector<Command> commands = {
        add_init_command(app, g),   add_import_command(app, g), add_gc_command(app, g),
        add_who_command(app, g),    add_status_command(app, g), add_unshare_command(app, g),
        add_list_command(app, g),   add_verify_command(app, g), add_reindex_command(app, g),
        add_forget_command(app, g),
    };
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e) == 0 ? kExitOk : kExitUsage;
    }
    if (g.quiet && g.verbose) {
        std::cerr << "unify: --quiet and --verbose exclude each other\n";
        return kExitUsage;
    }
    set_json_errors(g.json);
    install_interrupt_handlers();
    for (const auto& c : commands)
        if (c.sub->parsed()) return c.run();
    return kExitUsage;
}

}  // namespace unify
