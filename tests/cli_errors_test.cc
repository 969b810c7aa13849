// Error handling of the unify binary: every failure prints one clear message on stderr
// (naming the path and the reason), exits 1 (errors) or 2 (usage), and changes nothing: the
// guests' manifests and the pool's objects are the same afterwards.
#include <fcntl.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <set>
#include <thread>

#include "store/fd_limit.h"
#include "tests/sample_guests.h"
#include "tests/test_support.h"

namespace unify::test {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

bool exists(const std::string& path) {
    return access(path.c_str(), F_OK) == 0;
}

// Names in a directory.
// A small guest: two files any other sample guest shares, one of its own, one in /etc.
void make_guest(const std::string& root, const std::string& own) {
    for (const auto& [rel, content] :
         {std::pair<std::string, std::string>{"/usr/bin/tool", "tool\n"},
          {"/usr/lib/libc.so", "libc\n"},
          {"/usr/local/bin/own", own},
          {"/etc/conf", "conf\n"}}) {
        write_file(root + rel, content, 0755);
        set_mtime(root + rel, 1700000000, 42);
    }
}

RunResult unify_at(const std::string& pool, std::vector<std::string> args) {
    args.insert(args.begin(), {"--pool", pool});
    return run_unify(args);
}

// Runs unify without CAP_LINUX_IMMUTABLE (dropped from the bounding and inheritable sets, so
// a root exec does not get it back). Output is captured through files in `scratch`.
const char* kDropCap = "setpriv --inh-caps=-linux_immutable --bounding-set=-linux_immutable ";

RunResult unify_without_cap(const std::string& scratch, const std::vector<std::string>& args) {
    std::string cmd = std::string(kDropCap) + "'" UNIFY_BINARY "'";
    for (const auto& a : args) cmd += " '" + a + "'";
    std::string out = scratch + "/.out", err = scratch + "/.err";
    RunResult r;
    r.status = sh(cmd + " >'" + out + "' 2>'" + err + "'");
    r.out = read_file(out);
    r.err = read_file(err);
    unlink(out.c_str());
    unlink(err.c_str());
    return r;
}

// ---------------------------------------------------------------------------------------
// Usage

TEST(Cli, NoSubcommandIsAUsageError) {
    auto r = run_unify({});
    EXPECT_EQ(r.status, 2);
    EXPECT_TRUE(contains_squeezed(r.err, "subcommand is required")) << r.err;
    r = run_unify({"--pool", "/nonexistent/pool"});
    EXPECT_EQ(r.status, 2);
    EXPECT_FALSE(exists("/nonexistent/pool"));
}

TEST(Cli, UnknownOptionOrSubcommandIsAUsageError) {
    TempDir dir;
    std::string pool = dir / "pool";
    for (const std::vector<std::string>& args : {std::vector<std::string>{"--bogus", "list"},
                                                 {"list", "--bogus"},
                                                 {"init", "--protect", "sometimes"},
                                                 {"frobnicate"},
                                                 {"import", "onlyname"},
                                                 // read as 2^64 - 5 once, and kept
                                                 {"import", "g", dir / "g", "--min-size", "-5"},
                                                 {"--quiet", "--verbose", "list"}}) {
        std::vector<std::string> full = {"--pool", pool};
        full.insert(full.end(), args.begin(), args.end());
        auto r = run_unify(full);
        std::string shown = args[0] + (args.size() > 1 ? " " + args[1] : "");
        EXPECT_EQ(r.status, 2) << shown << ": " << r.err;
        EXPECT_NE(r.err, "") << shown;
        EXPECT_FALSE(exists(pool)) << shown;
    }
    auto r = run_unify({"--pool", pool, "--bogus", "list"});
    EXPECT_TRUE(contains_squeezed(r.err, "--bogus")) << r.err;
    r = run_unify({"--pool", pool, "frobnicate"});
    EXPECT_TRUE(contains_squeezed(r.err, "unknown command 'frobnicate'")) << r.err;
    EXPECT_TRUE(contains_squeezed(r.err, "status")) << r.err;
}

TEST(Cli, HelpNamesEverySubcommandAndTheExitCodes) {
    auto r = run_unify({"--help"});
    EXPECT_EQ(r.status, 0) << r.err;
    for (const char* word :
         {"init", "import", "gc", "who", "status", "unshare", "list", "Exit codes", "UNIFY_POOL"})
        EXPECT_TRUE(contains_squeezed(r.out, word)) << word << " missing from:\n" << r.out;
}

// ---------------------------------------------------------------------------------------
// init

TEST(Cli, InitRefusesANonEmptyDirectory) {
    TempDir dir;
    std::string pool = dir / "pool";
    write_file(pool + "/precious", "keep me\n");
    const std::string m = manifest(pool);
    for (const char* mode : {"none", "immutable", "auto"}) {
        auto r = unify_at(pool, {"init", "--protect", mode});
        EXPECT_EQ(r.status, 1) << mode;
        EXPECT_TRUE(contains_squeezed(r.err, pool)) << r.err;
        EXPECT_TRUE(contains_squeezed(r.err, "not empty")) << r.err;
        EXPECT_EQ(manifest(pool), m) << mode;
    }
    EXPECT_EQ(read_file(pool + "/precious"), "keep me\n");
    EXPECT_EQ(entries(pool), std::set<std::string>{"precious"});
}

TEST(Cli, InitIunlinkOnAStockKernelFailsAndLeavesNoDirectory) {
    if (access("/proc/virtual", F_OK) == 0) GTEST_SKIP() << "this is a Linux-VServer kernel";
    TempDir dir;
    std::string pool = dir / "pool";
    auto r = unify_at(pool, {"init", "--protect", "iunlink"});
    EXPECT_EQ(r.status, 1);
    EXPECT_TRUE(contains_squeezed(r.err, "VServer")) << r.err;
    EXPECT_TRUE(contains_squeezed(r.err, "--protect immutable")) << r.err;
    EXPECT_EQ(r.out, "");
    EXPECT_FALSE(exists(pool));
}

TEST(Cli, InitProtectNoneWarnsAboutEveryGuest) {
    TempDir dir;
    std::string pool = dir / "pool";
    auto r = unify_at(pool, {"init", "--protect", "none"});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_TRUE(contains_squeezed(r.err, "warning")) << r.err;
    EXPECT_TRUE(contains_squeezed(r.err, "every guest")) << r.err;
    EXPECT_TRUE(contains_squeezed(r.out, "protection none")) << r.out;
    EXPECT_TRUE(exists(pool + "/pool.conf"));
    r = unify_at(pool, {"status"});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_TRUE(contains_squeezed(r.out, "(protection none)")) << r.out;
}

TEST(Cli, InitTwiceFailsAndKeepsTheFirstPool) {
    TempDir dir;
    UNIFY_REQUIRE(need_immutable(dir.path()));
    std::string pool = dir / "pool", g1 = dir / "g1";
    make_guest(g1, "own\n");
    ASSERT_EQ(unify_at(pool, {"init", "--protect", "immutable"}).status, 0);
    ASSERT_EQ(unify_at(pool, {"import", "g1", g1}).status, 0);
    std::string conf = read_file(pool + "/pool.conf");
    auto objs = objects(pool);
    ASSERT_EQ(objs.size(), 3u);

    for (const char* mode : {"immutable", "none"}) {
        auto r = unify_at(pool, {"init", "--protect", mode});
        EXPECT_EQ(r.status, 1) << mode;
        EXPECT_TRUE(contains_squeezed(r.err, pool)) << r.err;
        EXPECT_TRUE(contains_squeezed(r.err, "not empty")) << r.err;
    }
    EXPECT_EQ(read_file(pool + "/pool.conf"), conf);
    EXPECT_EQ(objects(pool), objs);
    auto r = unify_at(pool, {"list"});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_TRUE(contains_squeezed(r.out, "g1  " + g1)) << r.out;
}

// ---------------------------------------------------------------------------------------
// The pool

TEST(Cli, MissingPoolNamesItAndUnifyInit) {
    TempDir dir;
    std::string pool = dir / "nope", g1 = dir / "g1";
    make_guest(g1, "own\n");
    const std::string m = manifest(g1);
    for (const std::vector<std::string>& args : {std::vector<std::string>{"status"},
                                                 {"list"},
                                                 {"gc"},
                                                 {"gc", "--dry-run"},
                                                 {"who", "g1:/usr/bin/tool"},
                                                 {"import", "g1", g1},
                                                 {"unshare", "g1"}}) {
        auto r = unify_at(pool, args);
        EXPECT_EQ(r.status, 1) << args[0];
        EXPECT_TRUE(contains_squeezed(r.err, pool)) << args[0] << ": " << r.err;
        EXPECT_TRUE(contains_squeezed(r.err, "unify init")) << args[0] << ": " << r.err;
        EXPECT_EQ(r.out, "") << args[0];
        EXPECT_FALSE(exists(pool)) << args[0];
    }
    // A directory that exists but is no pool.
    sh("mkdir -p '" + pool + "'");
    auto r = unify_at(pool, {"import", "g1", g1});
    EXPECT_EQ(r.status, 1);
    EXPECT_TRUE(contains_squeezed(r.err, pool)) << r.err;
    EXPECT_TRUE(contains_squeezed(r.err, "not a unify pool")) << r.err;
    EXPECT_TRUE(fs::is_empty(pool));
    EXPECT_EQ(manifest(g1), m);
}

// Guest root and pool on different filesystems, both ways round.
TEST(Cli, PoolOnAnotherFilesystemIsRefused) {
    UNIFY_REQUIRE(need_root());
    TempDir dir;
    UNIFY_REQUIRE(need_immutable(dir.path()));
    std::string mnt = dir / "mnt";
    TmpfsMount tmpfs(mnt);
    UNIFY_REQUIRE(tmpfs.error());

    struct Case {
        std::string pool, guest;
    };
    for (const Case& c : {Case{dir / "pool", mnt + "/g1"}, Case{mnt + "/pool", dir / "g2"}}) {
        SCOPED_TRACE("pool " + c.pool + ", guest " + c.guest);
        make_guest(c.guest, "own\n");
        const std::string m = manifest(c.guest);
        auto r = unify_at(c.pool, {"init", "--protect", "none"});
        ASSERT_EQ(r.status, 0) << r.err;
        r = unify_at(c.pool, {"import", "g", c.guest});
        EXPECT_EQ(r.status, 1);
        EXPECT_TRUE(contains_squeezed(r.err, c.guest)) << r.err;
        EXPECT_TRUE(contains_squeezed(r.err, c.pool)) << r.err;
        EXPECT_TRUE(contains_squeezed(r.err, "mounted at " + mnt)) << r.err;  // the tmpfs
        EXPECT_TRUE(contains_squeezed(r.err, "mounted at /)")) << r.err;      // /var/tmp's
        EXPECT_TRUE(contains_squeezed(r.err, "same filesystem")) << r.err;
        EXPECT_EQ(manifest(c.guest), m);
        EXPECT_EQ(objects(c.pool), std::set<std::string>{});
        r = unify_at(c.pool, {"list"});
        EXPECT_EQ(r.status, 0) << r.err;
        EXPECT_TRUE(contains_squeezed(r.out, "no guests yet")) << r.out;
    }
}

// A guest root reached through a bind mount of the pool's own filesystem: same device, but
// linkat between two mounts is EXDEV. Refused before the guest is registered, not at the
// first link halfway through the import.
TEST(Cli, GuestRootThroughABindMountIsRefusedUpFront) {
    UNIFY_REQUIRE(need_root());
    TempDir dir;
    UNIFY_REQUIRE(need_immutable(dir.path()));
    std::string real = dir / "real", bind = dir / "bind", pool = dir / "pool";
    make_guest(real, "own\n");
    BindMount mount(real, bind);
    UNIFY_REQUIRE(mount.error());
    const std::string m = manifest(real);
    ASSERT_EQ(unify_at(pool, {"init"}).status, 0);
    auto r = unify_at(pool, {"import", "g", bind});
    EXPECT_EQ(r.status, 1) << r.out;
    EXPECT_TRUE(contains_squeezed(r.err, "reached through another mount (mounted at " + bind))
        << r.err;
    EXPECT_TRUE(contains_squeezed(r.err, "hard links cannot cross mounts")) << r.err;
    EXPECT_EQ(manifest(real), m);
    EXPECT_EQ(objects(pool), std::set<std::string>{});
    r = unify_at(pool, {"list"});
    EXPECT_TRUE(contains_squeezed(r.out, "no guests yet")) << r.out;
    // The same root by its own path imports.
    r = unify_at(pool, {"import", "g", real});
    EXPECT_EQ(r.status, 0) << r.err;
}

// A pool on a filesystem mounted read-only: every command says so, not that the index is
// damaged (LMDB opens its lock file for writing even to read).
TEST(Cli, PoolOnAReadOnlyMountSaysSoNotReindex) {
    UNIFY_REQUIRE(need_root());
    TempDir dir;
    std::string mnt = dir / "mnt", pool = mnt + "/pool", g = mnt + "/g";
    TmpfsMount tmpfs(mnt);
    UNIFY_REQUIRE(tmpfs.error());
    make_guest(g, "own\n");
    ASSERT_EQ(unify_at(pool, {"init", "--protect", "none"}).status, 0);
    ASSERT_EQ(unify_at(pool, {"import", "g", g}).status, 0);
    ASSERT_EQ(sh("mount -o remount,ro '" + mnt + "'"), 0);
    for (const std::vector<std::string>& args : {std::vector<std::string>{"status"}, {"list"}}) {
        auto r = unify_at(pool, args);
        EXPECT_EQ(r.status, 1) << args[0] << ": " << r.out;
        EXPECT_TRUE(contains_squeezed(r.err, "Read-only file system")) << r.err;
        EXPECT_TRUE(contains_squeezed(r.err, "writable filesystem")) << r.err;
        EXPECT_FALSE(contains_squeezed(r.err, "reindex")) << r.err;
    }
    ASSERT_EQ(sh("mount -o remount,rw '" + mnt + "'"), 0);
    EXPECT_EQ(unify_at(pool, {"status"}).status, 0);
}

// A filesystem that fills up during an import: the guest keeps every byte, the error says
// what to do, and after gc and some freed space the import goes through.
TEST(Cli, FullFilesystemStopsTheImportCleanlyAndItConvergesAfterwards) {
    // ext4: tmpfs links each copied object right after making it, which frees its space.
    LoopFs fs("ext4", 64);
    UNIFY_REQUIRE(fs.reason());
    std::string mnt = fs.path(), pool = mnt + "/pool", g = mnt + "/g";
    // Files with a second name inside the guest become objects by copy: 8 x 2 MiB to copy.
    for (int i = 0; i < 8; ++i) {
        std::string f = g + "/usr/lib/lib" + std::to_string(i) + ".so";
        write_file(f, std::string(2 << 20, char('a' + i)), 0644);
        set_mtime(f, 1700000000, 42);
        ASSERT_EQ(link(f.c_str(), (f + ".1").c_str()), 0);
    }
    ASSERT_EQ(unify_at(pool, {"init", "--protect", "none"}).status, 0);
    const std::string m = manifest(g);
    // Leave about 3 MiB free.
    ASSERT_EQ(sh("sync; dd if=/dev/zero of='" + mnt + "/filler' bs=1M count=$(( $(df -m " +
                 "--output=avail '" + mnt + "' | tail -1) - 3 )) status=none && sync"),
              0);
    auto r = unify_at(pool, {"import", "g", g});
    EXPECT_EQ(r.status, 1) << r.out;
    EXPECT_TRUE(contains_squeezed(r.err, "ENOSPC")) << r.err;
    EXPECT_TRUE(contains_squeezed(r.err, "the filesystem is full")) << r.err;
    EXPECT_EQ(manifest(g), m);
    ASSERT_EQ(unify_at(pool, {"gc"}).status, 0);
    ASSERT_EQ(unlink((mnt + "/filler").c_str()), 0);
    r = unify_at(pool, {"import", "g", g});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(manifest(g), m);
    EXPECT_EQ(unify_at(pool, {"verify", "--full"}).status, 0);
    // Unshare needs room for each copy before the link it replaces goes: full again, it
    // stops with the same kind of hint, and a re-run with room finishes.
    ASSERT_EQ(sh("sync; dd if=/dev/zero of='" + mnt + "/filler' bs=1M count=$(( $(df -m " +
                 "--output=avail '" + mnt + "' | tail -1) - 3 )) status=none && sync"),
              0);
    r = unify_at(pool, {"unshare", "g"});
    EXPECT_EQ(r.status, 1) << r.out;
    EXPECT_TRUE(contains_squeezed(r.err, "free some space, then run the unshare again")) << r.err;
    EXPECT_EQ(manifest(g), m);
    ASSERT_EQ(unlink((mnt + "/filler").c_str()), 0);
    r = unify_at(pool, {"unshare", "g"});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(manifest(g), m);
}

// An index restored from a backup older than the last registration does not know a guest
// that guests.conf lists: the commands that name it say to run reindex, not to look at
// unify list (which reads the index and would not show it either).
TEST(Cli, AGuestTheIndexLostButTheRegistryListsGetsTheReindexHint) {
    TempDir dir;
    std::string g1 = dir / "g1", g2 = dir / "g2", pool = dir / "pool";
    make_guest(g1, "one\n");
    make_guest(g2, "two\n");
    ASSERT_EQ(unify_at(pool, {"init", "--protect", "none"}).status, 0);
    ASSERT_EQ(unify_at(pool, {"import", "g1", g1}).status, 0);
    ASSERT_EQ(sh("cp '" + pool + "/index/data.mdb' '" + dir.path() + "/backup.mdb'"), 0);
    ASSERT_EQ(unify_at(pool, {"import", "g2", g2}).status, 0);
    ASSERT_EQ(sh("cp '" + dir.path() + "/backup.mdb' '" + pool + "/index/data.mdb'"), 0);
    for (const std::vector<std::string>& cmd :
         {std::vector<std::string>{"who", "g2:/usr/local/bin/own"},
          {"status", "g2"},
          {"unshare", "g2"},
          {"forget", "g2"}}) {
        auto r = unify_at(pool, cmd);
        EXPECT_EQ(r.status, 1) << cmd[0];
        EXPECT_TRUE(contains_squeezed(r.err, "guests.conf lists it")) << r.err;
        EXPECT_TRUE(contains_squeezed(r.err, "run unify reindex")) << r.err;
    }
    auto r = unify_at(pool, {"who", "g3:/usr/local/bin/own"});
    EXPECT_TRUE(contains_squeezed(r.err, "no guest named 'g3' (see unify list)")) << r.err;
    ASSERT_EQ(unify_at(pool, {"reindex"}).status, 0);
    EXPECT_EQ(unify_at(pool, {"status", "g2"}).status, 0);
}

// who of a guest's root directory names the command and says what it takes (it said only
// "not a guest path: '/'").
TEST(Cli, WhoOfAGuestsRootSaysItTakesAFile) {
    TempDir dir;
    std::string g1 = dir / "g1", pool = dir / "pool";
    make_guest(g1, "one\n");
    ASSERT_EQ(unify_at(pool, {"init", "--protect", "none"}).status, 0);
    ASSERT_EQ(unify_at(pool, {"import", "g1", g1}).status, 0);
    for (const char* t : {"g1:", "g1:/", "g1:/usr/.."}) {
        auto r = unify_at(pool, {"who", t});
        EXPECT_EQ(r.status, 1) << t;
        EXPECT_TRUE(contains_squeezed(
            r.err, "who: " + std::string(t) + " is the guest's root directory; who takes a file"))
            << r.err;
    }
}

// More unindexed objects than one interrupted import leaves (a batch) mean an index older
// than the pool: verify says so and names reindex.
TEST(Cli, ManyUnindexedObjectsGetTheReindexHint) {
    TempDir dir;
    std::string g = dir / "g", pool = dir / "pool";
    for (int i = 0; i < 4200; ++i)
        write_file(g + "/usr/lib/f" + std::to_string(i), "file " + std::to_string(i) + "\n");
    ASSERT_EQ(unify_at(pool, {"init", "--protect", "none"}).status, 0);
    ASSERT_EQ(sh("cp '" + pool + "/index/data.mdb' '" + dir.path() + "/backup.mdb'"), 0);
    ASSERT_EQ(unify_at(pool, {"import", "g", g, "--min-size", "1"}).status, 0);
    auto r = unify_at(pool, {"verify"});
    EXPECT_FALSE(contains_squeezed(r.out, "hint:")) << r.out;
    ASSERT_EQ(sh("cp '" + dir.path() + "/backup.mdb' '" + pool + "/index/data.mdb'"), 0);
    r = unify_at(pool, {"verify"});
    EXPECT_TRUE(contains_squeezed(r.out, "4,200 unindexed objects are more than an interrupted"))
        << r.out.substr(r.out.size() > 2000 ? r.out.size() - 2000 : 0);
    EXPECT_TRUE(contains_squeezed(r.out, "unify reindex rebuilds it")) << r.out.substr(0, 300);
}

TEST(Cli, PoolInsideAGuestRootIsRefused) {
    TempDir dir;
    std::string g1 = dir / "g1", pool = g1 + "/srv/pool";
    make_guest(g1, "own\n");
    const std::string m = manifest(g1 + "/usr");
    ASSERT_EQ(0, sh("mkdir -p '" + g1 + "/srv'"));
    auto r = unify_at(pool, {"init", "--protect", "none"});
    ASSERT_EQ(r.status, 0) << r.err;
    r = unify_at(pool, {"import", "g1", g1});
    EXPECT_EQ(r.status, 1);
    EXPECT_TRUE(contains_squeezed(r.err, "the pool " + pool + " lies inside guest root " + g1))
        << r.err;
    EXPECT_EQ(manifest(g1 + "/usr"), m);
    EXPECT_EQ(stat_path(g1 + "/usr/bin/tool").st_nlink, 1u);
    EXPECT_EQ(objects(pool), std::set<std::string>{});
    r = unify_at(pool, {"list"});
    EXPECT_TRUE(contains_squeezed(r.out, "no guests yet")) << r.out;
}

// ---------------------------------------------------------------------------------------
// Missing CAP_LINUX_IMMUTABLE

TEST(Cli, InitWithoutCapLinuxImmutableFailsAndCreatesNothing) {
    TempDir dir;
    UNIFY_REQUIRE(need_immutable(dir.path()));
    UNIFY_REQUIRE(need_tool("setpriv"));
    // The premise: under setpriv the flag really cannot be set.
    write_file(dir / "probe", "x");
    ASSERT_NE(0, sh(std::string(kDropCap) + "chattr +i '" + dir / "probe" + "' 2>/dev/null"));
    ASSERT_FALSE(is_immutable(dir / "probe"));

    std::string pool = dir / "pool";
    auto r = unify_without_cap(dir.path(), {"--pool", pool, "init", "--protect", "immutable"});
    EXPECT_EQ(r.status, 1);
    EXPECT_TRUE(contains_squeezed(r.err, "CAP_LINUX_IMMUTABLE")) << r.err;
    EXPECT_TRUE(contains_squeezed(r.err, "--protect none")) << r.err;
    EXPECT_TRUE(contains_squeezed(r.err, pool)) << r.err;
    EXPECT_EQ(r.out, "");
    EXPECT_FALSE(exists(pool));

    // auto has nothing to fall back to either.
    r = unify_without_cap(dir.path(), {"--pool", pool, "init"});
    EXPECT_EQ(r.status, 1);
    EXPECT_TRUE(contains_squeezed(r.err, "CAP_LINUX_IMMUTABLE")) << r.err;
    EXPECT_TRUE(contains_squeezed(r.err, "--protect none")) << r.err;
    EXPECT_FALSE(exists(pool));
    // The listing holds only the probe file: no probe or pool left behind.
    EXPECT_EQ(entries(dir.path()), std::set<std::string>{"probe"});
}

TEST(Cli, WritersWithoutCapLinuxImmutableChangeNothing) {
    TempDir dir;
    UNIFY_REQUIRE(need_immutable(dir.path()));
    UNIFY_REQUIRE(need_tool("setpriv"));
    std::string pool = dir / "pool", g1 = dir / "g1", g2 = dir / "g2";
    make_guest(g1, "own 1\n");
    make_guest(g2, "own 2\n");
    ASSERT_EQ(unify_at(pool, {"init", "--protect", "immutable"}).status, 0);
    const std::string m1 = manifest(g1);

    // Into an empty pool: the first object would be g1's own inode.
    auto r = unify_without_cap(dir.path(), {"--pool", pool, "import", "g1", g1});
    EXPECT_EQ(r.status, 1);
    EXPECT_TRUE(contains_squeezed(r.err, "CAP_LINUX_IMMUTABLE")) << r.err;
    EXPECT_TRUE(contains_squeezed(r.err, pool)) << r.err;
    // The pool's protection is fixed at init: --protect none is no way out for it.
    EXPECT_FALSE(contains_squeezed(r.err, "--protect none")) << r.err;
    EXPECT_TRUE(contains_squeezed(r.err, "fixed at init")) << r.err;
    EXPECT_EQ(manifest(g1), m1);
    for (const char* f : {"/usr/bin/tool", "/usr/lib/libc.so", "/usr/local/bin/own"}) {
        EXPECT_EQ(stat_path(g1 + f).st_nlink, 1u) << f;
        EXPECT_FALSE(is_immutable(g1 + f)) << f;
    }
    EXPECT_EQ(objects(pool), std::set<std::string>{});
    r = unify_at(pool, {"list"});
    EXPECT_TRUE(contains_squeezed(r.out, "no guests yet")) << r.out;

    // Into a pool that already has the objects g1 would link to (made by g2, with the cap).
    r = unify_at(pool, {"import", "g2", g2});
    ASSERT_EQ(r.status, 0) << r.err;
    const std::string m2 = manifest(g2);
    auto objs = objects(pool);
    ASSERT_EQ(objs.size(), 3u);
    r = unify_without_cap(dir.path(), {"--pool", pool, "import", "g1", g1});
    EXPECT_EQ(r.status, 1);
    EXPECT_TRUE(contains_squeezed(r.err, "CAP_LINUX_IMMUTABLE")) << r.err;
    EXPECT_EQ(manifest(g1), m1);
    for (const char* f : {"/usr/bin/tool", "/usr/lib/libc.so", "/usr/local/bin/own"})
        EXPECT_EQ(stat_path(g1 + f).st_nlink, 1u) << f;
    EXPECT_EQ(objects(pool), objs);
    for (const auto& o : objs) EXPECT_TRUE(is_immutable(pool + "/objects/" + o)) << o;

    // unshare and gc must not lift (or fail to restore) protection halfway either.
    for (const std::vector<std::string>& args :
         {std::vector<std::string>{"unshare", "g2"}, {"gc"}}) {
        std::vector<std::string> full = {"--pool", pool};
        full.insert(full.end(), args.begin(), args.end());
        r = unify_without_cap(dir.path(), full);
        EXPECT_EQ(r.status, 1) << args[0];
        EXPECT_TRUE(contains_squeezed(r.err, "CAP_LINUX_IMMUTABLE")) << args[0] << ": " << r.err;
    }
    EXPECT_EQ(manifest(g2), m2);
    EXPECT_EQ(stat_path(g2 + "/usr/bin/tool").st_nlink, 2u);
    EXPECT_TRUE(is_immutable(g2 + "/usr/bin/tool"));
    EXPECT_EQ(objects(pool), objs);
    r = unify_at(pool, {"list"});
    EXPECT_FALSE(contains_squeezed(r.out, "g1  ")) << r.out;
}

// ---------------------------------------------------------------------------------------
// The pool lock

TEST(Cli, SecondWriterFailsFastOrWaitsWithWait) {
    TempDir dir;
    UNIFY_REQUIRE(need_immutable(dir.path()));
    std::string pool = dir / "pool", g1 = dir / "g1", g2 = dir / "g2";
    make_guest(g1, "own 1\n");
    make_guest(g2, "own 2\n");
    ASSERT_EQ(unify_at(pool, {"init", "--protect", "immutable"}).status, 0);
    ASSERT_EQ(unify_at(pool, {"import", "g1", g1}).status, 0);
    const std::string m2 = manifest(g2);
    auto objs = objects(pool);

    int fd = open((pool + "/lock").c_str(), O_RDWR | O_CLOEXEC);
    ASSERT_GE(fd, 0) << strerror(errno);
    ASSERT_EQ(0, flock(fd, LOCK_EX | LOCK_NB)) << strerror(errno);
    // The test holds the lock itself, so the message may name it (store/lock.cc).
    const std::string holder = "pid " + std::to_string(getpid()) + ": the test holding the lock";
    ASSERT_EQ(0, ftruncate(fd, 0));
    ASSERT_EQ(ssize_t(holder.size()), pwrite(fd, holder.data(), holder.size(), 0));

    for (const std::vector<std::string>& args :
         {std::vector<std::string>{"import", "g2", g2}, {"gc"}, {"unshare", "g1"}}) {
        auto start = Clock::now();
        auto r = unify_at(pool, args);
        auto took = Clock::now() - start;
        EXPECT_EQ(r.status, 1) << args[0];
        EXPECT_LT(took, std::chrono::seconds(2)) << args[0];
        EXPECT_TRUE(contains_squeezed(r.err, "busy")) << args[0] << ": " << r.err;
        EXPECT_TRUE(contains_squeezed(r.err, "lock")) << args[0] << ": " << r.err;
        EXPECT_TRUE(contains_squeezed(r.err, holder)) << args[0] << ": " << r.err;
        EXPECT_TRUE(contains_squeezed(r.err, "--wait")) << args[0] << ": " << r.err;
    }
    EXPECT_EQ(manifest(g2), m2);
    EXPECT_EQ(stat_path(g1 + "/usr/bin/tool").st_nlink, 2u);
    EXPECT_EQ(objects(pool), objs);

    // Readers do not take the lock.
    auto r = unify_at(pool, {"status"});
    EXPECT_EQ(r.status, 0) << r.err;
    r = unify_at(pool, {"list"});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_TRUE(contains_squeezed(r.out, "g1  " + g1)) << r.out;
    r = unify_at(pool, {"who", "g1:/usr/bin/tool"});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_TRUE(contains_squeezed(r.out, "g1  /usr/bin/tool")) << r.out;

    // --wait: succeeds once the lock is released, about a second later.
    std::thread release([fd] {
        std::this_thread::sleep_for(std::chrono::milliseconds(1000));
        close(fd);
    });
    auto start = Clock::now();
    r = run_unify({"--pool", pool, "--wait", "import", "g2", g2});
    auto took = Clock::now() - start;
    release.join();
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_GE(took, std::chrono::milliseconds(800));
    EXPECT_LT(took, std::chrono::seconds(10));
    EXPECT_EQ(stat_path(g2 + "/usr/bin/tool").st_nlink, 3u);  // pool, g1, g2
    EXPECT_EQ(manifest(g2), m2);
}

// unify grows its fd table before it starts a thread (store/fd_limit.h): a table shared by
// threads grows only after an RCU grace period, which made a `who` of 1,000 sharers, its
// guest roots open on two threads, take 50 ms instead of 19. A writer waiting for the lock
// has not started any.
TEST(Cli, AWriterWaitingForTheLockHasItsFdTableGrownAlready) {
    TempDir dir;
    std::string pool = dir / "pool", g1 = dir / "g1";
    make_guest(g1, "own 1\n");
    ASSERT_EQ(unify_at(pool, {"init", "--protect", "none"}).status, 0);
    struct rlimit rl;
    ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &rl), 0);
    const long want = long(std::min<rlim_t>(rl.rlim_max, kReservedFds));
    int fd = open((pool + "/lock").c_str(), O_RDWR | O_CLOEXEC);
    ASSERT_GE(fd, 0) << strerror(errno);
    ASSERT_EQ(0, flock(fd, LOCK_EX | LOCK_NB)) << strerror(errno);
    long fd_size = -1;
    bool blocked = false;
    auto r = run_unify({"--pool", pool, "--wait", "import", "g1", g1}, {},
                       {.deadline_s = 20, .on_start = [&](pid_t pid) {
                            blocked = wait_until_blocked_in_flock(pid);
                            fd_size = fd_table_size(pid);
                            close(fd);
                        }});
    EXPECT_TRUE(succeeded(r));
    ASSERT_TRUE(blocked) << "the import never waited for the lock";
    EXPECT_GE(fd_size, want) << "the fd table of a unify waiting for the lock";
}

// ---------------------------------------------------------------------------------------
// UNIFY_POOL

TEST(Cli, UnifyPoolEnvChoosesThePoolWithoutPoolOption) {
    TempDir dir;
    std::string pool = dir / "envpool", other = dir / "other";
    auto r = run_unify({"init", "--protect", "none"}, {"UNIFY_POOL=" + pool});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_TRUE(exists(pool + "/pool.conf"));
    r = run_unify({"status"}, {"UNIFY_POOL=" + pool});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_TRUE(contains_squeezed(r.out, "pool " + pool + " (protection none)")) << r.out;

    // --pool wins over the environment.
    r = run_unify({"--pool", other, "status"}, {"UNIFY_POOL=" + pool});
    EXPECT_EQ(r.status, 1);
    EXPECT_TRUE(contains_squeezed(r.err, other)) << r.err;
    EXPECT_FALSE(exists(other));

    r = run_unify({"list"}, {"UNIFY_POOL=" + other});
    EXPECT_EQ(r.status, 1);
    EXPECT_TRUE(contains_squeezed(r.err, "no pool at " + other)) << r.err;
}

}  // namespace
}  // namespace unify::test
