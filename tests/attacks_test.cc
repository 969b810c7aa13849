// A hostile guest against every writer (issue 12): planted temporaries, FIFOs and devices
// where unify reads, signals while blocked, old and far dates, sparse files, files held open
// for writing, and a writer racing the protection window. Each test runs the real binary on a
// real filesystem, every run bounded in time: a run that has to be killed is a failure.
#include <fcntl.h>
#include <linux/magic.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xxhash.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <iostream>
#include <memory>
#include <mutex>
#include <set>
#include <thread>

#include "store/object_id.h"
#include "tests/test_support.h"

namespace unify {
namespace {

using test::TempDir;
namespace fs = std::filesystem;

// Runs unify with a deadline: SIGKILL once it has passed (a run that had to be killed is a
// failure). `on_start` gets the pid (to signal). UNIFY_ATTACK_BINARY runs these attacks
// against another build (e.g. the one before the fixes, to see each test fail there).
test::RunResult run_bounded(const std::vector<std::string>& args, double limit_s,
                            const std::function<void(pid_t)>& on_start = {}) {
    const char* bin = getenv("UNIFY_ATTACK_BINARY");
    return test::run_program(bin ? bin : test::unify_binary(), args, {},
                             {.deadline_s = limit_s, .on_start = on_start});
}

std::string describe(const test::RunResult& r) {
    return "status " + std::to_string(r.status) + (r.killed ? " (KILLED at the deadline)" : "") +
           " after " + std::to_string(r.seconds) + " s\nstdout: " + r.out + "\nstderr: " + r.err;
}

void write_at_mtime(const std::string& path, const std::string& content, int64_t sec = 1700000000,
                    int64_t nsec = 7, mode_t mode = 0644) {
    test::write_file(path, content, mode);
    test::set_mtime(path, sec, nsec);
}

// ---------------------------------------------------------------------------------------
// A. Temporaries: a guest learns the names with inotify and plants, at every name unify
// used or would use, a hard link to a host file and FIFOs.

// Watches one guest directory and plants at every temporary name it can predict.
class Planter {
  public:
    Planter(std::string dir, std::string outside, std::vector<std::string> files)
        : dir_(std::move(dir)),
          outside_(std::move(outside)),
          files_(std::move(files)),
          watcher_(dir_, IN_CREATE | IN_MOVED_TO, [this](const std::string& n) { on_name(n); }) {}
    std::set<std::string> seen() {
        std::lock_guard<std::mutex> l(mu_);
        return seen_;
    }
    // Plants, for every file, the fixed name unshare used to open (O_CREAT|O_TRUNC): a hard
    // link to the host file for even ones, a FIFO for odd ones.
    void plant_copy_names() {
        if (token_.empty()) return;
        for (size_t i = 0; i < files_.size(); ++i) {
            uint64_t h = XXH3_64bits(files_[i].data(), files_[i].size());
            std::string name = ".unify-" + token_ + ".copy." +
                               to_hex(reinterpret_cast<const uint8_t*>(&h), sizeof h);
            plant(name, i % 2 == 0);
        }
    }
    std::string token() const { return token_; }

  private:
    void plant(const std::string& name, bool hard_link) {
        std::string p = dir_ + "/" + name;
        if (hard_link)
            link(outside_.c_str(), p.c_str());
        else
            mkfifo(p.c_str(), 0666);
        std::lock_guard<std::mutex> l(mu_);
        planted_.insert(name);
    }
    void on_name(const std::string& name) {
        if (name.rfind(".unify-", 0) != 0) return;
        {
            std::lock_guard<std::mutex> l(mu_);
            if (planted_.count(name)) return;
            seen_.insert(name);
        }
        size_t dot = name.find('.', 7);
        if (dot == std::string::npos) return;
        token_ = name.substr(7, dot - 7);
        // Old import names ended in .<pid>.<counter>: plant the next ones.
        size_t last = name.rfind('.');
        std::string head = name.substr(0, last + 1), tail = name.substr(last + 1);
        if (!tail.empty() && tail.find_first_not_of("0123456789") == std::string::npos &&
            tail.size() < 9) {
            long k = std::stol(tail);
            for (long j = 1; j <= 8; ++j) plant(head + std::to_string(k + j), j % 2 == 0);
        }
        plant_copy_names();
    }

