// Packaging: the systemd units pass `systemd-analyze verify`, the man page documents every
// command and option the binary has, `cmake --install` and the .deb put every file in place,
// and the bash completion completes commands, options and guest names.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "tests/test_support.h"

namespace unify::test {
namespace {

const std::string kSource = UNIFY_SOURCE_DIR;
const std::string kBuild = UNIFY_BUILD_DIR;
const std::string kBinary = UNIFY_BINARY;

std::string quote(const std::string& s) {
    std::string q = "'";
    for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return q + "'";
}

struct Captured {
    int status = -1;
    std::string out;  // stdout and stderr together
};

// Runs a shell command and returns its exit status and output (stderr merged into stdout).
Captured capture(const std::string& command) {
    Captured c;
    FILE* p = popen(("(" + command + ") 2>&1").c_str(), "r");
    if (!p) return c;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) c.out.append(buf, n);
    int st = pclose(p);
    c.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    return c;
}

bool exists(const std::string& path) {
    return access(path.c_str(), F_OK) == 0;
}

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> out;
    std::istringstream in(text);
    for (std::string l; std::getline(in, l);) out.push_back(l);
    return out;
}

// The command names listed under "Subcommands:" in `unify --help`.
std::vector<std::string> subcommands_from_help() {
    auto r = run_unify({"--help"});
    EXPECT_EQ(r.status, 0) << r.err;
    std::vector<std::string> names;
    bool in = false;
    static const std::regex entry(R"(^  ([a-z][a-z0-9-]*)\s.*)");
    for (const auto& l : lines_of(r.out)) {
        if (l == "Subcommands:") {
            in = true;
            continue;
        }
        if (!in) continue;
        if (l.empty()) break;
        std::smatch m;
        if (std::regex_match(l, m, entry)) names.push_back(m[1]);
    }
    return names;
}

// The option names ("--pool", "-v", ...) listed under "Options:" in a --help text, without
// -h/--help.
std::vector<std::string> options_from_help(const std::string& help) {
    std::vector<std::string> names;
    bool in = false;
    static const std::regex entry(R"(^  (-[^ ]+).*)");
    for (const auto& l : lines_of(help)) {
        if (l == "Options:") {
            in = true;
            continue;
        }
        if (!in) continue;
        if (l.empty()) break;
        std::smatch m;
        if (!std::regex_match(l, m, entry)) continue;
        std::string list = m[1];
        std::istringstream parts(list);
        for (std::string n; std::getline(parts, n, ',');) {
            n = n.substr(0, n.find('='));  // "--config=/etc/unify/unify.conf": a default
            if (n != "-h" && n != "--help") names.push_back(n);
        }
    }
    return names;
}

// The roff text of one section (.SH) or subsection (.SS) of the rendered man page, up to the
// next heading.
std::string man_section(const std::string& roff, const std::string& heading) {
    std::string text;
    bool in = false;
    for (const auto& l : lines_of(roff)) {
        bool is_heading = l.rfind(".SH ", 0) == 0 || l.rfind(".SS ", 0) == 0;
        if (is_heading) {
            if (in) break;
            in = l.substr(4) == heading || l.substr(4) == "\"" + heading + "\"";
            continue;
        }
        if (in) text += l + "\n";
    }
    return text;
}

// Whether a man page section has a definition entry for option `o`: a line that starts with
// an option in bold and names `o` ("\fB-n\fR, \fB--dry-run\fR"), not just a mention.
bool documents_option(const std::string& section, const std::string& o) {
    for (const auto& l : lines_of(section))
        if (l.rfind("\\fB-", 0) == 0 && l.find("\\fB" + o + "\\fR") != std::string::npos)
            return true;
    return false;
}

