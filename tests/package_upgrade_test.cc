// Acceptance of issue 13 with the real package tools: a fixture package in two versions,
// built with dpkg-deb / rpmbuild / makepkg, installed (v1) into three guests with the
// guest's own database (dpkg --root, rpm --root, pacman -r), then unified. In one guest the
// upgrade to v2 fails as it does in real life (the package manager replaces files by
// rename, refused on a protected object); `unify unshare g1 --package fixture` then lets the
// same upgrade (or removal) succeed with no error line, while g2, which shares the files, is
// byte-for-byte unchanged, and a re-import of g1 shares what is still equal again.
// dpkg runs its maintainer scripts with --force-script-chrootless (with DPKG_ROOT set): the
// fixture guests have no /bin/sh to chroot into. makepkg refuses to run as root, so it runs
// as nobody (setpriv).
#include <stdio.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <sstream>

#include "tests/package_fixture.h"
#include "tests/sample_guests.h"
#include "tests/test_support.h"

namespace unify::test {
namespace {

namespace fs = std::filesystem;

struct Guests : ThreeGuests {
    explicit Guests(const TempDir& dir) : ThreeGuests(dir), debs(dir / "pkgs") {}
    // init, then import g1, g2, g3.
    bool import_all() const {
        auto r = unify({"init", "--protect", "immutable"});
        EXPECT_EQ(r.status, 0) << r.err;
        for (const auto& [name, root] : {std::pair{"g1", g1}, {"g2", g2}, {"g3", g3}}) {
            r = unify({"import", name, root});
            EXPECT_EQ(r.status, 0) << name << ": " << r.err;
            if (r.status != 0) return false;
        }
        return true;
    }
    std::string debs;
};

// --- dpkg ---

// After the upgrade in g1: v2's data is there, g2 did not change, and a re-import of g1
// shares the files v2 did not change with g2 again.
void expect_upgraded_and_shared_again(const Guests& s, const std::string& m2) {
    EXPECT_EQ(read_file(s.g1 + "/usr/share/fixture/data"), "data v2\n");
    EXPECT_EQ(manifest(s.g2), m2) << "g2 changed";
    auto r = s.unify({"import", "g1", s.g1});
    EXPECT_EQ(r.status, 0) << r.err;
    r = s.unify({"who", "g1:/usr/share/fixture/common"});
    EXPECT_TRUE(contains(r.out, "g2  /usr/share/fixture/common")) << r.out;
}

// Builds the fixture packages and installs v1 with dpkg into g1, g2 and g3; "" or the
// failing dpkg's output.
std::string install_fixture_v1(const Guests& s) {
    build_debs(s.debs);
    for (const auto& g : {s.g1, s.g2, s.g3}) {
        dpkg_guest(g);
        auto [rc, out] = dpkg(g, "-i '" + s.debs + "/fixture_1.deb'");
        if (rc != 0) return out.empty() ? "dpkg -i failed" : out;
    }
    return "";
}

// install_fixture_v1, then init and import of the three guests; false (with a test failure)
// if any step failed.
bool dpkg_fixture_imported(const Guests& s) {
    std::string failed = install_fixture_v1(s);
    EXPECT_EQ(failed, "");
    return failed.empty() && s.import_all();
}

TEST(PackageUpgrade, DpkgUpgradeAfterUnshareByPackage) {
    TempDir dir;
    UNIFY_REQUIRE(need_immutable(dir.path()));
    UNIFY_REQUIRE(need_tools({"dpkg", "dpkg-deb"}));
    Guests s(dir);
    ASSERT_EQ(install_fixture_v1(s), "");
    const std::string pyc =
        "/usr/lib/python3/dist-packages/fixture/__pycache__/mod.cpython-311.pyc";
    ASSERT_TRUE(fs::exists(s.g1 + pyc));
    ASSERT_TRUE(s.import_all());
    const std::string m2 = manifest(s.g2);
    ASSERT_TRUE(is_immutable(s.g1 + "/usr/share/fixture/data"));
    ASSERT_TRUE(is_immutable(s.g1 + pyc));

    // As reported: on a unified guest the upgrade fails and dpkg rolls back.
    auto [rc3, out3] = dpkg(s.g3, "-i '" + s.debs + "/fixture_2.deb'");
    EXPECT_NE(rc3, 0) << out3;
    EXPECT_TRUE(contains(out3, "Operation not permitted")) << out3;

    auto dry = s.unify({"unshare", "g1", "--package", "fixture", "--dry-run"});
    EXPECT_EQ(dry.status, 0) << dry.err;
    EXPECT_TRUE(is_immutable(s.g1 + "/usr/share/fixture/data"));
    auto r = s.unify({"unshare", "g1", "--package", "fixture"});
    EXPECT_EQ(r.status, 0) << r.err;
    // mod.py, data, common, unit.service (through /lib) and the generated .pyc.
    EXPECT_TRUE(contains(r.out, "package fixture (dpkg): 5 files made private")) << r.out;
    EXPECT_TRUE(contains(dry.out, "package fixture (dpkg): 5 files made private")) << dry.out;
    EXPECT_FALSE(is_immutable(s.g1 + pyc));
    EXPECT_FALSE(is_immutable(s.g1 + "/usr/lib/fixture/unit.service"));

    auto [rc1, out1] = dpkg(s.g1, "-i '" + s.debs + "/fixture_2.deb'");
    EXPECT_EQ(rc1, 0) << out1;
    EXPECT_EQ(problem_lines(out1), "") << out1;
    EXPECT_EQ(read_file(s.g1 + "/usr/share/fixture/data"), "data v2\n");
    EXPECT_EQ(read_file(s.g1 + pyc), "print('v2')\n");
    EXPECT_EQ(manifest(s.g2), m2) << "g2 changed";

    // Re-import: what v2 did not change (common, unit.service) is shared with g2 again.
    r = s.unify({"import", "g1", s.g1});
    EXPECT_EQ(r.status, 0) << r.err;
    r = s.unify({"who", "g1:/lib/fixture/unit.service"});
    EXPECT_TRUE(contains(r.out, "g2  /usr/lib/fixture/unit.service")) << r.out;
    r = s.unify({"who", "g1:/usr/share/fixture/common"});
    EXPECT_TRUE(contains(r.out, "g2  /usr/share/fixture/common")) << r.out;
    r = s.unify({"verify", "--full"});
    EXPECT_EQ(r.status, 0) << r.out << r.err;
}

TEST(PackageUpgrade, DpkgRemoveAfterUnshareByPackageRemovesEveryFile) {
    TempDir dir;
    UNIFY_REQUIRE(need_immutable(dir.path()));
    UNIFY_REQUIRE(need_tools({"dpkg", "dpkg-deb"}));
    Guests s(dir);
    ASSERT_TRUE(dpkg_fixture_imported(s));
    const std::string m2 = manifest(s.g2);
    const std::vector<std::string> files = {
        "/usr/lib/python3/dist-packages/fixture/mod.py",
        "/usr/lib/python3/dist-packages/fixture/__pycache__/mod.cpython-311.pyc",
        "/usr/share/fixture/data", "/usr/share/fixture/common", "/usr/lib/fixture/unit.service"};

    // As reported: dpkg -r "succeeds" on a unified guest and leaves the files behind.
    auto [rc3, out3] = dpkg(s.g3, "-r fixture");
    size_t left = 0;
    for (const auto& f : files) left += fs::exists(s.g3 + f);
    EXPECT_GT(left, 0u) << out3;

    auto r = s.unify({"unshare", "g1", "--package", "fixture"});
    EXPECT_EQ(r.status, 0) << r.err;
    auto [rc1, out1] = dpkg(s.g1, "-r fixture");
    EXPECT_EQ(rc1, 0) << out1;
    EXPECT_EQ(problem_lines(out1), "") << out1;
    for (const auto& f : files) EXPECT_FALSE(fs::exists(s.g1 + f)) << f << " left behind";
    EXPECT_EQ(manifest(s.g2), m2) << "g2 changed";
}

TEST(PackageUpgrade, UnknownPackageIsAnErrorNamingItAndChangesNothing) {
    TempDir dir;
    UNIFY_REQUIRE(need_immutable(dir.path()));
    UNIFY_REQUIRE(need_tools({"dpkg", "dpkg-deb"}));
    Guests s(dir);
    ASSERT_TRUE(dpkg_fixture_imported(s));
    const std::string m1 = manifest(s.g1);
    auto r = s.unify({"unshare", "g1", "--package", "fixture", "no-such-pkg"});
    EXPECT_EQ(r.status, 1) << r.out;
    EXPECT_TRUE(contains(r.err, "package 'no-such-pkg' is not installed")) << r.err;
    EXPECT_EQ(manifest(s.g1), m1);
    EXPECT_TRUE(is_immutable(s.g1 + "/usr/share/fixture/data"));
}

// README: `unify unshare NAME $(dpkg --root ROOT -L PKG)` gives the guest private copies of
// the package's linked files. dpkg -L prints "/.", every directory the package has, and
// paths through the guest's merged-/usr symlink (/lib/fixture/unit.service is
// /usr/lib/fixture/unit.service); the shell hands them over one word each. The directories
// are not an error, nor worth a line each; the .pyc no package lists stays linked.
TEST(PackageUpgrade, UnshareWhatDpkgListPrints) {
    TempDir dir;
    UNIFY_REQUIRE(need_immutable(dir.path()));
    UNIFY_REQUIRE(need_tools({"dpkg", "dpkg-deb"}));
    Guests s(dir);
    ASSERT_TRUE(dpkg_fixture_imported(s));
    const std::string m2 = manifest(s.g2), m3 = manifest(s.g3);
    const std::vector<std::string> files = {"/usr/lib/python3/dist-packages/fixture/mod.py",
                                            "/usr/share/fixture/data", "/usr/share/fixture/common",
                                            "/usr/lib/fixture/unit.service"};
    std::map<std::string, std::string> content;
    for (const auto& f : files) {
        ASSERT_TRUE(is_immutable(s.g1 + f)) << f;
        content[f] = read_file(s.g1 + f);
    }

    auto [rc, listed] = shell("dpkg --root='" + s.g1 + "' -L fixture");
    ASSERT_EQ(rc, 0) << listed;
    ASSERT_TRUE(contains(listed, "/.\n")) << listed;
    ASSERT_TRUE(contains(listed, "\n/lib/fixture/unit.service\n")) << listed;
    ASSERT_TRUE(contains(listed, "\n/usr/share/fixture\n")) << listed;
    std::vector<std::string> args = {"unshare", "g1"};
    std::istringstream words(listed);
    for (std::string w; words >> w;) args.push_back(w);

    auto r = s.unify(args);
    EXPECT_EQ(r.status, 0) << r.out << r.err;
    EXPECT_EQ(r.err, "");
    EXPECT_TRUE(contains_squeezed(r.out, "files made private 4\n")) << r.out;
    for (const auto& f : files) {
        EXPECT_EQ(stat_path(s.g1 + f).st_nlink, 1u) << f;
        EXPECT_FALSE(is_immutable(s.g1 + f)) << f;
        EXPECT_EQ(read_file(s.g1 + f), content[f]) << f;
    }
    EXPECT_TRUE(is_immutable(
        s.g1 + "/usr/lib/python3/dist-packages/fixture/__pycache__/mod.cpython-311.pyc"));
    EXPECT_EQ(manifest(s.g2), m2) << "g2 changed";
    EXPECT_EQ(manifest(s.g3), m3) << "g3 changed";
}

// A directory alone (as an admin names a package's doc directory) is not what unshare takes;
// it says so instead of reporting "files made private 0" without a word.
TEST(PackageUpgrade, UnshareOfADirectoryAloneSaysItTakesFiles) {
    TempDir dir;
    UNIFY_REQUIRE(need_immutable(dir.path()));
    UNIFY_REQUIRE(need_tools({"dpkg", "dpkg-deb"}));
    Guests s(dir);
    ASSERT_TRUE(dpkg_fixture_imported(s));
    const std::string m1 = manifest(s.g1);
    auto r = s.unify({"unshare", "g1", "/usr/share/fixture"});
    EXPECT_EQ(r.status, 0) << r.out << r.err;
    EXPECT_TRUE(contains_squeezed(r.out, "files made private 0\n")) << r.out;
    EXPECT_TRUE(contains(r.err, "1 directory named, skipped: unshare takes files")) << r.err;
    EXPECT_EQ(manifest(s.g1), m1);
    EXPECT_TRUE(is_immutable(s.g1 + "/usr/share/fixture/data"));
}

// --- rpm ---

void build_rpms(const std::string& out) {
    std::string script = std::string(kFixtureScript) + "mkdir -p '" + out + "'; cd '" + out +
                         "'\n"
                         "for v in 1 2; do\n"
                         "  mk tree$v $v; mkdir -p top$v/SPECS\n"
                         "  cat > top$v/SPECS/fixture.spec <<EOF\n"
                         "Name: fixture\nVersion: $v.0\nRelease: 1\nSummary: fixture\n"
                         "License: MIT\nBuildArch: noarch\n%description\nfixture\n%install\n"
                         "cp -a $PWD/tree$v/. %{buildroot}/\n"
                         "%files\n/usr/share/fixture\n/usr/lib/python3/dist-packages/fixture\n"
                         "/lib/fixture\nEOF\n"
                         "  rpmbuild --define \"_topdir $PWD/top$v\" --define '_build_id_links "
                         "none' --define '__os_install_post %{nil}' -bb top$v/SPECS/fixture.spec "
                         ">/dev/null 2>&1\n"
                         "  cp top$v/RPMS/noarch/fixture-$v.0-1.noarch.rpm fixture_$v.rpm\n"
                         "done\n";
    ASSERT_EQ(sh(script), 0);
}

std::pair<int, std::string> rpm(const std::string& root, const std::string& args) {
    return shell("rpm --root='" + root + "' --dbpath /var/lib/rpm " + args);
}

TEST(PackageUpgrade, RpmUpgradeAfterUnshareByPackage) {
    TempDir dir;
    UNIFY_REQUIRE(need_immutable(dir.path()));
    UNIFY_REQUIRE(need_tools({"rpm", "rpmbuild"}));
    Guests s(dir);
    build_rpms(s.debs);
    for (const auto& g : {s.g1, s.g2, s.g3}) {
        fs::create_directories(g + "/var/lib/rpm");
        auto [rc0, out0] = rpm(g, "--initdb");
        ASSERT_EQ(rc0, 0) << out0;
        auto [rc, out] = rpm(g, "-U --nodeps '" + s.debs + "/fixture_1.rpm'");
        ASSERT_EQ(rc, 0) << out;
    }
    ASSERT_TRUE(s.import_all());
    const std::string m2 = manifest(s.g2);
    ASSERT_TRUE(is_immutable(s.g1 + "/usr/share/fixture/data"));

    auto [rc3, out3] = rpm(s.g3, "-U --nodeps '" + s.debs + "/fixture_2.rpm'");
    EXPECT_NE(rc3, 0) << out3;
    EXPECT_TRUE(contains(out3, "cpio: rename failed")) << out3;

    auto r = s.unify({"unshare", "g1", "--package", "fixture"});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_TRUE(contains(r.out, "package fixture (rpm): 4 files made private")) << r.out;
    auto [rc1, out1] = rpm(s.g1, "-U --nodeps '" + s.debs + "/fixture_2.rpm'");
    EXPECT_EQ(rc1, 0) << out1;
    EXPECT_EQ(problem_lines(out1), "") << out1;
    expect_upgraded_and_shared_again(s, m2);
}

// --- pacman ---

void build_pacman_packages(const std::string& out) {
    std::string script =
        std::string(kFixtureScript) + "mkdir -p '" + out + "'; cd '" + out +
        "'\n"
        "for v in 1 2; do\n"
        "  mk tree$v $v; mkdir -p b$v\n"
        "  cat > b$v/PKGBUILD <<EOF\n"
        "pkgname=fixture\npkgver=$v.0\npkgrel=1\npkgdesc=fixture\narch=(any)\nlicense=(MIT)\n"
        "options=(!strip !debug)\npackage() { cp -a $PWD/tree$v/. \"\\$pkgdir\"/; }\nEOF\n"
        "done\n"
        // makepkg runs as nobody, who must reach this directory however deep the test's
        // filesystem put it (UNIFY_TEST_FS: a loop mount under a private scratch dir).
        "chown -R nobody: . && chmod 755 . && top=$PWD\n"
        "d=$PWD; while [ \"$d\" != / ]; do chmod o+x \"$d\"; d=$(dirname \"$d\"); done\n"
        "for v in 1 2; do\n"
        "  (cd b$v && setpriv --reuid=nobody --regid=nogroup --clear-groups env HOME=$PWD "
        "PKGDEST=$top SRCDEST=$top/b$v PKGEXT=.pkg.tar.gz SOURCE_DATE_EPOCH=1700000000 makepkg "
        "--nodeps >/dev/null 2>&1)\n"
        "  mv fixture-$v.0-1-any.pkg.tar.gz fixture_$v.pkg.tar.gz\n"
        "done\n";
    ASSERT_EQ(sh(script), 0);
}

std::pair<int, std::string> pacman(const std::string& root, const std::string& args) {
    return shell("pacman -r '" + root + "' --dbpath '" + root + "/var/lib/pacman' --noconfirm " +
                 args);
}

TEST(PackageUpgrade, PacmanUpgradeAfterUnshareByPackage) {
    TempDir dir;
    UNIFY_REQUIRE(need_immutable(dir.path()));
    UNIFY_REQUIRE(need_tools({"pacman", "makepkg", "setpriv", "fakeroot", "bsdtar"}));
    Guests s(dir);
    build_pacman_packages(s.debs);
    for (const auto& g : {s.g1, s.g2, s.g3}) {
        fs::create_directories(g + "/var/lib/pacman");
        auto [rc, out] = pacman(g, "-U '" + s.debs + "/fixture_1.pkg.tar.gz'");
        ASSERT_EQ(rc, 0) << out;
    }
    ASSERT_TRUE(s.import_all());
    const std::string m2 = manifest(s.g2);
    ASSERT_TRUE(is_immutable(s.g1 + "/usr/share/fixture/data"));

    auto [rc3, out3] = pacman(s.g3, "-U '" + s.debs + "/fixture_2.pkg.tar.gz'");
    EXPECT_TRUE(rc3 != 0 || !problem_lines(out3).empty()) << out3;

    auto r = s.unify({"unshare", "g1", "--package", "fixture"});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_TRUE(contains(r.out, "package fixture (pacman): 4 files made private")) << r.out;
    auto [rc1, out1] = pacman(s.g1, "-U '" + s.debs + "/fixture_2.pkg.tar.gz'");
    EXPECT_EQ(rc1, 0) << out1;
    EXPECT_EQ(problem_lines(out1), "") << out1;
    expect_upgraded_and_shared_again(s, m2);
}

}  // namespace
}  // namespace unify::test
