// The test side of the fault seam (store/fault.h): linked into unify-faults and unify_tests only.
#include "store/fault.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <utility>

namespace unify {

namespace {

// "step:N" (the tail of a spec) names the n-th hit of `step`.
bool names_hit(const std::string& spec, const char* step, long n) {
    size_t colon = spec.rfind(':');
    return colon != std::string::npos && spec.compare(0, colon, step) == 0 &&
           atol(spec.c_str() + colon + 1) == n;
}

// "step:N:REST" (UNIFY_FAULT_WRITE, _LINK, _WRITER, _RENAME): REST when this is the
// n-th hit of `step`, else nothing.
std::optional<std::string> armed(const char* spec, const char* step, long n) {
    std::string s = spec;
    size_t c1 = s.find(':');
    size_t c2 = c1 == std::string::npos ? c1 : s.find(':', c1 + 1);
    if (c2 == std::string::npos || !names_hit(s.substr(0, c2), step, n)) return std::nullopt;
    return s.substr(c2 + 1);
}

// UNIFY_FAULT_WRITE's PATH: append a byte and restore its mtime.
void hostile_write(const std::string& path) {
    // O_NONBLOCK: where this process holds a read lease on PATH, the open breaks it (what the
    // import must notice) and fails with EWOULDBLOCK instead of waiting for ourselves.
    int fd = open(path.c_str(), O_WRONLY | O_APPEND | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return;
    struct stat st;
    if (fstat(fd, &st) == 0 && write(fd, "!", 1) == 1) {
        struct timespec t[2] = {st.st_atim, st.st_mtim};
        futimens(fd, t);
    }
    close(fd);
}

// UNIFY_FAULT_REWRITE's PATH: its first byte changed in place, its mtime put back.
void hostile_rewrite(const std::string& path) {
    int fd = open(path.c_str(), O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return;
    struct stat st;
    char c = 0;
    if (fstat(fd, &st) == 0 && pread(fd, &c, 1, 0) == 1) {
        c = char(~c);
        if (pwrite(fd, &c, 1, 0) == 1) {
            struct timespec t[2] = {st.st_atim, st.st_mtim};
            futimens(fd, t);
            if (const char* done = getenv("UNIFY_FAULT_REWRITE_DONE"))
                close(open(done, O_WRONLY | O_CREAT | O_CLOEXEC, 0600));
        }
    }
    close(fd);
}

// UNIFY_FAULT_LINK's FROM:TO: TO becomes another name of FROM, as a root process outside
// unify could make it (the immutable flag lifted for the link and put back).
// "FROM:TO" split at its first colon.
std::optional<std::pair<std::string, std::string>> from_and_to(const std::string& from_to) {
    size_t colon = from_to.find(':');
    if (colon == std::string::npos) return std::nullopt;
    return std::pair{from_to.substr(0, colon), from_to.substr(colon + 1)};
}

void outside_link(const std::string& from_to) {
    auto names = from_and_to(from_to);
    if (!names) return;
    const auto& [from, to] = *names;
    int fd = open(from.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return;
    int flags = 0;
    bool lift = ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0 && (flags & FS_IMMUTABLE_FL);
    int lifted = flags & ~FS_IMMUTABLE_FL;
    if (lift) ioctl(fd, FS_IOC_SETFLAGS, &lifted);
    (void)!linkat(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), 0);
    if (lift) ioctl(fd, FS_IOC_SETFLAGS, &flags);
    close(fd);
}

// UNIFY_FAULT_TAMPER's PATH: what a guest can do through its own name of an object while
// the object's flag is lifted: chmod it set-uid for all, and give it an xattr.
void outside_tamper(const std::string& path) {
    (void)!chmod(path.c_str(), 04777);
    (void)!setxattr(path.c_str(), "user.unify-tamper", "guest", 5, 0);
}

// UNIFY_FAULT_RENAME's FROM:TO: FROM is renamed over TO.
void outside_rename(const std::string& from_to) {
    if (auto names = from_and_to(from_to))
        (void)!rename(names->first.c_str(), names->second.c_str());
}

// A lease of this process is being broken: "1: LEASE  BREAKING  READ  <pid> ..." in /proc/locks.
bool own_lease_breaking() {
    int fd = open("/proc/locks", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    std::string all;
    char buf[8192];
    for (ssize_t n; (n = read(fd, buf, sizeof buf)) > 0;) all.append(buf, size_t(n));
    close(fd);
    const std::string pid = " " + std::to_string(getpid()) + " ";
    for (size_t at = 0, end; at < all.size(); at = end + 1) {
        end = all.find('\n', at);
        if (end == std::string::npos) end = all.size();
        std::string line = all.substr(at, end - at);
        if (line.find("LEASE  BREAKING") != std::string::npos &&
            line.find(pid) != std::string::npos)
            return true;
    }
    return false;
}

// UNIFY_FAULT_WRITER's PATH: another process opens PATH for writing, as a guest's process
// would, and once it has its fd writes "EVIL" at offset 0, puts the mtime back and creates
// $UNIFY_FAULT_WRITER_DONE. Where this process holds a read lease on PATH, that open waits
// in the kernel until the lease is let go; the run goes on once it waits there.
void hostile_writer(const std::string& path) {
    const char* done = getenv("UNIFY_FAULT_WRITER_DONE");
    pid_t child = fork();
    if (child == 0) {
        int fd = open(path.c_str(), O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
        struct stat st;
        if (fd >= 0 && fstat(fd, &st) == 0 && pwrite(fd, "EVIL", 4, 0) == 4) {
            struct timespec t[2] = {st.st_atim, st.st_mtim};
            futimens(fd, t);
        }
        if (done) close(open(done, O_WRONLY | O_CREAT | O_CLOEXEC, 0600));
        _exit(fd >= 0 ? 0 : 1);
    }
    for (int i = 0; child > 0 && i < 200 && !own_lease_breaking(); ++i) usleep(10000);
}

}  // namespace

void fault_point(const char* step) {
    static std::mutex mu;
    static std::map<std::string, long> hits;
    static const char* spec = getenv("UNIFY_FAULT");
    static const char* trace = getenv("UNIFY_FAULT_TRACE");
    static const char* write_spec = getenv("UNIFY_FAULT_WRITE");
    static const char* link_spec = getenv("UNIFY_FAULT_LINK");
    static const char* writer_spec = getenv("UNIFY_FAULT_WRITER");
    static const char* rename_spec = getenv("UNIFY_FAULT_RENAME");
    static const char* pause_spec = getenv("UNIFY_FAULT_PAUSE");
    static const char* tamper_spec = getenv("UNIFY_FAULT_TAMPER");
    static const char* rewrite_spec = getenv("UNIFY_FAULT_REWRITE");
    if (!spec && !trace && !write_spec && !link_spec && !writer_spec && !rename_spec &&
        !pause_spec && !tamper_spec && !rewrite_spec)
        return;
    std::lock_guard<std::mutex> lock(mu);
    long n = ++hits[step];
    if (trace) {
        int fd = open(trace, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
        if (fd >= 0) {
            std::string line = std::string(step) + "\n";
            (void)!write(fd, line.data(), line.size());
            close(fd);
        }
    }
    if (auto path = write_spec ? armed(write_spec, step, n) : std::nullopt) hostile_write(*path);
    if (auto from_to = link_spec ? armed(link_spec, step, n) : std::nullopt) outside_link(*from_to);
    if (auto path = writer_spec ? armed(writer_spec, step, n) : std::nullopt) hostile_writer(*path);
    // Several renames or tamperings, at several points, separated by ';' (a guest that moves
    // a path twice, or keeps changing an object's metadata).
    auto each = [&](const char* specs, void (*act)(const std::string&)) {
        for (size_t at = 0, end; specs && specs[at]; at = end + (specs[end] != 0)) {
            end = at + strcspn(specs + at, ";");
            std::string one(specs + at, end - at);
            if (auto arg = armed(one.c_str(), step, n)) act(*arg);
        }
    };
    each(rename_spec, outside_rename);
    each(tamper_spec, outside_tamper);
    each(rewrite_spec, hostile_rewrite);
    if (auto ms = pause_spec ? armed(pause_spec, step, n) : std::nullopt)
        usleep(useconds_t(atol(ms->c_str())) * 1000);
    if (spec && names_hit(spec, step, n)) kill(getpid(), SIGKILL);
}

int64_t fault_settle_cutoff(int64_t cutoff) {
    static const char* spec = getenv("UNIFY_FAULT_SETTLE");
    if (!spec) return cutoff;
    // A file is settled when its ctime is before the cutoff.
    if (strcmp(spec, "settled") == 0) return std::numeric_limits<int64_t>::max();
    if (strcmp(spec, "unsettled") == 0) return std::numeric_limits<int64_t>::min();
    return cutoff;
}

int fault_errno(const char* step, const std::string& path) {
    static const char* spec = getenv("UNIFY_FAULT_ERRNO");
    if (!spec) return 0;
    std::string s = spec;
    auto c1 = s.find(':'), c2 = s.find(':', c1 + 1);
    if (c1 == std::string::npos || c2 == std::string::npos || s.substr(0, c1) != step) return 0;
    if (path.find(s.substr(c2 + 1)) == std::string::npos) return 0;
    std::string name = s.substr(c1 + 1, c2 - c1 - 1);
    for (int e = 1; e < 134; ++e)
        if (const char* n = strerrorname_np(e); n && name == n) return e;
    return EIO;
}

}  // namespace unify
