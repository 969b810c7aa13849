// Unit tests of the package database readers: parsers on small inputs (malformed ones must
// be errors, never crashes) and the resolver on real symlinks. The readers against databases
// written by the real dpkg, rpm and pacman are in tests/package_rules_test.cc.
#include "importer/package_db.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include "store/fd.h"
#include "tests/test_support.h"

namespace unify {
namespace {

using test::TempDir;

TEST(PackageDb, DpkgStatusConffilesOfPackagesNotPurged) {
    std::string status =
        "Package: a\n"
        "Status: install ok installed\n"
        "Conffiles:\n"
        " /etc/a.conf 0123456789abcdef0123456789abcdef\n"
        " /etc/with space.conf 0123456789abcdef0123456789abcdef obsolete\n"
        " /usr/lib/a/x.conf newconffile remove-on-upgrade\n"
        "Description: a\n"
        " Conffiles: not a field, a description line\n"
        "\n"
        "Package: removed\n"
        "Status: deinstall ok config-files\n"
        "Conffiles:\n"
        " /etc/removed.conf 0123456789abcdef0123456789abcdef\n"
        "\n"
        "Package: purged\n"
        "Status: purge ok not-installed\n"
        "Conffiles:\n"
        " /etc/purged.conf 0123456789abcdef0123456789abcdef\n";
    auto r = parse_dpkg_status(status, "status");
    ASSERT_TRUE(r) << r.error().message;
    std::vector<std::pair<std::string, std::string>> want = {{"a", "/etc/a.conf"},
                                                             {"a", "/etc/with space.conf"},
                                                             {"a", "/usr/lib/a/x.conf"},
                                                             {"removed", "/etc/removed.conf"}};
    EXPECT_EQ(*r, want);
    auto bad = parse_dpkg_status("Package: a\nno colon here\n", "status");
    ASSERT_FALSE(bad);
    EXPECT_NE(bad.error().message.find("status:2"), std::string::npos);
}

// A minimal rpm header blob builder: tags in order, data appended as given.
struct HeaderBuilder {
    std::vector<std::array<uint32_t, 4>> index;
    std::string data;
    void be(std::string& s, uint32_t v) {
        for (int i = 3; i >= 0; --i) s.push_back(char(v >> (8 * i)));
    }
    void strings(uint32_t tag, uint32_t type, const std::vector<std::string>& v) {
        index.push_back({tag, type, uint32_t(data.size()), uint32_t(v.size())});
        for (const auto& s : v) data += s + '\0';
    }
    void ints(uint32_t tag, const std::vector<uint32_t>& v) {
        while (data.size() % 4) data.push_back('\0');
        index.push_back({tag, 4, uint32_t(data.size()), uint32_t(v.size())});
        for (uint32_t x : v) be(data, x);
    }
    std::string blob() {
        std::string s;
        be(s, uint32_t(index.size()));
        be(s, uint32_t(data.size()));
        for (const auto& e : index)
            for (uint32_t x : e) be(s, x);
        return s + data;
    }
};

Result<RpmHeaderConfig> parse(const std::string& blob) {
    return parse_rpm_header(reinterpret_cast<const uint8_t*>(blob.data()), blob.size());
}

TEST(PackageDb, RpmHeaderConfigFiles) {
    HeaderBuilder h;
    h.strings(1000, 6, {"app"});
    h.ints(1037, {1, 0, 1 | 16});  // %config, plain, %config(noreplace)
    h.ints(1116, {0, 1, 1});
    h.strings(1117, 8, {"app.conf", "app", "defaults.conf"});
    h.strings(1118, 8, {"/etc/app/", "/usr/lib/app/"});
    auto r = parse(h.blob());
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->name, "app");
    EXPECT_EQ(r->config_files,
              (std::vector<std::string>{"/etc/app/app.conf", "/usr/lib/app/defaults.conf"}));

    HeaderBuilder old;  // before compressed file names
    old.strings(1000, 6, {"old"});
    old.ints(1037, {0, 1});
    old.strings(1027, 8, {"/usr/bin/old", "/etc/old.conf"});
    auto o = parse(old.blob());
    ASSERT_TRUE(o) << o.error().message;
    EXPECT_EQ(o->config_files, (std::vector<std::string>{"/etc/old.conf"}));

