#include "linker/copy.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace unify {

Result<ContentHash> copy_with_metadata(int src_fd, const FileStat& src_st, const Xattrs& xattrs,
                                       int dst_fd, const std::string& src_shown,
                                       const std::string& dst_shown) {
    auto hash = copy_and_hash(src_fd, dst_fd, src_shown, dst_shown);
    if (!hash) return hash;
    if (fchown(dst_fd, src_st.uid, src_st.gid) != 0) return sys_fail("fchown", dst_shown);
    if (fchmod(dst_fd, src_st.mode & 07777) != 0) return sys_fail("fchmod", dst_shown);
    if (auto x = write_xattrs(dst_fd, xattrs, dst_shown); !x) return std::unexpected(x.error());
    struct timespec times[2];
    times[0].tv_sec = src_st.mtime_ns / 1000000000;
    times[0].tv_nsec = src_st.mtime_ns % 1000000000;
    times[1] = times[0];
    if (futimens(dst_fd, times) != 0) return sys_fail("futimens", dst_shown);
    return hash;
}

}  // namespace unify
