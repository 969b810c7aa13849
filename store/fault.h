// Fault injection for the crash tests. Each place where a writer is about to change the
// filesystem or commit the index calls fault_point("step"). The seam is at link time: the
// production binary `unify` links store/fault_off.cc, where every call does nothing; the
// test binaries (`unify-faults`, `unify_tests`) link store/fault.cc, where with
// UNIFY_FAULT="step:N" the process kills itself (SIGKILL, nothing flushed, nothing unwound)
// at the N-th time it reaches that step, and with UNIFY_FAULT_TRACE=FILE it appends every
// step it reaches to FILE, so a test can list the points and walk each of them. Every
// source is compiled once; only the seam differs.
#pragma once

#include <string>

namespace unify {

void fault_point(const char* step);
// fault_errno("read", path): with UNIFY_FAULT_ERRNO="read:EIO:SUBSTRING" it returns EIO
// when `path` contains SUBSTRING, for errnos no real setup here can produce on demand.
int fault_errno(const char* step, const std::string& path);

}  // namespace unify
