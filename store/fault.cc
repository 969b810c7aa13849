// The test side of the fault seam (store/fault.h): linked into unify-faults and unify_tests only.
#include "store/fault.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <string>

namespace unify {

void fault_point(const char* step) {
    static std::mutex mu;
    static std::map<std::string, long> hits;
    static const char* spec = getenv("UNIFY_FAULT");
    static const char* trace = getenv("UNIFY_FAULT_TRACE");
    if (!spec && !trace) return;
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
    if (spec) {
        const char* colon = strrchr(spec, ':');
        if (colon && std::string(spec, colon) == step && atol(colon + 1) == n)
            kill(getpid(), SIGKILL);
    }
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
