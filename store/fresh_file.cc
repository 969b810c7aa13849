#include "store/fresh_file.h"

#include <fcntl.h>
#include <sys/random.h>
#include <unistd.h>

#include <atomic>
#include <cstring>

#include "store/object_id.h"
#include "store/sys.h"

namespace unify {

std::string random_hex(size_t bytes) {
    // One getrandom per 32 names per thread, not one per name: import draws a name for
    // every path it links.
    thread_local uint8_t pool[256];  // getrandom never cuts <= 256 bytes short
    thread_local size_t used = sizeof pool;
    uint8_t b[32] = {};
    bytes = std::min(bytes, sizeof b);
    if (used + bytes > sizeof pool) {
        if (getrandom(pool, sizeof pool, 0) != ssize_t(sizeof pool)) {
            // Never reached on Linux >= 3.17; stay unique within the process anyway.
            static std::atomic<uint64_t> n{0};
            for (size_t i = 0; i + 8 <= sizeof pool; i += 8) {
                uint64_t v = (uint64_t(getpid()) << 40) ^ uint64_t(time(nullptr)) ^ (++n << 20);
                std::memcpy(pool + i, &v, 8);
            }
        }
        used = 0;
    }
    std::memcpy(b, pool + used, bytes);
    used += bytes;
    return to_hex(b, bytes);
}

Result<Fd> create_unnamed(int dirfd, const std::string& shown) {
    int fd = openat(dirfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0) return sys_fail("open(O_TMPFILE)", shown);
    return Fd(fd);
}

Result<void> link_unnamed(int fd, int dirfd, const std::string& name, const std::string& shown) {
    // AT_SYMLINK_FOLLOW on the magic link names the O_TMPFILE inode without needing
    // CAP_DAC_READ_SEARCH for AT_EMPTY_PATH.
    const int proc = proc_fd_dir();
    if (proc < 0) return sys_fail("linkat", shown + " (through /proc/self/fd)", ENOENT);
    if (linkat(proc, std::to_string(fd).c_str(), dirfd, name.c_str(), AT_SYMLINK_FOLLOW) != 0)
        return sys_fail("linkat", shown);
    return {};
}

Result<std::string> link_unnamed_fresh(int fd, int dirfd, const std::string& prefix,
                                       const std::string& shown) {
    for (;;) {
        std::string name = prefix + random_hex(8);
        auto r = link_unnamed(fd, dirfd, name, shown + " (temporary " + name + ")");
        if (r) return name;
        if (r.error().err != EEXIST) return std::unexpected(r.error());
    }
}

Result<void> replace_small_file(int dirfd, const std::string& name, const std::string& data,
                                const std::string& shown) {
    auto fd = create_unnamed(dirfd, shown);
    if (!fd) return std::unexpected(fd.error());
    if (fchmod(fd->get(), 0600) != 0) return sys_fail("fchmod", shown);
    if (auto w = write_all(fd->get(), data.data(), data.size(), shown); !w) return w;
    if (fsync(fd->get()) != 0) return sys_fail("fsync", shown);
    auto tmp = link_unnamed_fresh(fd->get(), dirfd, "." + name + ".tmp.", shown);
    if (!tmp) return std::unexpected(tmp.error());
    if (renameat(dirfd, tmp->c_str(), dirfd, name.c_str()) != 0) {
        int err = errno;
        unlinkat(dirfd, tmp->c_str(), 0);
        return sys_fail("rename", shown, err);
    }
    // The rename is durable only once the directory is.
    if (fsync(dirfd) != 0) return sys_fail("fsync", shown);
    return {};
}

}  // namespace unify
