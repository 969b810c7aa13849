#include "store/fd_limit.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>

namespace unify {

namespace {

rlim_t raised_limit() {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return 0;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    return rl.rlim_cur;
}

}  // namespace

size_t fd_room() {
    rlim_t cur = raised_limit();
    if (cur == 0) return 128;
    return cur > 512 ? size_t(cur) - 256 : 128;
}

void reserve_fd_table() {
    rlim_t cur = raised_limit();
    if (cur < 2) return;
    int fd = open("/", O_PATH | O_CLOEXEC);
    if (fd < 0) return;  // nothing lost: the table grows as fds come, as without this
    // F_DUPFD takes the lowest free fd from its argument up, so the table must reach it.
    int high = fcntl(fd, F_DUPFD_CLOEXEC, int(std::min<rlim_t>(cur, rlim_t(kReservedFds)) - 1));
    if (high >= 0) close(high);
    close(fd);
}

}  // namespace unify