// `cmake --install` into a scratch prefix writes units that run PREFIX/bin/unify, so
// systemd-analyze verifies them where they are installed (it wants ExecStart's binary to
// exist). The template is verified as the instance unify-refresh@web1, a link beside it.
TEST(Packaging, SystemdUnitsVerify) {
    UNIFY_REQUIRE(need_tool("systemd-analyze"));
    UNIFY_REQUIRE(need_tool("cmake"));
    TempDir tmp;
    std::string prefix = tmp / "prefix";
    auto inst = capture("cmake --install " + quote(kBuild) + " --prefix " + quote(prefix));
    ASSERT_EQ(inst.status, 0) << inst.out;
    std::string units = prefix + "/lib/systemd/system";
    auto gc_unit = read_file(units + "/unify-gc.service");
    EXPECT_NE(gc_unit.find("\nExecStart=" + prefix + "/bin/unify gc --wait"), std::string::npos)
        << gc_unit;
    for (const auto& t : {"service", "timer"})
        ASSERT_EQ(symlink((std::string("unify-refresh@.") + t).c_str(),
                          (units + "/unify-refresh@web1." + t).c_str()),
                  0);
    std::string args;
    for (const auto& u : {"unify-gc.service", "unify-gc.timer", "unify-refresh@web1.service",
                          "unify-refresh@web1.timer"})
        args += " " + quote(units + "/" + u);
    auto r = capture("cd " + quote(tmp.path()) + " && systemd-analyze verify --man=no" + args);
    EXPECT_EQ(r.status, 0) << r.out;
    // Unknown keys and bad values are only warnings (exit 0): any word about our units fails.
    for (const auto& l : lines_of(r.out))
        EXPECT_EQ(l.find("unify"), std::string::npos) << "systemd-analyze: " << l;

    // What the units must say.
    auto gc = read_file(kSource + "/packaging/systemd/unify-gc.service");
    EXPECT_NE(gc.find("\nType=oneshot\n"), std::string::npos);
    EXPECT_NE(gc.find("\nExecStart=/usr/bin/unify gc --wait"), std::string::npos);
    EXPECT_NE(gc.find("\nNice=19\n"), std::string::npos);
    EXPECT_NE(gc.find("\nIOSchedulingClass=idle\n"), std::string::npos);
    EXPECT_NE(gc.find("CAP_LINUX_IMMUTABLE"), std::string::npos);
    auto refresh = read_file(kSource + "/packaging/systemd/unify-refresh@.service");
    EXPECT_NE(refresh.find("\nEnvironmentFile=-/etc/unify/refresh/%i.conf\n"), std::string::npos);
    EXPECT_NE(refresh.find("\nExecStart=/usr/bin/unify import --wait %i ${UNIFY_ROOT}"),
              std::string::npos);
    for (const auto& timer : {"unify-gc.timer", "unify-refresh@.timer"}) {
        auto t = read_file(kSource + "/packaging/systemd/" + timer);
        EXPECT_NE(t.find("\nOnCalendar=daily\n"), std::string::npos) << timer;
        EXPECT_NE(t.find("\nRandomizedDelaySec="), std::string::npos) << timer;
        EXPECT_NE(t.find("\nPersistent=true\n"), std::string::npos) << timer;
        EXPECT_NE(t.find("\nWantedBy=timers.target\n"), std::string::npos) << timer;
    }
}

