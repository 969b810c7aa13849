// Shared helpers for unify's tests: scratch directories that clean up immutable files,
// capability checks that skip (or fail under UNIFY_TEST_REQUIRE_ALL=1), file builders, and
// a runner for the real `unify` binary.
#pragma once

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "store/index.h"

namespace unify::test {

// A fresh directory under `base`; by default under test_filesystem() (below). The destructor
// lifts immutable flags below it, then removes it.
class TempDir {
  public:
    explicit TempDir(const std::string& base = "");
    ~TempDir();
    TempDir(const TempDir&) = delete;
    const std::string& path() const { return path_; }
    std::string operator/(const std::string& rel) const { return path_ + "/" + rel; }

  private:
    std::string path_;
};

// Where the end-to-end tests make their pools and guests: /var/tmp (same filesystem as most
// guests here; /tmp may be tmpfs), or, with UNIFY_TEST_FS=ext4|xfs|btrfs|tmpfs, one such
// filesystem made for this test process (a 1 GB loop image or tmpfs, removed at exit), so
// the same tests run on each (CMakeLists.txt registers those runs with ctest).
const std::string& test_filesystem();
// True in those runs (UNIFY_TEST_FS set): the repeats of the end-to-end suites.
bool filesystem_repeat();

// Removes a tree that may hold immutable files (chattr -R -i, then rm -rf).
void remove_tree(const std::string& path);

// Empty when the requirement holds, else the reason it does not.
std::string need_root();
std::string need_immutable(const std::string& dir);  // CAP_LINUX_IMMUTABLE + fs support
std::string need_tool(const std::string& tool);      // an executable on PATH

bool require_all();  // UNIFY_TEST_REQUIRE_ALL=1

// Skips the test with `reason`, or fails it when UNIFY_TEST_REQUIRE_ALL=1.
#define UNIFY_REQUIRE(reason_expr)                                                     \
    do {                                                                               \
        std::string unify_reason_ = (reason_expr);                                     \
        if (!unify_reason_.empty()) {                                                  \
            if (::unify::test::require_all()) FAIL() << "required: " << unify_reason_; \
            GTEST_SKIP() << unify_reason_;                                             \
        }                                                                              \
    } while (0)

// File builders; they create parent directories and abort the test (ADD_FAILURE) on error.
void write_file(const std::string& path, const std::string& content, mode_t mode = 0644);
std::string read_file(const std::string& path);
struct stat stat_path(const std::string& path);  // lstat; zeroed struct if missing
void set_mtime(const std::string& path, int64_t sec, int64_t nsec);
bool is_immutable(const std::string& path);

// Whether `needle` occurs in `haystack`.
bool contains(const std::string& haystack, const std::string& needle);
// Whether `needle` occurs in `text` once runs of spaces in both are squeezed to one: text
// output aligns its columns, and a test need not know the padding.
bool contains_squeezed(const std::string& text, const std::string& needle);

// Runs a shell command, returns its exit status; output goes to the test log.
int sh(const std::string& command);
// Runs a shell command and returns its stdout (a failure to start it fails the test).
std::string capture(const std::string& command);
// The names in a directory (none if it cannot be read).
std::set<std::string> entries(const std::string& dir);
ino_t ino(const std::string& path);  // lstat's inode number; 0 if missing

struct RunResult {
    int status = -1;  // exit code, or 128 + signal
    std::string out;
    std::string err;
    bool killed = false;  // still running at the deadline (RunLimits), so killed there
    double seconds = 0;   // how long it ran
};
// For a run that must end by itself: with a deadline (seconds; 0: none) it is sent SIGKILL
// once the deadline has passed; on_start gets the child's pid once it runs (to signal it).
struct RunLimits {
    double deadline_s = 0;
    std::function<void(pid_t)> on_start;
};
// Runs the built unify binary (unify_binary(), below) with args (no shell); env entries "K=V"
// are added. An `init` without --share gets --share hardlink: the end-to-end tests of hardlink
// pools run on XFS and btrfs too (test_filesystem()), where init's default is reflink; a
// test of another share mode says --share. run_unify_faults runs unify-faults (store/fault.h),
// run_program any binary.
RunResult run_unify(const std::vector<std::string>& args, const std::vector<std::string>& env = {},
                    const RunLimits& limits = {});
RunResult run_unify_faults(const std::vector<std::string>& args,
                           const std::vector<std::string>& env = {});
RunResult run_program(const char* binary, const std::vector<std::string>& args,
                      const std::vector<std::string>& env = {}, const RunLimits& limits = {});
// A run's exit status and output, for a failure message.
std::string show(const RunResult& r);
// Success when the run exited 0, else a failure that shows it.
testing::AssertionResult succeeded(const RunResult& r);

// The size of process `pid`'s fd table (/proc/PID/status "FDSize"); -1 if it cannot be read.
long fd_table_size(pid_t pid);

// Waits (up to 10 s) until process `pid` waits for a flock (a "->" waiter line of /proc/locks):
// a unify run with --wait that reached the pool lock. Whether it got there.
bool wait_until_blocked_in_flock(pid_t pid);

// Slots of POOL/intent (store/intent.cc: 128 bytes each, the tag first) that name an
// adoption in flight: slot 0 for one object at a time, 1..256 for a batch.
std::set<size_t> intent_adopt_slots(const std::string& pool);

// Which of import's two paths a file takes (importer/settle.h). Every file a test writes is
// just made, so `fresh` (the production binary, the clock deciding) takes the leased path a
// file changed in the last minute takes. `settled` runs the fault-armed binary with
// UNIFY_FAULT_SETTLE=settled, where every file counts as old, as in a real guest: batch
// adoption (adopt_objects, intent slots 1..256) and no leases. `reread` is `fresh` where the
// hash pass can take no lease (the fault-armed binary with UNIFY_FAULT_ERRNO=hash.lease:
// EAGAIN on every path, as when a writer has each file open then): every file is re-read under
// a later lease (lease_and_recheck), the path just-made files took before the hash pass kept
// its lease.
enum class SettlePath { fresh, settled, reread };
// For the rest of the test: sets UNIFY_FAULT_SETTLE in this process's environment, which
// every unify-faults it starts inherits, and chooses what unify_binary() (and run_unify) runs.
void use_settle_path(SettlePath path);
SettlePath settle_path();
const char* unify_binary();

// A test suite that runs each test on both paths: `using Import = BothSettlePaths;`, then
// TEST_P(Import, Name) and UNIFY_ON_BOTH_SETTLE_PATHS(Import). Tests are named
// Import.Name/fresh and Import.Name/settled.
class BothSettlePaths : public testing::TestWithParam<SettlePath> {
  protected:
    void SetUp() override { use_settle_path(GetParam()); }
    void TearDown() override { use_settle_path(SettlePath::fresh); }
};
std::string settle_path_name(const testing::TestParamInfo<SettlePath>& info);
#define UNIFY_ON_BOTH_SETTLE_PATHS(suite)                                                      \
    INSTANTIATE_TEST_SUITE_P(                                                                  \
        , suite,                                                                               \
        testing::Values(::unify::test::SettlePath::fresh, ::unify::test::SettlePath::settled), \
        ::unify::test::settle_path_name)
// The same on all three paths, for the suites that guard the leases (Name/reread too).
#define UNIFY_ON_ALL_SETTLE_PATHS(suite)                                                      \
    INSTANTIATE_TEST_SUITE_P(                                                                 \
        , suite,                                                                              \
        testing::Values(::unify::test::SettlePath::fresh, ::unify::test::SettlePath::settled, \
                        ::unify::test::SettlePath::reread),                                   \
        ::unify::test::settle_path_name)

// A manifest line per file below root: path, type, mode, uid, gid, size, mtime ns,
// sha256 of content (regular files), symlink target, xattrs. Equal manifests mean nothing a
// guest can see changed. dir_mtimes: also each directory's mtime, the root's included
// (import and unshare must put them back, linker/dir_times.h).
std::string manifest(const std::string& root, bool dir_mtimes = false);

// A filesystem image made by the test, loop-mounted at path(); unmounted and removed (with
// any immutable flags lifted) on destruction. ok() is false, with reason(), where mkfs or
// mount is not available.
class LoopFs {
  public:
    LoopFs(const std::string& type, size_t megabytes, const std::string& mkfs_options = "",
           const std::string& mount_options = "");
    ~LoopFs();
    LoopFs(const LoopFs&) = delete;
    bool ok() const { return reason_.empty(); }
    const std::string& reason() const { return reason_; }
    const std::string& path() const { return mount_; }
    std::string operator/(const std::string& rel) const { return mount_ + "/" + rel; }

