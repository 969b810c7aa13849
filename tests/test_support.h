// Shared helpers for unify's tests: scratch directories that clean up immutable files,
// capability checks that skip (or fail under UNIFY_TEST_REQUIRE_ALL=1), file builders, and
// a runner for the real `unify` binary.
#pragma once

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace unify::test {

// A fresh directory under /var/tmp (same filesystem as most guests here; /tmp may be tmpfs).
// The destructor lifts immutable flags below it, then removes it.
class TempDir {
  public:
    explicit TempDir(const std::string& base = "/var/tmp");
    ~TempDir();
    TempDir(const TempDir&) = delete;
    const std::string& path() const { return path_; }
    std::string operator/(const std::string& rel) const { return path_ + "/" + rel; }

  private:
    std::string path_;
};

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

// Whether `needle` occurs in `text` once runs of spaces in both are squeezed to one: text
// output aligns its columns, and a test need not know the padding.
bool contains_squeezed(const std::string& text, const std::string& needle);

// Runs a shell command, returns its exit status; output goes to the test log.
int sh(const std::string& command);

struct RunResult {
    int status = -1;  // exit code, or 128 + signal
    std::string out;
    std::string err;
};
// Runs the built unify binary with args (no shell); env entries "K=V" are added.
RunResult run_unify(const std::vector<std::string>& args, const std::vector<std::string>& env = {});

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
    LoopFs(const std::string& type, size_t megabytes, const std::string& mkfs_options = "");
    ~LoopFs();
    LoopFs(const LoopFs&) = delete;
    bool ok() const { return reason_.empty(); }
    const std::string& reason() const { return reason_; }
    const std::string& path() const { return mount_; }
    std::string operator/(const std::string& rel) const { return mount_ + "/" + rel; }

  private:
    TempDir dir_;
    std::string image_, mount_, reason_;
    bool mounted_ = false;
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

}  // namespace unify::test
