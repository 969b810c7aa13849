// Plain parallel loops over pre-sized work, as mold does: `jobs` threads take indices from
// one atomic counter; the calling thread works too. No queues, no futures.
#pragma once

#include <cstddef>
#include <functional>

namespace unify {

void parallel_for(size_t n, unsigned jobs, const std::function<void(size_t)>& body);

// The same, telling the body which worker runs it (0 .. jobs-1; the calling thread is 0): for
// what each worker must have to itself, such as an intent slot.
void parallel_for_worker(size_t n, unsigned jobs,
                         const std::function<void(size_t i, unsigned worker)>& body);

// --jobs: 0 means one thread per core.
unsigned jobs_or_cores(unsigned jobs);

}  // namespace unify
