#include "cli/session.h"

#include <errno.h>

#include <ctime>
#include <iostream>

#include "cli/json.h"
#include "repair/verify.h"
#include "store/printable.h"

namespace unify {

Result<Session> open_session(const Globals& g, const std::string& command, bool writer,
                             bool open_index) {
    Session s;
    auto pool = Pool::open(g.pool, open_index);
    if (!pool) return std::unexpected(pool.error());
    s.pool = std::move(*pool);
    if (!writer) return s;
    auto lock = PoolLock::acquire(s.pool->fd(), s.pool->path(), command, g.wait);
    if (!lock) return std::unexpected(lock.error());
    s.lock = std::move(*lock);
    // A writer that cannot set or lift the pool's protection must stop before it changes
    // anything, not halfway through a guest.
    auto mode = s.pool->settings().protect;
    if (auto r = check_protect_mode(mode, s.pool->tmp_fd(), s.pool->path() + "/tmp"); !r) {
        // check_protect_mode speaks to init, which may still choose --protect none; a pool's
        // protection is fixed once it is made.
        std::string why = r.error().message;
        if (auto cut = why.find(", or choose --protect none"); cut != std::string::npos)
            why.erase(cut);
        else if (auto cut2 = why.find("; choose --protect none"); cut2 != std::string::npos)
            why.erase(cut2);
        return fail("pool " + s.pool->path() + " (protection " + to_string(mode) + ", fixed at " +
                        "init): " + why,
                    r.error().err);
    }
    auto recovered = s.pool->prepare_writer();
    if (!recovered) return std::unexpected(recovered.error());
    if (!recovered->log.empty()) std::cerr << "unify: " << recovered->log << "\n";
    for (const auto& [name, slot] : recovered->changed) {
        std::string shown = s.pool->object_shown(name);
        // Its intent slot stays until this is done: killed or failing here, the next writer
        // finds the object again.
        auto done = quarantine_object(*s.pool, name, std::cerr);
        if (!done)
            return fail("object " + shown +
                            " changed while a killed unify had left its protection lifted, and "
                            "could not be quarantined: " +
                            done.error().message +
                            "; every writer stops here until it is (a new guest would be "
                            "linked to the changed bytes): deal with that, then run unify again",
                        done.error().err);
        std::cerr << "unify: warning: object " << shown
                  << " changed (content or metadata) while a killed unify had left its "
                     "protection lifted, so the guests that link it saw the change: "
                  << *done << "\n";
        s.pool->intent().end(slot);
    }
    return s;
}

Session::~Session() {
    if (!lock || !pool || !pool->has_index()) return;
    // Nothing depends on it: the filesystem frees the blocks by itself later.
    if (auto r = pool->index().give_back_preallocation(); !r)
        std::cerr << "unify: warning: " << r.error().message << "\n";
}

namespace {
bool json_errors = false;
}  // namespace

int report_full(const Error& e, const std::string& advice, const std::string& command) {
    if (e.err != ENOSPC) return report(e);
    Error full = e;
    full.message += "; the filesystem is full: " + advice + ", then run the " + command + " again";
    return report(full);
}

void set_json_errors(bool on) {
    json_errors = on;
}

int report(const Error& e) {
    if (json_errors) print_json(error_json(e));
    std::cerr << "unify: error: " << terminal_safe(e.message) << "\n";
    return kExitError;
}

std::string format_time(int64_t t) {
    if (t == 0) return "never completed";
    char buf[64];
    time_t tt = time_t(t);
    strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", localtime(&tt));
    return buf;
}

}  // namespace unify
