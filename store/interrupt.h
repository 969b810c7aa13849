// SIGINT/SIGTERM/SIGHUP do not kill a writer in the middle of a replace or a protection
// window: they set a flag that the loops check between files, so the command stops at a
// clean point, records what it did, and says how to finish. A call blocked in the kernel
// returns EINTR (no SA_RESTART); loops that retry EINTR retry only while not interrupted().
#pragma once

#include "store/result.h"

namespace unify {

void install_interrupt_handlers();
bool interrupted();
// The error a loop returns when it stops for a signal. `writes`: the command records what it
// did (a re-run finishes it), or, false, it only looks (a re-run starts again).
Error interrupted_error(bool writes = true);

}  // namespace unify
