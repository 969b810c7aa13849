// unify init: make the directory, choose and prove the protection mode on the pool's own
// filesystem, then create the pool. On failure a directory we created is removed again.
#include <sys/stat.h>
#include <unistd.h>

#include <iostream>

#include "cli/command.h"
#include "cli/json.h"

namespace unify {

namespace {

struct InitOptions {
    std::string protect = "auto";
    bool ignore_mtime = false;
};

int run_init(const Globals& g, const InitOptions& o) {
    bool created = mkdir(g.pool.c_str(), 0700) == 0;
    if (!created && errno != EEXIST) return report(sys_fail("init: mkdir", g.pool).error());
    auto undo = [&](const Error& e) {
        if (created) rmdir(g.pool.c_str());
        return report(e);
    };
    auto dir = open_dir_path(g.pool);
    if (!dir) return undo(dir.error());
    PoolSettings settings;
    settings.ignore_mtime = o.ignore_mtime;
    if (o.protect == "auto") {
        auto m = choose_protect_mode(dir->get(), g.pool);
        if (!m) return undo(m.error());
        settings.protect = *m;
    } else {
        settings.protect = *parse_protect_mode(o.protect);
        if (auto r = check_protect_mode(settings.protect, dir->get(), g.pool); !r)
            return undo(r.error());
    }
    if (auto r = Pool::create(g.pool, settings); !r) return undo(r.error());
    if (g.json)
        print_json(init_json(g.pool, settings));
    else if (!g.quiet)
        std::cout << "created pool " << g.pool << " (protection " << to_string(settings.protect)
                  << (o.ignore_mtime ? ", mtime ignored in object ids" : "") << ")\n";
    if (settings.protect == ProtectMode::none)
        std::cerr << "unify: warning: --protect none: shared files are not protected; a guest "
                     "that writes a shared file in place changes it for every guest that "
                     "shares it\n";
    else if (settings.protect == ProtectMode::immutable && !g.quiet && !g.json)
        std::cout << "shared files will be immutable: before a package upgrade inside a guest, "
                     "run `unify unshare NAME`\n";
    return kExitOk;
}

}  // namespace

Command add_init_command(CLI::App& app, const Globals& g) {
    auto o = std::make_shared<InitOptions>();
    auto sub = app.add_subcommand("init", "create a pool");
    sub->add_option("--protect", o->protect,
                    "auto (default), iunlink (Linux-VServer), immutable (stock kernels) or none")
        ->check(CLI::IsMember({"auto", "iunlink", "immutable", "none"}));
    sub->add_flag("--ignore-mtime", o->ignore_mtime,
                  "leave mtime out of object ids (linked files take the object's mtime)");
    return {sub, [&g, o] { return run_init(g, *o); }};
}

}  // namespace unify
