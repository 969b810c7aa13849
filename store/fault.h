// Fault injection for the crash tests, compiled into the test binary `unify-faults` only
// (UNIFY_FAULTS defined). Each place where a writer is about to change the filesystem or
// commit the index calls fault_point("step"). With UNIFY_FAULT="step:N" the process kills
// itself (SIGKILL, nothing flushed, nothing unwound) at the N-th time it reaches that step;
// with UNIFY_FAULT_TRACE=FILE it appends every step it reaches to FILE, so a test can list
// the points and walk each of them. In the production binary the calls compile to nothing.
//
// Two switches for tests of what real guests and hostile guests do, also in `unify-faults`
// only:
//   UNIFY_FAULT_SETTLE=settled|unsettled  every file counts as settled (old, as in a real
//       guest: the batch adoption path) or as unsettled (just made: the leased path),
//       whatever its ctime; see importer/settle.h.
//   UNIFY_FAULT_WRITE="step:N:PATH"  at the N-th time fault_point("step") is reached, a
//       byte is appended to PATH and its mtime put back, as a hostile guest would do, then
//       the run goes on: a write landing exactly in the window a check must catch.
#pragma once

#include <cstdint>
#include <string>

namespace unify {

// fault_errno("read", path): with UNIFY_FAULT_ERRNO="read:EIO:SUBSTRING" it returns EIO
// when `path` contains SUBSTRING, for errnos no real setup here can produce on demand.
// fault_settle_cutoff(cutoff): the settle cutoff to use instead of `cutoff`.
#ifdef UNIFY_FAULTS
void fault_point(const char* step);
int fault_errno(const char* step, const std::string& path);
int64_t fault_settle_cutoff(int64_t cutoff);
#else
inline void fault_point(const char*) {}
inline int fault_errno(const char*, const std::string&) {
    return 0;
}
inline int64_t fault_settle_cutoff(int64_t cutoff) {
    return cutoff;
}
#endif

}  // namespace unify
