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
    std::lock_guard<std::mutex> l(mu_);
    struct stat st;
    if (fstat(dirfd, &st) != 0) return;
    auto key = std::make_pair(st.st_dev, st.st_ino);
    auto it = dirs_.find(key);
    if (it != dirs_.end()) {
        Dir& d = it->second;
        // Someone else changed it since our last change: its times are the guest's now.
        if (d.seen && d.in_flight == 0 &&
            (!same(st.st_mtim, d.seen_mtime) || !same(st.st_ctim, d.seen_ctime)))
            d.guest_changed = true;
        ++d.in_flight;
        return;
    }
    if (dirs_.size() >= kMaxPending) restore_locked();
    int fd = fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
    if (fd < 0) return;
    Dir& d = dirs_[key];
    d.fd = Fd(fd);
    d.atime = st.st_atim;
    d.mtime = st.st_mtim;
    d.in_flight = 1;
}

void DirTimes::after(int dirfd) {
    std::lock_guard<std::mutex> l(mu_);
    struct stat st;
    if (fstat(dirfd, &st) != 0) return;
    auto it = dirs_.find(std::make_pair(st.st_dev, st.st_ino));
    if (it == dirs_.end()) return;
    Dir& d = it->second;
    if (d.in_flight > 0) --d.in_flight;
    d.seen = true;
    d.seen_mtime = st.st_mtim;
    d.seen_ctime = st.st_ctim;
}

void DirTimes::restore() {
    std::lock_guard<std::mutex> l(mu_);
    restore_locked();
}

// Directories with a change in flight (another thread's) stay remembered.
void DirTimes::restore_locked() {
    for (auto it = dirs_.begin(); it != dirs_.end();) {
        Dir& d = it->second;
        if (d.in_flight > 0) {
            ++it;
            continue;
        }
        struct stat st;
        if (d.seen && !d.guest_changed && fstat(d.fd.get(), &st) == 0 &&
            same(st.st_mtim, d.seen_mtime) && same(st.st_ctim, d.seen_ctime)) {
            const timespec times[2] = {d.atime, d.mtime};
            (void)futimens(d.fd.get(), times);  // best effort, see dir_times.h
        }
        it = dirs_.erase(it);
    }
}

}  // namespace unify
