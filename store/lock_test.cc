// The busy-lock message names the holder only while that process holds the lock.
#include "store/lock.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/test_support.h"

namespace unify {
namespace {

struct LockDir {
    test::TempDir dir;
    Fd fd;
    LockDir() {
        test::write_file(dir / "lock", "");
        fd = Fd(open(dir.path().c_str(), O_DIRECTORY | O_CLOEXEC));
    }
};

TEST(PoolLock, BusyMessageNamesALiveHolder) {
    LockDir d;
    auto held = PoolLock::acquire(d.fd.get(), d.dir.path(), "import web1", false);
    ASSERT_TRUE(held) << held.error().message;
    auto second = PoolLock::acquire(d.fd.get(), d.dir.path(), "gc", false);
    ASSERT_FALSE(second);
    EXPECT_EQ(second.error().err, EWOULDBLOCK);
    const std::string& m = second.error().message;
    EXPECT_NE(m.find("is busy"), std::string::npos) << m;
    EXPECT_NE(m.find("pid " + std::to_string(getpid()) + ": unify import web1, since "),
              std::string::npos)
        << m;
}

// On btrfs, /proc/locks names the filesystem's device, not the st_dev of its files.
TEST(PoolLock, BusyMessageNamesALiveHolderOnBtrfs) {
    test::LoopFs fs("btrfs", 320);
    UNIFY_REQUIRE(fs.reason());
    test::write_file(fs / "lock", "");
    Fd fd(open(fs.path().c_str(), O_DIRECTORY | O_CLOEXEC));
    auto held = PoolLock::acquire(fd.get(), fs.path(), "import web1", false);
    ASSERT_TRUE(held) << held.error().message;
    auto second = PoolLock::acquire(fd.get(), fs.path(), "gc", false);
    ASSERT_FALSE(second);
    const std::string& m = second.error().message;
    EXPECT_NE(m.find("pid " + std::to_string(getpid()) + ": unify import web1, since "),
              std::string::npos)
        << m;
}

TEST(PoolLock, BusyMessageDoesNotNameADeadProcess) {
    LockDir d;
    // A writer that has exited left its words in the lock file...
    pid_t child = fork();
    if (child == 0) _exit(0);
    ASSERT_GT(child, 0);
    ASSERT_EQ(waitpid(child, nullptr, 0), child);
    std::string words = "pid " + std::to_string(child) + ": unify verify --full, since 2026-11-29";
    test::write_file(d.dir / "lock", words);
    // ...and another process, which writes nothing, holds the lock now.
    int other = open((d.dir / "lock").c_str(), O_RDWR | O_CLOEXEC);
    ASSERT_GE(other, 0);
    ASSERT_EQ(flock(other, LOCK_EX | LOCK_NB), 0);
    auto r = PoolLock::acquire(d.fd.get(), d.dir.path(), "import web1", false);
    close(other);
    ASSERT_FALSE(r);
    const std::string& m = r.error().message;
    EXPECT_NE(m.find("is busy: another process holds its lock;"), std::string::npos) << m;
    EXPECT_EQ(m.find(std::to_string(child)), std::string::npos) << m;
    EXPECT_EQ(m.find("verify"), std::string::npos) << m;
}

// A lock file removed by hand is not made again behind the admin's back (a writer still
// running holds the old inode): the error says what to check and how to make it again.
TEST(PoolLock, ARemovedLockFileIsNamedWithHowToMakeItAgain) {
    LockDir d;
    ASSERT_EQ(unlink((d.dir / "lock").c_str()), 0);
    auto lock = PoolLock::acquire(d.fd.get(), d.dir.path(), "gc", false);
    ASSERT_FALSE(lock);
    EXPECT_EQ(lock.error().err, ENOENT);
    const std::string& m = lock.error().message;
    EXPECT_NE(m.find("lock file was removed"), std::string::npos) << m;
    EXPECT_NE(m.find("install -m 600 /dev/null " + d.dir.path() + "/lock"), std::string::npos) << m;
    EXPECT_NE(access((d.dir / "lock").c_str(), F_OK), 0) << "made again behind the admin's back";
}

}  // namespace
}  // namespace unify
