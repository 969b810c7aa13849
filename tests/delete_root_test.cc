// unify forget NAME --delete-root through the real binary: the guest's whole root goes,
// nothing is copied (its object links are unlinked inside their protection windows), the
// other guests and the pool stay intact (verify --full), gc then reclaims exactly what only
// it used; --dry-run changes nothing; the guest's own immutable flag stops it, naming the
// file, with the record kept.
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <sstream>
#include <string>

#include "tests/sample_guests.h"
#include "tests/test_support.h"

namespace unify::test {
namespace {

namespace fs = std::filesystem;

// g1: 1,000 files (600 shared with g2; 397 its own with 100 distinct contents; a hard-link
// pair; /etc/conf, never linked), directories, a symlink and a fifo.
// g2: the 600 shared ones and one of its own.
struct Thousand : ThreeGuests {
    explicit Thousand(const TempDir& dir) : ThreeGuests(dir) {
        for (int i = 0; i < 600; ++i) {
            std::string rel = "/usr/lib/d" + std::to_string(i % 20) + "/f" + std::to_string(i);
            for (const auto& g : {g1, g2})
                file(g + rel, "shared " + std::to_string(i) + "\n", 0644, 1);
        }
        for (int i = 0; i < 397; ++i)
            file(g1 + "/usr/share/mine/m" + std::to_string(i),
                 "mine " + std::to_string(i % 100) + "\n", 0644, 2);
        file(g1 + "/etc/conf", "conf\n", 0644, 3);
        file(g1 + "/usr/bin/pair", "pair\n", 0755, 4);
        EXPECT_EQ(link((g1 + "/usr/bin/pair").c_str(), (g1 + "/usr/bin/pair2").c_str()), 0);
        EXPECT_EQ(symlink("usr/lib", (g1 + "/lib").c_str()), 0);
        EXPECT_EQ(mkfifo((g1 + "/usr/share/fifo").c_str(), 0600), 0);
        file(g2 + "/usr/bin/theirs", "theirs\n", 0755, 5);
        file(g3 + "/usr/bin/other", "other\n", 0755, 6);
    }
};

// Is `name` in the NAME column of `unify list`? Not a substring search: the roots printed
// beside it hold the test directory's random name, which may contain "g1".
bool listed(const std::string& list_out, const std::string& name) {
    std::istringstream in(list_out);
    for (std::string line; std::getline(in, line);)
        if (line.compare(0, name.size() + 1, name + " ") == 0) return true;
    return false;
}

size_t count_files(const std::string& root) {
    size_t n = 0;
    for (const auto& e : fs::recursive_directory_iterator(root))
        if (e.is_regular_file() && !e.is_symlink()) ++n;
    return n;
}

// The three guests, each with the same /usr/lib/libc.so, made and imported.
bool import_sharing_libc(const ThreeGuests& t) {
    for (const auto& g : {t.g1, t.g2, t.g3})
        ThreeGuests::file(g + "/usr/lib/libc.so", "libc\n", 0644, 1);
    return t.init_and_import();
}

TEST(DeleteRoot, ThousandFileGuestGoesNothingCopiedOthersAndPoolClean) {
    TempDir dir;
    UNIFY_REQUIRE(need_immutable(dir.path()));
    Thousand t(dir);
    ASSERT_EQ(count_files(t.g1), 1000u);
    ASSERT_TRUE(t.init_and_import());
    const std::string m2 = manifest(t.g2), m3 = manifest(t.g3);
    const auto objects_before = objects(t.pool);

    auto r = t.unify({"forget", "g1", "--delete-root", "--dry-run"});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_TRUE(contains(r.out,
                         "root deleted (dry run: would be): 999 linked files (nothing "
                         "copied), 1 other files, 27 directories, 2 symlinks"))
        << r.out;
    EXPECT_EQ(count_files(t.g1), 1000u);
    EXPECT_TRUE(listed(t.unify({"list"}).out, "g1"));

    r = t.unify({"forget", "g1", "--delete-root"});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_TRUE(contains(r.out,
                         "root deleted: 999 linked files (nothing copied), 1 other "
                         "files"))
        << r.out;
    EXPECT_FALSE(fs::exists(fs::symlink_status(t.g1))) << "the root is still there";
    EXPECT_FALSE(listed(t.unify({"list"}).out, "g1")) << "the guest is still registered";
    // Nothing copied: the pool holds exactly the objects it held; no object lost its flag.
    EXPECT_EQ(objects(t.pool), objects_before);
    EXPECT_EQ(manifest(t.g2), m2);
    EXPECT_EQ(manifest(t.g3), m3);
    r = t.unify({"verify", "--full"});
    EXPECT_EQ(r.status, 0) << r.out << r.err;

    // gc reclaims the objects only g1 used (its 100 distinct "mine" contents and the pair),
    // nothing of g2's.
    r = t.unify({"gc"});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_TRUE(contains_squeezed(r.out, "objects removed 101\n")) << r.out;
    EXPECT_EQ(manifest(t.g2), m2);
    r = t.unify({"verify", "--full"});
    EXPECT_EQ(r.status, 0) << r.out << r.err;
}

// The dry run counts each link record it would drop once: it said twice as many as the real
// run dropped (--delete-root's own count, and the records still there after a run that
// dropped nothing).
TEST(DeleteRoot, DryRunCountsTheRecordsTheRunDrops) {
    TempDir dir;
    UNIFY_REQUIRE(need_immutable(dir.path()));
    ThreeGuests t(dir);
    ASSERT_TRUE(import_sharing_libc(t));
    for (const char* f : {"/usr/bin/a", "/usr/bin/b"})
        ThreeGuests::file(t.g1 + f, std::string("own ") + f + "\n", 0644, 2);
    ASSERT_EQ(t.unify({"import", "g1", t.g1}).status, 0);
    auto dry = t.unify({"--json", "forget", "g1", "--delete-root", "--dry-run"});
    ASSERT_EQ(dry.status, 0) << dry.err;
    EXPECT_TRUE(contains(dry.out, "\"records_dropped\": 3,")) << dry.out;
    auto real = t.unify({"--json", "forget", "g1", "--delete-root"});
    ASSERT_EQ(real.status, 0) << real.err;
    EXPECT_TRUE(contains(real.out, "\"records_dropped\": 3,")) << real.out;
}

TEST(DeleteRoot, GuestsOwnImmutableFlagStopsItNamingTheFileAndKeepsTheRecord) {
    TempDir dir;
    UNIFY_REQUIRE(need_immutable(dir.path()));
    Thousand t(dir);
    ASSERT_TRUE(t.init_and_import());
    ASSERT_EQ(sh("chattr +i '" + t.g1 + "/etc/conf'"), 0);

    auto r = t.unify({"forget", "g1", "--delete-root"});
    EXPECT_EQ(r.status, 1) << r.out;
    EXPECT_TRUE(contains(r.err, t.g1 + "/etc/conf: flagged immutable or append-only by the "
                                       "guest"))
        << r.err;
    EXPECT_TRUE(listed(t.unify({"list"}).out, "g1")) << "the record went";
    EXPECT_TRUE(fs::exists(t.g1 + "/etc/conf"));
    EXPECT_FALSE(fs::exists(t.g1 + "/usr/lib")) << "the rest was not deleted";

    ASSERT_EQ(sh("chattr -i '" + t.g1 + "/etc/conf'"), 0);
    r = t.unify({"forget", "g1", "--delete-root"});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_FALSE(fs::exists(fs::symlink_status(t.g1)));
    EXPECT_FALSE(listed(t.unify({"list"}).out, "g1"));
    r = t.unify({"verify", "--full"});
    EXPECT_EQ(r.status, 0) << r.out << r.err;
}

TEST(DeleteRoot, KeepLinksAndDeleteRootExcludeEachOther) {
    TempDir dir;
    ThreeGuests t(dir);
    auto r = t.unify({"forget", "g1", "--delete-root", "--keep-links"});
    EXPECT_EQ(r.status, 2) << r.out << r.err;
}

// A guest's directory moved away and a symlink put at its registered path, to the directory
// that holds the pool (a guest's admin, or a careless mv): forget --delete-root must delete
// nothing through it, nor must unshare copy into whatever it points to; each says why.
TEST(DeleteRoot, ARootThatBecameASymlinkIsNeverFollowed) {
    TempDir dir;
    UNIFY_REQUIRE(need_immutable(dir.path()));
    ThreeGuests t(dir);
    ThreeGuests::file(t.g1 + "/usr/bin/tool", "tool\n", 0755, 1);
    ThreeGuests::file(t.g2 + "/usr/bin/tool", "tool\n", 0755, 1);
    ThreeGuests::file(t.g3 + "/usr/bin/other", "other\n", 0755, 3);
    ASSERT_TRUE(t.init_and_import());
    ThreeGuests::file(dir / "unrelated-host-file", "host\n", 0644, 2);
    const std::string m2 = manifest(t.g2), m3 = manifest(t.g3);
    const auto objects_before = objects(t.pool);
    ASSERT_EQ(rename(t.g1.c_str(), (dir / "g1.moved").c_str()), 0);
    for (const auto& target : {dir.path(), t.g3}) {
        SCOPED_TRACE("g1 -> " + target);
        ASSERT_EQ(symlink(target.c_str(), t.g1.c_str()), 0);
        for (const std::vector<std::string>& cmd :
             {std::vector<std::string>{"forget", "g1", "--delete-root", "--dry-run"},
              {"forget", "g1", "--delete-root"},
              {"unshare", "g1"}}) {
            auto r = t.unify(cmd);
            EXPECT_EQ(r.status, 1) << cmd[0] << "\n" << r.out << r.err;
            EXPECT_TRUE(contains(r.err, "a symlink stands in its path now")) << r.err;
        }
        EXPECT_EQ(read_file(dir / "unrelated-host-file"), "host\n");
        EXPECT_EQ(manifest(t.g2), m2);
        EXPECT_EQ(manifest(t.g3), m3);
        EXPECT_EQ(objects(t.pool), objects_before);
        EXPECT_TRUE(listed(t.unify({"list"}).out, "g1"));
        ASSERT_EQ(unlink(t.g1.c_str()), 0);
    }
    auto r = t.unify({"verify", "--full"});
    EXPECT_EQ(r.status, 0) << r.out << r.err;
    // Put back, the guest is deleted as asked.
    ASSERT_EQ(rename((dir / "g1.moved").c_str(), t.g1.c_str()), 0);
    r = t.unify({"forget", "g1", "--delete-root"});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_NE(access(t.g1.c_str(), F_OK), 0);
    EXPECT_EQ(manifest(t.g2), m2);
}

// Another guest's tree bind-mounted inside a guest's root: its object links are not this
// guest's, so forget's look for unrecorded links does not cross into it (store/tree_walk
// opens each directory with RESOLVE_NO_XDEV, and forget skips mount roots besides); the
// first walker did, counted them as planted by this guest, and could not unshare them.
TEST(DeleteRoot, ForgetDoesNotTakeAMountedTreeForPlantedLinks) {
    TempDir dir;
    UNIFY_REQUIRE(need_immutable(dir.path()));
    ThreeGuests t(dir);
    ASSERT_TRUE(import_sharing_libc(t));
    const std::string m2 = manifest(t.g2);
    {
        BindMount bind(t.g2 + "/usr", t.g1 + "/mnt/g2usr");
        UNIFY_REQUIRE(bind.error());
        auto r = t.unify({"--json", "forget", "g1"});
        EXPECT_EQ(r.status, 0) << r.err;
        EXPECT_FALSE(contains(r.err, "no record names")) << r.err;
        EXPECT_FALSE(contains(r.out, "unrecorded_links")) << r.out;
    }
    EXPECT_EQ(manifest(t.g2), m2);
    EXPECT_TRUE(is_immutable(t.g2 + "/usr/lib/libc.so"));
}

// Another real directory put at a registered root's path (the guest's moved away, another
// guest's root moved there): forget --delete-root must delete nothing of it. The record holds
// the root's device and inode from its last import; an import of the new one makes it the
// guest's.
TEST(DeleteRoot, ADirectoryMovedInAtTheRegisteredPathIsNotDeleted) {
    TempDir dir;
    UNIFY_REQUIRE(need_immutable(dir.path()));
    ThreeGuests t(dir);
    ThreeGuests::file(t.g2 + "/usr/bin/theirs", "theirs\n", 0755, 2);
    ASSERT_TRUE(import_sharing_libc(t));
    const std::string m2 = manifest(t.g2);
    ASSERT_EQ(rename(t.g1.c_str(), (dir / "g1.moved").c_str()), 0);
    ASSERT_EQ(rename(t.g2.c_str(), t.g1.c_str()), 0);
    for (const std::vector<std::string>& cmd :
         {std::vector<std::string>{"forget", "g1", "--delete-root", "--dry-run"},
          {"forget", "g1", "--delete-root"}}) {
        auto r = t.unify(cmd);
        EXPECT_EQ(r.status, 1) << r.out << r.err;
        EXPECT_TRUE(contains(r.err, "is not the directory guest g1 was last imported from"))
            << r.err;
    }
    EXPECT_EQ(manifest(t.g1), m2) << "g2's tree, moved to g1's path, was changed";
    ASSERT_EQ(rename(t.g1.c_str(), t.g2.c_str()), 0);
    ASSERT_EQ(rename((dir / "g1.moved").c_str(), t.g1.c_str()), 0);
    auto r = t.unify({"forget", "g1", "--delete-root"});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_NE(access(t.g1.c_str(), F_OK), 0);
    EXPECT_EQ(manifest(t.g2), m2);
}

// A guest can make its tree far deeper than any recursion or than RLIMIT_NOFILE allows
// (mkdirat and openat, one level at a time). forget's look for unrecorded links and forget
// --delete-root walk it all the same: no SIGSEGV, no EMFILE. A name of an object planted at
// the bottom is found, and the whole tree goes.
TEST(DeleteRoot, ATreeDeeperThanTheFdLimitIsWalkedAndDeleted) {
    TempDir dir;
    UNIFY_REQUIRE(need_immutable(dir.path()));
    ThreeGuests t(dir);
    ASSERT_TRUE(import_sharing_libc(t));
    struct rlimit rl {};
    ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &rl), 0);
    const size_t depth = std::max<size_t>(30000, size_t(rl.rlim_max) + 1000);
    for (const auto& g : {t.g1, t.g2}) {
        int fd = open(g.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        ASSERT_GE(fd, 0);
        for (size_t k = 0; k < depth; ++k) {
            ASSERT_EQ(mkdirat(fd, "d", 0755), 0) << k;
            int sub = openat(fd, "d", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            ASSERT_GE(sub, 0) << k;
            close(fd);
            fd = sub;
        }
        // A second name of the object, as a guest adds one while a window has the flag off.
        std::string lib = g + "/usr/lib/libc.so";
        ASSERT_EQ(sh("chattr -i '" + lib + "'"), 0);
        ASSERT_EQ(linkat(AT_FDCWD, lib.c_str(), fd, "planted", 0), 0);
        ASSERT_EQ(sh("chattr +i '" + lib + "'"), 0);
        close(fd);
    }
    auto r = t.unify({"forget", "g1", "--dry-run"});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_TRUE(contains(r.err, "1 name(s) of pool objects that no record names")) << r.err;
    r = t.unify({"forget", "g1"});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(stat_path(t.g1 + "/usr/lib/libc.so").st_nlink, 1u);
    r = t.unify({"forget", "g2", "--delete-root"});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_NE(access(t.g2.c_str(), F_OK), 0) << "g2's root is still there";
    EXPECT_EQ(t.unify({"verify", "--full"}).status, 0);
    // What is left of g1 goes without unify (its files are plain and private now).
    EXPECT_EQ(sh("rm -rf '" + t.g1 + "'"), 0);
}

}  // namespace
}  // namespace unify::test