TEST(Packaging, ManPageCoversEveryCommandAndOption) {
    UNIFY_REQUIRE(need_tool("man"));
    std::string page = kBuild + "/unify.1";
    ASSERT_TRUE(exists(page)) << page << " was not built (scdoc)";
    std::string roff = read_file(page);

    auto commands = subcommands_from_help();
    ASSERT_GE(commands.size(), 7u) << "could not parse the commands from unify --help";
    // Every command has its own subsection, which documents each of its options.
    for (const auto& c : commands) {
        std::string section = man_section(roff, c);
        EXPECT_FALSE(section.empty()) << "no subsection (## " << c << ") for command " << c;
        auto help = run_unify({c, "--help"});
        EXPECT_EQ(help.status, 0) << help.err;
        for (const auto& o : options_from_help(help.out))
            EXPECT_TRUE(documents_option(section, o))
                << "option " << o << " of " << c << " is not in its man page section";
    }
    // Global options.
    std::string global = man_section(roff, "GLOBAL OPTIONS");
    auto top = run_unify({"--help"});
    auto global_opts = options_from_help(top.out);
    EXPECT_GE(global_opts.size(), 5u);
    for (const auto& o : global_opts)
        EXPECT_TRUE(documents_option(global, o))
            << "global option " << o << " is not in GLOBAL OPTIONS";
    for (const auto& s : {"NAME", "SYNOPSIS", "DESCRIPTION", "GLOBAL OPTIONS", "COMMANDS",
                          "EXIT STATUS", "FILES", "ENVIRONMENT", "SEE ALSO"})
        EXPECT_FALSE(man_section(roff, s).empty()) << "man page has no section " << s;

    // man renders it without a warning, with every command as a heading.
    TempDir tmp;
    int st = sh("MANWIDTH=80 man --warnings -l " + quote(page) + " > " + quote(tmp / "out") +
                " 2> " + quote(tmp / "err"));
    EXPECT_EQ(st, 0);
    EXPECT_EQ(read_file(tmp / "err"), "");
    auto rendered = lines_of(read_file(tmp / "out"));
    for (const auto& c : commands) {
        bool found = false;
        for (const auto& l : rendered) found = found || l == "   " + c;
        EXPECT_TRUE(found) << "rendered man page has no heading for " << c;
    }
}

// The long options ("--dry-run") a piece of documentation names, in any markup.
std::set<std::string> long_options_in(const std::string& text) {
    std::set<std::string> out;
    static const std::regex opt(R"(--[a-z][a-z-]*[a-z])");
    for (auto it = std::sregex_iterator(text.begin(), text.end(), opt);
         it != std::sregex_iterator(); ++it)
        out.insert(it->str());
    return out;
}

std::set<std::string> long_only(const std::vector<std::string>& options) {
    std::set<std::string> out;
    for (const auto& o : options)
        if (o.rfind("--", 0) == 0) out.insert(o);
    return out;
}

// README's command table ("| `gc [--dry-run] [--reconcile]` | ... |") and the man page's
// SYNOPSIS ("*unify gc* [*--dry-run*] [*--reconcile*]") name exactly the options each command
// has (`unify CMD --help`), and every command; README's global options paragraph names every
// global option.
TEST(Packaging, ReadmeAndManSynopsisMatchTheCli) {
    std::string readme = read_file(kSource + "/README.md");
    std::string synopsis;
    {
        std::string scd = read_file(kSource + "/packaging/unify.1.scd");
        size_t from = scd.find("\n# SYNOPSIS\n"), to = scd.find("\n# ", from + 1);
        ASSERT_NE(from, std::string::npos);
        synopsis = scd.substr(from, to - from);
    }
    auto commands = subcommands_from_help();
    ASSERT_GE(commands.size(), 7u);
    auto global = long_only(options_from_help(run_unify({"--help"}).out));
    // The command table: from its header to the first blank line.
    size_t table_at = readme.find("| command | what it does |");
    ASSERT_NE(table_at, std::string::npos);
    std::vector<std::string> table;
    for (const auto& l : lines_of(readme.substr(table_at))) {
        if (l.empty()) break;
        table.push_back(l);
    }
    for (const auto& c : commands) {
        std::set<std::string> want;
        for (const auto& o : long_only(options_from_help(run_unify({c, "--help"}).out)))
            if (!global.count(o)) want.insert(o);
        std::string row, line;
        for (const auto& l : table)
            if (l.rfind("| `" + c + " ", 0) == 0 || l.rfind("| `" + c + "`", 0) == 0)
                row = l.substr(3, l.find("` |") - 3);
        for (const auto& l : lines_of(synopsis))
            if (l.rfind("*unify " + c + "*", 0) == 0) line = l;
        EXPECT_FALSE(row.empty()) << "README's command table has no row for " << c;
        EXPECT_FALSE(line.empty()) << "the man page's SYNOPSIS has no line for " << c;
        EXPECT_EQ(long_options_in(row), want) << "README's command table, " << c << ": " << row;
        EXPECT_EQ(long_options_in(line), want) << "man page SYNOPSIS, " << c << ": " << line;
    }
    EXPECT_EQ(table.size(), commands.size() + 2)  // the header and its rule
        << "README's command table lists another set of commands";
    // Global options: in README's Commands section, outside the table.
    size_t from = readme.find("## Commands"), to = readme.find("### What the commands print");
    ASSERT_NE(from, std::string::npos);
    auto named = long_options_in(readme.substr(from, to - from));
    for (const auto& o : global) EXPECT_TRUE(named.count(o)) << "README does not name " << o;
}

