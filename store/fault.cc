#include "store/fault.h"

#ifdef UNIFY_FAULTS

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
        if (colon && std::string(spec, colon) == step && atol(colon + 1) == n) kill(getpid(), SIGKILL);
    }
}

}  // namespace unify

#endif
