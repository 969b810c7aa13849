// unify verify [--full] [--quarantine]: lock, check every object, print what is wrong and
// the guest paths it concerns; exit 1 if anything is damaged (repair/verify.h says what counts).
// verify takes the pool lock even without --quarantine: next to a running import it would
// see objects half made (linked into the pool but not yet protected and hashed again).
#include <algorithm>
#include <iostream>

#include "cli/command.h"
#include "cli/format.h"
#include "cli/json.h"
#include "cli/progress.h"
#include "repair/verify.h"
#include "store/protect.h"

namespace unify {

namespace {

struct VerifyArgs {
    bool full = false;
    bool quarantine = false;
};

Json link_json(const std::string& guest, const std::string& path) {
    Json j;
    j["guest"] = guest;
    put_path(j, "path", path);
    return j;
}

Json links_json(const std::vector<VerifyLink>& links) {
    Json out = Json::array();
    for (const auto& l : links) out.push_back(link_json(l.guest, l.path));
    return out;
}

Json unchecked_json(const std::vector<UncheckedLink>& links) {
    Json out = Json::array();
    for (const auto& l : links) {
        Json j = link_json(l.guest, l.path);
        put_path(j, "error", l.error);
        out.push_back(std::move(j));
    }
    return out;
}

Json verify_json(const VerifyArgs& a, const VerifySummary& sum) {
    Json j;
    j["command"] = "verify";
    j["full"] = a.full;
    j["quarantine"] = a.quarantine;
    j["ok"] = sum.ok();
    j["objects_checked"] = sum.objects_checked;
    j["bytes_checked"] = sum.bytes_checked;
    Json damaged = Json::array();
    for (const auto& d : sum.damaged) {
        Json o;
        o["object"] = d.name;
        o["id"] = d.id.hex();
        o["replica"] = d.replica;
        o["content"] = d.content;
        o["metadata"] = d.metadata;
        o["unprotected"] = d.unprotected;
        o["recorded"] = d.recorded;
        o["problems"] = describe(d, a.full);
        o["links"] = links_json(d.links);
        if (!d.unchecked.empty()) o["unchecked"] = unchecked_json(d.unchecked);
        if (a.quarantine) {
            o["fixed"] = d.fixed;
            put_path(o, "action", d.action);
        }
        damaged.push_back(std::move(o));
    }
    j["damaged"] = std::move(damaged);
    Json missing = Json::array();
    for (const auto& m : sum.missing) {
        Json o;
        o["id"] = m.id.hex();
        o["links"] = links_json(m.links);
        if (a.quarantine) put_path(o, "action", m.action);
        missing.push_back(std::move(o));
    }
    j["missing"] = std::move(missing);
    j["wrong_records"] = sum.bad_records;
    if (a.quarantine) j["wrong_records_rewritten"] = sum.bad_records_fixed;
    j["unindexed"] = sum.unindexed;
    Json flagged = Json::array();
    for (const auto& [name, flags] : sum.flagged)
        flagged.push_back({{"object", name}, {"flags", describe_guest_flags(flags)}});
    j["flags_set_by_a_guest"] = std::move(flagged);
    if (a.quarantine && !sum.flagged.empty()) j["flags_cleared"] = sum.flags_cleared;
    if (sum.sharers_checked) {
        j["sharers_checked"] = sum.sharers_checked;
        j["sharers_gone"] = links_json(sum.sharers_gone);
    }
    if (!sum.sharers_unchecked.empty())
        j["sharers_unchecked"] = unchecked_json(sum.sharers_unchecked);
    Json strays = Json::array();
    for (const auto& stray : sum.strays) {
        Json o;
        put_path(o, "path", stray);
        strays.push_back(std::move(o));
    }
    j["strays"] = std::move(strays);
    j["gc_interrupted"] = sum.gc_interrupted;
    return j;
}

// What a gc killed between its unlinks and its commit leaves, and its next run finishes:
// records of objects it removed, and an object it unprotected to remove but did not. For
// those alone, verify --quarantine would only send the admin the long way round.
bool only_gc_leftovers(const VerifySummary& sum) {
    auto leftover = [](const DamagedObject& d) {
        return d.unprotected && !d.content && !d.metadata && d.links.empty() && d.unchecked.empty();
    };
    return sum.bad_records.empty() && sum.flagged.empty() &&
           std::all_of(sum.damaged.begin(), sum.damaged.end(), leftover);
}

void print_links(const std::vector<VerifyLink>& links, const char* how) {
    if (links.empty()) std::cout << "  " << how << " by no guest path\n";
    for (const auto& l : links)
        std::cout << "  " << how << " by " << l.guest << ":" << printable(l.path) << "\n";
}

int run_verify(const Globals& g, const VerifyArgs& a) {
    std::string command = "verify";
    if (a.full) command += " --full";
    if (a.quarantine) command += " --quarantine";
    auto s = open_session(g, command, true);
    if (!s) return report(s.error());
    VerifyOptions opt;
    opt.full = a.full;
    opt.quarantine = a.quarantine;
    opt.verbose = g.verbose;
    opt.jobs = g.jobs;
    ProgressLine progress(progress_wanted(g));
    opt.progress = progress.callback();
    auto sum = verify_pool(*s->pool, opt, progress.log());
    progress.finish();
    if (!sum) return report(sum.error());
    // Paths that could not be checked are said on stderr also with --json and --quiet.
    auto warn = [](const UncheckedLink& u) {
        std::cerr << "unify: warning: " << u.guest << ":" << printable(u.path)
                  << " could not be checked: " << printable(u.error) << "\n";
    };
    for (const auto& d : sum->damaged)
        for (const auto& u : d.unchecked) warn(u);
    for (const auto& u : sum->sharers_unchecked) warn(u);
    if (g.json) {
        print_json(verify_json(a, *sum));
        return sum->ok() ? kExitOk : kExitError;
    }

    // Problems are printed also with --quiet: they are the answer, not a summary.
    for (const auto& d : sum->damaged) {
        std::cout << "damaged object " << s->pool->path() << "/objects/" << d.name << "\n"
                  << "  " << describe(d, a.full) << "\n";
        print_links(d.links, "linked");
        if (!d.action.empty()) std::cout << "  quarantine: " << d.action << "\n";
    }
    for (const auto& m : sum->missing) {
        std::cout << "missing object " << m.id.hex()
                  << ": the index records it, but no file of it is in the pool\n";
        print_links(m.links, "recorded as linked");
        if (!m.action.empty()) std::cout << "  quarantine: " << m.action << "\n";
    }
    for (const auto& name : sum->bad_records)
        std::cout << "wrong index record for " << s->pool->path() << "/objects/" << name
                  << ": the object matches its id, its record does not"
                  << (a.quarantine && sum->bad_records_fixed ? " (record rewritten)" : "") << "\n";
    if (!g.quiet) {
        for (const auto& name : sum->unindexed)
            std::cout << "unindexed object " << s->pool->path() << "/objects/" << name
                      << " (left by an interrupted import: the next import that meets it "
                         "records it, gc removes it if nothing links it)\n";
        // An interrupted import leaves a batch at most; more are an index older than the pool.
        if (sum->unindexed.size() > 4096)
            std::cout << "hint: " << format_count(sum->unindexed.size())
                      << " unindexed objects are more than an interrupted import leaves: the "
                         "index may be older than the pool (restored from a backup?); unify "
                         "reindex rebuilds it from the pool and the guest roots\n";
        for (const auto& [name, flags] : sum->flagged)
            std::cout << "flags set by a guest on " << s->pool->path() << "/objects/" << name
                      << ": " << describe_guest_flags(flags)
                      << (a.quarantine && sum->flags_cleared
                              ? " (cleared)"
                              : " (every guest linking it has them; verify --quarantine clears "
                                "them)")
                      << "\n";
        for (const auto& stray : sum->strays) std::cout << "stray file " << stray << "\n";
        std::cout << "verify" << (a.full ? " --full (SHA-256 of every object)" : " (XXH3)") << "\n"
                  << "  objects checked   " << format_count(sum->objects_checked) << " ("
                  << format_bytes(sum->bytes_checked) << ")\n"
                  << "  damaged           " << format_count(sum->damaged.size()) << "\n"
                  << "  missing           " << format_count(sum->missing.size()) << "\n"
                  << "  wrong records     " << format_count(sum->bad_records.size()) << "\n"
                  << "  unindexed         " << format_count(sum->unindexed.size()) << "\n"
                  << "  stray files       " << format_count(sum->strays.size()) << "\n";
        if (s->pool->settings().reflink()) {
            std::cout << "  sharers checked   " << format_count(sum->sharers_checked) << " ("
                      << format_count(sum->sharers_gone.size())
                      << " no longer share their object's blocks; gc --reconcile drops those "
                         "records, and so does gc once it removes their object)\n";
            if (!sum->sharers_unchecked.empty())
                std::cout << "  sharers unchecked " << format_count(sum->sharers_unchecked.size())
                          << " (could not be opened; see the warnings)\n";
        }
        if (sum->gc_interrupted)
            std::cout << "a gc was interrupted (" << s->pool->path() << "/" << kGcUnlinking
                      << " is left): the objects it removed are still recorded, and the one it "
                         "was removing may be left unprotected; run `unify gc` again to finish "
                         "it, then verify again\n";
        if (!sum->ok() && !a.quarantine && !(sum->gc_interrupted && only_gc_leftovers(*sum)))
            std::cout << "run `unify verify --quarantine` to move damaged objects aside and "
                         "give the guests that link them private copies\n";
    }
    return sum->ok() ? kExitOk : kExitError;
}

}  // namespace

Command add_verify_command(CLI::App& app, const Globals& g) {
    auto a = std::make_shared<VerifyArgs>();
    auto sub = app.add_subcommand(
        "verify",
        "check that every object matches its id and its protection, and that the index agrees "
        "with the pool; exit 1 if anything is damaged");
    sub->add_flag("--full", a->full,
                  "hash every object with SHA-256 (default: XXH3 against the index record)");
    sub->add_flag("--quarantine", a->quarantine,
                  "move damaged objects to POOL/quarantine, give the guest paths that link them "
                  "private copies, and drop their index records");
    return {sub, [&g, a] { return run_verify(g, *a); }};
}

}  // namespace unify
