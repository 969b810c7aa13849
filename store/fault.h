// Fault injection for the crash tests, compiled into the test binary `unify-faults` only
// (UNIFY_FAULTS defined). Each place where a writer is about to change the filesystem or
// commit the index calls fault_point("step"). With UNIFY_FAULT="step:N" the process kills
// itself (SIGKILL, nothing flushed, nothing unwound) at the N-th time it reaches that step;
// with UNIFY_FAULT_TRACE=FILE it appends every step it reaches to FILE, so a test can list
// the points and walk each of them. In the production binary the calls compile to nothing.
#pragma once

#include <string>

namespace unify {

// fault_errno("read", path): with UNIFY_FAULT_ERRNO="read:EIO:SUBSTRING" it returns EIO
// when `path` contains SUBSTRING, for errnos no real setup here can produce on demand.
#ifdef UNIFY_FAULTS
void fault_point(const char* step);
int fault_errno(const char* step, const std::string& path);
#else
inline void fault_point(const char*) {}
inline int fault_errno(const char*, const std::string&) {
    return 0;
}
#endif

}  // namespace unify
