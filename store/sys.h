// The syscall layer: thin wrappers that return values instead of -1/errno, so call sites
// can still handle EEXIST, EMLINK, EPERM ... by name. Guest paths are never handed to the
// kernel as strings that it may resolve through symlinks: everything is relative to a
// directory fd, with O_NOFOLLOW / AT_SYMLINK_NOFOLLOW, or through openat2 RESOLVE_BENEATH.
// `shown` is only the path printed in an error message.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "store/fd.h"
#include "store/result.h"

namespace unify {

struct FileStat {
    uint64_t dev = 0;
    uint64_t ino = 0;
    uint32_t mode = 0;  // st_mode, type bits included
    uint32_t uid = 0;
    uint32_t gid = 0;
    uint64_t nlink = 0;
    uint64_t size = 0;
    uint64_t blocks = 0;   // st_blocks, 512-byte units actually allocated (holes are free)
    int64_t mtime_ns = 0;  // ns since 1970 (modulo 2^64 past 2262: for comparing, not dates)
    int64_t ctime_ns = 0;
    int64_t mtime_sec = 0;  // the kernel's own mtime, what a faithful copy gives back
    uint32_t mtime_nsec = 0;
    uint64_t mnt_id = 0;
    bool mount_root = false;  // STATX_ATTR_MOUNT_ROOT: a mount point, never crossed
    bool immutable = false;   // STATX_ATTR_IMMUTABLE (FS_IMMUTABLE_FL), where reported

    bool is_reg() const { return S_ISREG(mode); }
    bool is_dir() const { return S_ISDIR(mode); }
    bool is_lnk() const { return S_ISLNK(mode); }
    bool same_inode(const FileStat& o) const { return dev == o.dev && ino == o.ino; }
    // Nothing wrote, chmod-ed, chown-ed, re-labelled or linked the inode between two looks
    // at it. ctime is the only witness of a write that put the mtime back, or of an xattr set,
    // so it is always compared: when unify itself moved it (replacing another name of the
    // inode moves its link count and ctime), the caller must read the file again instead
    // (link_over's recheck), never take a moved link count as leave to skip ctime.
    bool unchanged(const FileStat& o) const {
        return unchanged_but_ctime(o) && nlink == o.nlink && ctime_ns == o.ctime_ns;
    }
    // The same but for a link count that moved, and the ctime that moved with it: unify's own
    // replacement of another name of the inode, or a guest's write hidden behind a link it
    // added or removed. Whoever accepts it must read the file again (link_over's recheck).
    bool only_links_moved(const FileStat& o) const {
        return unchanged_but_ctime(o) && nlink != o.nlink;
    }
    // The same, for an inode we renamed ourselves since the first look (rename moves ctime).
    bool unchanged_but_ctime(const FileStat& o) const {
        return same_inode(o) && size == o.size && mtime_ns == o.mtime_ns && mode == o.mode &&
               uid == o.uid && gid == o.gid;
    }
};

// Sorted by name, so the encoding in an object id does not depend on listxattr order.
using Xattrs = std::vector<std::pair<std::string, std::string>>;

// statx(dirfd, name, AT_SYMLINK_NOFOLLOW). name "" stats dirfd itself (AT_EMPTY_PATH).
Result<FileStat> stat_at(int dirfd, const std::string& name, const std::string& shown);
Result<FileStat> stat_fd(int fd, const std::string& shown);
// stat_at without the message: 0, or the errno. For a worker thread that must not allocate
// (each thread that does gets a malloc arena of its own: importer/walker.h).
int stat_at_errno(int dirfd, const char* name, FileStat& out);
// Like stat_at, but a missing name (ENOENT, ENOTDIR) is an empty optional, not an error.
Result<std::optional<FileStat>> stat_if_exists(int dirfd, const std::string& name,
                                               const std::string& shown);

// openat2(dirfd, rel, RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS|RESOLVE_NO_XDEV); rel may hold
// several components, and be longer than PATH_MAX (opened in pieces, each beneath the last:
// a ".." may then not climb above the start of its piece). flags get O_CLOEXEC|O_NOFOLLOW.
Result<Fd> open_beneath(int dirfd, const std::string& rel, int flags, const std::string& shown);
// Opens dirfd/name (one component) read-only for reading its bytes: never through a
// symlink (ELOOP), never blocking on a FIFO (O_NONBLOCK), with O_NOATIME where the kernel
// allows it (it refuses EPERM for a file we neither own nor have CAP_FOWNER for).
Result<Fd> open_read(int dirfd, const std::string& name, const std::string& shown);
// This process's /proc/self/fd as an O_PATH directory fd, opened once (and again in a forked
// child, whose /proc/self is another directory); -1 without /proc. Opening or linking an fd's
// magic link relative to it looks up one name, where "/proc/self/fd/N" walks four and a symlink
// (5.4 -> 4.2 us an open and close here; import reopens every file it reads). Never closed.
int proc_fd_dir();
// open_read of a name a guest controls: only a regular file is opened for reading. What is
// there is first opened O_PATH (no open() of a device, which can act: a watchdog starts, a
// tape rewinds, a tty raises DTR) and looked at; anything but a regular file is ENXIO. The
// file itself is then opened through /proc/self/fd, the inode already held, not the name.
// `st` (if given) gets the opened inode's stat, which the caller then need not take again.
Result<Fd> open_guest_read(int dirfd, const std::string& name, const std::string& shown,
                           FileStat* st = nullptr);
// The same beneath dirfd (open_beneath's rules for the path), for package databases.
Result<Fd> open_beneath_regular(int dirfd, const std::string& rel, const std::string& shown);
// An administrator-given path (a guest root, the pool); O_DIRECTORY|O_CLOEXEC.
Result<Fd> open_dir_path(const std::string& path);

Result<Xattrs> read_xattrs(int fd, const std::string& shown);
Result<void> write_xattrs(int fd, const Xattrs& xattrs, const std::string& shown);

// FS_IOC_GETFLAGS / FS_IOC_SETFLAGS.
Result<unsigned> get_inode_flags(int fd, const std::string& shown);
Result<void> set_inode_flags(int fd, unsigned flags, const std::string& shown);

// Starts writing fd's dirty pages back and returns at once (sync_file_range WRITE): on ext4
// setting the immutable flag writes a file's dirty pages and waits for them
// (ext4_fileattr_set), so a just-made file that is going to be flagged is started early.
// Nothing is lost when it fails: the flag writes them anyway, and says why it could not.
void start_writeback(int fd);

// A name nobody can predict: prefix, token, 16 random hex digits. A guest still sees it
// once it exists, so it is only ever created with linkat (EEXIST: draw another).
std::string unique_temp_name(const std::string& prefix, const std::string& token);

// Reads the whole of dirfd's entries (name, d_type). Leaves dirfd's own offset alone.
struct DirEntry {
    std::string name;
    unsigned char type;  // DT_*; DT_UNKNOWN means stat it
    uint64_t ino = 0;    // d_ino: st_ino, except on a mount point (its covered directory's)
};
Result<std::vector<DirEntry>> read_dir(int dirfd, const std::string& shown);

// Writes all of data at the current offset, retrying on short writes and EINTR.
Result<void> write_all(int fd, const void* data, size_t len, const std::string& shown);

// Joins a display path: "/vservers/web1" + "usr/bin" -> "/vservers/web1/usr/bin".
std::string join_path(const std::string& a, const std::string& b);

}  // namespace unify
