#include "store/map_guard.h"

#include <signal.h>
#include <string.h>
#include <unistd.h>

#include <atomic>
#include <mutex>

namespace unify {

namespace {

constexpr size_t kRanges = 8;
constexpr size_t kMessage = 512;

// Read by the handler without a lock: a range is published by its `start` (release) after
// its other fields, and withdrawn by clearing `start` first.
struct Range {
    std::atomic<uintptr_t> start{0};
    uintptr_t end = 0;
    char message[kMessage] = {};
    size_t length = 0;
};
Range ranges[kRanges];
std::mutex mu;  // registration only
struct sigaction previous_bus, previous_segv;

void on_fault(int sig, siginfo_t* info, void* context) {
    auto at = reinterpret_cast<uintptr_t>(info->si_addr);
    for (Range& r : ranges) {
        uintptr_t start = r.start.load(std::memory_order_acquire);
        if (start && at >= start && at < r.end) {
            (void)!write(STDERR_FILENO, r.message, r.length);
            _exit(1);
        }
    }
    // Not ours: what was there before (by default, die by the signal with a core).
    const struct sigaction& prev = sig == SIGBUS ? previous_bus : previous_segv;
    if (prev.sa_flags & SA_SIGINFO) {
        prev.sa_sigaction(sig, info, context);
        return;
    }
    if (prev.sa_handler != SIG_DFL && prev.sa_handler != SIG_IGN) {
        prev.sa_handler(sig);
        return;
    }
    signal(sig, SIG_DFL);  // the faulting instruction runs again and dies by the signal
}

void install_once() {
    static bool installed = false;
    if (installed) return;
    installed = true;
    struct sigaction sa {};
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGBUS, &sa, &previous_bus);
    sigaction(SIGSEGV, &sa, &previous_segv);
}

}  // namespace

void guard_mapping(const void* addr, size_t len, const std::string& message) {
    std::lock_guard<std::mutex> lock(mu);
    install_once();
    for (Range& r : ranges) {
        if (r.start.load(std::memory_order_relaxed)) continue;
        std::string text = "unify: error: " + message + "\n";
        r.length = std::min(text.size(), kMessage);
        memcpy(r.message, text.data(), r.length);
        r.end = reinterpret_cast<uintptr_t>(addr) + len;
        r.start.store(reinterpret_cast<uintptr_t>(addr), std::memory_order_release);
        return;
    }
}

void unguard_mapping(const void* addr) {
    std::lock_guard<std::mutex> lock(mu);
    for (Range& r : ranges)
        if (r.start.load(std::memory_order_relaxed) == reinterpret_cast<uintptr_t>(addr))
            r.start.store(0, std::memory_order_release);
}

}  // namespace unify
