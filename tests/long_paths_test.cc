// Guest paths longer than PATH_MAX through the real binary. The walker reaches them
// directory fd by directory fd, so import records them; every command that opens a recorded
// path again must reach them too, or a guest could stop another guest's `who`, the pool's
// `verify` and `gc --reconcile`, and its own unshare and deletion (ENAMETOOLONG from one
// openat2 of the whole path). Hardlink pools on the test filesystem, reflink pools on an
// XFS and a btrfs loop image.
#include <fcntl.h>
#include <linux/limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <set>

#include "store/fd.h"
#include "tests/test_support.h"

namespace unify::test {
namespace {

using Json = nlohmann::json;

constexpr int64_t kMtime = 1700000000;
constexpr int kDepth = 22;  // 22 directories of 200 characters: a path of about 4.4 KB

// 8 KiB: btrfs keeps files of up to 2 KiB inline, where they cannot share blocks.
const std::string kContent = "shared\n" + std::string(8185, 'x');

std::string deep_dir_name(int i) {
    return std::string(200, 'D') + std::to_string(i);
}

// "/usr/DDD...0/.../DDD...21/f", the path inside the guest.
std::string deep_guest_path() {
    std::string p = "/usr";
    for (int i = 0; i < kDepth; ++i) p += "/" + deep_dir_name(i);
    return p + "/f";
}

// The directory of the deep file, opened component by component (the host path is too long
// for the kernel to take in one call); an invalid Fd if any component is missing.
Fd open_deep_dir(const std::string& root, bool create) {
    Fd dir(open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    std::vector<std::string> parts = {"usr"};
    for (int i = 0; i < kDepth; ++i) parts.push_back(deep_dir_name(i));
    for (const auto& c : parts) {
        if (!dir.valid()) return dir;
        if (create && mkdirat(dir.get(), c.c_str(), 0755) != 0 && errno != EEXIST) return Fd();
        dir = Fd(openat(dir.get(), c.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    }
    return dir;
}

void write_at(int dirfd, const std::string& name, const std::string& content) {
    Fd fd(openat(dirfd, name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
    ASSERT_TRUE(fd.valid()) << name << ": " << strerror(errno);
    ASSERT_EQ(write(fd.get(), content.data(), content.size()), ssize_t(content.size()));
    struct timespec times[2] = {{kMtime, 0}, {kMtime, 0}};
    ASSERT_EQ(futimens(fd.get(), times), 0);
}

// lstat of the deep file; st_ino 0 if it is not there.
struct stat deep_stat(const std::string& root) {
    struct stat st {};
    Fd dir = open_deep_dir(root, false);
    if (!dir.valid() || fstatat(dir.get(), "f", &st, AT_SYMLINK_NOFOLLOW) != 0) st = {};
    return st;
}

std::string deep_content(const std::string& root) {
    Fd dir = open_deep_dir(root, false);
    if (!dir.valid()) return "";
    Fd fd(openat(dir.get(), "f", O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    if (!fd.valid()) return "";
    std::string out(kContent.size() + 1, '\0');
    ssize_t n = pread(fd.get(), out.data(), out.size(), 0);
    out.resize(n < 0 ? 0 : size_t(n));
    return out;
}

// "hardlink" on the test filesystem, "xfs" / "btrfs" a reflink pool on a loop image.
class LongPaths : public testing::TestWithParam<std::string> {
  protected:
    void SetUp() override {
        UNIFY_REQUIRE(need_root());
        reflink_ = GetParam() != "hardlink";
        if (reflink_) {
            fs_ = std::make_unique<LoopFs>(GetParam(), 320);
            UNIFY_REQUIRE(fs_->reason());
            base_ = fs_->path();
        } else {
            dir_ = std::make_unique<TempDir>();
            base_ = dir_->path();
        }
        pool = base_ + "/pool";
        h1 = base_ + "/h1";
        h2 = base_ + "/h2";
        ASSERT_EQ(mkdir(h1.c_str(), 0755), 0) << h1 << ": " << strerror(errno);
        Fd deep = open_deep_dir(h1, true);
        ASSERT_TRUE(deep.valid()) << "mkdirat below " << h1 << ": " << strerror(errno);
        ASSERT_NO_FATAL_FAILURE(write_at(deep.get(), "f", kContent));
        ASSERT_GT(deep_guest_path().size() + h1.size(), size_t(PATH_MAX));
        write_file(h2 + "/usr/f", kContent, 0644);
        set_mtime(h2 + "/usr/f", kMtime, 0);
        auto r = unify(reflink_ ? std::vector<std::string>{"init", "--share", "reflink"}
                                : std::vector<std::string>{"init"});
        ASSERT_TRUE(succeeded(r));
        for (const auto& [name, root] : {std::pair{"h1", h1}, {"h2", h2}}) {
            r = unify({"import", name, root, "--min-size", "1"});
            ASSERT_TRUE(succeeded(r)) << name;
        }
    }
    void TearDown() override {
        // TempDir's cleanup reaches the deep file with `rm -rf`, which works fd-relative.
        fs_.reset();
        dir_.reset();
    }
    RunResult unify(std::vector<std::string> args) const {
        args.insert(args.begin(), {"--pool", pool});
        return run_unify(args);
    }
    std::set<std::string> who(const std::string& target) const { return who_paths(pool, target); }
    // The deep file still is what h2 shares: the same inode (hardlink) or the same blocks,
    // as `who` finds them on the filesystem (reflink).
    bool deep_file_shared() const {
        if (!reflink_) return deep_stat(h1).st_ino == stat_path(h2 + "/usr/f").st_ino;
        return who("h2:/usr/f").count("h1:" + deep_guest_path()) == 1;
    }

    bool reflink_ = false;
    std::unique_ptr<LoopFs> fs_;
    std::unique_ptr<TempDir> dir_;
    std::string base_, pool, h1, h2;
};

TEST_P(LongPaths, GuestPathLongerThanPathMaxIsReachedByEveryCommand) {
    const std::set<std::string> both = {"h1:" + deep_guest_path(), "h2:/usr/f"};
    EXPECT_EQ(who("h2:/usr/f"), both);
    EXPECT_EQ(who("h1:" + deep_guest_path()), both);
    ASSERT_TRUE(deep_file_shared());

    auto r = unify({"--json", "verify"});
    EXPECT_TRUE(succeeded(r));
    auto j = Json::parse(r.out, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << r.out;
    if (reflink_) {
        EXPECT_EQ(j["sharers_checked"], 2u) << r.out;
        EXPECT_TRUE(j["sharers_gone"].empty()) << r.out;
    }
    EXPECT_TRUE(succeeded(unify({"verify", "--quarantine"})));

    r = unify({"--json", "gc", "--reconcile"});
    EXPECT_TRUE(succeeded(r));
    j = Json::parse(r.out, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << r.out;
    if (!j.is_discarded()) {
        EXPECT_EQ(j["links_dropped"], 0u) << r.out;
    }
    EXPECT_EQ(who("h2:/usr/f"), both) << "gc --reconcile dropped a record that holds";

    EXPECT_TRUE(succeeded(unify({"unshare", "h1"})));
    EXPECT_FALSE(deep_file_shared());
    EXPECT_EQ(deep_content(h1), kContent);
    EXPECT_EQ(who("h2:/usr/f"), std::set<std::string>{"h2:/usr/f"});

    // Shared again, then deleted with its root.
    ASSERT_TRUE(succeeded(unify({"import", "h1", h1, "--min-size", "1"})));
    ASSERT_TRUE(deep_file_shared());
    EXPECT_TRUE(succeeded(unify({"forget", "h1", "--delete-root", "--dry-run"})));
    EXPECT_EQ(deep_content(h1), kContent) << "--dry-run deleted something";
    EXPECT_TRUE(succeeded(unify({"forget", "h1", "--delete-root"})));
    EXPECT_EQ(stat_path(h1).st_ino, 0u) << "the root is still there";
    EXPECT_EQ(read_file(h2 + "/usr/f"), kContent);
    EXPECT_EQ(who("h2:/usr/f"), std::set<std::string>{"h2:/usr/f"});
    EXPECT_TRUE(succeeded(unify({"verify"})));
}

// Defence in depth: a recorded path that cannot be opened for another reason (EACCES here,
// which root meets only under an LSM or a network filesystem, so the fault seam gives it) is
// one guest's problem. `who` of another guest's file and `verify` answer for the rest and
// name the path; `gc --reconcile` keeps that record, does the rest and fails.
TEST_P(LongPaths, APathThatCannotBeOpenedIsReportedAndTheRestGoesOn) {
    const std::vector<std::string> env = {"UNIFY_FAULT_ERRNO=openat2:EACCES:" + h1 + "/usr/"};
    auto faulty = [&](std::vector<std::string> args) {
        args.insert(args.begin(), {"--pool", pool, "--json"});
        return run_unify_faults(args, env);
    };
    auto r = faulty({"who", "h2:/usr/f"});
    EXPECT_TRUE(succeeded(r));
    auto j = Json::parse(r.out, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << r.out;
    ASSERT_EQ(j["links"].size(), 1u) << r.out;
    EXPECT_EQ(j["links"][0]["path"], "/usr/f");
    ASSERT_EQ(j["unchecked"].size(), 1u) << r.out;
    EXPECT_EQ(j["unchecked"][0]["path"], deep_guest_path());
    EXPECT_TRUE(contains(j["unchecked"][0]["error"].get<std::string>(), "(EACCES)")) << r.out;
    EXPECT_TRUE(contains(r.err, "warning: h1:/usr/DDD")) << r.err;

    r = faulty({"verify"});
    EXPECT_TRUE(succeeded(r)) << "nothing is damaged";
    if (reflink_) {
        j = Json::parse(r.out, nullptr, false);
        ASSERT_FALSE(j.is_discarded()) << r.out;
        EXPECT_EQ(j["sharers_checked"], 1u) << r.out;
        ASSERT_EQ(j["sharers_unchecked"].size(), 1u) << r.out;
        EXPECT_EQ(j["sharers_unchecked"][0]["path"], deep_guest_path());
        EXPECT_TRUE(contains(r.err, "(EACCES)")) << r.err;
    }

    r = faulty({"gc", "--reconcile"});
    EXPECT_EQ(r.status, 1) << show(r);
    EXPECT_TRUE(contains(r.err, "h1:" + deep_guest_path() + " could not be checked")) << r.err;
    EXPECT_TRUE(contains(r.err, "(EACCES)")) << r.err;
    j = Json::parse(r.out, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << r.out;
    EXPECT_EQ(j["links_dropped"], 0u);
    EXPECT_EQ(j["links_unchecked"], 1u);
    EXPECT_EQ(who("h2:/usr/f"), (std::set<std::string>{"h1:" + deep_guest_path(), "h2:/usr/f"}))
        << "the record of the path that could not be checked was dropped";
}

INSTANTIATE_TEST_SUITE_P(, LongPaths, testing::Values("hardlink", "xfs", "btrfs"),
                         [](const testing::TestParamInfo<std::string>& i) { return i.param; });

}  // namespace
}  // namespace unify::test
