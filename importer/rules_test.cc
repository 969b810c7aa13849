#include "importer/rules.h"

#include <gtest/gtest.h>

namespace unify {
namespace {

TEST(Rules, DefaultExclusionsCoverWholeTopLevelTrees) {
    Rules r({}, 1);
    for (const char* p : {"/etc", "/etc/passwd", "/var/lib/dpkg/status", "/tmp/x", "/dev/null",
                          "/proc/1", "/sys/x", "/run/x", "/home/u/f", "/root/.bashrc", "/mnt/a",
                          "/boot/vmlinuz", "/media/a", "/srv/www/index.html"})
        EXPECT_EQ(r.match(p), RuleMatch::default_exclusion) << p;
    for (const char* p : {"/usr/bin/ls", "/etcetera/x", "/variable", "/lib/x", "/opt/tmp/x"})
        EXPECT_EQ(r.match(p), RuleMatch::none) << p;
}

TEST(Rules, UserGlobsMatchNameOrWholePath) {
    Rules r({"*.pyc", "/usr/share/doc/*", "/opt/app"}, 1);
    EXPECT_EQ(r.match("/usr/lib/python3/x.pyc"), RuleMatch::user_exclusion);
    EXPECT_EQ(r.match("/usr/share/doc/bash"), RuleMatch::user_exclusion);
    EXPECT_EQ(r.match("/opt/app"), RuleMatch::user_exclusion);
    // '*' does not cross '/': the directory matches (and is pruned), not its deeper files.
    EXPECT_EQ(r.match("/usr/share/doc/bash/README"), RuleMatch::none);
    EXPECT_EQ(r.match("/usr/lib/python3/x.py"), RuleMatch::none);
    EXPECT_EQ(r.match("/opt/application"), RuleMatch::none);
}

TEST(Rules, DefaultRulesWinOverUserRules) {
    Rules r({"*"}, 1);
    EXPECT_EQ(r.match("/etc/x"), RuleMatch::default_exclusion);
    EXPECT_EQ(r.match("/usr/x"), RuleMatch::user_exclusion);
}

}  // namespace
}  // namespace unify
