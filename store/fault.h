// Fault injection for the crash tests. Each place where a writer is about to change the
// filesystem or commit the index calls fault_point("step"). The seam is at link time: the
// production binary `unify` links store/fault_off.cc, where every call does nothing; the
// test binaries (`unify-faults`, `unify_tests`) link store/fault.cc, where with
// UNIFY_FAULT="step:N" the process kills itself (SIGKILL, nothing flushed, nothing unwound)
// at the N-th time it reaches that step, and with UNIFY_FAULT_TRACE=FILE it appends every
// step it reaches to FILE, so a test can list the points and walk each of them. Every
// source is compiled once; only the seam differs.
//
// Two switches for tests of what real guests and hostile guests do, also in the test
// binaries only:
//   UNIFY_FAULT_SETTLE=settled|unsettled  every file counts as settled (old, as in a real
//       guest: the batch adoption path) or as unsettled (just made: the leased path),
//       whatever its ctime; see importer/settle.h.
//   UNIFY_FAULT_WRITE="step:N:PATH"  at the N-th time fault_point("step") is reached, a
//       byte is appended to PATH and its mtime put back, as a hostile guest would do, then
//       the run goes on: a write landing exactly in the window a check must catch.
//   UNIFY_FAULT_WRITER="step:N:PATH"  at that point another process opens PATH for writing
//       (waiting in the kernel while a read lease holds it) and, once open, writes "EVIL" at
//       offset 0; the run goes on when that process waits (or at once). It creates
//       $UNIFY_FAULT_WRITER_DONE when it is done: a writer caught in a protection window.
//   UNIFY_FAULT_LINK="step:N:FROM:TO"  at the N-th time fault_point("step") is reached, TO
//       becomes another name of FROM (its immutable flag lifted for the link and put back),
//       as a root process outside unify could do: a link appearing exactly where gc's last
//       check before removing an object must see it.
//   UNIFY_FAULT_RENAME="step:N:FROM:TO"  at that point FROM is renamed over TO, as dpkg
//       installs a new version of a file: a path replaced exactly where a check must see it.
//   UNIFY_FAULT_TAMPER="step:N:PATH"  at that point PATH is made mode 04777 and given the
//       xattr user.unify-tamper, as a guest can through its own name of an object whose flag
//       a window has lifted (chmod, setxattr: the lease does not stop them). RENAME and
//       TAMPER take several, separated by ';'.
//   UNIFY_FAULT_REWRITE="step:N:PATH"  at that point PATH's first byte is overwritten in place
//       (same size) and its mtime put back, so that only its ctime shows the write; creates
//       $UNIFY_FAULT_REWRITE_DONE if the write went through. Several, separated by ';'.
//   UNIFY_FAULT_PAUSE="step:N:MS"  at that point the run sleeps MS milliseconds: time for a
//       test's inotify watcher, acting as a guest, to plant something at a name it just saw.
#pragma once

#include <cstdint>
#include <string>

namespace unify {

void fault_point(const char* step);
// fault_errno("read", path): with UNIFY_FAULT_ERRNO="read:EIO:SUBSTRING" it returns EIO
// when `path` contains SUBSTRING, for errnos no real setup here can produce on demand.
int fault_errno(const char* step, const std::string& path);
// fault_settle_cutoff(cutoff): the settle cutoff to use instead of `cutoff`.
int64_t fault_settle_cutoff(int64_t cutoff);

}  // namespace unify
