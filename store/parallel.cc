#include "store/parallel.h"

#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <new>
#include <system_error>
#include <thread>
#include <vector>

namespace unify {

namespace {

// Threads are kept, parked, between loops, and a new one is started on another core than
// its parent's. A thread made for a loop starts beside its parent and waits there until the
// parent blocks (this kernel, on a VM of 2 cores: in 2 of 3 tries a loop of 3 ms ran on one
// core, the new thread starting when it ended), so a loop of a few milliseconds, such as a
// batch's statx or `who`'s guests, ran on one core whatever `jobs` said. A thread started
// with its affinity set to the other cores starts at once (0.1 ms), and a parked thread that
// is woken runs on an idle core at once (0.05 ms).
class Worker {
  public:
    Worker() {
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        cpu_set_t elsewhere;
        bool hint = sched_getaffinity(0, sizeof allowed_, &allowed_) == 0;
        if (hint) {
            elsewhere = allowed_;
            int here = sched_getcpu();
            if (here >= 0 && here < CPU_SETSIZE) CPU_CLR(here, &elsewhere);
            hint = CPU_COUNT(&elsewhere) > 0 &&
                   pthread_attr_setaffinity_np(&attr, sizeof elsewhere, &elsewhere) == 0;
        }
        reset_affinity_ = hint;
        pthread_t t;
        int rc = pthread_create(&t, &attr, &Worker::main, this);
        pthread_attr_destroy(&attr);
        if (rc != 0) throw std::system_error(rc, std::generic_category(), "pthread_create");
        pthread_detach(t);
    }

    // Runs `task` on this thread; the caller waits for it with wait(), or, `detached`, the
    // thread is kept again (Workers::give_back) by itself once it is done.
    void start(std::function<void()> task, bool detached = false) {
        std::lock_guard l(m_);
        task_ = std::move(task);
        done_ = false;
        detached_ = detached;
        cv_.notify_all();
    }

    void wait() {
        std::unique_lock l(m_);
        cv_.wait(l, [&] { return done_; });
    }

  private:
    static void* main(void* self) {
        static_cast<Worker*>(self)->park();
        return nullptr;
    }

    void park() {
        {
            // Where the parent's cores were only a hint: from now on it may run on any of them.
            std::unique_lock l(m_);
            cv_.wait(l, [&] { return bool(task_); });
            if (reset_affinity_) sched_setaffinity(0, sizeof allowed_, &allowed_);
        }
        for (;;) {
            std::function<void()> task;
            {
                std::unique_lock l(m_);
                cv_.wait(l, [&] { return bool(task_); });
                task = std::move(task_);
                task_ = nullptr;
            }
            task();
            bool detached;
            {
                // Under the lock: the caller cannot return from wait() before we let go of it.
                std::lock_guard l(m_);
                done_ = true;
                detached = detached_;
                cv_.notify_all();
            }
            if (detached) give_back();
        }
    }

    void give_back();

    std::mutex m_;
    std::condition_variable cv_;
    std::function<void()> task_;
    bool done_ = true;
    bool detached_ = false;
    cpu_set_t allowed_;
    bool reset_affinity_ = false;
};

// Parked workers, taken by one loop at a time; loops on several threads at once (import's
// walk and its background hashing) or inside each other each take their own, and new ones
// are made when none is parked. Never freed: parked threads live as long as the process.
class Workers {
  public:
    static Workers& get() {
        static Workers* w = [] {
            auto* p = new Workers;
            // A forked child has none of the threads: it starts over with none parked, and
            // with the list's lock free (another thread may have held it at the fork).
            pthread_atfork(nullptr, nullptr, [] {
                Workers& w = Workers::get();
                new (&w.m_) std::mutex;
                w.parked_.clear();
            });
            return p;
        }();
        return *w;
    }

    Worker* take() {
        {
            std::lock_guard l(m_);
            if (!parked_.empty()) {
                Worker* w = parked_.back();
                parked_.pop_back();
                return w;
            }
        }
        return new Worker;
    }

    void give_back(Worker* w) {
        std::lock_guard l(m_);
        parked_.push_back(w);
    }

  private:
    std::mutex m_;
    std::vector<Worker*> parked_;
};

void Worker::give_back() {
    Workers::get().give_back(this);
}

constexpr size_t kNone = ~size_t(0);
// A Part packs two indices in one word: longer loops run in runs of this many.
constexpr size_t kMaxRun = 0xffffffffu;

// One worker's contiguous share of a loop's indices: it takes them from the front, and a
// worker done with its own share takes from the back of the others'. The workers so stay far
// apart in the loop's order. Import links its groups in walk order: two workers taking turns
// from one counter were nearly always in the same directory, whose lock each link, rename and
// unlink takes (g1..g4 into an empty pool: 3 % of the CPU spinning on it, 0.2 % now; 4 % less
// CPU and wall over 12 alternated runs).
struct alignas(64) Part {
    std::atomic<uint64_t> range{0};  // next index in the low half, end in the high half
    void reset(size_t first, size_t end) { range = (uint64_t(end) << 32) | first; }
    // The next index from the front, or from the back (another worker's share); kNone when
    // the share is done.
    size_t take(bool from_back) {
        uint64_t r = range.load();
        for (;;) {
            uint64_t next = r & kMaxRun, end = r >> 32;
            if (next >= end) return kNone;
            uint64_t taken = from_back ? ((end - 1) << 32) | next : r + 1;
            if (range.compare_exchange_weak(r, taken)) return from_back ? end - 1 : next;
        }
    }
};

// Indices [first, first + n), n <= kMaxRun, on `jobs` threads (the caller is worker 0).
void run_parts(size_t first, size_t n, unsigned jobs,
               const std::function<void(size_t i, unsigned worker)>& body) {
    std::vector<Part> parts(std::min<size_t>(jobs, n));
    const size_t k = parts.size();
    for (size_t p = 0; p < k; ++p) parts[p].reset(n * p / k, n * (p + 1) / k);
    auto worker = [&](unsigned w) {
        for (size_t i; (i = parts[w].take(false)) != kNone;) body(first + i, w);
        for (size_t d = 1; d < k; ++d)
            for (size_t i; (i = parts[(w + d) % k].take(true)) != kNone;) body(first + i, w);
    };
    Workers& pool = Workers::get();
    std::vector<Worker*> helpers;
    for (unsigned t = 1; t < k; ++t) {
        helpers.push_back(pool.take());
        helpers.back()->start([&worker, t] { worker(t); });
    }
    worker(0);
    for (Worker* h : helpers) {
        h->wait();
        pool.give_back(h);
    }
}

}  // namespace

void run_in_background(std::function<void()> task) {
    Workers::get().take()->start(std::move(task), true);
}

void parallel_for_worker(size_t n, unsigned jobs,
                         const std::function<void(size_t i, unsigned worker)>& body) {
    if (jobs <= 1 || n < 2) {
        for (size_t i = 0; i < n; ++i) body(i, 0);
        return;
    }
    for (size_t first = 0; first < n; first += kMaxRun)
        run_parts(first, std::min(kMaxRun, n - first), jobs, body);
}

void parallel_for(size_t n, unsigned jobs, const std::function<void(size_t)>& body) {
    parallel_for_worker(n, jobs, [&](size_t i, unsigned) { body(i); });
}

unsigned jobs_or_cores(unsigned jobs) {
    return jobs ? jobs : std::max(1u, std::thread::hardware_concurrency());
}

}  // namespace unify
