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
    sa.sa_flags = SA_RESTART;
    for (int sig : {SIGINT, SIGTERM, SIGHUP}) sigaction(sig, &sa, nullptr);
}

bool interrupted() {
    return g_signal.load() != 0;
}

Error interrupted_error() {
    return Error{std::string("interrupted by ") + sigabbrev_np(g_signal.load()) +
                     "; everything done so far is recorded, run the same command again to "
                     "finish",
                 EINTR};
}

}  // namespace unify
