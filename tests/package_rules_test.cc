// End-to-end tests of package-aware unification. Each fixture is made by the real tools: a
// .deb built by dpkg-deb and installed by dpkg --root, an .rpm built by rpmbuild and
// installed by rpm --root -i --nodeps, a pacman package built by makepkg (as nobody: makepkg
// refuses root) and installed by pacman -r. The same package goes into two guests; the real
// `unify import` runs on both, and the package's configuration files must stay private
// (own inode, one link, not immutable) while its other files are shared.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include "tests/test_support.h"

namespace unify::test {
namespace {

// The count before `label` on a "    N  label" line of the summary's skip list, or -1.
int64_t skipped(const std::string& out, const std::string& label) {
    std::istringstream in(out);
    for (std::string line; std::getline(in, line);) {
        size_t at = line.find("  " + label);
        if (at == std::string::npos || at + 2 + label.size() != line.size()) continue;
        std::string num = line.substr(0, at);
        num.erase(0, num.find_first_not_of(' '));
        std::erase(num, ',');
        return num.empty() ? -1 : std::stoll(num);
    }
    return -1;
}

// The files every fixture package ships, the same for dpkg, rpm and pacman.
//   config: /etc/unifydemo/demo.conf, /usr/lib/unifydemo/defaults.conf
//   plain:  /etc/unifydemo/schema.xml, /usr/share/unifydemo/data.txt,
//           /usr/share/unifydemo/notes.md, /usr/lib/unifydemo/libdemo.so
struct Payload {
    std::string rel, content;
    bool config;
};
const std::vector<Payload>& payload() {
    static const std::vector<Payload> p = {
        {"etc/unifydemo/demo.conf", "listen = 80\n", true},
        {"usr/lib/unifydemo/defaults.conf", "defaults = yes\n", true},
        {"etc/unifydemo/schema.xml", "<schema>the same everywhere</schema>\n", false},
        {"usr/share/unifydemo/data.txt", "shared data of the demo package\n", false},
        {"usr/share/unifydemo/notes.md", "# notes the user keeps private\n", false},
        {"usr/lib/unifydemo/libdemo.so", "not really a library, but shared\n", false},
    };
    return p;
}

void write_payload(const std::string& root) {
    for (const auto& f : payload()) write_file(root + "/" + f.rel, f.content, 0644);
}

// dpkg-deb --build, then dpkg --root into each guest. The guests are merged-/usr, as Debian
// is: /lib is a symlink to usr/lib, and the package ships one more conffile under /lib,
// which dpkg unpacks through the symlink and lists as /lib/unifydemo/merged.conf.
std::string make_deb_guests(const TempDir& dir, const std::string& g1, const std::string& g2) {
    std::string pkg = dir / "deb";
    write_payload(pkg);
    write_file(pkg + "/lib/unifydemo/merged.conf", "merged = usr\n");
    write_file(pkg + "/DEBIAN/control",
               "Package: unifydemo\nVersion: 1.0\nArchitecture: all\n"
               "Maintainer: unify tests <root@localhost>\nDescription: unify test package\n"
               " with conffiles in and outside /etc.\n");
    write_file(pkg + "/DEBIAN/conffiles",
               "/etc/unifydemo/demo.conf\n/usr/lib/unifydemo/defaults.conf\n"
               "/lib/unifydemo/merged.conf\n");
    std::string deb = dir / "unifydemo.deb";
    if (sh("dpkg-deb --root-owner-group --build " + pkg + " " + deb + " >/dev/null") != 0)
        return "dpkg-deb --build failed";
    for (const std::string& g : {g1, g2}) {
        sh("mkdir -p " + g + "/usr/lib && ln -s usr/lib " + g + "/lib");
        sh("mkdir -p " + g + "/var/lib/dpkg/info " + g + "/var/lib/dpkg/updates && touch " + g +
           "/var/lib/dpkg/status");
        if (sh("dpkg --root=" + g + " -i " + deb + " >/dev/null") != 0)
            return "dpkg --root=" + g + " -i failed";
    }
    return "";
}

// rpmbuild -bb, then rpm --root -i --nodeps. g1 keeps its rpmdb in var/lib/rpm; g2 is laid
// out as Fedora: var/lib/rpm is a symlink to ../../usr/lib/sysimage/rpm.
std::string make_rpm_guests(const TempDir& dir, const std::string& g1, const std::string& g2) {
    std::string top = dir / "rpmbuild";
    sh("mkdir -p " + top + "/SPECS " + top + "/SOURCES " + top + "/BUILD " + top + "/RPMS");
    std::string install = "mkdir -p %{buildroot}\n";
    for (const auto& f : payload()) {
        std::string d = f.rel.substr(0, f.rel.rfind('/'));
        install += "mkdir -p %{buildroot}/" + d + "\nprintf '%%s' '" + f.content +
                   "' > %{buildroot}/" + f.rel + "\n";
    }
    std::string files;
    for (const auto& f : payload()) files += (f.config ? "%config /" : "/") + f.rel + "\n";
    write_file(top + "/SPECS/unifydemo.spec",
               "%global debug_package %{nil}\n%define _build_id_links none\n"
               "Name: unifydemo\nVersion: 1.0\nRelease: 1\nSummary: unify test package\n"
               "License: MIT\nBuildArch: noarch\n%description\nunify test package\n"
               "%install\n" +
                   install + "%files\n" + files);
    if (sh("rpmbuild --quiet --define '_topdir " + top + "' -bb " + top +
           "/SPECS/unifydemo.spec >/dev/null 2>&1") != 0)
        return "rpmbuild failed";
    std::string rpm = top + "/RPMS/noarch/unifydemo-1.0-1.noarch.rpm";
    sh("mkdir -p " + g2 + "/usr/lib/sysimage/rpm " + g2 + "/var/lib && ln -s " +
       "../../usr/lib/sysimage/rpm " + g2 + "/var/lib/rpm");
    for (const std::string& g : {g1, g2})
        if (sh("rpm --root " + g + " --dbpath /var/lib/rpm -i --nodeps " + rpm +
               " >/dev/null 2>&1") != 0)
            return "rpm --root " + g + " -i failed";
    return "";
}

// makepkg as nobody (it refuses to run as root), then pacman -r into each guest.
std::string make_pacman_guests(const TempDir& dir, const std::string& g1, const std::string& g2) {
    std::string build = dir / "pacman";
    std::string backup, mk;
    for (const auto& f : payload()) {
        if (f.config) backup += " '" + f.rel + "'";
        std::string d = f.rel.substr(0, f.rel.rfind('/'));
        mk += "  mkdir -p \"$pkgdir/" + d + "\"\n  printf '%s' '" + f.content + "' > \"$pkgdir/" +
              f.rel + "\"\n";
    }
    write_file(build + "/PKGBUILD",
               "pkgname=unifydemo\npkgver=1.0\npkgrel=1\npkgdesc='unify test package'\n"
               "arch=('any')\nlicense=('MIT')\nbackup=(" +
                   backup + ")\npackage() {\n" + mk + "}\n");
    sh("chmod 755 " + dir.path() + " && chown -R nobody " + build);
    if (sh("cd " + build + " && setpriv --reuid=nobody --regid=nogroup --clear-groups env HOME=" +
           build + " PKGDEST=" + build + " SRCDEST=" + build + " BUILDDIR=" + build +
           "/work makepkg --nodeps --skipinteg --noconfirm >/dev/null 2>&1") != 0)
        return "makepkg failed";
    std::string pkg = capture("ls " + build + "/unifydemo-1.0-1-any.pkg.tar.*");
    while (!pkg.empty() && pkg.back() == '\n') pkg.pop_back();
    if (pkg.empty()) return "makepkg made no package";
    for (const std::string& g : {g1, g2}) {
        sh("mkdir -p " + g + "/var/lib/pacman " + g + "/var/cache/pacman/pkg");
        if (sh("pacman -r " + g + " --dbpath " + g + "/var/lib/pacman --cachedir " + g +
               "/var/cache/pacman/pkg --noconfirm -U " + pkg + " >/dev/null 2>&1") != 0)
            return "pacman -r " + g + " -U failed";
    }
    return "";
}

RunResult unify_import(const std::string& pool, const std::string& name, const std::string& root,
                       const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args = {"--pool", pool, "import", name, root};
    args.insert(args.end(), extra.begin(), extra.end());
    return run_unify(args);
}

std::string explain(const std::string& pool, const std::string& name, const std::string& root,
                    const std::string& path) {
    RunResult r = run_unify({"--pool", pool, "import", name, root, "--explain", path});
    EXPECT_TRUE(succeeded(r));
    return r.out;
}

void expect_has(const std::string& text, const std::string& want) {
    EXPECT_NE(text.find(want), std::string::npos) << "expected \"" << want << "\" in:\n" << text;
}

// The checks every package manager shares. `extra_config`: more config paths of both guests.
void check_guests(const TempDir& dir, const std::string& db, const std::string& g1,
                  const std::string& g2, const std::vector<std::string>& extra_config = {}) {
    std::string pool = dir / "pool";
    RunResult init = run_unify({"--pool", pool, "init"});
    ASSERT_TRUE(succeeded(init));
    // Rules from a file: keep *.md private, unify /etc/unifydemo (its conffile still wins).
    std::string rules = dir / "rules.txt";
    write_file(rules, "# user rules\n- *.md\n+ /etc/unifydemo\n");
    RunResult r1 = unify_import(pool, "g1", g1, {"--exclude-from", rules});
    ASSERT_TRUE(succeeded(r1));
    RunResult r2 = unify_import(pool, "g2", g2, {"--exclude-from", rules});
    ASSERT_TRUE(succeeded(r2));
    std::string reason = "configuration file of a package (" + db + ")";
    EXPECT_EQ(skipped(r1.out, reason), int64_t(2 + extra_config.size())) << r1.out;
    EXPECT_EQ(skipped(r2.out, reason), int64_t(2 + extra_config.size())) << r2.out;
    EXPECT_EQ(skipped(r2.out, "excluded by --exclude"), 1) << r2.out;
    expect_has(r1.out, "package database  " + db + " (");

    auto check = [&](const std::string& when) {
        for (const auto& f : payload()) {
            std::string a = g1 + "/" + f.rel, b = g2 + "/" + f.rel;
            bool shared = !f.config && f.rel.find(".md") == std::string::npos;
            if (shared) {
                EXPECT_EQ(ino(a), ino(b)) << when << ": " << f.rel << " should be linked";
                EXPECT_TRUE(is_immutable(a)) << when << ": " << f.rel;
            } else {
                EXPECT_NE(ino(a), ino(b)) << when << ": " << f.rel << " should stay private";
                for (const std::string& p : {a, b}) {
                    EXPECT_EQ(stat_path(p).st_nlink, 1u) << when << ": " << p;
                    EXPECT_FALSE(is_immutable(p)) << when << ": " << p;
                }
            }
            EXPECT_EQ(read_file(a), f.content) << when << ": " << a;
        }
        for (const auto& p : extra_config) {
            EXPECT_NE(ino(g1 + p), ino(g2 + p)) << when << ": " << p;
            for (const std::string& g : {g1, g2}) {
                EXPECT_EQ(stat_path(g + p).st_nlink, 1u) << when << ": " << g + p;
                EXPECT_FALSE(is_immutable(g + p)) << when << ": " << g + p;
            }
        }
    };
    check("after the first imports");

    // Again without rules: the stored ones apply, nothing new is linked.
    RunResult again = unify_import(pool, "g2", g2);
    ASSERT_TRUE(succeeded(again));
    EXPECT_EQ(skipped(again.out, "excluded by --exclude"), 1) << again.out;
    EXPECT_EQ(skipped(again.out, reason), int64_t(2 + extra_config.size())) << again.out;
    check("after a re-import without rules");

    // --explain: a conffile, an excluded path, an included path and a plain file.
    expect_has(explain(pool, "g2", g2, "/usr/lib/unifydemo/defaults.conf"),
               "/usr/lib/unifydemo/defaults.conf: private: configuration file of " + db +
                   " package unifydemo");
    expect_has(explain(pool, "g2", g2, "/etc/unifydemo/demo.conf"),
               "private: configuration file of " + db + " package unifydemo");
    expect_has(explain(pool, "g2", g2, "/usr/share/unifydemo/notes.md"),
               "/usr/share/unifydemo/notes.md: private: excluded by user rule 1 '- *.md'");
    expect_has(explain(pool, "g2", g2, "/var/lib/x"),
               "/var/lib/x: private: excluded by the default rule '- /var'");
    expect_has(explain(pool, "g2", g2, "/etc/unifydemo/schema.xml"),
               "/etc/unifydemo/schema.xml: unified (included by user rule 2 '+ /etc/unifydemo', "
               "which matches /etc/unifydemo; regular file)");
    expect_has(explain(pool, "g2", g2, "/usr/share/unifydemo/data.txt"),
               "/usr/share/unifydemo/data.txt: unified (no rule matched; regular file)");

    RunResult st = run_unify({"--pool", pool, "status", "g2"});
    ASSERT_TRUE(succeeded(st));
    expect_has(st.out, "package database  " + db + " (");
    expect_has(st.out, "user rules        - *.md, + /etc/unifydemo");
}

TEST(PackageRules, DpkgConffilesStayPrivate) {
    TempDir dir;
    UNIFY_REQUIRE(need_immutable(dir.path()));
    UNIFY_REQUIRE(need_tool("dpkg-deb"));
    UNIFY_REQUIRE(need_tool("dpkg"));
    std::string g1 = dir / "g1", g2 = dir / "g2";
    std::string err = make_deb_guests(dir, g1, g2);
    ASSERT_EQ(err, "");
    // The merged-/usr conffile: dpkg lists it as /lib/..., it lives at /usr/lib/... .
    ASSERT_NE(
        capture("cat " + g2 + "/var/lib/dpkg/info/unifydemo.conffiles").find("/lib/unifydemo"),
        std::string::npos);
    check_guests(dir, "dpkg", g1, g2, {"/usr/lib/unifydemo/merged.conf"});
    std::string pool = dir / "pool";
    expect_has(explain(pool, "g2", g2, "/lib/unifydemo/merged.conf"),
               "/lib/unifydemo/merged.conf (in the guest: /usr/lib/unifydemo/merged.conf): "
               "private: configuration file of dpkg package unifydemo");
}

// dpkg has two lists of conffiles, and a guest can have a conffile in only one of them: a
// package dpkg was killed while unpacking (half-installed) has its info/P.conffiles but no
// Conffiles: in status yet; one whose info files are gone has only status. Each must be
// read on its own.
TEST(PackageRules, DpkgConffileListedInOnlyOneSourceStaysPrivate) {
    TempDir dir;
    UNIFY_REQUIRE(need_immutable(dir.path()));
    std::string pool = dir / "pool", g1 = dir / "g1", g2 = dir / "g2";
    ASSERT_TRUE(succeeded(run_unify({"--pool", pool, "init"})));
    for (const std::string& g : {g1, g2}) {
        write_file(g + "/var/lib/dpkg/status",
                   "Package: listed-in-status\n"
                   "Status: install ok installed\n"
                   "Conffiles:\n"
                   " /usr/lib/app/status-only.conf 0123456789abcdef0123456789abcdef\n"
                   "\n"
                   "Package: half\n"
                   "Status: install reinstreq half-installed\n");
        write_file(g + "/var/lib/dpkg/info/half.conffiles", "/usr/lib/app/info-only.conf\n");
        write_file(g + "/var/lib/dpkg/info/listed-in-status.list", "/usr/lib/app\n");
        for (const char* f : {"status-only.conf", "info-only.conf", "plain"}) {
            write_file(g + "/usr/lib/app/" + f, std::string("same in both guests: ") + f + "\n");
            set_mtime(g + "/usr/lib/app/" + f, 1700000000, 11);
        }
    }
    for (const auto& [name, root] : {std::pair{"g1", g1}, {"g2", g2}})
        ASSERT_TRUE(succeeded(run_unify({"--pool", pool, "import", name, root})));
    for (const char* f : {"status-only.conf", "info-only.conf"}) {
        std::string rel = std::string("/usr/lib/app/") + f;
        EXPECT_NE(ino(g1 + rel), ino(g2 + rel)) << rel << " was shared";
        EXPECT_EQ(stat_path(g2 + rel).st_nlink, 1u) << rel;
        EXPECT_FALSE(is_immutable(g2 + rel)) << rel;
    }
    EXPECT_EQ(ino(g1 + "/usr/lib/app/plain"), ino(g2 + "/usr/lib/app/plain"));
}

TEST(PackageRules, RpmConfigFilesStayPrivate) {
    TempDir dir;
    UNIFY_REQUIRE(need_immutable(dir.path()));
    UNIFY_REQUIRE(need_tool("rpmbuild"));
    UNIFY_REQUIRE(need_tool("rpm"));
    std::string g1 = dir / "g1", g2 = dir / "g2";
    std::string err = make_rpm_guests(dir, g1, g2);
    ASSERT_EQ(err, "");
    ASSERT_TRUE(stat_path(g2 + "/usr/lib/sysimage/rpm/rpmdb.sqlite").st_size > 0);
    check_guests(dir, "rpm", g1, g2);
    // Every file the host's rpm calls %config is one for unify, in both layouts.
    std::string pool = dir / "pool";
    for (const std::string& g : {g1, g2}) {
        std::string listed = capture("rpm --root " + g + " --dbpath /var/lib/rpm -qac 2>/dev/null");
        std::istringstream in(listed);
        int n = 0;
        for (std::string path; std::getline(in, path); ++n)
            expect_has(explain(pool, g == g1 ? "g1" : "g2", g, path),
                       "private: configuration file of rpm package unifydemo");
        EXPECT_EQ(n, 2) << listed;
    }
}

TEST(PackageRules, PacmanBackupFilesStayPrivate) {
    TempDir dir;
    UNIFY_REQUIRE(need_immutable(dir.path()));
    UNIFY_REQUIRE(need_tool("makepkg"));
    UNIFY_REQUIRE(need_tool("pacman"));
    UNIFY_REQUIRE(need_tool("setpriv"));
    std::string g1 = dir / "g1", g2 = dir / "g2";
    std::string err = make_pacman_guests(dir, g1, g2);
    ASSERT_EQ(err, "");
    check_guests(dir, "pacman", g1, g2);
}

TEST(PackageRules, GuestWithoutPackageDatabaseUsesTheOtherRules) {
    TempDir dir;
    UNIFY_REQUIRE(need_immutable(dir.path()));
    std::string pool = dir / "pool", g1 = dir / "g1", g2 = dir / "g2";
    ASSERT_TRUE(succeeded(run_unify({"--pool", pool, "init"})));
    for (const std::string& g : {g1, g2}) {
        write_file(g + "/usr/lib/app/app.conf", "no database says this is configuration\n");
        write_file(g + "/etc/app.conf", "private by the default rules\n");
        set_mtime(g + "/usr/lib/app/app.conf", 1700000000, 0);
        set_mtime(g + "/etc/app.conf", 1700000000, 0);
    }
    RunResult r1 = unify_import(pool, "g1", g1);
    ASSERT_TRUE(succeeded(r1));
    expect_has(r1.out, "package database  none found: only the default and user rules apply");
    ASSERT_TRUE(succeeded(unify_import(pool, "g2", g2)));
    EXPECT_EQ(ino(g1 + "/usr/lib/app/app.conf"), ino(g2 + "/usr/lib/app/app.conf"));
    EXPECT_NE(ino(g1 + "/etc/app.conf"), ino(g2 + "/etc/app.conf"));
    RunResult st = run_unify({"--pool", pool, "status"});
    ASSERT_TRUE(succeeded(st));
    expect_has(st.out, "package database  none found: only the default and user rules apply");
}

TEST(PackageRules, BerkeleyRpmDatabaseIsAWarningNotAFailure) {
    TempDir dir;
    UNIFY_REQUIRE(need_immutable(dir.path()));
    std::string pool = dir / "pool", g = dir / "g1";
    ASSERT_TRUE(succeeded(run_unify({"--pool", pool, "init"})));
    // Only detection is tested: the file is where an old rpm keeps its Berkeley DB.
    write_file(g + "/var/lib/rpm/Packages", std::string(8192, '\0'));
    write_file(g + "/usr/bin/tool", "a tool\n");
    RunResult r = unify_import(pool, "g1", g);
    ASSERT_TRUE(succeeded(r));
    expect_has(r.out, "warning: rpm Berkeley DB not supported");
    expect_has(r.err, "warning: rpm Berkeley DB not supported");
}

TEST(PackageRules, UnreadablePackageDatabaseStopsTheImport) {
    TempDir dir;
    UNIFY_REQUIRE(need_immutable(dir.path()));
    std::string pool = dir / "pool", g = dir / "g1";
    ASSERT_TRUE(succeeded(run_unify({"--pool", pool, "init"})));
    write_file(dir / "elsewhere/status", "Package: x\nConffiles:\n /usr/bin/tool 00\n");
    sh("mkdir -p " + g + "/var/lib/dpkg && ln -s " + dir / "elsewhere/status" + " " + g +
       "/var/lib/dpkg/status");
    write_file(g + "/usr/bin/tool", "a tool\n");
    RunResult r = unify_import(pool, "symlinked-db", g);
    EXPECT_EQ(r.status, 1) << show(r);
    expect_has(r.err, "symlink");
    RunResult list = run_unify({"--pool", pool, "list"});
    EXPECT_EQ(list.out.find("symlinked-db"), std::string::npos) << list.out;  // not registered
    EXPECT_EQ(stat_path(g + "/usr/bin/tool").st_nlink, 1u);
}

TEST(PackageRules, RuleOptionsKeepCommandLineOrder) {
    TempDir dir;
    UNIFY_REQUIRE(need_immutable(dir.path()));
    std::string pool = dir / "pool", g = dir / "g1";
    ASSERT_TRUE(succeeded(run_unify({"--pool", pool, "init"})));
    write_file(g + "/opt/a/keep.txt", "k\n");
    std::string rules = dir / "r.txt";
    write_file(rules, "- /opt/a\n");
    auto ex = [&](const std::vector<std::string>& opts) {
        std::vector<std::string> args = {"--pool", pool, "import", "g1", g};
        args.insert(args.end(), opts.begin(), opts.end());
        args.insert(args.end(), {"--explain", "/opt/a/keep.txt"});
        RunResult r = run_unify(args);
        EXPECT_TRUE(succeeded(r));
        return r.out;
    };
    expect_has(ex({"--include", "/opt/a/*", "--exclude-from", rules}),
               "unified (included by user rule 1 '+ /opt/a/*'");
    expect_has(ex({"--exclude-from", rules, "--include", "/opt/a/*"}),
               "private: excluded by user rule 1 '- /opt/a'");
    expect_has(ex({"--exclude", "*.txt", "--include", "/opt/a/*"}),
               "private: excluded by user rule 1 '- *.txt'");
    write_file(dir / "bad.txt", "+ /ok\nexclude this\n");
    RunResult bad =
        run_unify({"--pool", pool, "import", "g1", g, "--exclude-from", dir / "bad.txt"});
    EXPECT_EQ(bad.status, 1) << show(bad);
    expect_has(bad.err, "bad.txt:2");
}

}  // namespace
}  // namespace unify::test