// `unify --version`: CMake's project version and the git revision of the sources (built from
// this git checkout), exit 0; --json makes it a document, and every command's document
// carries the version; the man page's footer names it.
TEST(Packaging, VersionFromCmakeAndGit) {
    UNIFY_REQUIRE(need_tool("git"));
    std::smatch m;
    std::string cmake = read_file(kSource + "/CMakeLists.txt");
    ASSERT_TRUE(std::regex_search(cmake, m, std::regex(R"(project\(unify VERSION ([0-9.]+))")));
    const std::string version = m[1];
    auto rev = capture("git -C " + quote(kSource) + " rev-parse --short=12 HEAD");
    ASSERT_EQ(rev.status, 0) << rev.out;
    const std::string revision = lines_of(rev.out).at(0);

    auto r = run_unify({"--version"});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.err, "");
    EXPECT_TRUE(std::regex_match(
        r.out, std::regex("unify " + version + " \\(git " + revision + "(-dirty)?\\)\n")))
        << r.out;
    r = run_unify({"--version", "--json"});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_TRUE(std::regex_search(
        r.out, std::regex("\"command\": \"version\",\n  \"version\": \"" + version +
                          "\",\n  \"revision\": \"" + revision + "(-dirty)?\"")))
        << r.out;
    TempDir tmp;
    r = run_unify({"--pool", tmp / "pool", "--json", "init", "--protect", "none"});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_NE(r.out.find("\n  \"version\": \"" + version + "\"\n}"), std::string::npos) << r.out;

    std::string th;
    for (const auto& l : lines_of(read_file(kBuild + "/unify.1")))
        if (l.rfind(".TH ", 0) == 0) th = l;
    EXPECT_NE(th.find("\"unify " + version + "\""), std::string::npos) << th;
}

// A source tarball has no .git: the version header then has an empty revision (and a .git
// further up is not asked).
TEST(Packaging, VersionWithoutGitHasNoRevision) {
    UNIFY_REQUIRE(need_tool("cmake"));
    TempDir tmp;
    ASSERT_EQ(sh("mkdir -p " + quote(tmp / "src") + " && git -C " + quote(tmp.path()) + " init -q"),
              0);
    auto r = capture("cmake -DSOURCE_DIR=" + quote(tmp / "src") +
                     " -DVERSION=9.8.7 -DOUTPUT=" + quote(tmp / "v.h") + " -P " +
                     quote(kSource + "/packaging/cmake/version.cmake"));
    ASSERT_EQ(r.status, 0) << r.out;
    auto h = read_file(tmp / "v.h");
    EXPECT_NE(h.find("#define UNIFY_VERSION \"9.8.7\"\n"), std::string::npos) << h;
    EXPECT_NE(h.find("#define UNIFY_REVISION \"\"\n"), std::string::npos) << h;
}

