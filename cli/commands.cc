// Each command is a short list of steps: open the pool, take the lock if it writes, run the
// operation from store/ importer/ linker/ gc/, print the summary. Errors travel up as
// values and are printed once, here.
#include "cli/commands.h"

#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <ctime>
#include <iostream>

#include "cli/format.h"
#include "cli/status.h"
#include "cli/who.h"
#include "gc/gc.h"
#include "importer/import.h"
#include "linker/unshare.h"
#include "store/interrupt.h"
#include "store/lock.h"
#include "store/pool.h"

namespace unify {

namespace {

constexpr int kOk = 0, kError = 1, kUsage = 2;

struct Globals {
    std::string pool = "/vservers/.pool";
    bool wait = false;
    bool verbose = false;
    bool quiet = false;
    unsigned jobs = 0;
};

int report(const Error& e) {
    std::cerr << "unify: error: " << e.message << "\n";
    return kError;
}

// Opens the pool; writers also take its lock for the whole command.
struct Session {
    std::unique_ptr<Pool> pool;
    std::optional<PoolLock> lock;
};

Result<Session> open_session(const Globals& g, const std::string& command, bool writer) {
    Session s;
    auto pool = Pool::open(g.pool);
    if (!pool) return std::unexpected(pool.error());
    s.pool = std::move(*pool);
    if (writer) {
        auto lock = PoolLock::acquire(s.pool->fd(), s.pool->path(), command, g.wait);
        if (!lock) return std::unexpected(lock.error());
        s.lock = std::move(*lock);
        // A writer that cannot set or lift the pool's protection must stop before it
        // changes anything, not halfway through a guest.
        auto mode = s.pool->settings().protect;
        if (auto r = check_protect_mode(mode, s.pool->tmp_fd(), s.pool->path() + "/tmp"); !r)
            return std::unexpected(context(r.error(), "pool " + s.pool->path() + " (protection " +
                                                          to_string(mode) + ")"));
    }
    return s;
}

std::string when(int64_t t) {
    if (t == 0) return "never completed";
    char buf[64];
    time_t tt = time_t(t);
    strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", localtime(&tt));
    return buf;
}

int cmd_init(const Globals& g, const std::string& protect, bool ignore_mtime) {
    // The directory comes first: the protection probe must run on the pool's filesystem.
    bool created = mkdir(g.pool.c_str(), 0700) == 0;
    if (!created && errno != EEXIST) return report(sys_fail("init: mkdir", g.pool).error());
    auto undo = [&](const Error& e) {
        if (created) rmdir(g.pool.c_str());
        return report(e);
    };
    auto dir = open_dir_path(g.pool);
    if (!dir) return undo(dir.error());
    PoolSettings settings;
    settings.ignore_mtime = ignore_mtime;
    if (protect == "auto") {
        auto m = choose_protect_mode(dir->get(), g.pool);
        if (!m) return undo(m.error());
        settings.protect = *m;
    } else {
        settings.protect = *parse_protect_mode(protect);
        if (auto r = check_protect_mode(settings.protect, dir->get(), g.pool); !r)
            return undo(r.error());
    }
    if (auto r = Pool::create(g.pool, settings); !r) return undo(r.error());
    std::cout << "created pool " << g.pool << " (protection " << to_string(settings.protect)
              << (ignore_mtime ? ", mtime ignored in object ids" : "") << ")\n";
    if (settings.protect == ProtectMode::none)
        std::cerr << "unify: warning: --protect none: shared files are not protected; a guest "
                     "that writes a shared file in place changes it for every guest that "
                     "shares it\n";
    else if (settings.protect == ProtectMode::immutable)
        std::cout << "shared files will be immutable: before a package upgrade inside a guest, "
                     "run `unify unshare NAME`\n";
    return kOk;
}

int cmd_import(const Globals& g, ImportOptions opt) {
    auto s = open_session(g, "import " + opt.name + (opt.dry_run ? " --dry-run" : ""), !opt.dry_run);
    if (!s) return report(s.error());
    opt.verbose = g.verbose;
    opt.jobs = g.jobs;
    auto sum = import_guest(*s->pool, opt, std::cerr);
    if (!sum) return report(sum.error());
    if (g.quiet) return kOk;
    std::string would = sum->dry_run ? " (dry run: would be)" : "";
    std::cout << "import " << sum->name << " from " << sum->root << (sum->dry_run ? " (dry run, nothing changed)" : "") << "\n"
              << "  files seen        " << format_count(sum->files_seen) << "\n"
              << "  already linked    " << format_count(sum->already_linked) << "\n"
              << "  newly linked      " << format_count(sum->newly_linked) << would << "\n"
              << "  new objects       " << format_count(sum->new_objects) << " ("
              << format_bytes(sum->bytes_new_objects) << ", made from newly linked files)" << would << "\n"
              << "  bytes saved       " << format_bytes(sum->bytes_saved) << would << "\n";
    if (sum->temps_swept)
        std::cout << "  temporaries swept " << format_count(sum->temps_swept)
                  << " (left by an interrupted run)\n";
    if (!sum->skipped.empty()) {
        std::cout << "  skipped:\n";
        for (const auto& [reason, n] : sum->skipped)
            std::cout << "    " << format_count(n) << "  " << reason << "\n";
    }
    return kOk;
}

int cmd_gc(const Globals& g, bool dry_run) {
    auto s = open_session(g, std::string("gc") + (dry_run ? " --dry-run" : ""), true);
    if (!s) return report(s.error());
    auto sum = collect_garbage(*s->pool, GcOptions{dry_run, g.verbose, g.jobs}, std::cerr);
    if (!sum) return report(sum.error());
    if (g.quiet) return kOk;
    std::string would = dry_run ? "would be " : "";
    std::cout << "gc" << (dry_run ? " (dry run, nothing changed)" : "") << "\n"
              << "  objects seen      " << format_count(sum->objects_seen) << "\n"
              << "  objects " << would << "removed " << format_count(sum->objects_removed) << "\n"
              << "  bytes " << would << "reclaimed " << format_bytes(sum->bytes_reclaimed) << "\n"
              << "  stale link records " << would << "dropped " << format_count(sum->links_dropped)
              << "\n";
    return kOk;
}

int cmd_who(const Globals& g, const std::string& target) {
    auto s = open_session(g, "who", false);
    if (!s) return report(s.error());
    auto ans = who(*s->pool, target);
    if (!ans) return report(ans.error());
    if (!ans->unified) {
        std::cout << printable(ans->target) << " is not unified: " << ans->why_not
                  << "; it is private to its guest\n";
        return kOk;
    }
    std::cout << "object " << ans->id.hex() << "\n"
              << "size   " << format_bytes(ans->size) << "\n"
              << "shared by " << ans->links.size() << " path" << (ans->links.size() == 1 ? "" : "s")
              << " (checked on the filesystem):\n";
    for (const auto& l : ans->links)
        std::cout << "  " << l.guest << "  " << printable(l.path) << "\n";
    return kOk;
}

int cmd_status(const Globals& g, const std::string& name) {
    auto s = open_session(g, "status", false);
    if (!s) return report(s.error());
    auto st = pool_status(*s->pool, name.empty() ? std::nullopt : std::optional(name));
    if (!st) return report(st.error());
    const auto& set = s->pool->settings();
    std::cout << "pool " << s->pool->path() << " (protection " << to_string(set.protect)
              << (set.ignore_mtime ? ", mtime ignored" : "") << ")\n"
              << "  objects           " << format_count(st->objects) << "\n"
              << "  bytes in pool     " << format_bytes(st->pool_bytes) << "\n"
              << "  guests            " << format_count(st->guests.size()) << "\n"
              << "  linked paths      " << format_count(st->links) << "\n"
              << "  bytes unshared    " << format_bytes(st->logical_bytes)
              << " (what the linked files would take without sharing)\n"
              << "  bytes saved       " << format_bytes(st->bytes_saved) << "\n";
    for (const auto& gs : st->guests)
        std::cout << "guest " << gs.guest.name << " (" << gs.guest.root << ")\n"
                  << "  files linked      " << format_count(gs.files_linked) << " ("
                  << format_bytes(gs.bytes_linked) << ")\n"
                  << "  bytes saved       " << format_bytes(gs.bytes_saved) << "\n"
                  << "  last import       " << when(gs.guest.last_import) << "\n";
    return kOk;
}

int cmd_unshare(const Globals& g, UnshareOptions opt) {
    auto s = open_session(g, "unshare " + opt.name, !opt.dry_run);
    if (!s) return report(s.error());
    opt.verbose = g.verbose;
    auto sum = unshare_guest(*s->pool, opt, std::cerr);
    if (!sum) return report(sum.error());
    if (g.quiet) return kOk;
    std::string would = opt.dry_run ? " (dry run: would be)" : "";
    std::cout << "unshare " << opt.name << "\n"
              << "  files made private " << format_count(sum->unshared) << would << "\n"
              << "  bytes copied       " << format_bytes(sum->bytes_copied) << would << "\n";
    if (sum->not_linked)
        std::cout << "  records dropped    " << format_count(sum->not_linked)
                  << " (paths no longer linked)\n";
    std::cout << "run `unify gc` to reclaim objects no guest links any more\n";
    return kOk;
}

int cmd_list(const Globals& g) {
    auto s = open_session(g, "list", false);
    if (!s) return report(s.error());
    auto txn = s->pool->index().read();
    if (!txn) return report(txn.error());
    auto guests = (*txn)->guests();
    if (!guests) return report(guests.error());
    if (guests->empty()) std::cout << "no guests yet (add one with unify import NAME ROOT)\n";
    for (const auto& gr : *guests)
        std::cout << gr.name << "  " << gr.root << "  last import: " << when(gr.last_import)
                  << "\n";
    return kOk;
}

}  // namespace

int run_cli(int argc, char** argv) {
    CLI::App app{
        "unify: keep one copy of the files many Linux guests share, as protected hard links "
        "into a content-addressed pool."};
    app.footer(
        "Exit codes: 0 ok, 1 error, 2 usage.\n"
        "The pool is --pool DIR, else $UNIFY_POOL, else /vservers/.pool.");
    app.fallthrough();
    app.require_subcommand(1, 1);
    Globals g;
    app.add_option("--pool", g.pool, "pool directory")->envname("UNIFY_POOL");
    app.add_flag("--wait", g.wait, "writers: wait for the pool lock instead of failing at once");
    app.add_flag("-v,--verbose", g.verbose, "log every action on stderr");
    app.add_flag("-q,--quiet", g.quiet, "print no summary");
    app.add_option("-j,--jobs", g.jobs, "threads for hashing and gc (default: one per core)");

    std::string protect = "auto";
    bool ignore_mtime = false;
    auto init = app.add_subcommand("init", "create a pool");
    init->add_option("--protect", protect,
                     "auto (default), iunlink (Linux-VServer), immutable (stock kernels) or none")
        ->check(CLI::IsMember({"auto", "iunlink", "immutable", "none"}));
    init->add_flag("--ignore-mtime", ignore_mtime,
                   "leave mtime out of object ids (linked files take the object's mtime)");

    ImportOptions iopt;
    std::vector<std::string> excludes;
    uint64_t min_size = 1;
    auto import = app.add_subcommand(
        "import",
        "register guest NAME at ROOT (first time) and link its eligible files into the pool.\n"
        "Eligible: regular files of at least --min-size bytes outside the default exclusions\n"
        "(/etc /var /tmp /dev /proc /sys /run /home /root /mnt /boot /media /srv /lost+found)\n"
        "and outside every --exclude glob. Symlinks, devices, fifos, sockets and directories\n"
        "are never changed; mount points are not crossed.");
    import->add_option("NAME", iopt.name, "guest name")->required();
    import->add_option("ROOT", iopt.root, "guest root directory")->required();
    import->add_flag("-n,--dry-run", iopt.dry_run, "change nothing; report what would be done");
    auto exclude_opt = import->add_option(
        "--exclude", excludes,
        "glob to leave private; with '/' it matches the whole guest path, else the file name; "
        "remembered for later imports of the guest");
    auto min_size_opt =
        import->add_option("--min-size", min_size, "smallest file to unify, in bytes (default 1)");

    bool gc_dry = false;
    auto gc = app.add_subcommand("gc", "remove objects no guest links any more");
    gc->add_flag("-n,--dry-run", gc_dry, "change nothing; report what would be removed");

    std::string target;
    auto who_cmd = app.add_subcommand(
        "who", "list the guests and paths sharing a file (TARGET: a host path inside a guest, "
               "NAME:/path, or an object id prefix of 8+ hex digits)");
    who_cmd->add_option("TARGET", target, "what to look up")->required();

    std::string status_name;
    auto status = app.add_subcommand("status", "pool and per-guest figures");
    status->add_option("NAME", status_name, "only this guest");

    UnshareOptions uopt;
    auto unshare = app.add_subcommand(
        "unshare", "give guest NAME private copies of the listed paths, or of all its links");
    unshare->add_option("NAME", uopt.name, "guest name")->required();
    unshare->add_option("PATH", uopt.paths, "guest paths (/usr/bin/ls) or host paths");
    unshare->add_flag("-n,--dry-run", uopt.dry_run, "change nothing; report what would be done");

    auto list = app.add_subcommand("list", "list guests with their roots and last import");

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        int code = app.exit(e);
        return code == 0 ? kOk : kUsage;
    }
    if (g.quiet && g.verbose) {
        std::cerr << "unify: --quiet and --verbose exclude each other\n";
        return kUsage;
    }
    install_interrupt_handlers();
    if (*init) return cmd_init(g, protect, ignore_mtime);
    if (*import) {
        if (*exclude_opt) iopt.excludes = excludes;
        if (*min_size_opt) iopt.min_size = min_size;
        return cmd_import(g, iopt);
    }
    if (*gc) return cmd_gc(g, gc_dry);
    if (*who_cmd) return cmd_who(g, target);
    if (*status) return cmd_status(g, status_name);
    if (*unshare) return cmd_unshare(g, uopt);
    if (*list) return cmd_list(g);
    return kUsage;
}

}  // namespace unify
