#include "linker/dir_times.h"

#include <fcntl.h>
#include <sys/stat.h>

namespace unify {

namespace {

// Directories remembered at once (each holds a dup'ed fd) before an early restore().
constexpr size_t kMaxPending = 64;

bool same(const timespec& a, const timespec& b) {
    return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

}  // namespace

void DirTimes::before(int dirfd) {
    struct stat st;
    if (fstat(dirfd, &st) != 0) return;
    auto key = std::make_pair(st.st_dev, st.st_ino);
    auto it = dirs_.find(key);
    if (it != dirs_.end()) {
        Dir& d = it->second;
        // Someone else changed it since our last change: its times are the guest's now.
        if (d.seen && (!same(st.st_mtim, d.seen_mtime) || !same(st.st_ctim, d.seen_ctime)))
            d.guest_changed = true;
        return;
    }
    if (dirs_.size() >= kMaxPending) restore();
    int fd = fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
    if (fd < 0) return;
    Dir& d = dirs_[key];
    d.fd = Fd(fd);
    d.atime = st.st_atim;
    d.mtime = st.st_mtim;
}

void DirTimes::after(int dirfd) {
    struct stat st;
    if (fstat(dirfd, &st) != 0) return;
    auto it = dirs_.find(std::make_pair(st.st_dev, st.st_ino));
    if (it == dirs_.end()) return;
    it->second.seen = true;
    it->second.seen_mtime = st.st_mtim;
    it->second.seen_ctime = st.st_ctim;
}

void DirTimes::restore() {
    for (auto& [key, d] : dirs_) {
        struct stat st;
        if (!d.seen || d.guest_changed || fstat(d.fd.get(), &st) != 0) continue;
        if (!same(st.st_mtim, d.seen_mtime) || !same(st.st_ctim, d.seen_ctime)) continue;
        const timespec times[2] = {d.atime, d.mtime};
        (void)futimens(d.fd.get(), times);  // best effort, see dir_times.h
    }
    dirs_.clear();
}

}  // namespace unify
