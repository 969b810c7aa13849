// Thin, errno-preserving wrappers over the handful of syscalls that unify needs.
#include "store/sys.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/fs.h>
#include <linux/openat2.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>

#include "store/fault.h"
#include "store/fresh_file.h"
#include "store/interrupt.h"

namespace unify {

namespace {

// Nanoseconds since 1970, modulo 2^64: int64 holds 1677..2262 exactly, and filesystems
// store 1901..2486 (ext4, XFS bigtime), whose span still fits 64 bits, so equal times give
// equal values and different ones different values. No signed overflow: unsigned wraps.
int64_t to_ns(const struct statx_timestamp& t) {
    return int64_t(uint64_t(t.tv_sec) * 1000000000u + t.tv_nsec);
}

FileStat from_statx(const struct statx& sx) {
    FileStat st;
    st.dev = makedev(sx.stx_dev_major, sx.stx_dev_minor);
    st.ino = sx.stx_ino;
    st.mode = sx.stx_mode;
    st.uid = sx.stx_uid;
    st.gid = sx.stx_gid;
    st.nlink = sx.stx_nlink;
    st.size = sx.stx_size;
    st.blocks = sx.stx_blocks;
    st.mtime_ns = to_ns(sx.stx_mtime);
    st.ctime_ns = to_ns(sx.stx_ctime);
    st.mtime_sec = sx.stx_mtime.tv_sec;
    st.mtime_nsec = sx.stx_mtime.tv_nsec;
    st.mnt_id = (sx.stx_mask & STATX_MNT_ID) ? sx.stx_mnt_id : 0;
    st.mount_root = (sx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) &&
                    (sx.stx_attributes & STATX_ATTR_MOUNT_ROOT);
    st.immutable = (sx.stx_attributes_mask & STATX_ATTR_IMMUTABLE) &&
                   (sx.stx_attributes & STATX_ATTR_IMMUTABLE);
    return st;
}

constexpr unsigned kStatxMask = STATX_BASIC_STATS | STATX_MNT_ID;

}  // namespace

int stat_at_errno(int dirfd, const char* name, FileStat& out) {
    struct statx sx;
    int flags = AT_SYMLINK_NOFOLLOW | AT_STATX_SYNC_AS_STAT | (*name ? 0 : AT_EMPTY_PATH);
    if (statx(dirfd, name, flags, kStatxMask, &sx) != 0) return errno;
    out = from_statx(sx);
    return 0;
}

Result<FileStat> stat_at(int dirfd, const std::string& name, const std::string& shown) {
    FileStat st;
    if (int err = stat_at_errno(dirfd, name.c_str(), st)) return sys_fail("statx", shown, err);
    return st;
}

Result<FileStat> stat_fd(int fd, const std::string& shown) {
    return stat_at(fd, "", shown);
}

Result<std::optional<FileStat>> stat_if_exists(int dirfd, const std::string& name,
                                               const std::string& shown) {
    auto st = stat_at(dirfd, name, shown);
    if (st) return std::optional<FileStat>(*st);
    if (st.error().err == ENOENT || st.error().err == ENOTDIR) return std::optional<FileStat>();
    return std::unexpected(st.error());
}

namespace {

// One openat2 of rel (shorter than PATH_MAX) beneath dirfd.
Result<Fd> openat2_beneath(int dirfd, const std::string& rel, uint64_t flags,
                           const std::string& shown) {
    if (int e = fault_errno("openat2", shown)) return sys_fail("openat2", shown, e);
    struct open_how how {};
    how.flags = flags;
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV | RESOLVE_NO_MAGICLINKS;
    const char* p = rel.empty() ? "." : rel.c_str();
    for (;;) {
        long fd = syscall(SYS_openat2, dirfd, p, &how, sizeof how);
        if (fd >= 0) return Fd(int(fd));
        // The kernel asks for a retry when a rename raced with the lookup.
        if (errno == EAGAIN || (errno == EINTR && !interrupted())) continue;
        return sys_fail("openat2", shown);
    }
}

}  // namespace

Result<Fd> open_beneath(int dirfd, const std::string& rel, int flags, const std::string& shown) {
    const uint64_t last = uint64_t(flags) | O_CLOEXEC | O_NOFOLLOW;
    // The kernel takes at most PATH_MAX bytes of path per call (else ENAMETOOLONG), but a
    // guest builds deeper trees with mkdirat, and the walker, going fd by fd, records them:
    // one such path must not stop who, verify or gc for every guest. So a longer rel is
    // opened in pieces cut at '/', each beneath the directory the one before opened, with
    // the same RESOLVE flags: no piece follows a symlink (a symlinked directory at a cut is
    // refused ELOOP, as inside a piece) or crosses a mount, and none climbs out of the
    // directory it starts from (a ".." that would is refused EXDEV), hence none out of dirfd.
    // O_PATH: a piece's directory is only looked up in, never read.
    Fd dir;
    int at = dirfd;
    size_t start = 0;
    while (rel.size() - start >= PATH_MAX) {
        size_t cut = rel.rfind('/', start + PATH_MAX - 1);
        if (cut == std::string::npos || cut <= start)  // a component longer than PATH_MAX
            return sys_fail("openat2", shown, ENAMETOOLONG);
        auto piece = openat2_beneath(at, rel.substr(start, cut - start),
                                     O_PATH | O_DIRECTORY | O_CLOEXEC, shown);
        if (!piece) return piece;
        dir = std::move(*piece);
        at = dir.get();
        start = rel.find_first_not_of('/', cut);
        if (start == std::string::npos) start = rel.size();
    }
    return openat2_beneath(at, start == 0 ? rel : rel.substr(start), last, shown);
}

Result<Fd> open_read(int dirfd, const std::string& name, const std::string& shown) {
    constexpr int kFlags = O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK;
    int fd = openat(dirfd, name.c_str(), kFlags | O_NOATIME);
    if (fd < 0 && errno == EPERM) fd = openat(dirfd, name.c_str(), kFlags);
    if (fd < 0) return sys_fail("open", shown);
    return Fd(fd);
}

int proc_fd_dir() {
    static std::atomic<uint64_t> held{0};  // pid << 32 | (fd + 1); 0: none yet
    auto fd_of = [](uint64_t v) { return int(v & 0xffffffffu) - 1; };
    const uint64_t me = uint64_t(getpid());
    uint64_t now = held.load(std::memory_order_acquire);
    if (now >> 32 == me) return fd_of(now);
    int fd = open("/proc/self/fd", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (held.compare_exchange_strong(now, me << 32 | uint64_t(fd + 1), std::memory_order_acq_rel)) {
        if (fd_of(now) >= 0) close(fd_of(now));  // the parent's, inherited at the fork
        return fd;
    }
    if (fd >= 0) close(fd);  // another thread of this process was first
    return fd_of(now);
}

namespace {

// The regular file an O_PATH fd holds, opened for reading through /proc/self/fd (the magic
// link is followed on purpose: it is the inode held, no name); anything else is ENXIO.
// ENOENT: no /proc. `st` (if given) gets the inode's stat: the callers need not look again.
Result<Fd> reopen_regular(int path_fd, const std::string& shown, FileStat* st) {
    auto held = stat_fd(path_fd, shown);
    if (!held) return std::unexpected(held.error());
    // O_PATH|O_NOFOLLOW holds a final symlink itself: refused as O_NOFOLLOW alone would.
    if (held->is_lnk()) return sys_fail("open", shown, ELOOP);
    if (!held->is_reg()) return sys_fail("open", shown + " (not a regular file)", ENXIO);
    if (st) *st = *held;
    const int dir = proc_fd_dir();
    if (dir < 0) return sys_fail("open", shown + " (through /proc/self/fd)", ENOENT);
    const std::string name = std::to_string(path_fd);
    constexpr int kFlags = O_RDONLY | O_CLOEXEC | O_NONBLOCK;
    int fd = openat(dir, name.c_str(), kFlags | O_NOATIME);
    if (fd < 0 && errno == EPERM) fd = openat(dir, name.c_str(), kFlags);
    if (fd < 0) return sys_fail("open", shown);
    return Fd(fd);
}

// Without /proc (ENOENT from reopen_regular), the name once more, O_NONBLOCK: what it got is
// looked at again, since it may not be the inode held.
template <typename ByName>
Result<Fd> reopened_or(Result<Fd> fd, const ByName& by_name, const std::string& shown,
                       FileStat* st) {
    if (fd || fd.error().err != ENOENT) return fd;
    fd = by_name();
    if (!fd || !st) return fd;
    auto now = stat_fd(fd->get(), shown);
    if (!now) return std::unexpected(now.error());
    *st = *now;
    return fd;
}

}  // namespace

Result<Fd> open_guest_read(int dirfd, const std::string& name, const std::string& shown,
                           FileStat* st) {
    int path_fd = openat(dirfd, name.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (path_fd < 0) return sys_fail("open", shown);
    Fd held(path_fd);
    return reopened_or(
        reopen_regular(path_fd, shown, st), [&] { return open_read(dirfd, name, shown); }, shown,
        st);
}

Result<Fd> open_beneath_regular(int dirfd, const std::string& rel, const std::string& shown) {
    auto held = open_beneath(dirfd, rel, O_PATH, shown);
    if (!held) return held;
    return reopened_or(
        reopen_regular(held->get(), shown, nullptr),
        [&] { return open_beneath(dirfd, rel, O_RDONLY | O_NONBLOCK, shown); }, shown, nullptr);
}

Result<Fd> open_dir_path(const std::string& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return sys_fail("open", path);
    return Fd(fd);
}

Result<Xattrs> read_xattrs(int fd, const std::string& shown) {
    std::string names;
    for (;;) {
        ssize_t n = flistxattr(fd, nullptr, 0);
        if (n < 0) {
            if (errno == ENOTSUP) return Xattrs{};
            return sys_fail("flistxattr", shown);
        }
        if (n == 0) return Xattrs{};
        names.resize(size_t(n));
        n = flistxattr(fd, names.data(), names.size());
        if (n < 0 && errno == ERANGE) continue;  // grew between the two calls
        if (n < 0) return sys_fail("flistxattr", shown);
        names.resize(size_t(n));
        break;
    }
    Xattrs out;
    for (size_t pos = 0; pos < names.size();) {
        std::string name(names.c_str() + pos);
        pos += name.size() + 1;
        if (name.empty()) continue;
        std::string value;
        for (;;) {
            ssize_t n = fgetxattr(fd, name.c_str(), nullptr, 0);
            if (n < 0 && errno == ENODATA) break;  // removed between list and get
            if (n < 0) return sys_fail("fgetxattr " + name, shown);
            value.resize(size_t(n));
            n = fgetxattr(fd, name.c_str(), value.data(), value.size());
            if (n < 0 && errno == ERANGE) continue;
            if (n < 0) return sys_fail("fgetxattr " + name, shown);
            value.resize(size_t(n));
            out.emplace_back(std::move(name), std::move(value));
            break;
        }
    }
    std::sort(out.begin(), out.end());
    return out;
}

Result<void> write_xattrs(int fd, const Xattrs& xattrs, const std::string& shown) {
    for (const auto& [name, value] : xattrs) {
        if (fsetxattr(fd, name.c_str(), value.data(), value.size(), 0) != 0)
            return sys_fail("fsetxattr " + name, shown);
    }
    return {};
}

Result<unsigned> get_inode_flags(int fd, const std::string& shown) {
    int flags = 0;
    if (ioctl(fd, FS_IOC_GETFLAGS, &flags) != 0) return sys_fail("ioctl(FS_IOC_GETFLAGS)", shown);
    return unsigned(flags);
}

Result<void> set_inode_flags(int fd, unsigned flags, const std::string& shown) {
    int f = int(flags);
    if (ioctl(fd, FS_IOC_SETFLAGS, &f) != 0) return sys_fail("ioctl(FS_IOC_SETFLAGS)", shown);
    return {};
}

void start_writeback(int fd) {
    sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
}

std::string unique_temp_name(const std::string& prefix, const std::string& token) {
    return prefix + token + "." + random_hex(8);
}

Result<std::vector<DirEntry>> read_dir(int dirfd, const std::string& shown) {
    // getdents64 on the caller's fd itself: opendir() would cost an openat, two fcntl, an
    // fstat and a close more per directory, a fifth of a re-import's syscalls.
    if (lseek(dirfd, 0, SEEK_SET) != 0) return sys_fail("lseek", shown);
    std::vector<DirEntry> out;
    alignas(struct dirent64) char buf[32768];
    for (;;) {
        ssize_t n = getdents64(dirfd, buf, sizeof buf);
        if (n < 0 && errno == EINTR && !interrupted()) continue;
        if (n < 0) return sys_fail("getdents64", shown);
        if (n == 0) break;
        for (ssize_t at = 0; at < n;) {
            auto* de = reinterpret_cast<struct dirent64*>(buf + at);
            at += de->d_reclen;
            const char* name = de->d_name;
            if (name[0] == '.' && (name[1] == 0 || (name[1] == '.' && name[2] == 0))) continue;
            out.push_back({name, de->d_type, de->d_ino});
        }
    }
    return out;
}

Result<void> write_all(int fd, const void* data, size_t len, const std::string& shown) {
    auto p = static_cast<const char*>(data);
    while (len > 0) {
        ssize_t n = ::write(fd, p, len);
        if (n < 0 && errno == EINTR && !interrupted()) continue;
        if (n < 0) return sys_fail("write", shown);
        p += n;
        len -= size_t(n);
    }
    return {};
}

std::string join_path(const std::string& a, const std::string& b) {
    if (b.empty()) return a;
    if (a.empty()) return b;
    bool slash_a = a.back() == '/', slash_b = b.front() == '/';
    if (slash_a && slash_b) return a + b.substr(1);
    if (slash_a || slash_b) return a + b;
    return a + "/" + b;
}

}  // namespace unify