// The files every install must have, relative to the prefix.
const std::vector<std::string> kInstalled = {
    "bin/unify",
    "share/man/man1/unify.1.gz",
    "share/doc/unify/copyright",
    "share/doc/unify/changelog.Debian.gz",
    "lib/systemd/system/unify-gc.service",
    "lib/systemd/system/unify-gc.timer",
    "lib/systemd/system/unify-refresh@.service",
    "lib/systemd/system/unify-refresh@.timer",
    "share/doc/unify/unify.conf.example",
    "share/bash-completion/completions/unify",
};

TEST(Packaging, CmakeInstallPutsEveryFileInPlace) {
    UNIFY_REQUIRE(need_tool("cmake"));
    TempDir tmp;
    std::string prefix = tmp / "prefix";
    auto r = capture("cmake --install " + quote(kBuild) + " --prefix " + quote(prefix));
    ASSERT_EQ(r.status, 0) << r.out;
    for (const auto& f : kInstalled) EXPECT_TRUE(exists(prefix + "/" + f)) << f;
    auto help = capture(quote(prefix + "/bin/unify") + " --help");
    EXPECT_EQ(help.status, 0) << help.out;
    auto man = capture("gzip -dc " + quote(prefix + "/share/man/man1/unify.1.gz"));
    EXPECT_EQ(man.out, read_file(kBuild + "/unify.1"));
}

TEST(Packaging, CpackBuildsADebThatInstalls) {
    UNIFY_REQUIRE(need_tool("cpack"));
    UNIFY_REQUIRE(need_tool("dpkg-deb"));
    UNIFY_REQUIRE(need_tool("dpkg-shlibdeps"));
    UNIFY_REQUIRE(need_tool("dpkg"));
    TempDir tmp;
    auto r = capture("cpack -G DEB --config " + quote(kBuild + "/CPackConfig.cmake") + " -B " +
                     quote(tmp / "out"));
    ASSERT_EQ(r.status, 0) << r.out;
    auto deb = capture("ls " + quote(tmp / "out") + "/*.deb");
    ASSERT_EQ(deb.status, 0) << deb.out;
    auto debs = lines_of(deb.out);
    ASSERT_EQ(debs.size(), 1u) << deb.out;
    std::string file = debs[0];

    auto contents = capture("dpkg-deb -c " + quote(file));
    ASSERT_EQ(contents.status, 0) << contents.out;
    for (const auto& f : kInstalled)
        EXPECT_NE(contents.out.find(" ./usr/" + f + "\n"), std::string::npos)
            << f << " not in the .deb:\n"
            << contents.out;

    auto field = [&](const std::string& name) {
        auto f = capture("dpkg-deb -f " + quote(file) + " " + name);
        EXPECT_EQ(f.status, 0) << f.out;
        return f.out;
    };
    EXPECT_EQ(field("Package"), "unify\n");
    EXPECT_EQ(field("Section"), "admin\n");
    EXPECT_EQ(field("Maintainer"), "unify developers <unify-devel@lists.example.org>\n");
    // A synopsis and a long description of several lines.
    EXPECT_GE(lines_of(field("Description")).size(), 5u) << field("Description");
    // libcrypto, LMDB, xxHash, SQLite and libstdc++ are linked into the binary (CMakeLists.txt:
    // process start, bench P5): only libc is left for dpkg-shlibdeps to find.
    std::string depends = field("Depends");
    EXPECT_NE(depends.find("libc6"), std::string::npos) << "libc6 not in Depends: " << depends;
    for (const auto& lib : {"liblmdb0", "libssl3", "libxxhash0", "libsqlite3-0", "libstdc++6"})
        EXPECT_EQ(depends.find(lib), std::string::npos) << lib << " in Depends: " << depends;

    // Install it into a scratch root (the libraries come from this machine).
    std::string root = tmp / "root";
    ASSERT_EQ(sh("mkdir -p " + quote(root + "/var/lib/dpkg/info") + " " +
                 quote(root + "/var/lib/dpkg/updates") + " && touch " +
                 quote(root + "/var/lib/dpkg/status")),
              0);
    auto inst = capture("dpkg --root=" + quote(root) + " --log=" + quote(tmp / "dpkg.log") +
                        " --force-depends --force-not-root -i " + quote(file));
    ASSERT_EQ(inst.status, 0) << inst.out;
    for (const auto& f : kInstalled) EXPECT_TRUE(exists(root + "/usr/" + f)) << f;
    auto help = capture(quote(root + "/usr/bin/unify") + " --help");
    EXPECT_EQ(help.status, 0) << help.out;
    EXPECT_NE(help.out.find("Subcommands:"), std::string::npos) << help.out;
}

