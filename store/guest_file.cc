#include "store/guest_file.h"

#include <fcntl.h>

namespace unify {

Result<GuestFile> open_guest_file(int dirfd, const std::string& name, const std::string& shown) {
    const int flags = O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC;
    int fd = openat(dirfd, name.c_str(), flags | O_NOATIME);
    if (fd < 0 && errno == EPERM)  // O_NOATIME on a file we do not own without CAP_FOWNER
        fd = openat(dirfd, name.c_str(), flags);
    if (fd < 0) return sys_fail("open", shown);
    GuestFile out{Fd(fd), {}};
    auto st = stat_fd(fd, shown);
    if (!st) return std::unexpected(st.error());
    if (!st->is_reg())
        return fail(shown + " is not a regular file now (a FIFO, socket or device stands there)",
                    kNotRegular);
    out.st = *st;
    return out;
}

bool guest_file_changed(int err) {
    return err == ENOENT || err == ELOOP || err == kNotRegular || err == EWOULDBLOCK ||
           err == ENOTDIR;
}

}  // namespace unify
