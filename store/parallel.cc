#include "store/parallel.h"

#include <algorithm>
#include <atomic>
#include <thread>
#include <vector>

namespace unify {

void parallel_for_worker(size_t n, unsigned jobs,
                         const std::function<void(size_t i, unsigned worker)>& body) {
    if (jobs <= 1 || n < 2) {
        for (size_t i = 0; i < n; ++i) body(i, 0);
        return;
    }
    std::atomic<size_t> next{0};
    auto worker = [&](unsigned w) {
        for (size_t i; (i = next.fetch_add(1)) < n;) body(i, w);
    };
    std::vector<std::thread> threads;
    for (unsigned t = 1; t < jobs && t < n; ++t) threads.emplace_back(worker, t);
    worker(0);
    for (auto& t : threads) t.join();
}

void parallel_for(size_t n, unsigned jobs, const std::function<void(size_t)>& body) {
    parallel_for_worker(n, jobs, [&](size_t i, unsigned) { body(i); });
}

unsigned jobs_or_cores(unsigned jobs) {
    return jobs ? jobs : std::max(1u, std::thread::hardware_concurrency());
}

}  // namespace unify
