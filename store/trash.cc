#include "store/trash.h"

#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include "store/fresh_file.h"
#include "store/sys.h"

namespace unify {

Trash::Trash(int tmp_fd, std::string tmp_shown, unsigned threads)
    : tmp_fd_(tmp_fd), tmp_shown_(std::move(tmp_shown)), threads_(threads ? threads : 1) {}

Trash::~Trash() {
    {
        std::lock_guard<std::mutex> l(mu_);
        stop_ = true;
    }
    wake_.notify_all();
    for (auto& t : workers_) t.join();  // the queue is emptied first (work)
    if (!placeholder_.empty()) unlinkat(tmp_fd_, placeholder_.c_str(), 0);
}

// A new name in tmp for the placeholder inode, which is made once (a file of its own per
// take cost an inode allocation each: on ext4, right after the workers freed many, about a
// seventh of a first import). False where none could be made: the caller unlinks in place.
bool Trash::link_placeholder(const std::string& trash) {
    std::lock_guard<std::mutex> l(mu_);
    for (int fresh = 0; fresh < 2; ++fresh) {
        if (placeholder_.empty()) {
            std::string name = "trash." + random_hex(8);
            int fd = openat(tmp_fd_, name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
            if (fd < 0) return false;
            close(fd);
            placeholder_ = name;
        }
        if (linkat(tmp_fd_, placeholder_.c_str(), tmp_fd_, trash.c_str(), 0) == 0) return true;
        if (errno != EMLINK) return false;  // EEXIST too: the caller picks another name
        // Its link count is full: its names go as renames replace them, the first one now.
        unlinkat(tmp_fd_, placeholder_.c_str(), 0);
        placeholder_.clear();
    }
    return false;
}

Result<void> Trash::take(int dirfd, const std::string& name, const FileStat& seen,
                         const std::string& shown) {
    std::string trash;
    for (;;) {
        trash = "trash." + random_hex(8);
        // The target exists first, as a name of an empty regular file: rename(2) lets a file
        // replace it but never a directory (ENOTDIR). A guest that exchanges one of its
        // directories in at `name` after our look cannot have it moved into POOL/tmp, where a
        // process holding it open would climb out through "..".
        bool placed = link_placeholder(trash);
        if (!placed && errno == EEXIST) continue;
        if (placed) {
            if (renameat2(dirfd, name.c_str(), tmp_fd_, trash.c_str(), 0) == 0) break;
            int err = errno;
            unlinkat(tmp_fd_, trash.c_str(), 0);
            if (err == ENOTDIR || err == EISDIR) return {};  // the guest's directory: left alone
        }
        if (unlinkat(dirfd, name.c_str(), 0) != 0) {
            if (errno == EISDIR) return {};
            return sys_fail("unlinkat", shown);
        }
        return {};
    }
    std::string moved = tmp_shown_ + "/" + trash;
    auto st = stat_if_exists(tmp_fd_, trash, moved);
    if (!st) return std::unexpected(st.error());
    if (!*st || !(*st)->same_inode(seen)) {
        // Not ours to remove: back into the guest's directory, under its name if still free.
        std::string back = name;
        while (renameat2(tmp_fd_, trash.c_str(), dirfd, back.c_str(), RENAME_NOREPLACE) != 0) {
            if (errno != EEXIST)
                return sys_fail("renameat2", moved + " (putting back what replaced " + shown + ")");
            back = name + "." + random_hex(4);
        }
        return {};
    }
    std::lock_guard<std::mutex> l(mu_);
    queue_.push_back({std::move(trash), shown});
    if (workers_.empty())
        for (unsigned i = 0; i < threads_; ++i) workers_.emplace_back([this] { work(); });
    wake_.notify_one();
    return {};
}

Result<void> Trash::drain() {
    std::unique_lock<std::mutex> l(mu_);
    idle_.wait(l, [&] { return queue_.empty() && busy_ == 0; });
    if (!placeholder_.empty()) {
        unlinkat(tmp_fd_, placeholder_.c_str(), 0);
        placeholder_.clear();
    }
    if (!error_) return {};
    Error e = *error_;
    error_.reset();
    return std::unexpected(e);
}

void Trash::work() {
    std::unique_lock<std::mutex> l(mu_);
    for (;;) {
        wake_.wait(l, [&] { return stop_ || !queue_.empty(); });
        if (queue_.empty()) return;  // stop_, and nothing left
        Item item = std::move(queue_.front());
        queue_.pop_front();
        ++busy_;
        l.unlock();
        Result<void> r;
        if (unlinkat(tmp_fd_, item.trash.c_str(), 0) != 0 && errno != ENOENT)
            r = sys_fail("unlinkat", tmp_shown_ + "/" + item.trash + " (was " + item.shown + ")");
        l.lock();
        --busy_;
        if (!r && !error_) error_ = r.error();
        if (queue_.empty() && busy_ == 0) idle_.notify_all();
    }
}

}  // namespace unify
