// unify init: make the directory, choose and prove the share mode and (hardlink pools) the
// protection mode on the pool's own filesystem, then create the pool. On failure a directory we
// created is removed again.
#include <sys/stat.h>
#include <unistd.h>

#include <iostream>

#include "cli/command.h"
#include "cli/json.h"
#include "store/extents.h"

namespace unify {

namespace {

struct InitOptions {
    std::string share = "auto";
    std::string protect = "auto";
    bool ignore_mtime = false;
};

// A reflink pool has nothing to protect: each guest file is its own inode, and a write gives
// the writer private blocks. --protect is for hardlink pools only.
Result<void> choose_protection(const InitOptions& o, int dirfd, const std::string& shown,
                               PoolSettings& settings) {
    if (settings.reflink()) {
        if (o.protect != "auto" && o.protect != "none")
            return fail("--protect " + o.protect +
                        " applies to hardlink pools only; a reflink pool protects nothing, "
                        "since guests write their own blocks (use --share hardlink for it)");
        settings.protect = ProtectMode::none;
        return {};
    }
    if (o.protect == "auto") {
        auto m = choose_protect_mode(dirfd, shown);
        if (!m) return std::unexpected(m.error());
        settings.protect = *m;
        return {};
    }
    settings.protect = *parse_protect_mode(o.protect);
    return check_protect_mode(settings.protect, dirfd, shown);
}

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
    auto share = choose_share_mode(o.share, dir->get(), g.pool);
    if (!share) return undo(share.error());
    settings.share = *share;
    if (auto r = choose_protection(o, dir->get(), g.pool, settings); !r) return undo(r.error());
    if (auto r = Pool::create(g.pool, settings); !r) return undo(r.error());
    if (g.json) {
        print_json(init_json(g.pool, settings));
    } else if (!g.quiet && settings.reflink()) {
        std::cout << "created pool " << g.pool << " (share reflink on "
                  << filesystem_name(dir->get()) << ")\n"
                  << "guest files keep their own inodes and metadata and share the objects' "
                     "blocks; a guest that writes a file gets private blocks\n";
    } else if (!g.quiet) {
        std::cout << "created pool " << g.pool << " (protection " << to_string(settings.protect)
                  << (o.ignore_mtime ? ", mtime ignored in object ids" : "") << ")\n"
                  << "share hardlink: each guest path becomes a hard link to its object"
                  << (o.share == "auto"
                          ? " (" + filesystem_name(dir->get()) + " cannot share extents)"
                          : std::string())
                  << "\n";
    }
    if (settings.reflink()) return kExitOk;
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
    sub->add_option("--share", o->share,
                    "auto (default: reflink where the filesystem shares extents, else "
                    "hardlink), hardlink or reflink (XFS, btrfs)")
        ->check(CLI::IsMember({"auto", "hardlink", "reflink"}));
    sub->add_option("--protect", o->protect,
                    "hardlink pools: auto (default), iunlink (Linux-VServer), immutable (stock "
                    "kernels) or none")
        ->check(CLI::IsMember({"auto", "iunlink", "immutable", "none"}));
    sub->add_flag("--ignore-mtime", o->ignore_mtime,
                  "leave mtime out of object ids (linked files take the object's mtime)");
    return {sub, [&g, o] { return run_init(g, *o); }};
}

}  // namespace unify
