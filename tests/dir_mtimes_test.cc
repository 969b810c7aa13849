// Directory times through the real binary: import, re-import, unshare and forget change the
// guests' files into links and back, but every directory's mtime stays as it was
// (linker/dir_times.h), so backup and integrity tools see no directory as changed.
#include "tests/sample_guests.h"
#include "tests/test_support.h"

namespace unify::test {
namespace {

// Every directory of a guest gets an old mtime, so a change by unify could not hide in the
// same second.
void age_directories(const std::string& root) {
    ASSERT_EQ(sh("find '" + root + "' -type d -exec touch -h -d @1600000000 {} +"), 0);
}

struct Nested : ThreeGuests {
    explicit Nested(const TempDir& dir) : ThreeGuests(dir) {
        for (const auto& g : {g1, g2, g3}) {
            file(g + "/usr/lib/libc.so", "libc\n" + std::string(3995, 'l'), 0755, 1);
            file(g + "/usr/share/doc/a/README", "readme\n", 0644, 2);
            file(g + "/usr/share/doc/b/README", "readme\n", 0644, 2);
            file(g + "/top", "a file in the root\n", 0644, 3);
        }
        file(g1 + "/usr/bin/tool", "tool\n", 0755, 4);
        file(g2 + "/usr/bin/tool", "tool\n", 0755, 4);
        for (const auto& g : {g1, g2, g3}) age_directories(g);
    }
};

TEST(DirMtimes, UnchangedByImportReimportUnshareAndForget) {
    TempDir dir;
    UNIFY_REQUIRE(need_immutable(dir.path()));
    Nested t(dir);
    const std::string m1 = manifest(t.g1, true), m2 = manifest(t.g2, true),
                      m3 = manifest(t.g3, true);
    ASSERT_NE(m1.find("./usr/share/doc/a mode=40755"), std::string::npos) << m1;
    ASSERT_NE(m1.find("mtime=1600000000000000000"), std::string::npos) << m1;

    // import: the second and third guest's files are renamed over in every directory.
    ASSERT_TRUE(t.init_and_import());
    ASSERT_EQ(stat_path(t.g3 + "/usr/share/doc/b/README").st_nlink, 7u);  // 6 paths + pool
    EXPECT_EQ(manifest(t.g1, true), m1);
    EXPECT_EQ(manifest(t.g2, true), m2);
    EXPECT_EQ(manifest(t.g3, true), m3);

    // re-import after the guest added a file (its own change of the directory stays).
    ThreeGuests::file(t.g2 + "/usr/bin/tool2", "tool\n", 0755, 4);
    ThreeGuests::file(t.g2 + "/usr/bin/tool3", "tool\n", 0755, 4);
    const std::string m2b = manifest(t.g2, true);
    ASSERT_EQ(t.unify({"import", "g2", t.g2}).status, 0);
    ASSERT_EQ(stat_path(t.g2 + "/usr/bin/tool3").st_nlink, 5u);
    EXPECT_EQ(manifest(t.g2, true), m2b);

    // unshare of one path, then of all the rest.
    ASSERT_EQ(t.unify({"unshare", "g3", "/usr/share/doc/a/README"}).status, 0);
    ASSERT_EQ(stat_path(t.g3 + "/usr/share/doc/a/README").st_nlink, 1u);
    EXPECT_EQ(manifest(t.g3, true), m3);
    ASSERT_EQ(t.unify({"unshare", "g3"}).status, 0);
    ASSERT_EQ(stat_path(t.g3 + "/top").st_nlink, 1u);
    EXPECT_EQ(manifest(t.g3, true), m3);

    // forget gives every file back.
    ASSERT_EQ(t.unify({"forget", "g2"}).status, 0);
    ASSERT_EQ(stat_path(t.g2 + "/usr/bin/tool").st_nlink, 1u);
    EXPECT_EQ(manifest(t.g2, true), m2b);
    EXPECT_EQ(manifest(t.g1, true), m1);
}

}  // namespace
// An unshare that stops halfway (here: one object's content no longer matches its record, so
// its copy fails) removes the copies it had made of the others; the directories they were
// made in get their times back all the same.
TEST(DirMtimes, UnchangedByAnUnshareThatStopsHalfway) {
    TempDir dir;
    UNIFY_REQUIRE(need_immutable(dir.path()));
    Nested t(dir);
    ASSERT_TRUE(t.init_and_import());
    const std::string m3 = manifest(t.g3, true);
    std::string obj = t.pool + "/objects/" + object_of(t.pool, t.g3 + "/usr/lib/libc.so");
    struct stat st = stat_path(obj);
    ASSERT_EQ(sh("chattr -i '" + obj + "' && printf X | dd of='" + obj +
                 "' bs=1 seek=1 conv=notrunc status=none"),
              0);
    set_mtime(obj, st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
    ASSERT_EQ(sh("chattr +i '" + obj + "'"), 0);
    for (const char* jobs : {"1", "2"}) {
        auto r = t.unify({"unshare", "g3", "-j", jobs});
        EXPECT_EQ(r.status, 1) << r.out << r.err;
        EXPECT_TRUE(contains(r.err, "does not match its recorded content")) << r.err;
        std::string now = manifest(t.g3, true);
        EXPECT_EQ(now.find(".unify-"), std::string::npos) << "a copy was left:\n" << now;
        // The damaged object's own bytes show in libc.so: only the directories are compared.
        auto dirs = [](const std::string& m) {
            std::string out;
            for (size_t at = 0, end; at < m.size(); at = end + 1) {
                end = m.find('\n', at);
                std::string line = m.substr(at, end - at);
                if (line.find("mode=40") != std::string::npos) out += line + "\n";
            }
            return out;
        };
        EXPECT_EQ(dirs(now), dirs(m3)) << "-j " << jobs;
    }
}

}  // namespace unify::test
