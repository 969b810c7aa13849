#include "store/fd_limit.h"

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>

#include "tests/test_support.h"

namespace unify {
namespace {

int open_fds() {
    int n = 0;
    DIR* d = opendir("/proc/self/fd");
    if (!d) return -1;
    while (dirent* e = readdir(d)) n += e->d_name[0] != '.';
    closedir(d);
    return n - 1;  // opendir's own
}

// Runs `child` in a forked process with the open-file limits `soft` and `hard` and returns its
// exit code; the table of a fresh process is what main() starts with.
int in_child(rlim_t soft, rlim_t hard, int (*child)()) {
    pid_t pid = fork();
    if (pid == 0) {
        struct rlimit rl = {soft, hard};
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0) _exit(90);
        _exit(child());
    }
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status)) return 99;
    return WEXITSTATUS(status);
}

// What the table must reach: the raised limit, at most kReservedFds.
int reserve_then_open_up_to_the_reserve() {
    int before = open_fds();
    reserve_fd_table();
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    long want = long(std::min<rlim_t>(rl.rlim_cur, kReservedFds));
    long size = test::fd_table_size(getpid());
    if (size < want) return 1;
    if (open_fds() != before) return 2;  // the reserve leaves no fd open
    // Opening fds up to the reserve must not grow the table any more: with threads running,
    // each growth would wait for an RCU grace period.
    int fd = open("/", O_PATH | O_CLOEXEC);
    int last = fd;
    for (long i = before + 1; i < want - 1 && last >= 0; ++i) last = dup(fd);
    if (last < 0) return 3;
    if (test::fd_table_size(getpid()) != size) return 4;
    return 0;
}

TEST(FdLimit, ReserveGrowsTheTableOnceToTheLimitItRaised) {
    struct rlimit rl;
    ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &rl), 0);
    UNIFY_REQUIRE(rl.rlim_max < 1024 ? "a hard open-file limit of 1024 or more (it is " +
                                           std::to_string(rl.rlim_max) + ")"
                                     : "");
    // The soft limit below the hard one, as a login shell often has it.
    EXPECT_EQ(in_child(1024, rl.rlim_max, reserve_then_open_up_to_the_reserve), 0)
        << "1: table smaller than the raised limit (or kReservedFds); 2: an fd left open; "
           "3: could not open fds up to it; 4: the table grew again below it";
}

TEST(FdLimit, ReserveUnderALowLimitStaysWithinIt) {
    EXPECT_EQ(in_child(300, 300, reserve_then_open_up_to_the_reserve), 0);
    EXPECT_EQ(in_child(300, 300, [] { return fd_room() == 128 ? 0 : 1; }), 0);
}

}  // namespace
}  // namespace unify