// lintian (Debian's package checker) finds no error in the .deb; its whole output goes to the
// test log.
TEST(Packaging, DebIsLintianClean) {
    UNIFY_REQUIRE(need_tool("cpack"));
    UNIFY_REQUIRE(need_tool("dpkg-shlibdeps"));
    UNIFY_REQUIRE(need_tool("lintian"));
    TempDir tmp;
    auto r = capture("cpack -G DEB --config " + quote(kBuild + "/CPackConfig.cmake") + " -B " +
                     quote(tmp / "out"));
    ASSERT_EQ(r.status, 0) << r.out;
    auto deb = capture("ls " + quote(tmp / "out") + "/*.deb");
    ASSERT_EQ(deb.status, 0) << deb.out;
    auto l = capture("lintian --fail-on error --display-info " + quote(lines_of(deb.out).at(0)));
    std::cout << "lintian:\n" << l.out;
    EXPECT_EQ(l.status, 0) << l.out;
    for (const auto& line : lines_of(l.out)) EXPECT_NE(line.rfind("E: ", 0), 0u) << line;
}

// Calls the completion function for `words` (the last one is completed) and returns the
// candidates, one per line.
std::string complete(const std::vector<std::string>& words, const std::string& env = "") {
    std::string arr;
    for (const auto& w : words) arr += " " + quote(w);
    std::string script =
        "source " + quote(kSource + "/packaging/bash-completion/unify") + "; COMP_WORDS=(" + arr +
        "); COMP_CWORD=" + std::to_string(words.size() - 1) +
        "; _unify; ((${#COMPREPLY[@]} == 0)) || printf '%s\\n' \"${COMPREPLY[@]}\"";
    auto dir = kBinary.substr(0, kBinary.rfind('/'));
    auto r =
        capture("cd / && " + env + " PATH=" + quote(dir) + ":\"$PATH\" bash -c " + quote(script));
    EXPECT_EQ(r.status, 0) << r.out;
    return r.out;
}

TEST(Packaging, BashCompletionKnowsEveryCommandAndOption) {
    UNIFY_REQUIRE(need_tool("bash"));
    auto commands = subcommands_from_help();
    ASSERT_GE(commands.size(), 7u);
    std::set<std::string> want(commands.begin(), commands.end());
    auto got_lines = lines_of(complete({"unify", ""}));
    EXPECT_EQ(std::set<std::string>(got_lines.begin(), got_lines.end()), want);
    for (const auto& c : commands) {
        auto help = run_unify({c, "--help"});
        auto offered = lines_of(complete({"unify", c, "-"}));
        std::set<std::string> have(offered.begin(), offered.end());
        for (const auto& o : options_from_help(help.out))
            EXPECT_TRUE(have.count(o)) << "unify " << c << " -<TAB> does not offer " << o;
    }
    auto top = run_unify({"--help"});
    auto offered = lines_of(complete({"unify", "-"}));
    std::set<std::string> have(offered.begin(), offered.end());
    for (const auto& o : options_from_help(top.out))
        EXPECT_TRUE(have.count(o)) << "unify -<TAB> does not offer " << o;
}

