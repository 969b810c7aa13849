// The progress line: on a terminal (a pseudo-terminal made by script(1)), import, unshare and
// gc draw it on stderr with '\r'; through a pipe, or with --quiet or --json, there is none.
#include <unistd.h>

#include "tests/test_support.h"

namespace unify::test {
namespace {

std::string quote(const std::string& s) {
    std::string out = "'";
    for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return out + "'";
}

// Runs unify under a pseudo-terminal with stdout thrown away: what comes back is stderr.
std::string stderr_on_terminal(const std::vector<std::string>& args) {
    std::string cmd = quote(UNIFY_BINARY);
    for (const auto& a : args) cmd += " " + quote(a);
    cmd += " >/dev/null";
    std::string out = "/tmp/unify-pty.XXXXXX";
    close(mkstemp(out.data()));
    sh("script -qfec " + quote(cmd) + " /dev/null > " + quote(out) + " 2>&1 </dev/null");
    std::string text = read_file(out);
    unlink(out.c_str());
    return text;
}

TEST(Progress, DrawnOnATerminalOnly) {
    TempDir dir;
    UNIFY_REQUIRE(need_immutable(dir.path()));
    UNIFY_REQUIRE(need_tool("script"));
    const std::string pool = dir / "pool";
    for (int g = 1; g <= 2; ++g)
        for (int i = 0; i < 20; ++i)
            write_file(dir / ("g" + std::to_string(g) + "/usr/lib/f" + std::to_string(i)),
                       "shared " + std::to_string(i) + "\n");
    ASSERT_EQ(run_unify({"--pool", pool, "init", "--protect", "immutable"}).status, 0);

    std::string err = stderr_on_terminal({"--pool", pool, "import", "g1", dir / "g1"});
    EXPECT_TRUE(contains(err, "\rimport: 20 files")) << err;
    EXPECT_TRUE(contains(err, "hashed")) << err;
    EXPECT_TRUE(contains(err, "\r\033[K")) << err;  // cleared at the end

    err = stderr_on_terminal({"--pool", pool, "unshare", "g1"});
    EXPECT_TRUE(contains(err, "\runshare: ")) << err;
    EXPECT_TRUE(contains(err, "files, ")) << err;
    EXPECT_TRUE(contains(err, "%")) << err;

    err = stderr_on_terminal({"--pool", pool, "gc"});
    EXPECT_TRUE(contains(err, "\rgc: ")) << err;

    // Not with --quiet or --json, even on a terminal.
    for (const char* flag : {"--quiet", "--json"}) {
        err = stderr_on_terminal({"--pool", pool, flag, "import", "g2", dir / "g2"});
        EXPECT_FALSE(contains(err, "\r")) << flag << ": " << err;
        ASSERT_EQ(run_unify({"--pool", pool, "unshare", "g2"}).status, 0);
    }

    // Not through a pipe.
    auto r = run_unify({"--pool", pool, "import", "g2", dir / "g2"});
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_FALSE(contains(r.err, "\r")) << r.err;
    EXPECT_FALSE(contains(r.err, "files")) << r.err;
}

}  // namespace
}  // namespace unify::test
