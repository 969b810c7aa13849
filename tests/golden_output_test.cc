// Golden output: the whole text of gc, list, who and unshare on a small pool, compared line by
// line, so alignment and wording changes are seen. What varies from run to run is masked
// before the comparison (mask() below):
//   the test's scratch directory        -> TMP
//   64-hex-digit object ids              -> <id>
//   times "2026-11-29 15:30:00"          -> <time>
// Columns are aligned on the real text, and a masked part has the same length in every row
// it appears in, so masking keeps the alignment between rows; only a header over a masked
// column is padded to the real width (list's ROOT: root_pad).
#include <regex>

#include "tests/test_support.h"

namespace unify::test {
namespace {

std::string mask(std::string text, const std::string& tmp) {
    for (size_t at; (at = text.find(tmp)) != std::string::npos;)
        text.replace(at, tmp.size(), "TMP");
    text = std::regex_replace(text, std::regex("[0-9a-f]{64}"), "<id>");
    return std::regex_replace(
        text, std::regex("[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}"), "<time>");
}

struct Pool {
    TempDir dir;
    std::string pool = dir / "pool";
    Pool() {
        for (const auto& g : {"web1", "mail-server"}) {
            write_file(dir / g + "/usr/bin/tool", "tool\n", 0755);
            set_mtime(dir / g + "/usr/bin/tool", 1700000000, 0);
            write_file(dir / g + "/usr/lib/libx.so", std::string(2500, 'x'), 0644);
            set_mtime(dir / g + "/usr/lib/libx.so", 1700000000, 0);
        }
        write_file(dir / "web1/usr/bin/only", "only web1\n", 0755);
        set_mtime(dir / "web1/usr/bin/only", 1700000000, 0);
        EXPECT_EQ(run_unify({"--pool", pool, "init", "--protect", "none"}).status, 0);
        for (const auto& g : {"web1", "mail-server"})
            EXPECT_EQ(run_unify({"--pool", pool, "import", g, dir / g}).status, 0);
    }
    // The masked stdout of `unify --pool POOL args...`, which must succeed.
    std::string out(std::vector<std::string> args) {
        args.insert(args.begin(), {"--pool", pool});
        auto r = run_unify(args);
        EXPECT_EQ(r.status, 0) << r.err;
        return mask(r.out, dir.path());
    }
};

TEST(GoldenOutput, ListAndWho) {
    Pool p;
    // The ROOT column is as wide as the longest real root, TMP/mail-server unmasked.
    std::string root_pad(p.dir.path().size() + std::string("/mail-server").size() - 4 + 2, ' ');
    EXPECT_EQ(p.out({"list"}), "NAME         ROOT" + root_pad +
                                   "LAST IMPORT\n"
                                   "mail-server  TMP/mail-server  <time>\n"
                                   "web1         TMP/web1         <time>\n");
    EXPECT_EQ(p.out({"who", "web1:/usr/lib/libx.so"}),
              "object <id>\n"
              "size   2.5 kB (2,500 bytes)\n"
              "shared by 2 paths (checked on the filesystem):\n"
              "  web1         /usr/lib/libx.so\n"
              "  mail-server  /usr/lib/libx.so\n");
}

TEST(GoldenOutput, UnshareAndGc) {
    Pool p;
    EXPECT_EQ(p.out({"unshare", "--dry-run", "web1"}),
              "unshare web1 (dry run, nothing changed)\n"
              "  files made private  3 (dry run: would be)\n"
              "  bytes copied        2.5 kB (2,515 bytes) (dry run: would be)\n");
    EXPECT_EQ(p.out({"unshare", "web1", "/usr/bin/only", "/usr/bin/tool"}),
              "unshare web1\n"
              "  files made private  2\n"
              "  bytes copied        15 bytes\n"
              "run `unify gc` to reclaim objects no guest links any more\n");
    EXPECT_EQ(p.out({"who", "web1:/usr/bin/only"}),
              "web1:/usr/bin/only is not unified: not linked to any object; it is private to its "
              "guest\n");
    EXPECT_EQ(p.out({"gc", "--dry-run"}),
              "gc (dry run, nothing changed)\n"
              "  objects seen                         3\n"
              "  objects would be removed             1\n"
              "  bytes would be reclaimed             10 bytes\n"
              "  stale link records would be dropped  0\n");
    EXPECT_EQ(p.out({"gc"}),
              "gc\n"
              "  objects seen                3\n"
              "  objects removed             1\n"
              "  bytes reclaimed             10 bytes\n"
              "  stale link records dropped  0\n");
}

// import names two counts of configuration files: all the package database names, and those
// the walk met one by one; a note says why they differ.
TEST(GoldenOutput, ImportExplainsTheTwoConfigurationFileCounts) {
    TempDir dir;
    write_file(dir / "g/var/lib/dpkg/status",
               "Package: foo\nStatus: install ok installed\nVersion: 1\nConffiles:\n"
               " /usr/share/foo/defaults 0123456789abcdef0123456789abcdef\n"
               " /etc/foo/gone.conf 0123456789abcdef0123456789abcdef\n\n");
    write_file(dir / "g/usr/share/foo/defaults", "defaults\n");
    ASSERT_EQ(run_unify({"--pool", dir / "pool", "init", "--protect", "none"}).status, 0);
    auto r = run_unify({"--pool", dir / "pool", "import", "g", dir / "g"});
    ASSERT_EQ(r.status, 0) << r.err;
    std::string out = mask(r.out, dir.path());
    EXPECT_NE(out.find("  package database  dpkg (2 configuration files kept private)\n"),
              std::string::npos)
        << out;
    EXPECT_NE(out.find("    1  configuration file of a package (dpkg)\n"), std::string::npos)
        << out;
    EXPECT_NE(out.find("  (of the 2 configuration files the package database names, the walk met "
                       "1; the others are in directories not walked, such as /etc, or not in "
                       "the guest)\n"),
              std::string::npos)
        << out;
}

}  // namespace
}  // namespace unify::test
