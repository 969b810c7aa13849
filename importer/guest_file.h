// Opening a file the walk found in a guest, to read it: hashing, the re-read under a lease,
// the copy into the pool. The guest controls what stands at that name at every moment, so
// the open never follows a symlink, never blocks on a FIFO (O_NONBLOCK), and yields only
// the regular file the walk saw. One errno policy for every caller:
//   changed     the name is gone, is a symlink now, or is another inode or type than the
//               walk saw: skipped, left for the next run;
//   unreadable  EACCES, EPERM, EIO (opening or reading): skipped and reported, the import
//               goes on;
//   an Error    anything else (EMFILE, ENOMEM, ...): the import stops and says why.
#pragma once

#include <string>

#include "importer/walker.h"
#include "store/fd.h"

namespace unify {

struct GuestFile {
    enum State { ok, changed, unreadable } state = changed;
    Fd fd;        // open on the walked inode when ok
    Error error;  // why, when unreadable
};

Result<GuestFile> open_guest_file(const WalkEntry& e, const std::string& shown);

// The policy above for an error met while reading an opened guest file: unreadable (true),
// or a failure that stops the import (false).
bool is_unreadable(const Error& e);

}  // namespace unify
