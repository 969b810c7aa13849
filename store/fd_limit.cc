#include "store/fd_limit.h"

#include <sys/resource.h>

namespace unify {

size_t fd_room() {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return 128;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    return rl.rlim_cur > 512 ? size_t(rl.rlim_cur) - 256 : 128;
}

}  // namespace unify
