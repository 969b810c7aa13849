// Invariant 2 under a running guest: writer threads keep rewriting files of a guest, in the
// ways real programs do, while it is imported. Afterwards no object differs from its id and
// every file still holds what its writer last wrote successfully.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "tests/test_support.h"

namespace unify {
namespace {

using test::TempDir;

constexpr size_t kSize = 4096;

std::string content(const std::string& tag, long n) {
    std::string s = tag + " " + std::to_string(n) + "\n";
    s.resize(kSize, '.');
    return s;
}

struct Writer {
    std::string path;
    std::string last;  // what the last successful write left at the path
    mode_t last_mode = 0;
    bool last_mode_raced = false;  // the path named another inode after that chmod than before
    long writes = 0;
};

// write() in place, reopening each time: the import may freeze the file (EPERM) or hold a
// read lease, which makes our open wait until it lets go.
void write_in_place(Writer& w, const std::atomic<bool>& stop) {
    for (long n = 1; !stop; ++n) {
        int fd = open(w.path.c_str(), O_WRONLY | O_CLOEXEC);
        if (fd < 0) break;  // frozen as an object: no later write can succeed
        std::string c = content("inplace", n);
        bool ok = pwrite(fd, c.data(), c.size(), 0) == ssize_t(c.size());
        close(fd);
        if (!ok) break;
        w.last = c;
        ++w.writes;
    }
}

// Stores through a shared writable mapping, which need not move mtime at all.
void write_through_mmap(Writer& w, const std::atomic<bool>& stop) {
    int fd = open(w.path.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) return;
    void* p = mmap(nullptr, kSize, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (p == MAP_FAILED) return;
    for (long n = 1; !stop; ++n) {
        std::string c = content("mmap", n);
        memcpy(p, c.data(), c.size());
        w.last = c;
        ++w.writes;
        usleep(100);
    }
    munmap(p, kSize);
}

void truncate_and_write(Writer& w, const std::atomic<bool>& stop) {
    for (long n = 1; !stop; ++n) {
        int fd = open(w.path.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
        if (fd < 0) break;
        std::string c = content("truncate", n);
        bool ok = write(fd, c.data(), c.size()) == ssize_t(c.size());
        close(fd);
        if (!ok) break;
        w.last = c;
        ++w.writes;
    }
}

// As package managers do: a new file under another name, renamed over the old one.
void rename_over(Writer& w, const std::atomic<bool>& stop) {
    std::string tmp = w.path + ".new";
    for (long n = 1; !stop; ++n) {
        std::string c = content("rename", n);
        test::write_file(tmp, c);
        if (rename(tmp.c_str(), w.path.c_str()) != 0) break;
        w.last = c;
        ++w.writes;
    }
}

// Holds the file open for writing without writing: the import must not replace it under
// the writer (its next write would go to an inode no path names any more).
void hold_open(Writer& w, const std::atomic<bool>& stop) {
    int fd = open(w.path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) return;
    while (!stop) usleep(1000);
    std::string c = content("held", 1);
    if (pwrite(fd, c.data(), c.size(), 0) == ssize_t(c.size())) {
        w.last = c;
        ++w.writes;
    }
    close(fd);
}

// Which inode the path names is looked at around each chmod: one that the import swapped
// for an object while the chmod was under way may have had it applied after the swap
// (docs/threat-model.md, "A call in flight across a swap").
void toggle_mode(Writer& w, const std::atomic<bool>& stop) {
    for (long n = 1; !stop; ++n) {
        mode_t m = n % 2 ? 0600 : 0644;
        struct stat before, after;
        if (stat(w.path.c_str(), &before) != 0 || chmod(w.path.c_str(), m) != 0) break;
        w.last_mode = m;
        w.last_mode_raced = stat(w.path.c_str(), &after) != 0 || after.st_ino != before.st_ino;
        ++w.writes;
    }
}

// Both of import's paths (tests/test_support.h). On the settled path every file counts as
// unchanged for a minute, so only writers that move ctime with each change take part: a
// store through a mapping moves it at writeback only, and a file held open but not written
// does not move it at all; those two are what the leased (fresh) path is for.
using RunningGuest = test::BothSettlePaths;
UNIFY_ON_BOTH_SETTLE_PATHS(RunningGuest);

TEST_P(RunningGuest, WritersDuringImportLoseNothingAndPoisonNoObject) {
    const bool settled = GetParam() == test::SettlePath::settled;
    TempDir dir;
    UNIFY_REQUIRE(test::need_immutable(dir.path()));
    std::string pool = dir / "pool";
    ASSERT_EQ(test::run_unify({"--pool", pool, "init"}).status, 0);
    // g1 holds the same files first, so g2's files are replaced by links to existing objects
    // (the rename path); g2's own extra files become new objects (the adopt path).
    std::vector<std::string> kinds = {"inplace", "truncate", "rename", "chmod"};
    if (!settled) kinds.insert(kinds.end(), {"mmap", "held"});
    for (const char* g : {"g1", "g2"}) {
        for (int i = 0; i < 300; ++i)
            test::write_file(dir / (std::string(g) + "/usr/lib/filler" + std::to_string(i)),
                             std::string(64 * 1024, char('a' + i % 26)) + std::to_string(i));
        for (const auto& k : kinds)
            for (int copy = 0; copy < 2; ++copy)
                test::write_file(dir / (std::string(g) + "/usr/w/" + k + std::to_string(copy)),
                                 content("initial", 0));
    }
    for (const auto& k : kinds)
        if (k != "held") test::write_file(dir / ("g2/usr/own/" + k), content("own", 0));
    ASSERT_EQ(
        test::sh("touch -d '2024-01-01 00:00:00' -R '" + dir.path() + "' 2>/dev/null; find '" +
                 dir.path() + "' -exec touch -h -d '2024-01-01 00:00:00' {} +"),
        0);
    ASSERT_EQ(test::run_unify({"--pool", pool, "import", "g1", dir / "g1"}).status, 0);

    std::vector<Writer> writers;
    for (const auto& k : kinds) {
        for (int copy = 0; copy < 2; ++copy)
            writers.push_back({dir / ("g2/usr/w/" + k + std::to_string(copy))});
        if (k != "held") writers.push_back({dir / ("g2/usr/own/" + k)});
    }
    std::atomic<bool> stop{false};
    std::vector<std::thread> threads;
    for (auto& w : writers) {
        std::string kind = w.path.substr(w.path.rfind('/') + 1);
        auto fn = kind.rfind("inplace", 0) == 0    ? write_in_place
                  : kind.rfind("mmap", 0) == 0     ? write_through_mmap
                  : kind.rfind("truncate", 0) == 0 ? truncate_and_write
                  : kind.rfind("rename", 0) == 0   ? rename_over
                  : kind.rfind("held", 0) == 0     ? hold_open
                                                   : toggle_mode;
        threads.emplace_back([&w, &stop, fn] { fn(w, stop); });
    }
    usleep(20000);
    // Several imports while the writers run, so the races land in every phase.
    std::string skipped, warned;
    for (int round = 0; round < 3; ++round) {
        auto r = test::run_unify({"--pool", pool, "import", "g2", dir / "g2"});
        ASSERT_EQ(r.status, 0) << r.err;
        skipped += r.out;
        warned += r.err;
    }
    stop = true;
    for (auto& t : threads) t.join();

    EXPECT_EQ(test::objects_not_matching_their_id(pool), std::vector<std::string>{});
    auto verify = test::run_unify({"--pool", pool, "verify", "--full"});
    EXPECT_EQ(verify.status, 0) << verify.out << verify.err;
    for (const auto& w : writers) {
        if (!w.last.empty()) {
            EXPECT_EQ(test::read_file(w.path), w.last) << w.path << " lost its writer's last write";
        }
        // A chmod that came through the guest's new name of an object inside the object's
        // window cannot be told from another guest's: it is undone, and the import says so
        // (docs/threat-model.md, "the protection window"). One that the kernel resolved to
        // the guest's own inode before the swap can land on it after unify's last look (the
        // same document, "A call in flight across a swap"): the path was swapped under it.
        // Any other lost chmod is a bug.
        if (w.last_mode && (test::stat_path(w.path).st_mode & 07777) != w.last_mode &&
            !w.last_mode_raced) {
            EXPECT_NE(warned.find("had its mode, owner, mtime or xattrs changed"),
                      std::string::npos)
                << w.path << " lost its writer's last chmod and no window reported it:\n"
                << warned;
        }
        EXPECT_GT(w.writes, 0) << w.path << ": its writer never got going";
    }
    // The fillers, which nobody wrote, were linked as usual.
    EXPECT_EQ(test::stat_path(dir / "g2/usr/lib/filler7").st_ino,
              test::stat_path(dir / "g1/usr/lib/filler7").st_ino);
    if (settled) return;
    // held0 has g1's content but is open for writing throughout: the read lease is refused,
    // so it was left alone; so was the mapped file, one way or the other.
    EXPECT_NE(skipped.find("open for writing"), std::string::npos) << skipped;
    EXPECT_NE(test::stat_path(dir / "g2/usr/w/held0").st_ino,
              test::stat_path(dir / "g1/usr/w/held0").st_ino);
    auto mapped = test::stat_path(dir / "g2/usr/w/mmap0");
    EXPECT_EQ(mapped.st_nlink, 1u);
    EXPECT_FALSE(test::is_immutable(dir / "g2/usr/w/mmap0"));
}

}  // namespace
}  // namespace unify
