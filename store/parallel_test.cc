#include "store/parallel.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

namespace unify {
namespace {

pid_t tid() {
    return gettid();
}

TEST(Parallel, EveryIndexRunsOnceOnTheWorkersAsked) {
    std::vector<std::atomic<int>> runs(1000);
    std::mutex mu;
    std::set<unsigned> workers;
    parallel_for_worker(runs.size(), 3, [&](size_t i, unsigned w) {
        ++runs[i];
        std::lock_guard l(mu);
        workers.insert(w);
    });
    for (size_t i = 0; i < runs.size(); ++i) ASSERT_EQ(runs[i], 1) << i;
    EXPECT_LE(*workers.rbegin(), 2u);
    std::vector<int> one(1);
    parallel_for(1, 3, [&](size_t i) { ++one[i]; });  // fewer items than jobs
    EXPECT_EQ(one[0], 1);
}

// Waits up to 2 s for `done`: a test's way of holding one worker while another goes on.
void wait_for(const std::atomic<bool>& done) {
    for (int k = 0; k < 2000 && !done; ++k) usleep(1000);
}

// Each worker starts at the front of a contiguous share of its own (import's link loop gets
// its groups in walk order: workers taking turns from one counter were in the same directory,
// waiting for its lock), and one done with its share takes from the back of the others'.
TEST(Parallel, EachWorkerStartsOnItsOwnShareAndThenTakesFromTheBackOfTheOthers) {
    constexpr size_t n = 100;
    std::mutex mu;
    std::map<unsigned, std::vector<size_t>> taken;
    auto note = [&](size_t i, unsigned w) {
        std::lock_guard l(mu);
        taken[w].push_back(i);
    };
    // Worker 0 holds index 0 until the helper has begun: with one counter it would take 1.
    std::atomic<bool> helper_began{false};
    parallel_for_worker(n, 2, [&](size_t i, unsigned w) {
        if (w != 0) helper_began = true;
        if (i == 0) wait_for(helper_began);
        note(i, w);
    });
    ASSERT_FALSE(taken[1].empty());
    EXPECT_EQ(taken[1].front(), n / 2);
    size_t all = taken[0].size() + taken[1].size();
    EXPECT_EQ(all, n);

    // Again, and the helper then holds its first index until the last one has run: worker 0
    // runs its own share in order, then the helper's from the back.
    taken.clear();
    helper_began = false;
    std::atomic<bool> last_ran{false};
    parallel_for_worker(n, 2, [&](size_t i, unsigned w) {
        if (w != 0) helper_began = true;
        if (i == 0) wait_for(helper_began);
        if (i == n / 2) wait_for(last_ran);
        note(i, w);
        if (i == n - 1) last_ran = true;
    });
    std::vector<size_t> expect0;
    for (size_t i = 0; i < n / 2; ++i) expect0.push_back(i);
    for (size_t i = n - 1; i > n / 2; --i) expect0.push_back(i);
    EXPECT_EQ(taken[0], expect0);
    EXPECT_EQ(taken[1], std::vector<size_t>{n / 2});
}

// The threads that help a loop are kept and help the next one (a new thread would start on
// its parent's core: store/parallel.cc), so loops after the first make none.
TEST(Parallel, TheThreadsOfALoopAreKeptForTheNext) {
    auto helpers = [] {
        std::mutex mu;
        std::set<pid_t> seen;
        const pid_t caller = tid();
        parallel_for(64, 3, [&](size_t) {
            usleep(200);  // long enough for every helper to take some
            std::lock_guard l(mu);
            if (tid() != caller) seen.insert(tid());
        });
        return seen;
    };
    std::set<pid_t> first = helpers();
    ASSERT_FALSE(first.empty());
    for (int round = 0; round < 20; ++round)
        for (pid_t t : helpers()) EXPECT_TRUE(first.count(t)) << "round " << round << ": " << t;
}

// Loops inside loops, and loops on several threads at once, each get helpers of their own.
TEST(Parallel, LoopsInsideLoopsAndOnSeveralThreadsAtOnce) {
    std::atomic<long> sum{0};
    auto nested = [&] {
        parallel_for(8, 2, [&](size_t i) {
            parallel_for(100, 3, [&](size_t j) { sum += long(i * 100 + j); });
        });
    };
    std::vector<std::thread> callers;
    for (int t = 0; t < 3; ++t) callers.emplace_back(nested);
    nested();
    for (auto& t : callers) t.join();
    // 4 callers, each the sum of 0..799.
    EXPECT_EQ(sum.load(), 4L * (799L * 800 / 2));
}

TEST(Parallel, InBackgroundGivesItsResultAndKeepsItsThread) {
    const pid_t caller = tid();
    auto first = in_background([] { return tid(); });
    pid_t helper = first.get();
    EXPECT_NE(helper, caller);
    std::set<pid_t> seen;
    for (int k = 0; k < 20; ++k) {
        auto f = in_background([k] { return std::pair{k * 2, tid()}; });
        auto [v, t] = f.get();
        EXPECT_EQ(v, k * 2);
        seen.insert(t);
    }
    // Each one's thread is kept again once it is done; the next may find it parked or not
    // yet, but the threads stay few.
    EXPECT_LE(seen.size(), 3u);
}

// A forked child has none of its parent's kept threads: its loops make their own.
TEST(Parallel, AForkedChildsLoopsMakeTheirOwnThreads) {
    parallel_for(16, 3, [](size_t) { usleep(100); });  // some threads kept in this process
    pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        alarm(20);  // waiting on a thread the child does not have would hang: die instead
        std::atomic<int> n{0};
        parallel_for(16, 3, [&](size_t) {
            usleep(100);
            ++n;
        });
        _exit(n == 16 ? 0 : 1);
    }
    int status = 0;
    ASSERT_EQ(waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFEXITED(status)) << "the child's loop hung (signal " << WTERMSIG(status) << ")";
    EXPECT_EQ(WEXITSTATUS(status), 0);
}

}  // namespace
}  // namespace unify
