// unify forget NAME: lock, unshare every link of the guest (or delete its root), delete its
// record, print.
#include <iostream>

#include "cli/command.h"
#include "cli/format.h"
#include "cli/json.h"
#include "cli/progress.h"
#include "linker/forget.h"

namespace unify {

namespace {

int run_forget(const Globals& g, ForgetOptions opt) {
    auto s = open_session(g,
                          "forget " + opt.name + (opt.keep_links ? " --keep-links" : "") +
                              (opt.delete_root ? " --delete-root" : "") +
                              (opt.dry_run ? " --dry-run" : ""),
                          !opt.dry_run);
    if (!s) return report(s.error());
    opt.verbose = g.verbose;
    ProgressLine progress(progress_wanted(g));
    opt.progress = progress.callback();
    auto sum = forget_guest(*s->pool, opt, progress.log());
    progress.finish();
    // Each private copy takes room before the link it replaces frees anything; what was done
    // so far stays done, and a re-run goes on from there.
    if (!sum)
        return report_full(sum.error(), "the paths made private so far stay so; free some space",
                           "forget");
    if (opt.keep_links) {
        std::string how =
            s->pool->settings().protect == ProtectMode::immutable
                ? " They keep the immutable flag of their objects, so they cannot be deleted "
                  "either; to delete the root, use forget --delete-root instead."
                : "";
        std::cerr << "unify: warning: the files of guest '" << opt.name << "' under "
                  << printable(sum->root)
                  << " stay hard links to pool objects; gc reclaims those objects only after "
                     "the files are gone."
                  << how << "\n";
    }
    if (g.json) {
        print_json(forget_json(*sum));
        return kExitOk;
    }
    if (g.quiet) return kExitOk;
    std::string would = opt.dry_run ? " (dry run: would be)" : "";
    std::cout << "forget " << opt.name << " (" << printable(sum->root) << ")"
              << (opt.dry_run ? " (dry run, nothing changed)" : "") << "\n";
    if (opt.delete_root) {
        const DeleteRootSummary& d = sum->deleted;
        if (d.root_was_gone)
            std::cout << "  root already gone\n";
        else
            std::cout << "  root deleted" << would << ": " << format_count(d.linked)
                      << " linked files (nothing copied), " << format_count(d.files)
                      << " other files, " << format_count(d.dirs) << " directories, "
                      << format_count(d.other) << " symlinks and special files\n";
    } else if (opt.keep_links) {
        std::cout << "  link records dropped " << format_count(sum->records_dropped) << would
                  << " (the files stay linked)\n";
    } else {
        std::cout << "  files made private " << format_count(sum->unshared.unshared) << would
                  << "\n"
                  << "  bytes copied       " << format_bytes(sum->unshared.bytes_copied) << would
                  << "\n";
        if (sum->unshared.not_linked)
            std::cout << "  records dropped    " << format_count(sum->unshared.not_linked)
                      << " (paths no longer linked)\n";
        if (sum->unrecorded)
            std::cout << "  unrecorded links   " << format_count(sum->unrecorded)
                      << " (names of objects no record named, made private too)" << would << "\n";
    }
    std::cout << "  guest unregistered" << would << "\n";
    // A reflink guest's files still share their objects' blocks: nothing is garbage yet.
    if (s->pool->settings().reflink() && !opt.delete_root)
        std::cout << "its files keep sharing blocks with the pool's objects; `unify gc` reclaims "
                     "an object once no file shares its blocks\n";
    else
        std::cout << "run `unify gc` to reclaim objects no guest links any more\n";
    return kExitOk;
}

}  // namespace

Command add_forget_command(CLI::App& app, const Globals& g) {
    auto o = std::make_shared<ForgetOptions>();
    auto sub = app.add_subcommand(
        "forget",
        "unregister guest NAME: give it private copies of all its linked files, then delete "
        "its record, so that gc can reclaim the objects only it used");
    sub->add_option("NAME", o->name, "guest name")->required();
    sub->add_flag("--keep-links", o->keep_links,
                  "only unregister; the files stay linked (for a root about to be deleted)");
    auto del = sub->add_flag(
        "--delete-root", o->delete_root,
        "delete the guest's whole root (its object links inside their protection windows, "
        "nothing copied), then its record");
    del->excludes(sub->get_option("--keep-links"));
    sub->add_flag("-n,--dry-run", o->dry_run,
                  "change nothing; report what would be done (with -v, every path)");
    return {sub, [&g, o] { return run_forget(g, *o); }};
}

}  // namespace unify
