// Opening a file that a guest controls, for reading. The guest decides what stands at the
// name by the time we open it, so the open must not block and nothing but a regular file
// may be read: O_NONBLOCK (a FIFO does not wait for a writer, a file under someone's write
// lease does not wait for its break), O_NOFOLLOW, then fstat before a single byte is read
// (a FIFO, socket or device, e.g. a planted /dev/zero, is closed again unread).
#pragma once

#include <string>

#include "store/fd.h"
#include "store/sys.h"

namespace unify {

// errno of the error when something other than a regular file stood at the name.
constexpr int kNotRegular = ENXIO;

struct GuestFile {
    Fd fd;
    FileStat st;  // of the opened inode, taken before anything was read
};

// openat(dirfd, name, O_RDONLY|O_NONBLOCK|O_NOFOLLOW|O_CLOEXEC, plus O_NOATIME where we may).
// Errors keep the errno: ENOENT/ELOOP (gone, or a symlink now), EWOULDBLOCK (a lease),
// kNotRegular, EACCES ...
Result<GuestFile> open_guest_file(int dirfd, const std::string& name, const std::string& shown);

// True for the errnos of open_guest_file that mean "the name is no longer the regular file
// that was walked" rather than a failure.
bool guest_file_changed(int err);

}  // namespace unify
