#include "store/interrupt.h"

#include <signal.h>

#include <atomic>

namespace unify {

namespace {

std::atomic<int> g_signal{0};

void on_signal(int sig) {
    g_signal.store(sig);
}

}  // namespace

void install_interrupt_handlers() {
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    // No SA_RESTART: a system call that blocks (waiting for the lock, or anything a guest
    // could make wait) returns EINTR, and its caller sees interrupted() and unwinds.
    sa.sa_flags = 0;
    for (int sig : {SIGINT, SIGTERM, SIGHUP}) sigaction(sig, &sa, nullptr);
    // A writer opening a file we hold a read lease on makes the kernel send SIGIO, whose
    // default kills us; the leases are asked instead (importer/settle.h, store/protect.h).
    signal(SIGIO, SIG_IGN);
}

bool interrupted() {
    return g_signal.load() != 0;
}

Error interrupted_error(bool writes) {
    return Error{std::string("interrupted by ") + sigabbrev_np(g_signal.load()) +
                     (writes ? "; everything done so far is recorded, run the same command "
                               "again to finish"
                             : "; nothing was changed and nothing checked so far is kept: run "
                               "it again"),
                 EINTR};
}

}  // namespace unify