    std::string dir_, outside_;
    std::vector<std::string> files_;
    std::mutex mu_;
    std::set<std::string> seen_, planted_;
    std::string token_;
    test::NameWatcher watcher_;  // last: stops first
};

TEST(Attacks, PlantedTemporariesReachNothingOutside) {
    TempDir dir;
    UNIFY_REQUIRE(test::need_immutable(dir.path()));
    std::string pool = dir / "pool", secret = dir / "host/secret";
    test::write_file(secret, "host secret, mode 600\n", 0600);
    struct stat secret_before = test::stat_path(secret);
    std::vector<std::string> files;
    for (int i = 0; i < 12; ++i) files.push_back("f" + std::to_string(i));
    for (const char* g : {"g1", "g2"})
        for (const auto& f : files)
            write_at_mtime(dir / (std::string(g) + "/usr/lib/" + f), "shared " + f + "\n");
    ASSERT_EQ(test::run_unify({"--pool", pool, "init"}).status, 0);
    ASSERT_EQ(run_bounded({"--pool", pool, "import", "g1", dir / "g1"}, 20).status, 0);

    Planter planter(dir / "g2/usr/lib", secret, files);
    std::vector<std::pair<std::string, test::RunResult>> runs;
    auto run = [&](const std::string& what, std::vector<std::string> args) {
        args.insert(args.begin(), {"--pool", pool});
        runs.emplace_back(what, run_bounded(args, 20));
    };
    run("import g2", {"import", "g2", dir / "g2"});
    planter.plant_copy_names();
    run("unshare g2 f0 f1 f2 f3",
        {"unshare", "g2", "/usr/lib/f0", "/usr/lib/f1", "/usr/lib/f2", "/usr/lib/f3"});
    run("import g2 again", {"import", "g2", dir / "g2"});
    // Damage the object of f5, so that verify --quarantine unshares its guest paths.
    std::string f5 = dir / "g1/usr/lib/f5";
    test::sh("chattr -i '" + f5 + "' && printf 'SHARED f5\\n' > '" + f5 +
             "' && touch -d @1700000000.000000007 '" + f5 + "' && chattr +i '" + f5 + "'");
    run("verify --quarantine", {"verify", "--full", "--quarantine"});
    run("forget g2", {"forget", "g2"});

    EXPECT_FALSE(planter.seen().empty()) << "the guest saw no temporary name";
    EXPECT_FALSE(planter.token().empty());
    for (const auto& [what, r] : runs) {
        EXPECT_FALSE(r.killed) << what << ": " << describe(r);
        EXPECT_LT(r.seconds, 15) << what;
        if (what == "verify --quarantine")
            EXPECT_LT(r.status, 128) << what << ": " << describe(r);  // damage found: not 0
        else
            EXPECT_EQ(r.status, 0) << what << ": " << describe(r);
    }
    struct stat secret_now = test::stat_path(secret);
    EXPECT_EQ(test::read_file(secret), "host secret, mode 600\n") << "the host file was written";
    EXPECT_EQ(secret_now.st_mode & 07777, 0600u) << "the host file was chmod-ed";
    EXPECT_EQ(secret_now.st_mtim.tv_sec, secret_before.st_mtim.tv_sec);
    EXPECT_EQ(secret_now.st_mtim.tv_nsec, secret_before.st_mtim.tv_nsec);
    // g2 got its files back as private copies, each with its own content (f5 with what its
    // damaged object held, as quarantine documents).
    for (const auto& f : files) {
        if (f == "f5") continue;
        std::string p = dir / ("g2/usr/lib/" + f);
        EXPECT_EQ(test::read_file(p), "shared " + f + "\n") << p;
        EXPECT_NE(test::stat_path(p).st_ino, secret_now.st_ino) << p;
    }
}

// ---------------------------------------------------------------------------------------
// B. FIFOs, devices and signals.

TEST(Attacks, FifoPackageDatabasesDoNotHangImport) {
    TempDir dir;
    UNIFY_REQUIRE(test::need_root());
    std::string pool = dir / "pool";
    ASSERT_EQ(test::run_unify({"--pool", pool, "init", "--protect", "none"}).status, 0);
    // One guest per database that import reads.
    std::vector<std::pair<std::string, std::string>> dbs = {
        {"dpkg", "var/lib/dpkg/status"},
        {"dpkgconf", "var/lib/dpkg/info/bash.conffiles"},
        {"rpm", "var/lib/rpm/rpmdb.sqlite"},
        {"pacman", "var/lib/pacman/local/bash-5.2-1/files"},
    };
    for (const auto& [g, rel] : dbs) {
        std::string root = dir / g;
        write_at_mtime(root + "/usr/bin/tool", "tool\n");
        if (g == "dpkgconf") test::write_file(root + "/var/lib/dpkg/status", "");
        fs::create_directories(fs::path(root + "/" + rel).parent_path());
        ASSERT_EQ(mkfifo((root + "/" + rel).c_str(), 0644), 0) << rel;
        for (const auto& args : std::vector<std::vector<std::string>>{
                 {"--pool", pool, "import", g, root},
                 {"--pool", pool, "import", g, root, "--explain", "/usr/bin/tool"}}) {
            test::RunResult r = run_bounded(args, 10);
            EXPECT_FALSE(r.killed) << g << " " << rel << ": " << describe(r);
            EXPECT_NE(r.status, 0) << g << ": a FIFO is not a package database";
            EXPECT_NE(r.err.find("not a regular file"), std::string::npos) << describe(r);
        }
    }
}

// A run the racer failed: both of its exchanges fell between unify's exchange and unify's
// putting back what that displaced (CI saw it once under load). The guest's file then comes
// back at the temporary name while its name holds the FIFO; where the guest wants the file is
// unknowable, so the run stops, naming the ".kept" name it gave the file. Only this failure is
// allowed, and the kept file must be the guest's whole file, never a FIFO or device.
void expect_file_kept_whole(const test::RunResult& r,
                            const std::function<std::string(int)>& content_of) {
    const std::string lead = "import g2: replace ", mid = ": the guest changed it twice",
                      kept_as = "its file is kept as ";
    size_t at = r.err.find(lead), end = r.err.find(mid), kept = r.err.find(kept_as);
    ASSERT_TRUE(at != std::string::npos && end != std::string::npos && kept != std::string::npos)
        << describe(r);
    fs::path path = r.err.substr(at + lead.size(), end - at - lead.size());
    std::string name = path.filename();
    size_t digit = name.find_first_of("0123456789");
    ASSERT_NE(digit, std::string::npos) << "not one of the racer's files: " << path;
    std::string digits = name.substr(digit);
    std::string kept_name = r.err.substr(kept + kept_as.size());
    kept_name = kept_name.substr(0, kept_name.find('\n'));
    ASSERT_TRUE(kept_name.ends_with(".kept")) << describe(r);
    std::string kept_path = path.parent_path() / kept_name;
    ASSERT_TRUE(S_ISREG(test::stat_path(kept_path).st_mode)) << kept_path;
    EXPECT_TRUE(test::read_file(kept_path) == content_of(std::stoi(digits)))
        << kept_path << " does not hold the content of f" << digits;
}

// A racer swaps guest files with FIFOs and a /dev/zero node (renameat2 RENAME_EXCHANGE)
// while the guest is imported ten times: every run ends by itself, none hangs on a FIFO or
// reads a device, a run either succeeds or keeps the file it could not put back whole, and the
// pool stays what its ids say.
TEST(Attacks, FilesSwappedForFifosAndDevicesMidImport) {
    TempDir dir;
    UNIFY_REQUIRE(test::need_immutable(dir.path()));
    std::string pool = dir / "pool";
    ASSERT_EQ(test::run_unify({"--pool", pool, "init"}).status, 0);
    const int n = 200;
    auto content_of = [](int i) { return std::string(2000 + i, char('a' + i % 26)); };
    for (const char* g : {"g1", "g2"})
        for (int i = 0; i < n; ++i)
            write_at_mtime(dir / (std::string(g) + "/usr/lib/f" + std::to_string(i)),
                           content_of(i));
    ASSERT_EQ(run_bounded({"--pool", pool, "import", "g1", dir / "g1"}, 30).status, 0);
    std::string lib = dir / "g2/usr/lib";
    for (int i = 0; i < n; ++i) {
        std::string odd = lib + "/.odd" + std::to_string(i);
        if (i % 4 == 3)
            ASSERT_EQ(mknod(odd.c_str(), S_IFCHR | 0644, makedev(1, 5)), 0);  // /dev/zero
        else
            ASSERT_EQ(mkfifo(odd.c_str(), 0644), 0);
    }
    std::atomic<bool> stop{false};
    std::atomic<long> swaps{0};
    std::thread racer([&] {
        while (!stop) {
            for (int i = 0; i < n && !stop; ++i) {
                std::string f = lib + "/f" + std::to_string(i),
                            odd = lib + "/.odd" + std::to_string(i);
                if (renameat2(AT_FDCWD, f.c_str(), AT_FDCWD, odd.c_str(), RENAME_EXCHANGE) == 0) {
                    ++swaps;
                    usleep(50);
                    renameat2(AT_FDCWD, f.c_str(), AT_FDCWD, odd.c_str(), RENAME_EXCHANGE);
                }
            }
        }
    });
    std::vector<test::RunResult> runs;
    for (int k = 0; k < 10; ++k)
        runs.push_back(run_bounded({"--pool", pool, "import", "g2", dir / "g2"}, 20));
    stop = true;
    racer.join();
    EXPECT_GT(swaps.load(), 100);
    for (size_t k = 0; k < runs.size(); ++k) {
        EXPECT_FALSE(runs[k].killed) << "run " << k << ": " << describe(runs[k]);
        if (runs[k].status != 0) expect_file_kept_whole(runs[k], content_of);
    }
    // Once the racer stops, a last import links everything, and nothing odd reached the pool.
    // A file linked while it stood under its .odd name became immutable there, so the racer's
    // swap back failed (EPERM): the pair keeps the swapped names, which is the guest's doing.
    test::RunResult last =
        run_bounded({"--pool", pool, "--verbose", "import", "g2", dir / "g2"}, 20);
    EXPECT_EQ(last.status, 0) << describe(last);
    for (int i = 0; i < n; ++i) {
        std::string f = lib + "/f" + std::to_string(i), odd = lib + "/.odd" + std::to_string(i);
        struct stat at_f = test::stat_path(f), at_odd = test::stat_path(odd);
        bool swapped = S_ISREG(at_odd.st_mode);
        const struct stat& regular = swapped ? at_odd : at_f;
        const struct stat& other = swapped ? at_f : at_odd;
        EXPECT_TRUE(S_ISREG(regular.st_mode)) << f;
        EXPECT_TRUE(S_ISFIFO(other.st_mode) || S_ISCHR(other.st_mode))
            << f << " mode " << std::oct << at_f.st_mode << " odd mode " << at_odd.st_mode
            << std::dec << " ino " << at_f.st_ino << " " << at_odd.st_ino;
        EXPECT_EQ(regular.st_ino,
                  test::stat_path(dir / ("g1/usr/lib/f" + std::to_string(i))).st_ino)
            << f << (swapped ? " (under its .odd name)" : "") << "\n"
            << describe(last);
    }
    EXPECT_EQ(test::objects_not_matching_their_id(pool), std::vector<std::string>{});
    test::RunResult v = run_bounded({"--pool", pool, "verify", "--full"}, 30);
    EXPECT_EQ(v.status, 0) << describe(v);
}

// A writer blocked in a system call (here: waiting for the pool lock) ends at SIGTERM,
// SIGINT or SIGHUP, with the message that says what to do.
TEST(Attacks, SignalsEndAWriterBlockedInASystemCall) {
    TempDir dir;
    UNIFY_REQUIRE(test::need_root());
    std::string pool = dir / "pool";
    ASSERT_EQ(test::run_unify({"--pool", pool, "init", "--protect", "none"}).status, 0);
    write_at_mtime(dir / "g1/usr/bin/tool", "tool\n");
    int lock = open((pool + "/lock").c_str(), O_RDWR | O_CLOEXEC);
    ASSERT_GE(lock, 0);
    ASSERT_EQ(flock(lock, LOCK_EX), 0);
    for (int sig : {SIGTERM, SIGINT, SIGHUP}) {
        test::RunResult r =
            run_bounded({"--pool", pool, "--wait", "import", "g1", dir / "g1"}, 10, [&](pid_t pid) {
                // Signal it once it is blocked in flock, not after a guess: a slow start (a
                // sanitizer build) would get the signal before the handlers are installed.
                test::wait_until_blocked_in_flock(pid);
                kill(pid, sig);
            });
        EXPECT_FALSE(r.killed) << sigabbrev_np(sig) << ": " << describe(r);
        EXPECT_NE(r.status, 0);
        EXPECT_LT(r.seconds, 3) << sigabbrev_np(sig);
        EXPECT_NE(r.err.find(std::string("interrupted by ") + sigabbrev_np(sig)), std::string::npos)
            << describe(r);
    }
    close(lock);
}

// ---------------------------------------------------------------------------------------
// C. Dates: before 1970 with fractions, and far in the future, through import, unshare and
// forget, with a second hard link too.

TEST(Attacks, DatesBefore1970AndFarFutureSurvive) {
    TempDir dir;
    UNIFY_REQUIRE(test::need_immutable(dir.path()));
    std::string pool = dir / "pool";
    ASSERT_EQ(test::run_unify({"--pool", pool, "init"}).status, 0);
    struct Date {
        int64_t sec, nsec;
    };
    // 1960-06-01 00:00:00.5; one ns before 1970; 1901; 2400-01-01 00:00:00.123456789.
    std::vector<Date> dates = {
        {-301104000, 500000000}, {-1, 999999999}, {-2147483000, 1}, {13569465600, 123456789}};
    for (const char* g : {"g1", "g2"}) {
        for (size_t i = 0; i < dates.size(); ++i) {
            std::string f = dir / (std::string(g) + "/usr/lib/d" + std::to_string(i));
            write_at_mtime(f, "dated " + std::to_string(i) + "\n", dates[i].sec, dates[i].nsec);
        }
        std::string a = dir / (std::string(g) + "/usr/lib/linked");
        write_at_mtime(a, "two names, 1960\n", -301104000, 500000000);
        ASSERT_EQ(link(a.c_str(), (dir / (std::string(g) + "/usr/lib/linked2")).c_str()), 0);
    }
    struct stat st = test::stat_path(dir / "g1/usr/lib/d3");
    UNIFY_REQUIRE(st.st_mtim.tv_sec == 13569465600 ? "" : "this filesystem cannot store 2400");
    std::string m1 = test::manifest(dir / "g1"), m2 = test::manifest(dir / "g2");
    for (const auto& args : std::vector<std::vector<std::string>>{{"import", "g1", dir / "g1"},
                                                                  {"import", "g2", dir / "g2"},
                                                                  {"unshare", "g2"},
                                                                  {"import", "g2", dir / "g2"},
                                                                  {"forget", "g1"}}) {
        std::vector<std::string> a = {"--pool", pool};
        a.insert(a.end(), args.begin(), args.end());
        test::RunResult r = run_bounded(a, 20);
        EXPECT_EQ(r.status, 0) << args[0] << ": " << describe(r);
        EXPECT_EQ(test::manifest(dir / "g1"), m1) << "after " << args[0];
        EXPECT_EQ(test::manifest(dir / "g2"), m2) << "after " << args[0];
    }
    // Linked while g2 was imported: the dates are in the pool too.
    EXPECT_EQ(test::stat_path(dir / "g2/usr/lib/d0").st_nlink, 2u);
    EXPECT_EQ(test::objects_not_matching_their_id(pool), std::vector<std::string>{});
}

// ---------------------------------------------------------------------------------------
// D. Sparse files keep their holes through every copy, and "bytes saved" counts blocks.

void make_sparse(const std::string& path, size_t size, const std::string& tag) {
    test::write_file(path, "");
    int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    std::string head = "head " + tag + std::string(4096 - 5 - tag.size(), 'h');
    std::string tail = "tail " + tag + std::string(4096 - 5 - tag.size(), 't');
    ASSERT_EQ(pwrite(fd, head.data(), head.size(), 0), ssize_t(head.size()));
    ASSERT_EQ(pwrite(fd, tail.data(), tail.size(), off_t(size - 4096)), ssize_t(tail.size()));
    close(fd);
    test::set_mtime(path, 1700000000, 11);
}

uint64_t json_number(const std::string& json, const std::string& key) {
    size_t at = json.find("\"" + key + "\"");
    if (at == std::string::npos) return ~0ull;
    at = json.find(':', at);
    return std::stoull(json.substr(at + 1));
}

TEST(Attacks, SparseFilesKeepTheirHoles) {
    TempDir dir;
    UNIFY_REQUIRE(test::need_immutable(dir.path()));
    std::string pool = dir / "pool";
    ASSERT_EQ(test::run_unify({"--pool", pool, "init"}).status, 0);
    const size_t size = 50u << 20;
    for (const char* g : {"g1", "g2"})
        make_sparse(dir / (std::string(g) + "/usr/lib/img"), size, "same");
    // With a second name, g3's image is copied into the pool (not adopted).
    make_sparse(dir / "g3/usr/lib/img", size, "own");
    ASSERT_EQ(link((dir / "g3/usr/lib/img").c_str(), (dir / "g3/usr/lib/img2").c_str()), 0);
    blkcnt_t blocks = test::stat_path(dir / "g2/usr/lib/img").st_blocks;
    ASSERT_LT(blocks, 200) << "the test file is not sparse here";
    std::string m2 = test::manifest(dir / "g2"), m3 = test::manifest(dir / "g3");

    auto imp = [&](const char* g) {
        return run_bounded({"--pool", pool, "--json", "import", g, dir / g}, 30);
    };
    ASSERT_EQ(imp("g1").status, 0);
    test::RunResult r2 = imp("g2");
    ASSERT_EQ(r2.status, 0) << describe(r2);
    EXPECT_EQ(json_number(r2.out, "bytes_saved"), uint64_t(blocks) * 512) << r2.out;
    test::RunResult r3 = imp("g3");
    ASSERT_EQ(r3.status, 0) << describe(r3);
    EXPECT_EQ(json_number(r3.out, "bytes_saved"), 0u) << "a copy frees nothing: " << r3.out;
    EXPECT_LE(test::stat_path(dir / "g3/usr/lib/img").st_blocks, blocks + 16)
        << "the pool's copy of g3's image lost its holes";
    EXPECT_EQ(test::manifest(dir / "g3"), m3);

    test::RunResult u = run_bounded({"--pool", pool, "unshare", "g2"}, 30);
    ASSERT_EQ(u.status, 0) << describe(u);
    EXPECT_LE(test::stat_path(dir / "g2/usr/lib/img").st_blocks, blocks + 16)
        << "unshare filled holes";
    EXPECT_EQ(test::manifest(dir / "g2"), m2);
    test::RunResult f = run_bounded({"--pool", pool, "forget", "g3"}, 30);
    ASSERT_EQ(f.status, 0) << describe(f);
    EXPECT_LE(test::stat_path(dir / "g3/usr/lib/img").st_blocks, blocks + 16)
        << "forget filled holes";
    EXPECT_EQ(test::manifest(dir / "g3"), m3);
}

// ---------------------------------------------------------------------------------------
// Filesystems for E and F: a loop image, or a tmpfs mounted here.

class Scratch {
  public:
    explicit Scratch(const std::string& type) {
        if (type == "tmpfs") {
            dir_ = std::make_unique<TempDir>();
            path_ = *dir_ / "mnt";
            mkdir(path_.c_str(), 0755);
            if (mount("unify-attack", path_.c_str(), "tmpfs", 0, "size=512m") != 0)
                reason_ = "mount tmpfs: " + std::string(strerror(errno));
            else
                mounted_ = true;
        } else {
            loop_ = std::make_unique<test::LoopFs>(type, 700);
            reason_ = loop_->reason();
            path_ = loop_->path();
        }
    }
    ~Scratch() {
        if (!mounted_) return;
        test::sh("chattr -R -i '" + path_ + "' >/dev/null 2>&1");
        for (int i = 0; i < 20 && umount(path_.c_str()) != 0; ++i) usleep(100000);
    }
    const std::string& reason() const { return reason_; }
    std::string operator/(const std::string& rel) const { return path_ + "/" + rel; }

