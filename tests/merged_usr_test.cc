// Guest paths are resolved inside the guest through its own symlinks (merged /usr:
// /lib -> usr/lib), by who and unshare as by import --explain, so `dpkg -L` output works as
// it is; a symlink that leads out of the guest root is refused, never followed.
#include <unistd.h>

#include "tests/sample_guests.h"
#include "tests/test_support.h"

namespace unify::test {
namespace {

// g1 and g2 are merged-/usr guests sharing /usr/lib/systemd/system/app.service; g3 has its
// /lib pointing out of its root.
struct MergedUsr : ThreeGuests {
    explicit MergedUsr(const TempDir& dir) : ThreeGuests(dir) {
        for (const auto& g : {g1, g2, g3}) {
            file(g + "/usr/lib/systemd/system/app.service", "[Service]\n" + std::string(90, 's'),
                 0644, 1);
            file(g + "/usr/bin/app", "app\n" + std::string(200, 'a'), 0755, 2);
        }
        for (const auto& g : {g1, g2})
            EXPECT_EQ(symlink("usr/lib", (g + "/lib").c_str()), 0) << strerror(errno);
    }
};

TEST(MergedUsr, WhoAndUnshareReachUsrLibThroughLib) {
    TempDir dir;
    UNIFY_REQUIRE(need_immutable(dir.path()));
    MergedUsr s(dir);
    ASSERT_TRUE(s.init_and_import());
    const std::string m2 = manifest(s.g2);

    // who, by NAME:/path and by host path, through the guest's /lib symlink.
    for (const auto& target : {std::string("g1:/lib/systemd/system/app.service"),
                               s.g1 + "/lib/systemd/system/app.service"}) {
        auto r = s.unify({"who", target});
        EXPECT_EQ(r.status, 0) << target << ": " << r.err;
        EXPECT_TRUE(contains(r.out, "g1  /usr/lib/systemd/system/app.service")) << r.out;
        EXPECT_TRUE(contains(r.out, "g2  /usr/lib/systemd/system/app.service")) << r.out;
    }

    // unshare with the path as dpkg -L prints it.
    auto r = s.unify({"unshare", "g1", "/lib/systemd/system/app.service"});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_TRUE(contains_squeezed(r.out, "files made private 1\n")) << r.out << r.err;
    EXPECT_FALSE(contains(r.err, "not unified")) << r.err;
    EXPECT_EQ(stat_path(s.g1 + "/usr/lib/systemd/system/app.service").st_nlink, 1u);
    EXPECT_FALSE(is_immutable(s.g1 + "/usr/lib/systemd/system/app.service"));
    EXPECT_GT(stat_path(s.g1 + "/usr/bin/app").st_nlink, 1u);  // the rest stays linked
    EXPECT_EQ(manifest(s.g2), m2);

    // Now really private: still says so, through /lib too.
    r = s.unify({"who", "g1:/lib/systemd/system/app.service"});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_TRUE(contains(r.out, "is not unified")) << r.out;
    r = s.unify({"unshare", "g1", "/lib/systemd/system/app.service"});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_TRUE(contains(r.err, "g1:/usr/lib/systemd/system/app.service is not unified")) << r.err;
}

TEST(MergedUsr, LibPointingOutOfTheRootIsRefused) {
    TempDir dir;
    UNIFY_REQUIRE(need_immutable(dir.path()));
    MergedUsr s(dir);
    // Outside g3's root, a file the pool links (g1's own app.service) and a directory of the
    // same shape: /lib in g3 climbs out to g1/usr/lib.
    ASSERT_EQ(symlink("../g1/usr/lib", (s.g3 + "/lib").c_str()), 0);
    ASSERT_TRUE(s.init_and_import());
    const std::string m1 = manifest(s.g1), m3 = manifest(s.g3);

    auto r = s.unify({"who", "g3:/lib/systemd/system/app.service"});
    EXPECT_EQ(r.status, 1) << r.out;
    EXPECT_TRUE(contains(r.err, "leads out of the guest root; not followed")) << r.err;
    EXPECT_FALSE(contains(r.out, "g1  ")) << r.out;

    r = s.unify({"unshare", "g3", "/lib/systemd/system/app.service"});
    EXPECT_EQ(r.status, 1) << r.out;
    EXPECT_TRUE(contains(r.err, "leads out of the guest root; not followed")) << r.err;
    EXPECT_EQ(manifest(s.g1), m1);
    EXPECT_EQ(manifest(s.g3), m3);
    EXPECT_GT(stat_path(s.g1 + "/usr/lib/systemd/system/app.service").st_nlink, 1u);

    // An absolute target is the guest's own /: g3:/lib -> /elsewhere is g3's /elsewhere,
    // which does not exist in g3 (the host's would be irrelevant).
    ASSERT_EQ(unlink((s.g3 + "/lib").c_str()), 0);
    ASSERT_EQ(symlink((s.g1 + "/usr/lib").c_str(), (s.g3 + "/lib").c_str()), 0);
    r = s.unify({"who", "g3:/lib/systemd/system/app.service"});
    EXPECT_EQ(r.status, 1) << r.out;
    EXPECT_TRUE(contains(r.err, "does not exist in the guest")) << r.err;
    r = s.unify({"unshare", "g3", "/lib/systemd/system/app.service"});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_TRUE(contains(r.err, "does not exist in the guest; nothing to do")) << r.err;
    EXPECT_EQ(manifest(s.g1), m1);
}

}  // namespace
}  // namespace unify::test