TEST(Packaging, BashCompletion) {
    UNIFY_REQUIRE(need_tool("bash"));
    EXPECT_EQ(complete({"unify", "im"}), "import\n");
    EXPECT_EQ(complete({"unify", "--pool", "/x", "g"}), "gc\n");
    auto gc_opts = complete({"unify", "gc", "--"});
    EXPECT_NE(gc_opts.find("--dry-run\n"), std::string::npos) << gc_opts;
    EXPECT_NE(gc_opts.find("--wait\n"), std::string::npos) << gc_opts;
    EXPECT_EQ(gc_opts.find("--protect"), std::string::npos) << gc_opts;
    EXPECT_EQ(complete({"unify", "forget", "--k"}), "--keep-links\n");
    EXPECT_EQ(complete({"unify", "init", "--protect", "imm"}), "immutable\n");

    // Guest names come from `unify list` of the pool on the command line or $UNIFY_POOL.
    TempDir tmp;
    std::string pool = tmp / "pool";
    write_file(tmp / "web1/usr/bin/tool", "tool\n");
    write_file(tmp / "web2/usr/bin/tool", "tool\n");
    ASSERT_EQ(run_unify({"--pool", pool, "init", "--protect", "none"}).status, 0);
    for (const auto& g : {"web1", "web2"}) {
        auto r = run_unify({"--pool", pool, "-q", "import", g, tmp / g});
        ASSERT_EQ(r.status, 0) << r.err;
    }
    EXPECT_EQ(complete({"unify", "--pool", pool, "status", "w"}), "web1\nweb2\n");
    EXPECT_EQ(complete({"unify", "unshare", "web"}, "UNIFY_POOL=" + quote(pool)), "web1\nweb2\n");
    EXPECT_EQ(complete({"unify", "--pool=" + pool, "forget", "--keep-links", "web2"}), "web2\n");
    EXPECT_EQ(complete({"unify", "who", "web1"}, "UNIFY_POOL=" + quote(pool)), "web1:\n");
    EXPECT_EQ(complete({"unify", "import", "--pool", pool, "web1"}), "web1\n");
    // ROOT: directories only.
    EXPECT_EQ(complete({"unify", "import", "web3", tmp / "we"}),
              tmp / "web1" + "\n" + tmp / "web2" + "\n");
    EXPECT_EQ(complete({"unify", "import", "web3", tmp / "web1/usr/bin/t"}), "");
    // unshare PATH: host paths inside the root stay host paths.
    EXPECT_EQ(
        complete({"unify", "unshare", "web1", tmp / "web1/usr/bin/t"}, "UNIFY_POOL=" + quote(pool)),
        tmp / "web1/usr/bin/tool" + "\n");
    // Guest paths, relative to the guest's root (which `unify list --json` gives).
    write_file(tmp / "web2/usr/bin/other", "other\n");
    EXPECT_EQ(complete({"unify", "--pool", pool, "unshare", "web1", "/usr/bin/t"}),
              "/usr/bin/tool\n");
    EXPECT_EQ(complete({"unify", "unshare", "web2", "/usr/b"}, "UNIFY_POOL=" + quote(pool)),
              "/usr/bin/\n");
    auto offered = lines_of(
        complete({"unify", "unshare", "-n", "web2", "/usr/bin/"}, "UNIFY_POOL=" + quote(pool)));
    EXPECT_EQ(std::set<std::string>(offered.begin(), offered.end()),
              (std::set<std::string>{"/usr/bin/other", "/usr/bin/tool"}));
    EXPECT_EQ(complete({"unify", "unshare", "web2", ""}, "UNIFY_POOL=" + quote(pool)), "/usr/\n");
    // No pool: no guest names, and no error.
    EXPECT_EQ(complete({"unify", "status", ""}, "UNIFY_POOL=" + quote(tmp / "nopool")), "");
}

}  // namespace
}  // namespace unify::test
