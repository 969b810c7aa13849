// The files an import displaces from guest paths (the guest's own copy, now that the path is
// a link to the pool's object) are unlinked on worker threads, not in the link loop. Freeing
// a file's blocks is the slowest step of linking it: on an ext4 mounted with `discard`, the
// unlink waits for the device to trim them, which was 94 % of the time a second guest's
// import spent off the CPU. The file is first renamed into POOL/tmp as trash.<random>, out of
// the guest's sight and out of its directory, so a killed run leaves nothing in the guest; the
// next writer removes trash.* by name (Pool::prepare_writer).
#pragma once

#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "store/result.h"
#include "store/sys.h"

namespace unify {

class Trash {
  public:
    // tmp_fd: POOL/tmp, on the guests' filesystem; threads: unlinks at once (started on the
    // first take).
    Trash(int tmp_fd, std::string tmp_shown, unsigned threads);
    ~Trash();
    Trash(const Trash&) = delete;
    Trash& operator=(const Trash&) = delete;

    // Removes dirfd/name, which was just seen to be `seen`, from its directory now and frees
    // it later. Where it cannot be moved (a rename that fails), it is unlinked in place, here.
    // In a guest directory the name is the guest's to change between that look and the move:
    // a directory never leaves the guest's tree (it is left where it is: a process inside it
    // would reach POOL/tmp and the host through ".." while it was there), and whatever else
    // arrived in POOL/tmp is put back, never removed.
    Result<void> take(int dirfd, const std::string& name, const FileStat& seen,
                      const std::string& shown);
    // Waits until everything taken is unlinked, and the placeholder too: tmp holds nothing of
    // ours after. The first unlink that failed, if any.
    Result<void> drain();

  private:
    bool link_placeholder(const std::string& trash);
    void work();

    int tmp_fd_;
    std::string tmp_shown_;
    unsigned threads_;
    std::vector<std::thread> workers_;
    std::mutex mu_;
    std::condition_variable wake_, idle_;
    struct Item {
        std::string trash, shown;  // its name in tmp, and the name it had
    };
    std::deque<Item> queue_;
    size_t busy_ = 0;
    bool stop_ = false;
    std::optional<Error> error_;
    std::string placeholder_;  // the first name in tmp of the empty file renames replace
};

}  // namespace unify
