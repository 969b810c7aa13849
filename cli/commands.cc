// The command line: global options, then the command table (one cli/cmd_*.cc each).
#include "cli/commands.h"

#include <cstdlib>
#include <iostream>
#include <iterator>
#include <sstream>

#include "cli/command.h"
#include "cli/config_keys.h"
#include "cli/json.h"
#include "cli/version.h"
#include "store/interrupt.h"

namespace unify {

namespace {

constexpr const char* kConfigFile = "/etc/unify/unify.conf";

// CLI11's TOML/INI reader, except that $UNIFY_POOL beats a `pool` from the file: command line,
// then environment, then configuration file, then the built-in default.
class ConfigReader : public CLI::ConfigTOML {
  public:
    explicit ConfigReader(const CLI::App& app) : app_(app) {}
    std::vector<CLI::ConfigItem> from_config(std::istream& in) const override {
        // Kept as text too: an unknown key is reported with its line (cli/config_keys.h).
        std::string text(std::istreambuf_iterator<char>(in), {});
        std::istringstream copy(text);
        auto items = CLI::ConfigTOML::from_config(copy);
        check_config_keys(app_, items, app_.get_config_ptr()->as<std::string>(), text);
        const char* env = getenv("UNIFY_POOL");
        if (env && *env)
            std::erase_if(items, [](const CLI::ConfigItem& i) {
                return i.parents.empty() && i.name == "pool";
            });
        return items;
    }

  private:
    const CLI::App& app_;
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
    app.add_option("-j,--jobs", g.jobs,
                   "threads for hashing, linking, copying, gc and who (default: one per core)");
    app.add_flag("--json", g.json, "print one JSON document on stdout instead of the summary");
    // After --json, whose value is set first: `unify --version --json` prints a document.
    app.set_version_flag("--version", "", "print the version (and git revision) and exit");
    // Global options at the top, subcommand options in [import] etc.; the command line wins.
    // A missing default file is fine; a missing --config FILE is not.
    app.set_config("--config", kConfigFile, "read options from this file");
    app.config_formatter(std::make_shared<ConfigReader>(app));
    app.allow_config_extras(CLI::config_extras_mode::error);  // a misspelt key is an error

    std::vector<Command> commands = {
        add_init_command(app, g),   add_import_command(app, g), add_gc_command(app, g),
        add_who_command(app, g),    add_status_command(app, g), add_unshare_command(app, g),
        add_list_command(app, g),   add_verify_command(app, g), add_reindex_command(app, g),
        add_forget_command(app, g),
    };
    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForVersion&) {
        if (g.json)
            print_json(version_json());
        else
            std::cout << version_line() << "\n";
        return kExitOk;
    } catch (const CLI::ParseError& e) {
        // CLI11 says only that a subcommand is required when the word given is none: name it.
        auto rest = app.remaining();
        if (e.get_name() == "RequiredError" && !rest.empty()) {
            std::string known;
            for (const auto& c : commands) known += (known.empty() ? "" : ", ") + c.sub->get_name();
            std::cerr << "unify: unknown command '" << rest.front() << "' (commands: " << known
                      << "; see unify --help)\n";
            return kExitUsage;
        }
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
