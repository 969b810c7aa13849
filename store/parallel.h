// Plain parallel loops over pre-sized work, as mold does: each of `jobs` threads takes indices
// from a contiguous share of its own, then from the back of the others' (store/parallel.cc:
// they stay apart in the loop's order); the calling thread works too. No queues, no futures.
#pragma once

#include <cstddef>
#include <functional>
#include <future>
#include <memory>

namespace unify {

void parallel_for(size_t n, unsigned jobs, const std::function<void(size_t)>& body);

// The same, telling the body which worker runs it (0 .. jobs-1; the calling thread is 0): for
// what each worker must have to itself, such as an intent slot.
void parallel_for_worker(size_t n, unsigned jobs,
                         const std::function<void(size_t i, unsigned worker)>& body);

// Runs `task` on a kept thread of those loops while the caller goes on (import's hashing of
// the next batch); the thread is kept again once it is done.
void run_in_background(std::function<void()> task);

// The same, with the task's result in the future.
template <class F>
auto in_background(F&& f) -> std::future<decltype(f())> {
    auto task = std::make_shared<std::packaged_task<decltype(f())()>>(std::forward<F>(f));
    auto result = task->get_future();
    run_in_background([task] { (*task)(); });
    return result;
}

// --jobs: 0 means one thread per core.
unsigned jobs_or_cores(unsigned jobs);

}  // namespace unify
