// Invariant 6: writers (import, gc, unshare) serialize on the pool lock and readers (who,
// status, list) never wait for it, while all of them run at once in loops. Includes the
// race Nix's optimiser has: gc seeing an object with link count 1 just before an import
// links it again.
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>

#include "tests/test_support.h"

namespace unify {
namespace {

using Clock = std::chrono::steady_clock;

TEST(Concurrency, WritersSerializeReadersNeverWaitAndNothingIsLost) {
    test::TempDir dir;
    UNIFY_REQUIRE(test::need_immutable(dir.path()));
    std::string pool = dir / "pool";
    ASSERT_EQ(test::run_unify({"--pool", pool, "init"}).status, 0);
    for (const char* g : {"g1", "g2", "g3"}) {
        for (int i = 0; i < 60; ++i) {
            std::string f = dir / (std::string(g) + "/usr/lib/f" + std::to_string(i));
            test::write_file(f, std::string(8192 + i, char('a' + i % 26)));
            test::set_mtime(f, 1700000000, 9);
        }
        std::string own = dir / (std::string(g) + "/usr/bin/own");
        test::write_file(own, std::string("only in ") + g);
        test::set_mtime(own, 1700000000, 9);
    }
    std::string before;
    for (const char* g : {"g1", "g2", "g3"}) before += test::manifest(dir / g);
    for (const char* g : {"g1", "g2"})
        ASSERT_EQ(test::run_unify({"--pool", pool, "import", g, dir / g}).status, 0);

    // What starting the binary costs here, so that the time bounds below measure waiting,
    // not process start (about 1 s under ASan with CLI11 instrumented, more under load).
    long start_ms = 0;
    for (int i = 0; i < 3; ++i)
        start_ms = std::max(start_ms, long(test::run_unify({"--version"}).seconds * 1000));

    std::atomic<bool> stop{false};
    std::atomic<int> writer_failures{0}, writer_runs{0}, reader_runs{0};
    std::atomic<long> slowest_reader_ms{0};
    std::string failure_text;
    std::mutex mu;
    auto writer = [&](std::vector<std::vector<std::string>> cmds) {
        while (!stop)
            for (auto& c : cmds) {
                std::vector<std::string> args = {"--pool", pool, "--wait"};
                args.insert(args.end(), c.begin(), c.end());
                auto r = test::run_unify(args);
                ++writer_runs;
                if (r.status != 0) {
                    ++writer_failures;
                    std::lock_guard<std::mutex> l(mu);
                    failure_text += r.err;
                }
            }
    };
    auto reader = [&](std::vector<std::string> c) {
        while (!stop) {
            std::vector<std::string> args = {"--pool", pool};
            args.insert(args.end(), c.begin(), c.end());
            auto t0 = Clock::now();
            auto r = test::run_unify(args);
            long ms =
                std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
            long prev = slowest_reader_ms;
            while (ms > prev && !slowest_reader_ms.compare_exchange_weak(prev, ms)) {
            }
            ++reader_runs;
            if (r.status != 0) {
                std::lock_guard<std::mutex> l(mu);
                failure_text += "reader: " + r.err;
                ++writer_failures;
            }
        }
    };
    std::vector<std::thread> threads;
    // The Nix race: g3's objects drop to one link (unshare) and come back (import) while gc runs.
    threads.emplace_back(
        writer, std::vector<std::vector<std::string>>{
                    {"import", "g3", dir / "g3"}, {"unshare", "g3"}, {"import", "g3", dir / "g3"}});
    threads.emplace_back(writer, std::vector<std::vector<std::string>>{{"gc"}});
    threads.emplace_back(writer,
                         std::vector<std::vector<std::string>>{{"import", "g1", dir / "g1"},
                                                               {"unshare", "g2", "/usr/lib/f3"},
                                                               {"import", "g2", dir / "g2"}});
    threads.emplace_back(reader, std::vector<std::string>{"who", "g1:/usr/lib/f5"});
    threads.emplace_back(reader, std::vector<std::string>{"status"});
    threads.emplace_back(reader, std::vector<std::string>{"list"});

    // For part of the run a writer holds the lock for a long time: readers must not notice.
    std::this_thread::sleep_for(std::chrono::seconds(3));
    int lock = open((pool + "/lock").c_str(), O_RDWR);
    ASSERT_GE(lock, 0);
    ASSERT_EQ(flock(lock, LOCK_EX), 0);
    int readers_at_lock = reader_runs;
    // Long enough for several readers even where a process takes a second to start.
    const long hold_ms = std::max(3000L, 5 * start_ms);
    std::this_thread::sleep_for(std::chrono::milliseconds(hold_ms));
    int readers_during_lock = reader_runs - readers_at_lock;
    // A writer without --wait fails at once, naming the holder.
    auto busy = test::run_unify({"--pool", pool, "gc"});
    EXPECT_LT(busy.seconds * 1000, 1000 + 2 * start_ms) << "a writer without --wait waited";
    flock(lock, LOCK_UN);
    close(lock);
    std::this_thread::sleep_for(std::chrono::seconds(4));
    stop = true;
    for (auto& t : threads) t.join();

    EXPECT_EQ(busy.status, 1);
    EXPECT_NE(busy.err.find("busy"), std::string::npos) << busy.err;
    EXPECT_GT(readers_during_lock, 3) << "readers waited for the writers' lock";
    EXPECT_EQ(writer_failures, 0) << failure_text;
    EXPECT_GT(writer_runs, 6);
    EXPECT_LT(slowest_reader_ms, hold_ms) << "process start: " << start_ms << " ms";

    // Finish in a known state and check everything.
    for (const char* g : {"g1", "g2", "g3"})
        ASSERT_EQ(test::run_unify({"--pool", pool, "import", g, dir / g}).status, 0);
    ASSERT_EQ(test::run_unify({"--pool", pool, "gc"}).status, 0);
    std::string after;
    for (const char* g : {"g1", "g2", "g3"}) after += test::manifest(dir / g);
    EXPECT_EQ(after, before) << "a guest file changed";
    EXPECT_EQ(test::objects_not_matching_their_id(pool), std::vector<std::string>{});
    auto verify = test::run_unify({"--pool", pool, "verify", "--full"});
    EXPECT_EQ(verify.status, 0) << verify.out << verify.err;
    for (int i = 0; i < 60; ++i) {
        std::string f = "/usr/lib/f" + std::to_string(i);
        ino_t ino = test::stat_path(dir / ("g1" + f)).st_ino;
        EXPECT_EQ(test::stat_path(dir / ("g2" + f)).st_ino, ino) << f;
        EXPECT_EQ(test::stat_path(dir / ("g3" + f)).st_ino, ino) << f;
        EXPECT_TRUE(test::is_immutable(dir / ("g3" + f))) << f;
    }
}

}  // namespace
}  // namespace unify
