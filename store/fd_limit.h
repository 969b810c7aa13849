// Commands that keep a batch of files or directories open (import's walk and batches,
// unshare's prepared copies) size their batches by the open-file limit, raised first.
#pragma once

#include <cstddef>

namespace unify {

// Raises the soft limit on open files to the hard one and returns how many a command may
// hold for its batches: the rest is left to the walk's directory fds, LMDB and the threads'
// files in flight.
size_t fd_room();

}  // namespace unify
