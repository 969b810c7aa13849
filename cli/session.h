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
    unsigned jobs = 0;
};

struct Session {
    std::unique_ptr<Pool> pool;
    std::optional<PoolLock> lock;
};

// Opens the pool; a writer also takes the lock and checks that it can set and lift the
// pool's protection before it changes anything.
Result<Session> open_session(const Globals& g, const std::string& command, bool writer);

// Prints "unify: error: ..." on stderr and returns kExitError.
int report(const Error& e);

// "2026-11-24 13:46:08", or "never completed" for 0.
std::string format_time(int64_t unix_seconds);

}  // namespace unify