    HeaderBuilder none;  // gpg-pubkey pseudo-packages have no files
    none.strings(1000, 6, {"gpg-pubkey"});
    auto n = parse(none.blob());
    ASSERT_TRUE(n) << n.error().message;
    EXPECT_TRUE(n->config_files.empty());
}

TEST(PackageDb, MalformedRpmHeadersAreErrorsNotCrashes) {
    HeaderBuilder h;
    h.strings(1000, 6, {"app"});
    h.ints(1037, {1});
    h.ints(1116, {5});  // no such directory
    h.strings(1117, 8, {"a"});
    h.strings(1118, 8, {"/etc/"});
    EXPECT_FALSE(parse(h.blob()));
    std::string good = [] {
        HeaderBuilder g;
        g.strings(1000, 6, {"app"});
        g.ints(1037, {1});
        g.ints(1116, {0});
        g.strings(1117, 8, {"a"});
        g.strings(1118, 8, {"/etc/"});
        return g.blob();
    }();
    ASSERT_TRUE(parse(good));
    for (size_t cut = 0; cut < good.size(); ++cut) EXPECT_FALSE(parse(good.substr(0, cut))) << cut;
    std::string no_nul = good;
    no_nul.back() = 'x';  // the last string loses its NUL
    EXPECT_FALSE(parse(no_nul));
    std::string huge = good;
    huge[0] = '\x7f';  // il far beyond the blob
    EXPECT_FALSE(parse(huge));
    EXPECT_FALSE(parse_rpm_header(nullptr, 0));
}

Fd open_root(const std::string& path) {
    return Fd(open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
}

TEST(PackageDb, ResolverFollowsGuestSymlinksInsideTheGuestOnly) {
    TempDir dir("/tmp");
    std::string g = dir / "guest";
    test::write_file(g + "/usr/lib/x/a.conf", "a");
    test::write_file(g + "/usr/lib/sysimage/rpm/rpmdb.sqlite", "");
    test::sh("mkdir -p " + g + "/var/lib " + g + "/etc");
    ASSERT_EQ(symlink("usr/lib", (g + "/lib").c_str()), 0);
    ASSERT_EQ(symlink("../../usr/lib/sysimage/rpm", (g + "/var/lib/rpm").c_str()), 0);
    ASSERT_EQ(symlink("/usr/lib", (g + "/etc/abs").c_str()), 0);             // absolute: guest's /
    ASSERT_EQ(symlink("../../../../../../..", (g + "/etc/up").c_str()), 0);  // stops at the root
    ASSERT_EQ(symlink("loop2", (g + "/etc/loop1").c_str()), 0);
    ASSERT_EQ(symlink("loop1", (g + "/etc/loop2").c_str()), 0);
    Fd root = open_root(g);
    ASSERT_TRUE(root.valid());
    GuestResolver r(root.get(), g);
    auto expect = [&](const std::string& in, const std::string& want) {
        auto got = r.resolve(in);
        ASSERT_TRUE(got) << in << ": " << got.error().message;
        EXPECT_EQ(*got, want) << in;
    };
    expect("/lib/x/a.conf", "/usr/lib/x/a.conf");
    expect("/usr/lib/x/a.conf", "/usr/lib/x/a.conf");
    expect("/etc/abs/x/a.conf", "/usr/lib/x/a.conf");
    expect("/etc/up/usr/lib/x/a.conf", "/usr/lib/x/a.conf");
    expect("//usr/./lib/../lib/x//a.conf", "/usr/lib/x/a.conf");
    expect("/lib", "/lib");                  // the last component is kept as it is
    expect("/etc/loop1/a", "/etc/loop1/a");  // gives up, keeps what is written
    expect("/no/such/dir/f", "/no/such/dir/f");
    auto rpm = r.resolve_dir("/var/lib/rpm");
    ASSERT_TRUE(rpm);
    EXPECT_EQ(*rpm, "/usr/lib/sysimage/rpm");
}

TEST(PackageDb, GuestFilesAreNotReadThroughSymlinks) {
    TempDir dir("/tmp");
    std::string g = dir / "guest";
    test::write_file(dir / "host-secret", "secret");
    test::sh("mkdir -p " + g + "/var/lib/dpkg");
    ASSERT_EQ(symlink((dir / "host-secret").c_str(), (g + "/var/lib/dpkg/status").c_str()), 0);
    Fd root = open_root(g);
    auto r = read_package_config(root.get(), g);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("symlink"), std::string::npos) << r.error().message;

    std::string empty = dir / "empty";
    test::sh("mkdir -p " + empty);
    Fd eroot = open_root(empty);
    auto none = read_package_config(eroot.get(), empty);
    ASSERT_TRUE(none) << none.error().message;
    EXPECT_EQ(none->databases(), "none");
    EXPECT_TRUE(none->files.empty());
}

TEST(PackageDb, OldRpmDatabasesAreReportedNotRead) {
    TempDir dir("/tmp");
    std::string g = dir / "guest";
    test::write_file(g + "/var/lib/rpm/Packages", "a Berkeley DB would be here");
    Fd root = open_root(g);
    auto r = read_package_config(root.get(), g);
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->databases(), "none");
    ASSERT_EQ(r->warnings.size(), 1u);
    EXPECT_NE(r->warnings[0].find("rpm Berkeley DB not supported"), std::string::npos);
}

TEST(PackageDb, CorruptRpmSqliteIsAnError) {
    TempDir dir("/tmp");
    std::string g = dir / "guest";
    test::write_file(g + "/var/lib/rpm/rpmdb.sqlite", std::string(4096, 'x'));
    Fd root = open_root(g);
    auto r = read_package_config(root.get(), g);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("rpmdb.sqlite"), std::string::npos) << r.error().message;
}

}  // namespace
}  // namespace unify
