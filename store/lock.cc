#include "store/lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <ctime>

#include "store/interrupt.h"

namespace unify {

namespace {

std::string holder_of(int fd) {
    char buf[512];
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    if (n <= 0) return "an unknown process";
    std::string s(buf, size_t(n));
    while (!s.empty() && (s.back() == '\n' || s.back() == '\0')) s.pop_back();
    return s.empty() ? "an unknown process" : s;
}

}  // namespace

Result<PoolLock> PoolLock::acquire(int pool_fd, const std::string& pool_path,
                                   const std::string& command, bool wait) {
    std::string shown = pool_path + "/lock";
    int fd = openat(pool_fd, "lock", O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) return sys_fail("open", shown);
    PoolLock lock;
    lock.fd_ = Fd(fd);
    for (;;) {
        if (flock(fd, LOCK_EX | (wait ? 0 : LOCK_NB)) == 0) break;
        if (errno == EINTR && interrupted()) return std::unexpected(interrupted_error());
        if (errno == EINTR) continue;
        if (errno == EWOULDBLOCK)
            return fail("pool " + pool_path + " is busy: another writer holds its lock (" +
                            holder_of(fd) + "); try again later, or pass --wait to wait for it",
                        EWOULDBLOCK);
        return sys_fail("flock", shown);
    }
    char when[64];
    time_t now = time(nullptr);
    strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", localtime(&now));
    std::string who = "pid " + std::to_string(getpid()) + ": unify " + command + ", since " + when;
    // Best effort: the message only helps a waiting writer name us.
    if (ftruncate(fd, 0) == 0) (void)pwrite(fd, who.data(), who.size(), 0);
    return lock;
}

}  // namespace unify
