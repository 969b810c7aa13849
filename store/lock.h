// The pool lock (docs/DESIGN.md invariant 6): one writer at a time. The holder writes its pid and
// command into the lock file, so a second writer can say who it is waiting for (only while
// /proc/locks shows that process holding it: the words outlive their writer). Readers
// (who, status, list) never take it: LMDB gives them a consistent snapshot.
#pragma once

#include <string>

#include "store/fd.h"
#include "store/result.h"

namespace unify {

class PoolLock {
  public:
    // wait=false: fail at once, naming the holder; wait=true: block until it is ours.
    static Result<PoolLock> acquire(int pool_fd, const std::string& pool_path,
                                    const std::string& command, bool wait);

  private:
    Fd fd_;
};

}  // namespace unify
