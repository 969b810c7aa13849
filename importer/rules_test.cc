#include "importer/rules.h"

#include <gtest/gtest.h>

namespace unify {
namespace {

TEST(Rules, DefaultExclusionsCoverWholeTopLevelTrees) {
    Rules r({}, 1);
    for (const char* p :
         {"/etc", "/etc/passwd", "/var/lib/dpkg/status", "/tmp/x", "/dev/null", "/proc/1", "/sys/x",
          "/run/x", "/home/u/f", "/root/.bashrc", "/mnt/a", "/boot/vmlinuz", "/media/a",
          "/srv/www/index.html", "/lost+found/x", "/usr/share/texmf/ls-R", "/.rpmdb/rpmdb.sqlite"})
        EXPECT_EQ(r.match(p), RuleMatch::default_exclusion) << p;
    for (const char* p : {"/usr/bin/ls", "/etcetera/x", "/variable", "/lib/x", "/opt/tmp/x"})
        EXPECT_EQ(r.match(p), RuleMatch::none) << p;
    // The safe parts of /etc that vunify-exclude unifies too.
    for (const char* p : {"/etc/termcap", "/etc/gconf/schemas/a.schemas"})
        EXPECT_EQ(r.match(p), RuleMatch::default_include) << p;
    EXPECT_EQ(r.match("/etc/gconf/gconf.xml.defaults"), RuleMatch::default_exclusion);
}

// A write to a file that shares blocks gives the writer private blocks, so a reflink pool
// may share package data that package managers rewrite; a hardlink pool must not.
TEST(Rules, ReflinkPoolsSharePublicPackageDataUnderVar) {
    Rules hard({}, 1), ref({}, 1, nullptr, ShareMode::reflink);
    const char* shared[] = {"/var/lib/apt/lists/deb.debian.org_debian_dists_stable_InRelease",
                            "/var/cache/apt/archives/bash_5.2_amd64.deb",
                            "/var/lib/dpkg/info/bash.md5sums", "/var/lib/pacman/sync/core.db",
                            "/var/cache/pacman/pkg/bash-5.2-1-x86_64.pkg.tar.zst"};
    for (const char* p : shared) {
        EXPECT_EQ(ref.match(p), RuleMatch::default_include) << p;
        EXPECT_EQ(hard.match(p), RuleMatch::default_exclusion) << p;
    }
    for (const char* p : {"/var/lib/dpkg/status", "/var/cache/debconf/passwords.dat",
                          "/var/log/syslog", "/var/lib/apt/extended_states", "/etc/passwd"})
        EXPECT_EQ(ref.match(p), RuleMatch::default_exclusion) << p;
    EXPECT_TRUE(ref.walk_dir("/var/lib"));
    EXPECT_FALSE(ref.walk_dir("/var/log"));
    EXPECT_FALSE(ref.walk_dir("/var/cache/debconf"));
    EXPECT_FALSE(hard.walk_dir("/var"));
    // The user's rules still come first.
    Rules mine({"-/var/lib/apt/lists"}, 1, nullptr, ShareMode::reflink);
    EXPECT_EQ(mine.match(shared[0]), RuleMatch::user_exclusion);
}

TEST(Rules, UserGlobsMatchNameOrWholePathAndEverythingBelow) {
    Rules r({"-*.pyc", "-/usr/share/doc/*", "-/opt/app"}, 1);
    EXPECT_EQ(r.match("/usr/lib/python3/x.pyc"), RuleMatch::user_exclusion);
    EXPECT_EQ(r.match("/usr/share/doc/bash"), RuleMatch::user_exclusion);
    EXPECT_EQ(r.match("/opt/app"), RuleMatch::user_exclusion);
    // A rule that matches a directory covers what is below it.
    EXPECT_EQ(r.match("/usr/share/doc/bash/README"), RuleMatch::user_exclusion);
    EXPECT_EQ(r.match("/opt/app/bin/x"), RuleMatch::user_exclusion);
    // '*' does not cross '/', and a glob matches whole components.
    EXPECT_EQ(r.match("/usr/share/doc"), RuleMatch::none);
    EXPECT_EQ(r.match("/usr/lib/python3/x.py"), RuleMatch::none);
    EXPECT_EQ(r.match("/opt/application"), RuleMatch::none);
    Decision d = r.decide("/usr/share/doc/bash/README");
    ASSERT_NE(d.rule, nullptr);
    EXPECT_EQ(d.index, 2u);
    EXPECT_EQ(d.matched, "/usr/share/doc/bash");
}

TEST(Rules, UserRulesComeBeforeDefaultsAndFirstMatchWins) {
    Rules r({"+/etc/ssl/certs", "-*.pem", "+*.pem", "-*"}, 1);
    EXPECT_EQ(r.match("/etc/ssl/certs/ca.pem"), RuleMatch::user_include);  // rule 1 first
    EXPECT_EQ(r.match("/usr/share/x.pem"), RuleMatch::user_exclusion);     // rule 2 before 3
    EXPECT_EQ(r.match("/etc/passwd"), RuleMatch::user_exclusion);          // "-*" before defaults
    EXPECT_EQ(r.decide("/etc/passwd").index, 4u);
    Rules only_include({"+/var/www/*"}, 1);
    EXPECT_EQ(only_include.match("/var/www/html/index.html"), RuleMatch::user_include);
    EXPECT_EQ(only_include.match("/var/log/syslog"), RuleMatch::default_exclusion);
}

TEST(Rules, PackageConfigurationFilesComeFirst) {
    PackageConfig pc;
    pc.add("/usr/lib/app/app.conf", PackageDb::rpm, "app");
    pc.add("/etc/ssl/certs/local.pem", PackageDb::dpkg, "ssl");
    Rules r({"+/etc/ssl/certs", "+/usr/lib/app/*"}, 1, &pc);
    Decision d = r.decide("/usr/lib/app/app.conf");
    EXPECT_EQ(d.match, RuleMatch::package_config);
    ASSERT_NE(d.owner, nullptr);
    EXPECT_EQ(d.owner->db, PackageDb::rpm);
    EXPECT_EQ(d.owner->package, "app");
    EXPECT_EQ(r.match("/etc/ssl/certs/local.pem"), RuleMatch::package_config);
    EXPECT_EQ(r.match("/etc/ssl/certs/other.pem"), RuleMatch::user_include);
    EXPECT_EQ(r.match("/usr/lib/app/app.so"), RuleMatch::user_include);
    EXPECT_FALSE(r.decide("/usr/lib/app/app.conf").unifiable());
}

TEST(Rules, ExcludedTreesAreWalkedOnlyWhereAnEarlierIncludeCouldMatch) {
    Rules plain({}, 1);
    EXPECT_FALSE(plain.walk_dir("/var"));
    EXPECT_TRUE(plain.walk_dir("/etc"));  // for + /etc/termcap and + /etc/gconf/schemas
    EXPECT_FALSE(plain.walk_dir("/etc/apt"));
    EXPECT_TRUE(plain.walk_dir("/etc/gconf"));
    EXPECT_TRUE(plain.walk_dir("/etc/gconf/schemas"));
    EXPECT_TRUE(plain.walk_dir("/usr/lib"));

    Rules certs({"+/etc/ssl/certs/*", "-/usr/share/doc"}, 1);
    EXPECT_TRUE(certs.walk_dir("/etc"));
    EXPECT_TRUE(certs.walk_dir("/etc/ssl"));
    EXPECT_TRUE(certs.walk_dir("/etc/ssl/certs"));
    EXPECT_FALSE(certs.walk_dir("/etc/ssl/private"));
    EXPECT_FALSE(certs.walk_dir("/usr/share/doc"));
    Decision why;
    EXPECT_FALSE(certs.walk_dir("/var", &why));
    EXPECT_EQ(why.match, RuleMatch::default_exclusion);

    // An include after the excluding rule cannot win below it: no walk.
    Rules late({"-/opt", "+/opt/keep/*"}, 1);
    EXPECT_FALSE(late.walk_dir("/opt"));
    // A name glob could match anywhere below.
    Rules name({"+*.so"}, 1);
    EXPECT_TRUE(name.walk_dir("/var"));
    EXPECT_TRUE(name.walk_dir("/var/lib/x"));
    EXPECT_EQ(name.match("/var/lib/x/libfoo.so"), RuleMatch::user_include);
    EXPECT_EQ(name.match("/var/lib/x/libfoo.a"), RuleMatch::default_exclusion);
}

// Whatever walk_dir prunes, decide() keeps private too: the walk and --explain agree.
TEST(Rules, PrunedDirectoriesHoldOnlyPrivatePaths) {
    Rules r({"+/etc/ssl/certs/*", "-/usr/share/doc", "+/var/www/*/public"}, 1);
    const char* paths[] = {"/etc/ssl/certs/a.pem",
                           "/etc/ssl/private/k",
                           "/etc/passwd",
                           "/usr/share/doc/x/y",
                           "/var/www/site/public/i.html",
                           "/var/www/site/private/p",
                           "/var/log/syslog",
                           "/usr/bin/ls"};
    for (const char* p : paths) {
        std::string s = p;
        for (size_t i = s.find('/', 1); i != std::string::npos; i = s.find('/', i + 1)) {
            std::string dir = s.substr(0, i);
            if (!r.walk_dir(dir)) {
                EXPECT_FALSE(r.decide(s).unifiable()) << s << " below " << dir;
            }
        }
    }
    EXPECT_TRUE(r.decide("/var/www/site/public/i.html").unifiable());
    EXPECT_FALSE(r.decide("/var/www/site/private/p").unifiable());
}

TEST(Rules, StoredRulesAndRuleFiles) {
    EXPECT_TRUE(parse_stored_rule("+/a").include);
    EXPECT_EQ(parse_stored_rule("+/a").glob, "/a");
    EXPECT_FALSE(parse_stored_rule("-/a").include);
    EXPECT_EQ(parse_stored_rule("*.pyc").glob, "*.pyc");  // an older unify's plain glob
    EXPECT_FALSE(parse_stored_rule("*.pyc").include);

    auto ok = parse_rule_file("# rules\n\n+ /etc/ssl/certs/*\n-*.pyc\n  - /usr/share/doc  \n", "f");
    ASSERT_TRUE(ok) << ok.error().message;
    EXPECT_EQ(*ok, (std::vector<std::string>{"+/etc/ssl/certs/*", "-*.pyc", "-/usr/share/doc"}));
    auto bad = parse_rule_file("+ /a\nexclude /b\n", "rules.txt");
    ASSERT_FALSE(bad);
    EXPECT_NE(bad.error().message.find("rules.txt:2"), std::string::npos) << bad.error().message;
    EXPECT_FALSE(parse_rule_file("+\n", "f"));
}

TEST(Rules, GlobsAreNormalised) {
    Rules r({"-usr/share/man/", "-/opt//x"}, 1);  // relative and sloppy whole-path globs
    EXPECT_EQ(r.match("/usr/share/man/man1/ls.1.gz"), RuleMatch::user_exclusion);
    EXPECT_EQ(r.match("/opt/x/y"), RuleMatch::user_exclusion);
    EXPECT_EQ(r.match("/usr/share/mandb"), RuleMatch::none);
}

}  // namespace
}  // namespace unify
