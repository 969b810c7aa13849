// unify forget through the real binary: the guest gets its files back private and unchanged,
// its record goes, gc then reclaims exactly the objects only it used, and the other guests
// keep theirs. --keep-links only unregisters; --dry-run changes nothing.
#include <sys/stat.h>

#include <filesystem>
#include <set>

#include "tests/sample_guests.h"
#include "tests/test_support.h"

namespace unify::test {
namespace {

namespace fs = std::filesystem;

// Three guests below `dir`:
//   /usr/lib/libc.so      g1 = g2 = g3
//   /usr/bin/tool         g1 = g2
//   /usr/bin/mine         only g1 (one object only g1 uses)
//   /usr/bin/twin{1,2}    twice in g1 with equal content and metadata (one object, two links,
//                         only g1 uses it)
//   /usr/bin/theirs       only g2
//   /etc/conf             everywhere, excluded by the default rules
struct Trio : ThreeGuests {
    explicit Trio(const TempDir& dir) : ThreeGuests(dir) {
        for (const auto& g : {g1, g2, g3}) {
            file(g + "/usr/lib/libc.so", "libc\n" + std::string(3995, 'l'));
            file(g + "/etc/conf", "conf\n");
        }
        for (const auto& g : {g1, g2}) file(g + "/usr/bin/tool", "tool\n" + std::string(95, 't'));
        file(g1 + "/usr/bin/mine", "mine\n" + std::string(195, 'm'));
        file(g1 + "/usr/bin/twin1", "twin\n" + std::string(295, 'w'));
        file(g1 + "/usr/bin/twin2", "twin\n" + std::string(295, 'w'));
        file(g2 + "/usr/bin/theirs", "theirs\n");
    }
    static void file(const std::string& path, const std::string& content) {
        ThreeGuests::file(path, content, 0755, 9);
    }
};

// Every regular file below root.
std::vector<std::string> files(const std::string& root) {
    std::vector<std::string> out;
    for (const auto& e : fs::recursive_directory_iterator(root))
        if (e.is_regular_file() && !e.is_symlink()) out.push_back(e.path().string());
    return out;
}

TEST(Forget, GuestGetsItsFilesBackAndGcReclaimsExactlyWhatOnlyItUsed) {
    TempDir dir;
    UNIFY_REQUIRE(need_immutable(dir.path()));
    Trio t(dir);
    const std::string before_g1 = manifest(t.g1);
    ASSERT_TRUE(t.init_and_import());
    const std::string before_g2 = manifest(t.g2), before_g3 = manifest(t.g3);

    const std::string libc = object_of(t.pool, t.g1 + "/usr/lib/libc.so"),
                      tool = object_of(t.pool, t.g1 + "/usr/bin/tool"),
                      mine = object_of(t.pool, t.g1 + "/usr/bin/mine"),
                      twin = object_of(t.pool, t.g1 + "/usr/bin/twin1"),
                      theirs = object_of(t.pool, t.g2 + "/usr/bin/theirs");
    for (const auto& o : {libc, tool, mine, twin, theirs}) ASSERT_NE(o, "");
    ASSERT_EQ(object_of(t.pool, t.g1 + "/usr/bin/twin2"), twin);
    const std::set<std::string> all = objects(t.pool);
    ASSERT_EQ(all.size(), 5u);

    auto r = t.unify({"forget", "g1"});
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_TRUE(contains_squeezed(r.out, "files made private 5")) << r.out;
    EXPECT_TRUE(contains_squeezed(r.out, "guest unregistered")) << r.out;

    // g1's files: what they were before the import, private again.
    EXPECT_EQ(manifest(t.g1), before_g1);
    for (const auto& f : files(t.g1)) {
        EXPECT_EQ(stat_path(f).st_nlink, 1u) << f;
        EXPECT_FALSE(is_immutable(f)) << f;
    }
    // The others: unchanged and still linked.
    EXPECT_EQ(manifest(t.g2), before_g2);
    EXPECT_EQ(manifest(t.g3), before_g3);
    EXPECT_EQ(object_of(t.pool, t.g2 + "/usr/lib/libc.so"), libc);
    EXPECT_EQ(object_of(t.pool, t.g3 + "/usr/lib/libc.so"), libc);
    EXPECT_EQ(object_of(t.pool, t.g2 + "/usr/bin/tool"), tool);

    r = t.unify({"list"});
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_FALSE(contains_squeezed(r.out, "g1 ")) << r.out;
    EXPECT_TRUE(contains_squeezed(r.out, "g2 ")) << r.out;
    r = t.unify({"who", "g2:/usr/lib/libc.so"});
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_FALSE(contains_squeezed(r.out, "g1 ")) << r.out;
    EXPECT_TRUE(contains_squeezed(r.out, "g3  /usr/lib/libc.so")) << r.out;

    // gc removes exactly the objects only g1 used.
    r = t.unify({"gc"});
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_TRUE(contains_squeezed(r.out, "objects removed 2")) << r.out;
    std::set<std::string> left = all;
    left.erase(mine);
    left.erase(twin);
    EXPECT_EQ(objects(t.pool), left);
    EXPECT_EQ(manifest(t.g1), before_g1);

    // The name is free again: g1 can be imported anew.
    r = t.unify({"import", "g1", t.g1});
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(object_of(t.pool, t.g1 + "/usr/lib/libc.so"), libc);
}

TEST(Forget, UnknownGuestFailsAndChangesNothing) {
    TempDir dir;
    UNIFY_REQUIRE(need_immutable(dir.path()));
    Trio t(dir);
    ASSERT_TRUE(t.init_and_import());
    auto before = objects(t.pool);
    auto r = t.unify({"forget", "nobody"});
    EXPECT_EQ(r.status, 1);
    EXPECT_TRUE(contains_squeezed(r.err, "no guest named 'nobody'")) << r.err;
    EXPECT_EQ(r.out, "");
    EXPECT_EQ(objects(t.pool), before);
    r = t.unify({"forget"});
    EXPECT_EQ(r.status, 2);  // NAME is required
}

TEST(Forget, DryRunChangesNothing) {
    TempDir dir;
    UNIFY_REQUIRE(need_immutable(dir.path()));
    Trio t(dir);
    ASSERT_TRUE(t.init_and_import());
    const std::string g1 = manifest(t.g1);
    auto r = t.unify({"forget", "--dry-run", "g1"});
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_TRUE(contains_squeezed(r.out, "dry run")) << r.out;
    EXPECT_TRUE(contains_squeezed(r.out, "files made private 5")) << r.out;
    EXPECT_EQ(manifest(t.g1), g1);
    EXPECT_GT(stat_path(t.g1 + "/usr/bin/mine").st_nlink, 1u);
    EXPECT_TRUE(contains_squeezed(t.unify({"list"}).out, "g1 "));
}

TEST(Forget, KeepLinksOnlyUnregistersAndWarns) {
    TempDir dir;
    UNIFY_REQUIRE(need_immutable(dir.path()));
    Trio t(dir);
    ASSERT_TRUE(t.init_and_import());
    const std::string mine = object_of(t.pool, t.g1 + "/usr/bin/mine");
    auto before = objects(t.pool);
    auto r = t.unify({"forget", "--keep-links", "g1"});
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_TRUE(contains_squeezed(r.out, "link records dropped 5")) << r.out;
    EXPECT_TRUE(contains_squeezed(r.err, "warning")) << r.err;
    EXPECT_TRUE(contains_squeezed(r.err, "gc reclaims those objects only after the files are gone"))
        << r.err;
    EXPECT_FALSE(contains_squeezed(t.unify({"list"}).out, "g1 "));
    // Still linked, so gc keeps every object.
    EXPECT_EQ(object_of(t.pool, t.g1 + "/usr/bin/mine"), mine);
    r = t.unify({"gc"});
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(objects(t.pool), before);
    // Once the root is gone, gc reclaims what only g1 used.
    remove_tree(t.g1);
    r = t.unify({"gc"});
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_TRUE(contains_squeezed(r.out, "objects removed 2")) << r.out;
}

TEST(Forget, GoneRootNeedsKeepLinks) {
    TempDir dir;
    UNIFY_REQUIRE(need_immutable(dir.path()));
    Trio t(dir);
    ASSERT_TRUE(t.init_and_import());
    // The root of g3 only shares libc, so lifting its flags here affects only libc's object,
    // which the test does not check afterwards.
    remove_tree(t.g3);
    auto r = t.unify({"forget", "g3"});
    EXPECT_EQ(r.status, 1);
    EXPECT_TRUE(contains_squeezed(r.err, "--keep-links")) << r.err;
    r = t.unify({"forget", "--keep-links", "g3"});
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_FALSE(contains_squeezed(t.unify({"list"}).out, "g3 "));
}

}  // namespace
}  // namespace unify::test
