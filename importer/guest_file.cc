#include "importer/guest_file.h"

namespace unify {

bool is_unreadable(const Error& e) {
    return e.err == EACCES || e.err == EPERM || e.err == EIO;
}

Result<GuestFile> open_guest_file(const WalkEntry& e, const std::string& shown) {
    GuestFile out;
    FileStat st;
    auto fd = open_guest_read(e.dir->get(), e.name, shown, &st);
    if (!fd) {
        int err = fd.error().err;
        // Gone, a symlink now, a directory in the way, or a FIFO; EWOULDBLOCK: someone holds a
        // write lease on it (O_NONBLOCK does not wait for its break).
        if (err == ENOENT || err == ELOOP || err == ENXIO || err == ENOTDIR || err == EWOULDBLOCK)
            return out;  // changed
        if (!is_unreadable(fd.error())) return std::unexpected(fd.error());
        out.state = GuestFile::unreadable;
        out.error = fd.error();
        return out;
    }
    // A FIFO or device swapped in for the file is never opened (store/sys.h); another file is
    // not what was walked.
    if (!st.is_reg() || !st.same_inode(e.st)) return out;  // changed
    out.state = GuestFile::ok;
    out.fd = std::move(*fd);
    return out;
}

}  // namespace unify
