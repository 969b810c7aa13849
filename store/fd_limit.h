// Commands that keep a batch of files or directories open (import's walk and batches,
// unshare's prepared copies, the guest roots `who` and verify keep open) size their batches by
// the open-file limit, raised first.
#pragma once

#include <cstddef>

namespace unify {

// Raises the soft limit on open files to the hard one and returns how many a command may
// hold for its batches: the rest is left to the walk's directory fds, LMDB and the threads'
// files in flight.
size_t fd_room();

// Import's two batches of kMaxBatch files with their directories, or a guest root each for
// `who` of that many guests: 128 KiB of table. Past it the table still grows, only slower.
constexpr size_t kReservedFds = 16384;

// Grows the process's fd table, once, to what a command may hold (the raised limit, at most
// kReservedFds). Called first thing in main, while the process has one thread: the kernel grows
// a table shared by several threads only after an RCU grace period (expand_fdtable's
// synchronize_rcu), milliseconds each time on a busy VM, and the table doubles from 64 as
// fds are opened, so a `who` of 1,000 sharers with its guest roots open on two threads
// waited through five of them.
void reserve_fd_table();

}  // namespace unify
