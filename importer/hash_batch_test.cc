#include "importer/hash_batch.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "importer/walker.h"
#include "store/lease.h"
#include "tests/test_support.h"

namespace unify {
namespace {

using test::TempDir;

std::vector<WalkEntry> walk_all(const std::string& root) {
    auto fd = open_dir_path(root);
    EXPECT_TRUE(fd) << fd.error().message;
    Rules rules({}, 0);
    FileStat nowhere;
    nowhere.ino = ~uint64_t(0);
    Walker walker(std::move(*fd), root, rules, nowhere, ".unify-");
    std::vector<WalkEntry> out;
    auto more = walker.next_batch(out, 100);
    EXPECT_TRUE(more && !*more);
    return out;
}

// Whether another process's open for writing of `path` is held up by a lease (it returns
// EWOULDBLOCK with O_NONBLOCK, and starts the lease's break).
bool writer_held_up(const std::string& path) {
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(path.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
        _exit(fd < 0 && errno == EWOULDBLOCK ? 0 : 1);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

// An unsettled file (ctime at or after lease_from) is read under a read lease taken by the
// hash pass and kept: it holds writers off from before its first byte was read, so its
// import need not read it again. A settled file gets none, and a file some process holds
// open for writing cannot get one: it is hashed all the same, and re-read under a lease
// taken later (importer/settle.h).
TEST(HashBatch, AnUnsettledFileKeepsTheReadLeaseItWasHashedUnder) {
    TempDir dir;
    test::write_file(dir / "settled", "old bytes");
    usleep(50 * 1000);  // past the filesystem's clock tick: the others' ctimes are later
    test::write_file(dir / "fresh", "new bytes");
    test::write_file(dir / "open", "written to");
    auto batch = walk_all(dir.path());
    ASSERT_EQ(batch.size(), 3u);
    const int64_t cutoff = test::stat_path(dir / "settled").st_ctim.tv_sec * 1000000000LL +
                           test::stat_path(dir / "settled").st_ctim.tv_nsec + 1;
    for (const WalkEntry& e : batch)
        if (e.name != "settled") ASSERT_GE(e.st.ctime_ns, cutoff) << e.name;
    int writer = open((dir / "open").c_str(), O_WRONLY | O_CLOEXEC);
    ASSERT_GE(writer, 0);

    std::vector<bool> wanted(batch.size(), true);
    auto hashed = hash_batch(batch, wanted, dir.path(), IdRules{}, 2, cutoff);
    close(writer);
    ASSERT_EQ(hashed.size(), batch.size());
    for (size_t i = 0; i < batch.size(); ++i) {
        const std::string& name = batch[i].name;
        ASSERT_EQ(hashed[i].state, Hashed::ok) << name;
        EXPECT_EQ(hashed[i].lease.valid(), name == "fresh") << name;
    }
    signal(SIGIO, SIG_IGN);  // the break's signal, as import ignores it (importer/import.cc)
    for (size_t i = 0; i < batch.size(); ++i) {
        if (batch[i].name != "fresh") continue;
        EXPECT_TRUE(lease_held(hashed[i].lease.get()));
        EXPECT_TRUE(writer_held_up(dir / "fresh")) << "the lease does not hold writers off";
        EXPECT_FALSE(lease_held(hashed[i].lease.get())) << "a waiting writer must show";
    }
    // Without lease_from, nothing is leased.
    auto plain = hash_batch(batch, wanted, dir.path(), IdRules{}, 2);
    for (const Hashed& h : plain) EXPECT_FALSE(h.lease.valid());
}

}  // namespace
}  // namespace unify
