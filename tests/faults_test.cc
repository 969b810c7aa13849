// Faults on real filesystems (loop-mounted ext4 and XFS images made here): a full disk, the
// link limit, unreadable files, a full index map. Each must stop cleanly or be counted, lose
// nothing, and let a later run finish.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <set>

#include "tests/test_support.h"

namespace unify {
namespace {

using test::LoopFs;

bool has_temp_names(const std::string& dir) {
    return test::sh("find '" + dir + "' -name '.unify-*' | grep -q .") == 0;
}

// Pairs of hard links: each new object is then a copy, which needs free space.
void make_hardlinked_guest(const std::string& root, int pairs, size_t size) {
    for (int i = 0; i < pairs; ++i) {
        std::string a = root + "/usr/lib/a" + std::to_string(i);
        test::write_file(a, std::string(size, char('a' + i % 26)) + std::to_string(i));
        test::set_mtime(a, 1700000000, 3);
        ASSERT_EQ(link(a.c_str(), (root + "/usr/lib/b" + std::to_string(i)).c_str()), 0);
    }
}

void enospc_mid_import(const std::string& type, size_t megabytes) {
    LoopFs fs(type, megabytes);
    UNIFY_REQUIRE(fs.reason());
    UNIFY_REQUIRE(test::need_immutable(fs.path()));
    std::string pool = fs / "pool", g1 = fs / "g1";
    ASSERT_EQ(test::run_unify({"--pool", pool, "init"}).status, 0);
    // Copies free the original's blocks once its last name is replaced, so small files
    // recycle the same space; an 8 MB pair cannot fit in what is left.
    make_hardlinked_guest(g1, 40, 256 * 1024);
    test::write_file(g1 + "/usr/lib/big", std::string(8 << 20, 'B'));
    test::set_mtime(g1 + "/usr/lib/big", 1700000000, 3);
    ASSERT_EQ(link((g1 + "/usr/lib/big").c_str(), (g1 + "/usr/lib/big2").c_str()), 0);
    // Leave about 3 MB free, so the copies run out of space partway.
    ASSERT_EQ(test::sh("df -B1 --output=avail '" + fs.path() + "' | tail -1 > '" + fs / "avail'"),
              0);
    long long avail = std::stoll(test::read_file(fs / "avail"));
    ASSERT_EQ(
        test::sh("fallocate -l " + std::to_string(avail - 3 * 1024 * 1024) + " '" + fs / "filler'"),
        0);
    std::string before = test::manifest(g1);
    auto r = test::run_unify({"--pool", pool, "import", "g1", g1});
    EXPECT_EQ(r.status, 1) << r.out << r.err;
    EXPECT_NE(r.err.find("ENOSPC"), std::string::npos) << r.err;
    EXPECT_EQ(test::manifest(g1), before) << "a guest path changed on ENOSPC";
    EXPECT_FALSE(has_temp_names(g1));
    EXPECT_EQ(test::objects_not_matching_their_id(pool), std::vector<std::string>{});
    // Space freed, the same command finishes.
    ASSERT_EQ(unlink((fs / "filler").c_str()), 0);
    r = test::run_unify({"--pool", pool, "import", "g1", g1});
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(test::manifest(g1), before);
    EXPECT_EQ(test::stat_path(g1 + "/usr/lib/big").st_ino,
              test::stat_path(g1 + "/usr/lib/big2").st_ino);
    EXPECT_EQ(test::stat_path(g1 + "/usr/lib/big").st_nlink, 3u);
    for (int i = 0; i < 40; ++i) {
        struct stat a = test::stat_path(g1 + "/usr/lib/a" + std::to_string(i));
        EXPECT_EQ(a.st_ino, test::stat_path(g1 + "/usr/lib/b" + std::to_string(i)).st_ino);
        EXPECT_EQ(a.st_nlink, 3u) << "a, b and the pool";
    }
    EXPECT_EQ(test::objects_not_matching_their_id(pool), std::vector<std::string>{});
}

TEST(Faults, EnospcMidImportOnExt4) {
    enospc_mid_import("ext4", 64);
}
TEST(Faults, EnospcMidImportOnXfs) {
    enospc_mid_import("xfs", 320);
}

TEST(Faults, EmlinkMakesAnOverflowReplica) {
    // ext4 allows 65,000 links per inode; 65,010 identical files need a second inode.
    LoopFs fs("ext4", 160, "-N 90000");
    UNIFY_REQUIRE(fs.reason());
    UNIFY_REQUIRE(test::need_immutable(fs.path()));
    std::string pool = fs / "pool", g1 = fs / "g1";
    ASSERT_EQ(test::run_unify({"--pool", pool, "init"}).status, 0);
    constexpr size_t kFiles = 65010;
    for (size_t d = 0; d < 7; ++d)  // 7 directories of 9,287 files
        ASSERT_TRUE(test::write_many(g1 + "/usr/share/d" + std::to_string(d), "f",
                                     kFiles / 7 + (d < kFiles % 7), "the same bytes everywhere\n"));
    auto r = test::run_unify({"--pool", pool, "import", "g1", g1});
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_NE(r.err.find("link limit"), std::string::npos) << r.err;
    EXPECT_NE(r.out.find("newly linked      65,010"), std::string::npos) << r.out;
    // Two inodes with the same id, and every guest file is one of them.
    auto objects = test::objects_by_inode(pool);
    ASSERT_EQ(objects.size(), 2u);
    std::set<std::string> names;
    nlink_t links = 0;
    for (const auto& [ino, name] : objects) {
        names.insert(name.substr(0, 64));
        for (const auto& e : std::filesystem::recursive_directory_iterator(pool + "/objects"))
            if (e.is_regular_file() && test::stat_path(e.path()).st_ino == ino)
                links += test::stat_path(e.path()).st_nlink - 1;
    }
    EXPECT_EQ(names.size(), 1u) << "a replica carries the same id";
    EXPECT_EQ(links, kFiles) << "every guest file is a link to the object or its replica";
    EXPECT_EQ(test::sh("find '" + g1 + "' -type f -links 1 | grep -q ."), 1)
        << "a file was left unlinked";
    EXPECT_EQ(test::objects_not_matching_their_id(pool), std::vector<std::string>{});
    // Importing again finds all of them linked.
    r = test::run_unify({"--pool", pool, "import", "g1", g1});
    EXPECT_NE(r.out.find("already linked    65,010"), std::string::npos) << r.out;
    // `who` of one name: its 7 namesakes, one per directory, are not the whole answer, and
    // the link counts of both replicas say so (query/who.cc).
    r = test::run_unify({"--pool", pool, "who", "g1:/usr/share/d0/f0"});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_NE(r.out.find("shared by 65010 paths"), std::string::npos) << r.out.substr(0, 300);
}

TEST(Faults, UnreadableFileIsSkippedAndCounted) {
    test::TempDir dir;
    UNIFY_REQUIRE(test::need_immutable(dir.path()));
    UNIFY_REQUIRE(test::need_tool("setpriv"));
    std::string pool = dir / "pool";
    ASSERT_EQ(test::run_unify({"--pool", pool, "init"}).status, 0);
    for (const char* g : {"g1", "g2"}) {
        for (int i = 0; i < 5; ++i) {
            test::write_file(dir / (std::string(g) + "/usr/lib/ok" + std::to_string(i)),
                             "fine " + std::to_string(i));
            test::set_mtime(dir / (std::string(g) + "/usr/lib/ok" + std::to_string(i)), 1700000000,
                            1);
        }
    }
    // A real EACCES: mode 000, owned by someone else, read by root without CAP_DAC_*.
    std::string locked = dir / "g1/usr/lib/locked";
    test::write_file(locked, "nobody may read this", 0);
    ASSERT_EQ(chown(locked.c_str(), 1234, 1234), 0);
    ASSERT_EQ(chmod(locked.c_str(), 0), 0);
    struct stat locked_before = test::stat_path(locked);
    ASSERT_EQ(test::run_unify({"--pool", pool, "import", "g2", dir / "g2"}).status, 0);
    int rc = test::sh(
        "setpriv --inh-caps=-dac_override,-dac_read_search "
        "--bounding-set=-dac_override,-dac_read_search '" UNIFY_BINARY "' --pool '" +
        pool + "' import g1 '" + dir / "g1" + "' > '" + dir / "out" + "' 2> '" + dir / "err" + "'");
    std::string out = test::read_file(dir / "out"), err = test::read_file(dir / "err");
    ASSERT_EQ(rc, 0) << out << err;
    EXPECT_NE(out.find("1  unreadable"), std::string::npos) << out;
    EXPECT_NE(err.find("locked"), std::string::npos) << err;
    EXPECT_NE(err.find("EACCES"), std::string::npos) << err;
    EXPECT_EQ(test::stat_path(locked).st_ino, locked_before.st_ino);
    EXPECT_EQ(test::stat_path(locked).st_nlink, 1u);
    for (int i = 0; i < 5; ++i)  // the rest went on
        EXPECT_EQ(test::stat_path(dir / ("g1/usr/lib/ok" + std::to_string(i))).st_ino,
                  test::stat_path(dir / ("g2/usr/lib/ok" + std::to_string(i))).st_ino);

    // EIO while reading one file (forced: no disk here fails on demand).
    test::write_file(dir / "g1/usr/lib/victim", "bad sector");
    std::string cmd = "UNIFY_FAULT_ERRNO=read:EIO:victim '" UNIFY_FAULTS_BINARY "' --pool '" +
                      pool + "' import g1 '" + dir / "g1" + "' > '" + dir / "out" + "' 2> '" +
                      dir / "err" + "'";
    ASSERT_EQ(test::sh(cmd), 0) << test::read_file(dir / "err");
    out = test::read_file(dir / "out");
    err = test::read_file(dir / "err");
    EXPECT_NE(out.find("unreadable"), std::string::npos) << out;
    EXPECT_NE(err.find("victim"), std::string::npos) << err;
    EXPECT_NE(err.find("EIO"), std::string::npos) << err;
    EXPECT_EQ(test::stat_path(dir / "g1/usr/lib/victim").st_nlink, 1u);
}

TEST(Faults, FullIndexMapIsAClearErrorAndLosesNothing) {
    test::TempDir dir;
    UNIFY_REQUIRE(test::need_immutable(dir.path()));
    std::string pool = dir / "pool", g1 = dir / "g1";
    ASSERT_EQ(test::run_unify({"--pool", pool, "init"}).status, 0);
    for (int d = 0; d < 4; ++d)
        ASSERT_TRUE(test::write_many(g1 + "/usr/share/many/d" + std::to_string(d),
                                     "a-rather-long-file-name-", 3000,
                                     "content " + std::to_string(d)));
    std::string before = test::manifest(g1);
    auto r =
        test::run_unify({"--pool", pool, "import", "g1", g1}, {"UNIFY_INDEX_MAP_SIZE=1048576"});
    EXPECT_EQ(r.status, 1) << r.out;
    EXPECT_NE(r.err.find("MDB_MAP_FULL"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("UNIFY_INDEX_MAP_SIZE"), std::string::npos) << r.err;
    EXPECT_EQ(test::manifest(g1), before);
    EXPECT_FALSE(has_temp_names(g1));
    // With the default map the same command finishes.
    r = test::run_unify({"--pool", pool, "import", "g1", g1});
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(test::manifest(g1), before);
    EXPECT_EQ(test::sh("find '" + g1 + "' -type f -links 1 | grep -q ."), 1)
        << "a file was left unlinked";
}

}  // namespace
}  // namespace unify
