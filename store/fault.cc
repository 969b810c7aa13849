// The test side of the fault seam (store/fault.h): linked into unify-faults and unify_tests only.
#include "store/fault.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <mutex>
#include <string>

namespace unify {

namespace {

// "step:N" (the tail of a spec) names the n-th hit of `step`.
bool names_hit(const std::string& spec, const char* step, long n) {
    size_t colon = spec.rfind(':');
    return colon != std::string::npos && spec.compare(0, colon, step) == 0 &&
           atol(spec.c_str() + colon + 1) == n;
}

// "step:N:PATH": PATH if this is the n-th hit of `step`, else empty.
std::string path_at_hit(const char* spec, const char* step, long n) {
    std::string s = spec;
    size_t c1 = s.find(':');
    size_t c2 = c1 == std::string::npos ? c1 : s.find(':', c1 + 1);
    if (c2 == std::string::npos || !names_hit(s.substr(0, c2), step, n)) return {};
    return s.substr(c2 + 1);
}

// UNIFY_FAULT_WRITE="step:N:PATH": append a byte to PATH and restore its mtime.
void hostile_write(const char* spec, const char* step, long n) {
    std::string path = path_at_hit(spec, step, n);
    if (path.empty()) return;
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

// UNIFY_FAULT_WRITER="step:N:PATH": another process opens PATH for writing, as a guest's
// process would, and once it has its fd writes "EVIL" at offset 0, puts the mtime back and
// creates $UNIFY_FAULT_WRITER_DONE. Where this process holds a read lease on PATH, that open
// waits in the kernel until the lease is let go; the run goes on once it waits there.
void hostile_writer(const char* spec, const char* step, long n) {
    std::string path = path_at_hit(spec, step, n);
    if (path.empty()) return;
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
    static const char* writer_spec = getenv("UNIFY_FAULT_WRITER");
    if (!spec && !trace && !write_spec && !writer_spec) return;
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
    if (write_spec) hostile_write(write_spec, step, n);
    if (writer_spec) hostile_writer(writer_spec, step, n);
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
