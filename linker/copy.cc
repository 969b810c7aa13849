#include "linker/copy.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace unify {

namespace {

// The kernel's own seconds and nanoseconds where the stat came from statx; else from
// mtime_ns with floor division, so 1960-06-01 00:00:00.5 is (-301,103,999 s, 500,000,000 ns),
// never a negative tv_nsec (futimens: EINVAL).
struct timespec mtime_of(const FileStat& st) {
    struct timespec t;
    if (st.mtime_sec != 0 || st.mtime_nsec != 0) {
        t.tv_sec = st.mtime_sec;
        t.tv_nsec = long(st.mtime_nsec);
        return t;
    }
    int64_t sec = st.mtime_ns / 1000000000, nsec = st.mtime_ns % 1000000000;
    if (nsec < 0) sec -= 1, nsec += 1000000000;
    t.tv_sec = sec;
    t.tv_nsec = long(nsec);
    return t;
}

}  // namespace

Result<ContentHash> copy_with_metadata(int src_fd, const FileStat& src_st, const Xattrs& xattrs,
                                       int dst_fd, const std::string& src_shown,
                                       const std::string& dst_shown) {
    auto hash = copy_and_hash(src_fd, dst_fd, src_shown, dst_shown);
    if (!hash) return hash;
    if (fchown(dst_fd, src_st.uid, src_st.gid) != 0) return sys_fail("fchown", dst_shown);
    if (fchmod(dst_fd, src_st.mode & 07777) != 0) return sys_fail("fchmod", dst_shown);
    if (auto x = write_xattrs(dst_fd, xattrs, dst_shown); !x) return std::unexpected(x.error());
    struct timespec times[2];
    times[0] = mtime_of(src_st);
    times[1] = times[0];
    if (futimens(dst_fd, times) != 0) return sys_fail("futimens", dst_shown);
    return hash;
}

}  // namespace unify