  private:
    TempDir dir_{"/var/tmp"};  // the image is never on the filesystem under test
    std::string image_, mount_, reason_;
    bool mounted_ = false;
};

// A tmpfs (16 MB) mounted on `dir` (made if missing) for the life of the object; error() is
// empty when the mount worked. Declare it after the TempDir it lives in, so it is unmounted
// first, also when an assertion ends the test early.
class TmpfsMount {
  public:
    explicit TmpfsMount(const std::string& dir);
    ~TmpfsMount();
    TmpfsMount(const TmpfsMount&) = delete;
    const std::string& error() const { return error_; }

  private:
    std::string dir_, error_;
};

// `unify who TARGET --json` on `pool`: "guest:path" of every path it lists (a test failure
// if who fails).
std::set<std::string> who_paths(const std::string& pool, const std::string& target);

// What a guest learns with inotify: every name created in (IN_CREATE) or moved into
// (IN_MOVED_TO) `dir`, handed to `on_name` on a thread of its own, as fast as it can, until
// the watcher is destroyed. Declare it after what on_name uses: it must stop first.
class NameWatcher {
  public:
    NameWatcher(const std::string& dir, uint32_t mask,
                std::function<void(const std::string&)> on_name);
    ~NameWatcher();
    NameWatcher(const NameWatcher&) = delete;

  private:
    int fd_ = -1;
    std::atomic<bool> stop_{false};
    std::function<void(const std::string&)> on_name_;
    std::thread thread_;
};

// `from` bind-mounted at `at` (made if missing) for the object's life.
class BindMount {
  public:
    BindMount(const std::string& from, const std::string& at);
    ~BindMount();
    BindMount(const BindMount&) = delete;
    const std::string& error() const { return error_; }

  private:
    std::string at_, error_;
};

// Writes `count` files named prefix0, prefix1, ... with the same content and mtime, fast
// (no shell); returns false on the first error.
bool write_many(const std::string& dir, const std::string& prefix, size_t count,
                const std::string& content);

// ino -> object file name, for every object in the pool.
std::map<ino_t, std::string> objects_by_inode(const std::string& pool);

// Objects whose content, mode, owner, mtime or xattrs no longer give their id (a pool made
// without --ignore-mtime). Empty when every object is what its id says.
std::vector<std::string> objects_not_matching_their_id(const std::string& pool);

// Rewrites the index record of the pool's only object with `edit`, for a test that damages
// it on purpose; fails unless the pool has exactly one object.
testing::AssertionResult edit_only_object_record(const std::string& pool,
                                                 const std::function<void(ObjectRecord&)>& edit);

}  // namespace unify::test
