// Shared pieces of the end-to-end tests that build small sample guests: a pool and three
// guest roots below one TempDir, a file builder with a fixed mtime, init + import through the
// real binary, and a listing of the pool's objects.
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "tests/test_support.h"

namespace unify::test {

constexpr int64_t kSampleMtime = 1700000000;  // every sample file gets this mtime (+ ns)

// POOL and guest roots g1, g2, g3 below `dir`; a test's fixture derives from it and fills
// the guests in its constructor.
struct ThreeGuests {
    explicit ThreeGuests(const TempDir& dir);

    // write_file, then mtime kSampleMtime + ns nanoseconds.
    static void file(const std::string& path, const std::string& content, mode_t mode, int64_t ns);

    // unify --pool POOL args...
    RunResult unify(std::vector<std::string> args) const;

    // init (immutable protection) + import of all three guests; false (with a test failure)
    // if any step failed.
    bool init_and_import() const;

    std::string pool, g1, g2, g3;
};

// "ab/<hex>" of every file below POOL/objects, sorted.
std::set<std::string> objects(const std::string& pool);

// The object (as "ab/<hex>") that is the same inode as `path`, or "" if none is.
std::string object_of(const std::string& pool, const std::string& path);

}  // namespace unify::test
