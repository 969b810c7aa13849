// Guest directories keep their times: a rename (or link, or unlink) in a directory sets its
// mtime and ctime, so without this every directory an import or unshare touched looks
// changed to backup and integrity tools. Each directory's atime and mtime are remembered
// before unify's first change in it and put back (futimens) afterwards, unless the guest
// changed the directory meanwhile: its mtime or ctime then differ from what unify saw right
// after its own last change there. ctime cannot be set back; it stays moved. A guest change
// within the same timestamp tick as unify's own is not seen (the times are all there is).
#pragma once

#include <sys/stat.h>

#include <map>
#include <mutex>
#include <utility>

#include "store/fd.h"

namespace unify {

class DirTimes {
  public:
    DirTimes() = default;
    DirTimes(const DirTimes&) = delete;
    ~DirTimes() { restore(); }

    // Call right before and right after each change unify makes in directory dirfd. Safe
    // from several threads: while one thread's change is in flight in a directory, another's
    // look cannot tell it from the guest's, so a guest change then goes unseen (best effort,
    // as below).
    void before(int dirfd);
    void after(int dirfd);
    // Puts back the times of every directory remembered so far and forgets them (also done
    // by the destructor, and early when many directories are pending, since each holds an
    // fd; a later change then remembers the restored times again). Best effort: a directory
    // the guest flagged immutable or removed keeps what it has.
    void restore();

  private:
    void restore_locked();
    struct Dir {
        Fd fd;  // a dup: the caller's fd may be closed before restore()
        timespec atime{}, mtime{};
        bool seen = false;  // after() ran: seen_mtime/seen_ctime are unify's own last change
        timespec seen_mtime{}, seen_ctime{};
        bool guest_changed = false;
        int in_flight = 0;  // unify's changes begun (before) and not yet seen (after)
    };
    std::mutex mu_;
    std::map<std::pair<dev_t, ino_t>, Dir> dirs_;
};

}  // namespace unify