  private:
    std::unique_ptr<TempDir> dir_;
    std::unique_ptr<test::LoopFs> loop_;
    std::string path_, reason_;
    bool mounted_ = false;
};

// ---------------------------------------------------------------------------------------
// E. Where the flag spares fds opened before it (XFS, btrfs, tmpfs), a file some process
// holds open for writing is never adopted or linked over, settled or not.

void open_writer_across_import(const std::string& type, bool settled) {
    Scratch fs(type);
    UNIFY_REQUIRE(fs.reason());
    UNIFY_REQUIRE(test::need_immutable(fs / ""));
    std::string pool = fs / "pool";
    ASSERT_EQ(test::run_unify({"--pool", pool, "init"}).status, 0);
    for (const char* g : {"g1", "g2", "g3"})
        for (const char* f : {"held", "shared", "other"})
            write_at_mtime(fs / (std::string(g) + "/usr/lib/" + f), std::string("content of ") + f);
    // With the test-only switch of unify-faults (store/fault.h) every file counts as settled.
    if (settled) setenv("UNIFY_FAULT_SETTLE", "settled", 1);
    if (settled) setenv("UNIFY_ATTACK_BINARY", UNIFY_FAULTS_BINARY, 1);
    // g1's process holds usr/lib/held open for writing across its import (adoption), g2's
    // across its own (being linked over the object g3 made).
    int w1 = open((fs / "g1/usr/lib/held").c_str(), O_WRONLY | O_CLOEXEC);
    int w2 = open((fs / "g2/usr/lib/held").c_str(), O_WRONLY | O_CLOEXEC);
    ASSERT_GE(w1, 0);
    ASSERT_GE(w2, 0);
    std::vector<test::RunResult> runs;
    for (const char* g : {"g1", "g3", "g2"})
        runs.push_back(run_bounded({"--pool", pool, "--json", "import", g, fs / g}, 30));
    unsetenv("UNIFY_FAULT_SETTLE");
    unsetenv("UNIFY_ATTACK_BINARY");
    for (const auto& r : runs) EXPECT_EQ(r.status, 0) << describe(r);
    EXPECT_EQ(json_number(runs[0].out, "busy"), 1u) << runs[0].out;
    EXPECT_EQ(json_number(runs[2].out, "busy"), 1u) << runs[2].out;
    // Now the writers write.
    EXPECT_EQ(pwrite(w1, "EVIL", 4, 0), 4);
    EXPECT_EQ(pwrite(w2, "EVIL", 4, 0), 4);
    close(w1);
    close(w2);
    EXPECT_EQ(test::read_file(fs / "g3/usr/lib/held"), "content of held")
        << "g1 or g2 wrote g3's file";
    EXPECT_EQ(test::read_file(fs / "g1/usr/lib/held"), "EVILent of held");
    EXPECT_EQ(test::read_file(fs / "g2/usr/lib/held"), "EVILent of held")
        << "g2's own write was lost (its path was linked over while it was open)";
    EXPECT_EQ(test::stat_path(fs / "g2/usr/lib/shared").st_ino,
              test::stat_path(fs / "g3/usr/lib/shared").st_ino);
    EXPECT_EQ(test::objects_not_matching_their_id(pool), std::vector<std::string>{});
}

TEST(Attacks, OpenWriterIsNeverAdoptedOnXfs) {
    open_writer_across_import("xfs", false);
}
TEST(Attacks, OpenWriterIsNeverAdoptedOnBtrfs) {
    open_writer_across_import("btrfs", false);
}
TEST(Attacks, OpenWriterIsNeverAdoptedOnTmpfs) {
    open_writer_across_import("tmpfs", false);
}
TEST(Attacks, OpenWriterOfSettledFileIsNeverAdoptedOnXfs) {
    open_writer_across_import("xfs", true);
}
TEST(Attacks, OpenWriterOfSettledFileIsNeverAdoptedOnTmpfs) {
    open_writer_across_import("tmpfs", true);
}

// ---------------------------------------------------------------------------------------
// F. The window: a guest that links an object loops on open(O_WRONLY) / pwrite / futimens
// for up to 30 s while another guest with 3,000 copies imports, unshares and imports again.

// ext2/3/4 stop fds opened before the immutable flag; XFS, btrfs and tmpfs do not.
bool flag_spares(const std::string& path) {
    struct statfs sfs;
    return statfs(path.c_str(), &sfs) == 0 && sfs.f_type != EXT4_SUPER_MAGIC;
}

const std::string kShared = "the shared bytes, 40 of them, end here.\n";

// A hardlink pool on `fs` in which g1 links kShared at usr/share/victim (imported), and g2
// holds `copies` copies of it in usr/share/doc (not yet imported).
void victim_and_copies(const Scratch& fs, int copies) {
    ASSERT_EQ(test::run_unify({"--pool", fs / "pool", "init"}).status, 0);
    write_at_mtime(fs / "g1/usr/share/victim", kShared);
    ASSERT_TRUE(test::write_many(fs / "g2/usr/share/doc", "copy", copies, kShared));
    ASSERT_EQ(run_bounded({"--pool", fs / "pool", "import", "g1", fs / "g1"}, 30).status, 0);
}

void racer_against_the_window(const std::string& type) {
    Scratch fs(type);
    UNIFY_REQUIRE(fs.reason());
    UNIFY_REQUIRE(test::need_immutable(fs / ""));
    ASSERT_NO_FATAL_FAILURE(victim_and_copies(fs, 3000));
    std::string pool = fs / "pool", victim = fs / "g1/usr/share/victim";
    const std::string& content = kShared;
    std::atomic<bool> stop{false};
    std::atomic<long> tries{0}, opened{0}, wrote{0};
    std::thread racer([&] {
        auto t0 = std::chrono::steady_clock::now();
        while (!stop && std::chrono::steady_clock::now() - t0 < std::chrono::seconds(30)) {
            ++tries;
            int fd = open(victim.c_str(), O_WRONLY | O_CLOEXEC);
            if (fd < 0) continue;
            ++opened;
            struct stat st;
            fstat(fd, &st);
            if (pwrite(fd, "EVIL", 4, 0) == 4) ++wrote;
            struct timespec t[2] = {st.st_atim, st.st_mtim};
            futimens(fd, t);
            close(fd);
        }
    });
    std::vector<std::pair<std::string, test::RunResult>> runs;
    for (const auto& args : std::vector<std::vector<std::string>>{
             {"import", "g2", fs / "g2"}, {"unshare", "g2"}, {"import", "g2", fs / "g2"}}) {
        std::vector<std::string> a = {"--pool", pool};
        a.insert(a.end(), args.begin(), args.end());
        runs.emplace_back(args[0], run_bounded(a, 60));
    }
    stop = true;
    racer.join();
    std::cerr << type << ": racer tried " << tries << " opens, " << opened << " opened, " << wrote
              << " writes landed\n";
    // A writer caught in a window where the flag would not stop it afterwards has the
    // object's names scattered onto private copies (linker/scatter.h), and the run says so.
    bool scattered = false;
    for (const auto& [what, r] : runs) {
        EXPECT_FALSE(r.killed) << what << ": " << describe(r);
        EXPECT_EQ(r.status, 0) << what << ": " << describe(r);
        if (r.err.find("were given private copies") != std::string::npos) scattered = true;
    }
    size_t changed = 0;
    for (int i = 0; i < 3000; ++i)
        if (test::read_file(fs / ("g2/usr/share/doc/copy" + std::to_string(i))) != content)
            ++changed;
    test::RunResult v = run_bounded({"--pool", pool, "verify", "--full"}, 60);
    std::cerr << type << ": " << changed << " of g2's paths changed, verify --full status "
              << v.status << (scattered ? ", a window's writer was scattered\n" : "\n");
    EXPECT_EQ(changed, 0u) << "g1's writer changed g2's files";
    EXPECT_EQ(v.status, 0) << describe(v);
    // g1's own file changes only by its own writes, once it is private again.
    if (!scattered) {
        EXPECT_EQ(test::read_file(victim), content);
    }
    if (!flag_spares(fs / "")) {
        EXPECT_FALSE(scattered) << "ext4 refuses that writer by itself";
    }
}

// The same writer, placed exactly: at the last step of a window (the flag still lifted), a
// process of g1 opens g1's linked file for writing and waits in open() for the lease, then
// writes "EVIL". Every guest path must keep its bytes.
void writer_caught_in_the_window(const std::string& type) {
    Scratch fs(type);
    UNIFY_REQUIRE(fs.reason());
    UNIFY_REQUIRE(test::need_immutable(fs / ""));
    ASSERT_NO_FATAL_FAILURE(victim_and_copies(fs, 20));
    std::string pool = fs / "pool", victim = fs / "g1/usr/share/victim";
    const std::string& content = kShared;
    std::string done = fs / "writer-done";
    setenv("UNIFY_FAULT_WRITER", ("window.protect:1:" + victim).c_str(), 1);
    setenv("UNIFY_FAULT_WRITER_DONE", done.c_str(), 1);
    setenv("UNIFY_ATTACK_BINARY", UNIFY_FAULTS_BINARY, 1);
    test::RunResult r = run_bounded({"--pool", pool, "import", "g2", fs / "g2"}, 60);
    unsetenv("UNIFY_FAULT_WRITER");
    unsetenv("UNIFY_FAULT_WRITER_DONE");
    unsetenv("UNIFY_ATTACK_BINARY");
    for (int i = 0; i < 500 && access(done.c_str(), F_OK) != 0; ++i) usleep(10000);
    EXPECT_EQ(access(done.c_str(), F_OK), 0) << "the writer never got its fd";
    EXPECT_EQ(r.status, 0) << describe(r);
    size_t changed = 0;
    for (int i = 0; i < 20; ++i)
        if (test::read_file(fs / ("g2/usr/share/doc/copy" + std::to_string(i))) != content)
            ++changed;
    EXPECT_EQ(changed, 0u) << "g1's writer changed g2's files";
    EXPECT_EQ(test::read_file(victim), content) << "the writer's fd must not reach g1's path";
    EXPECT_EQ(run_bounded({"--pool", pool, "verify", "--full"}, 60).status, 0);
    if (flag_spares(fs / "")) {
        EXPECT_NE(r.err.find("were given private copies"), std::string::npos) << describe(r);
    }
    // The next import shares the copies again.
    ASSERT_EQ(run_bounded({"--pool", pool, "import", "g2", fs / "g2"}, 60).status, 0);
    EXPECT_EQ(test::stat_path(fs / "g2/usr/share/doc/copy0").st_ino,
              test::stat_path(fs / "g2/usr/share/doc/copy19").st_ino);
    EXPECT_EQ(test::objects_not_matching_their_id(pool), std::vector<std::string>{});
}

TEST(Attacks, WriterCaughtInTheWindowOnExt4) {
    writer_caught_in_the_window("ext4");
}
TEST(Attacks, WriterCaughtInTheWindowOnXfs) {
    writer_caught_in_the_window("xfs");
}
TEST(Attacks, WriterCaughtInTheWindowOnBtrfs) {
    writer_caught_in_the_window("btrfs");
}
TEST(Attacks, WriterCaughtInTheWindowOnTmpfs) {
    writer_caught_in_the_window("tmpfs");
}

TEST(Attacks, WindowRacerOnExt4) {
    racer_against_the_window("ext4");
}
TEST(Attacks, WindowRacerOnXfs) {
    racer_against_the_window("xfs");
}
TEST(Attacks, WindowRacerOnBtrfs) {
    racer_against_the_window("btrfs");
}
TEST(Attacks, WindowRacerOnTmpfs) {
    racer_against_the_window("tmpfs");
}

}  // namespace
}  // namespace unify
