#include "store/lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cstdio>
#include <ctime>
#include <fstream>
#include <sstream>

#include "store/interrupt.h"
#include "store/mounts.h"
#include "store/sys.h"

namespace unify {

namespace {

// Whether process `pid` holds a flock on the inode `st` names, by /proc/locks (each line:
// "N: FLOCK  ADVISORY  WRITE PID MAJ:MIN:INO START END", device numbers in hex; waiters are
// marked "->" and do not hold it).
// /proc/locks names the filesystem's own device, which on btrfs is not the st_dev of a
// subvolume's files: `sb_dev` ("major:minor", decimal, store/mounts.h) is accepted too.
bool holds_flock(pid_t pid, const FileStat& st, const std::string& sb_dev) {
    std::ifstream locks("/proc/locks");
    auto where_of = [&](unsigned maj, unsigned min) {
        char buf[64];
        snprintf(buf, sizeof buf, "%02x:%02x:%llu", maj, min,
                 static_cast<unsigned long long>(st.ino));
        return std::string(buf);
    };
    std::string want = where_of(major(st.dev), minor(st.dev)), also = want;
    unsigned maj = 0, min = 0;
    if (sscanf(sb_dev.c_str(), "%u:%u", &maj, &min) == 2) also = where_of(maj, min);
    for (std::string line; std::getline(locks, line);) {
        std::istringstream in(line);
        std::string n, type, mode, access, holder, where;
        in >> n >> type;
        if (type == "->") continue;
        in >> mode >> access >> holder >> where;
        if (type == "FLOCK" && (where == want || where == also) && holder == std::to_string(pid))
            return true;
    }
    return false;
}

// The holder the lock file names ("pid 8026: unify verify --full, since ..."), but only if
// that process holds the lock now: the file keeps the last writer's words after it exited, and
// the lock may since be held by something that wrote none (another tool, a flock(1)).
std::string holder_of(int fd) {
    const std::string unknown = "another process holds its lock";
    char buf[512];
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    if (n <= 0) return unknown;
    std::string s(buf, size_t(n));
    while (!s.empty() && (s.back() == '\n' || s.back() == '\0')) s.pop_back();
    long pid = 0;
    if (sscanf(s.c_str(), "pid %ld:", &pid) != 1 || pid <= 0) return unknown;
    auto st = stat_fd(fd, "lock");
    if (!st || !holds_flock(pid_t(pid), *st, filesystem_of(st->mnt_id))) return unknown;
    return "another writer holds its lock (" + s + ")";
}

}  // namespace

Result<PoolLock> PoolLock::acquire(int pool_fd, const std::string& pool_path,
                                   const std::string& command, bool wait) {
    std::string shown = pool_path + "/lock";
    int fd = openat(pool_fd, "lock", O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    // Not made again here: a writer still running holds its lock on the inode that was
    // removed, and a new file would let a second writer in beside it.
    if (fd < 0 && errno == ENOENT)
        return fail("open(" + shown +
                        "): No such file or directory (ENOENT): the pool's lock "
                        "file was removed; make sure no unify writer is running on this pool "
                        "(pgrep -a unify), then make it again: install -m 600 /dev/null " +
                        shown,
                    ENOENT);
    if (fd < 0) return sys_fail("open", shown);
    PoolLock lock;
    lock.fd_ = Fd(fd);
    for (;;) {
        if (flock(fd, LOCK_EX | (wait ? 0 : LOCK_NB)) == 0) break;
        if (errno == EINTR && interrupted()) return std::unexpected(interrupted_error());
        if (errno == EINTR) continue;
        if (errno == EWOULDBLOCK)
            return fail("pool " + pool_path + " is busy: " + holder_of(fd) +
                            "; try again later, or pass --wait to wait for it",
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
