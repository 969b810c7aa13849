#include "store/lease.h"

#include <errno.h>
#include <fcntl.h>

namespace unify {

LeaseTry take_read_lease(int fd) {
    if (fcntl(fd, F_SETLEASE, F_RDLCK) == 0) return LeaseTry::held;
    return errno == EAGAIN || errno == EBUSY ? LeaseTry::busy : LeaseTry::unsupported;
}

bool lease_intact(int fd) {
    int l = fcntl(fd, F_GETLEASE);
    // -1: no lease support here. F_UNLCK: a writer is waiting for us to let go.
    return l == -1 || l == F_RDLCK;
}

bool lease_held(int fd) {
    return fcntl(fd, F_GETLEASE) == F_RDLCK;
}

void drop_lease(int fd) {
    fcntl(fd, F_SETLEASE, F_UNLCK);
}

}  // namespace unify
