// What every command shares: the global options, opening the pool (and, for writers, its
// lock), and printing an error once at the top.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "store/lock.h"
#include "store/pool.h"

namespace unify {

constexpr int kExitOk = 0, kExitError = 1, kExitUsage = 2;

struct Globals {
    std::string pool = "/vservers/.pool";
    bool wait = false;
    bool verbose = false;
    bool quiet = false;
    bool json = false;  // one JSON document on stdout instead of the text summary
    unsigned jobs = 0;
};

struct Session {
    std::unique_ptr<Pool> pool;
    std::optional<PoolLock> lock;

    Session() = default;
    Session(Session&&) = default;
    Session& operator=(Session&&) = default;
    // A writer gives back the index's preallocated blocks while it still holds the lock.
    ~Session();
};

// Opens the pool; a writer also takes the lock and checks that it can set and lift the
// pool's protection before it changes anything. open_index=false: the pool without its index
// (only for `unify reindex`).
Result<Session> open_session(const Globals& g, const std::string& command, bool writer,
                             bool open_index = true);

// Prints "unify: error: ..." on stderr and returns kExitError. Under --json it also prints
// {"error": "...", "errno": N} on stdout (set_json_errors, called once after parsing).
int report(const Error& e);
void set_json_errors(bool on);
// report(e), where a full filesystem (ENOSPC) also gets `advice`: what stays done, what to
// free, and to run `command` again.
int report_full(const Error& e, const std::string& advice, const std::string& command);

// "2026-11-24 13:46:08", or "never completed" for 0.
std::string format_time(int64_t unix_seconds);

}  // namespace unify
