// End-to-end tests of `unify import`: each test builds small guest trees on the real
// filesystem under /var/tmp, creates a pool with `unify init` (protection immutable, as root),
// runs the real binary, and checks what a guest and the pool look like afterwards: inode
// numbers, link counts, the immutable flag, manifests (everything a guest can see) and the
// summary text.
#include <fcntl.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <unistd.h>

#include <climits>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "tests/test_support.h"

namespace unify::test {
namespace {

constexpr int64_t kSec = 1700000000;  // every test file gets this mtime second ...
constexpr int64_t kNsec = 123456789;  // ... and these nanoseconds, unless a test says otherwise

std::string q(const std::string& s) {
    return "'" + s + "'";
}

// A regular file whose content, mode, owner (root) and mtime are fixed by the arguments: two
// calls with the same arguments make files identical in everything an object id covers.
void make_file(const std::string& path, const std::string& content, mode_t mode = 0644,
               int64_t nsec = kNsec) {
    write_file(path, content, mode);
    set_mtime(path, kSec, nsec);
}

nlink_t nlink(const std::string& path) {
    return stat_path(path).st_nlink;
}

// The line of a manifest for one path ("usr/lib/f"), without the path.
std::string manifest_line(const std::string& m, const std::string& rel) {
    std::string key = "./" + rel + " ";
    size_t at = m.compare(0, key.size(), key) == 0 ? 0 : m.find("\n" + key);
    if (at == std::string::npos) return "(missing " + rel + ")";
    if (at) ++at;
    return m.substr(at + key.size(), m.find('\n', at) - at - key.size());
}

// Output of a shell command (stdout only).
testing::AssertionResult init_pool(const std::string& pool) {
    RunResult r = run_unify({"--pool", pool, "init"});
    if (r.status != 0) return testing::AssertionFailure() << "unify init: " << show(r);
    if (r.out.find("protection immutable") == std::string::npos)
        return testing::AssertionFailure() << "expected protection immutable: " << show(r);
    return testing::AssertionSuccess();
}

RunResult import(const std::string& pool, const std::string& name, const std::string& root,
                 const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args = {"--pool", pool, "import", name, root};
    args.insert(args.end(), extra.begin(), extra.end());
    return run_unify(args);
}

// Parses a count with thousands separators at the start of s; -1 if there is none.
int64_t leading_count(const std::string& s) {
    int64_t n = -1;
    for (char c : s) {
        if (c == ',') continue;
        if (c < '0' || c > '9') break;
        n = (n < 0 ? 0 : n * 10) + (c - '0');
    }
    return n;
}

std::string trim_left(const std::string& s) {
    size_t i = s.find_first_not_of(' ');
    return i == std::string::npos ? "" : s.substr(i);
}

// The number on the summary line labelled `label` ("  newly linked      3 ..."), or -1.
int64_t summary_number(const std::string& out, const std::string& label) {
    std::istringstream in(out);
    for (std::string line; std::getline(in, line);) {
        line = trim_left(line);
        if (line.compare(0, label.size(), label) != 0) continue;
        return leading_count(trim_left(line.substr(label.size())));
    }
    return -1;
}

// The count of a "skipped:" line ("    3  symlink") whose reason starts with `reason`, or -1.
int64_t skipped_number(const std::string& out, const std::string& reason) {
    size_t at = out.find("  skipped:\n");
    if (at == std::string::npos) return -1;
    std::istringstream in(out.substr(at));
    for (std::string line; std::getline(in, line);) {
        line = trim_left(line);
        size_t gap = line.find("  ");
        if (gap == std::string::npos) continue;
        int64_t n = leading_count(line.substr(0, gap));
        if (n >= 0 && line.compare(gap + 2, reason.size(), reason) == 0) return n;
    }
    return -1;
}

// A dry run's summary with its "(dry run ...)" notes taken out.
std::string without_dry_run_notes(std::string out) {
    for (const std::string note : {" (dry run: would be)", " (dry run, nothing changed)"})
        for (size_t at; (at = out.find(note)) != std::string::npos;) out.erase(at, note.size());
    return out;
}

struct Object {
    std::string path;
    std::string shard;  // the directory name under objects/
    std::string name;
    ino_t ino;
};

// Every object file in the pool.
std::vector<Object> objects(const std::string& pool) {
    std::vector<Object> out;
    std::error_code ec;
    for (auto it = std::filesystem::recursive_directory_iterator(pool + "/objects", ec);
         !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
        if (!it->is_regular_file()) continue;
        std::string p = it->path().string();
        out.push_back(Object{p, it->path().parent_path().filename().string(),
                             it->path().filename().string(), ino(p)});
    }
    if (ec) ADD_FAILURE() << "walking " << pool << "/objects: " << ec.message();
    return out;
}

// The pool object that is inode `i`, or an empty path.
std::string object_with_ino(const std::string& pool, ino_t i) {
    for (const Object& o : objects(pool))
        if (o.ino == i) return o.path;
    return "";
}

bool is_object_name(const std::string& shard, const std::string& name) {
    if (name.size() != 64 || name.substr(0, 2) != shard) return false;
    return name.find_first_not_of("0123456789abcdef") == std::string::npos;
}

// The flags column of `lsattr` for one file.
std::string lsattr_flags(const std::string& path) {
    std::string out = capture("lsattr -d " + q(path) + " 2>&1");
    return out.substr(0, out.find(' '));
}

// Names below root that start like one of unify's temporaries.
std::string temp_names(const std::string& root) {
    return capture("find " + q(root) + " -name '.unify-*'");
}

std::string pool_token(const std::string& pool) {
    std::istringstream in(read_file(pool + "/pool.conf"));
    for (std::string line; std::getline(in, line);)
        if (line.compare(0, 6, "token=") == 0) return line.substr(6);
    return "";
}

bool make_socket(const std::string& path) {
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    if (path.size() >= sizeof a.sun_path) {
        close(fd);
        return false;
    }
    memcpy(a.sun_path, path.c_str(), path.size() + 1);
    bool ok = bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    close(fd);
    return ok;
}

// Every test runs on all of import's paths (tests/test_support.h).
using Import = BothSettlePaths;
UNIFY_ON_ALL_SETTLE_PATHS(Import);

// 1. Identical files in two guests become one immutable pool object.
TEST_P(Import, IdenticalFilesInTwoGuestsShareOneImmutableObject) {
    TempDir dir;
    UNIFY_REQUIRE(need_immutable(dir.path()));
    UNIFY_REQUIRE(need_tool("setfattr"));
    UNIFY_REQUIRE(need_tool("lsattr"));
    std::string pool = dir / "pool", g1 = dir / "g1", g2 = dir / "g2";
    ASSERT_TRUE(init_pool(pool));
    for (const std::string& g : {g1, g2}) {
        make_file(g + "/usr/bin/tool", "#!/bin/sh\necho identical\n", 0755);
        ASSERT_EQ(sh("setfattr -n user.origin -v same " + q(g + "/usr/bin/tool")), 0);
        set_mtime(g + "/usr/bin/tool", kSec, kNsec);
    }
    std::string before1 = manifest(g1), before2 = manifest(g2);
    ASSERT_NE(ino(g1 + "/usr/bin/tool"), ino(g2 + "/usr/bin/tool"));

    RunResult r1 = import(pool, "g1", g1);
    ASSERT_TRUE(succeeded(r1));
    EXPECT_EQ(summary_number(r1.out, "new objects"), 1) << r1.out;
    RunResult r2 = import(pool, "g2", g2);
    ASSERT_TRUE(succeeded(r2));
    EXPECT_EQ(summary_number(r2.out, "newly linked"), 1) << r2.out;
    EXPECT_EQ(summary_number(r2.out, "new objects"), 0) << r2.out;

    struct stat s1 = stat_path(g1 + "/usr/bin/tool"), s2 = stat_path(g2 + "/usr/bin/tool");
    EXPECT_EQ(s1.st_ino, s2.st_ino);
    EXPECT_EQ(s1.st_nlink, 3u);  // two guests and the pool
    std::vector<Object> objs = objects(pool);
    ASSERT_EQ(objs.size(), 1u);
    EXPECT_TRUE(is_object_name(objs[0].shard, objs[0].name)) << objs[0].path;
    EXPECT_EQ(objs[0].ino, s1.st_ino);
    EXPECT_TRUE(is_immutable(objs[0].path));
    EXPECT_TRUE(is_immutable(g1 + "/usr/bin/tool"));
    std::string flags = lsattr_flags(g2 + "/usr/bin/tool");
    EXPECT_NE(flags.find('i'), std::string::npos) << "lsattr flags: " << flags;
    EXPECT_EQ(manifest(g1), before1);
    EXPECT_EQ(manifest(g2), before2);
    EXPECT_EQ(temp_names(dir.path()), "");
}

// 2. Same content but one difference in identity metadata: never shared, nothing changed.
TEST_P(Import, SameContentDifferentMetadataIsNotShared) {
    TempDir dir;
    UNIFY_REQUIRE(need_immutable(dir.path()));
    UNIFY_REQUIRE(need_tool("setfattr"));
    UNIFY_REQUIRE(need_tool("setcap"));
    UNIFY_REQUIRE(need_tool("setfacl"));
    std::string pool = dir / "pool", g1 = dir / "g1", g2 = dir / "g2";
    ASSERT_TRUE(init_pool(pool));
    const std::string content = "the same bytes in every file of this test\n";
    const std::vector<std::string> variants = {"mode", "owner", "mtime", "xattr", "cap", "acl"};
    // g1 holds the reference version of every file; g2 the same files, each with one change.
    make_file(g1 + "/usr/lib/control", content);
    make_file(g2 + "/usr/lib/control", content);
    for (const auto& v : variants) {
        make_file(g1 + "/usr/lib/" + v, content);
        make_file(g2 + "/usr/lib/" + v, content);
    }
    std::string d = g2 + "/usr/lib/";
    ASSERT_EQ(chmod((d + "mode").c_str(), 0600), 0);
    ASSERT_EQ(lchown((d + "owner").c_str(), 1234, -1), 0);
    set_mtime(d + "mtime", kSec, kNsec + 1);  // one nanosecond later
    ASSERT_EQ(sh("setfattr -n user.x -v 1 " + q(d + "xattr")), 0);
    ASSERT_EQ(sh("setcap cap_net_raw+ep " + q(d + "cap")), 0);
    ASSERT_EQ(sh("setfacl -m u:1234:r " + q(d + "acl")), 0);
    for (const auto& v : variants) set_mtime(d + v, kSec, v == "mtime" ? kNsec + 1 : kNsec);
    // The ACL variant differs only in its ACL: its mode bits still read 0644.
    EXPECT_EQ(stat_path(d + "acl").st_mode & 07777, 0644u);
    std::string before1 = manifest(g1), before2 = manifest(g2);
    // The setup did what it says: each variant's manifest line differs from its reference.
    EXPECT_EQ(manifest_line(before1, "usr/lib/control"), manifest_line(before2, "usr/lib/control"));
    for (const auto& v : variants)
        EXPECT_NE(manifest_line(before1, "usr/lib/" + v), manifest_line(before2, "usr/lib/" + v))
            << v;

    ASSERT_TRUE(succeeded(import(pool, "g1", g1)));
    ASSERT_TRUE(succeeded(import(pool, "g2", g2)));

    // The control shares, which shows the two guests could share at all.
    EXPECT_EQ(ino(g1 + "/usr/lib/control"), ino(g2 + "/usr/lib/control"));
    std::set<ino_t> seen = {ino(g1 + "/usr/lib/control")};
    for (const auto& v : variants) {
        std::string p1 = g1 + "/usr/lib/" + v, p2 = g2 + "/usr/lib/" + v;
        EXPECT_NE(ino(p1), ino(p2)) << v << " is shared although its metadata differs";
        EXPECT_EQ(ino(p1), ino(g1 + "/usr/lib/control")) << v;  // g1's copies are identical
        EXPECT_TRUE(seen.insert(ino(p2)).second) << v << " shares an inode with another variant";
        EXPECT_EQ(nlink(p2), 2u) << v << ": expected its own object (guest + pool)";
        EXPECT_FALSE(object_with_ino(pool, ino(p2)).empty()) << v;
    }
    EXPECT_EQ(objects(pool).size(), 1 + variants.size());
    EXPECT_EQ(manifest(g1), before1);
    EXPECT_EQ(manifest(g2), before2);
    EXPECT_NE(capture("getcap " + q(d + "cap")).find("cap_net_raw"), std::string::npos);
    EXPECT_NE(capture("getfacl -n " + q(d + "acl") + " 2>/dev/null").find("user:1234:r"),
              std::string::npos);
}

// 2a. A later guest's file is compared byte by byte with the object the first guest has at
// its path instead of hashed (store/identify.h, identify_as_object): the same size is not
// enough, and neither are the same first bytes.
TEST_P(Import, ALaterGuestsFileIsComparedWithTheSamePathsObjectToTheLastByte) {
    TempDir dir;
    UNIFY_REQUIRE(need_immutable(dir.path()));
    std::string pool = dir / "pool", g1 = dir / "g1", g2 = dir / "g2";
    ASSERT_TRUE(init_pool(pool));
    std::string big(3 << 19, 'b');  // 1.5 MiB: more than one read of the compare
    for (size_t i = 0; i < big.size(); i += 4093) big[i] = char('a' + i % 26);
    std::string big2 = big;
    big2.back() = 'Z';
    make_file(g1 + "/usr/lib/big", big);
    make_file(g2 + "/usr/lib/big", big2);
    // The smallest file compared (16 KiB) rather than hashed, its first byte different.
    std::string small(16 * 1024, 's'), small2 = small;
    small2.front() = 'S';
    make_file(g1 + "/usr/lib/small", small);
    make_file(g2 + "/usr/lib/small", small2);
    make_file(g1 + "/usr/lib/same", "the same in both\n");
    make_file(g2 + "/usr/lib/same", "the same in both\n");
    ASSERT_EQ(stat_path(g2 + "/usr/lib/small").st_size, stat_path(g1 + "/usr/lib/small").st_size);
    std::string before1 = manifest(g1), before2 = manifest(g2);

    ASSERT_TRUE(succeeded(import(pool, "g1", g1)));
    RunResult r2 = import(pool, "g2", g2);
    ASSERT_TRUE(succeeded(r2));
    EXPECT_EQ(summary_number(r2.out, "new objects"), 2) << r2.out;

    EXPECT_EQ(ino(g1 + "/usr/lib/same"), ino(g2 + "/usr/lib/same"));  // the control shares
    for (const char* f : {"big", "small"}) {
        std::string p1 = g1 + "/usr/lib/" + f, p2 = g2 + "/usr/lib/" + f;
        EXPECT_NE(ino(p1), ino(p2)) << f << " is shared although its bytes differ";
        EXPECT_EQ(nlink(p2), 2u) << f << ": expected its own object (guest + pool)";
    }
    EXPECT_EQ(read_file(g2 + "/usr/lib/big"), big2);
    EXPECT_EQ(read_file(g2 + "/usr/lib/small"), small2);
    EXPECT_EQ(manifest(g1), before1);
    EXPECT_EQ(manifest(g2), before2);
    EXPECT_TRUE(succeeded(run_unify({"--pool", pool, "verify", "--full"})));
}

// 2b. The object a file is compared with gives it its id only through the object's own name:
// an index record whose content hash was damaged is not believed (the file is hashed), so no
// object is made under an id its bytes do not have.
TEST_P(Import, ADamagedObjectRecordIsNotTrustedForTheIdOfACopy) {
    TempDir dir;
    UNIFY_REQUIRE(need_immutable(dir.path()));
    std::string pool = dir / "pool", g1 = dir / "g1", g2 = dir / "g2";
    ASSERT_TRUE(init_pool(pool));
    const std::string same(16 * 1024, 'f');  // compared, not hashed (16 KiB and more)
    make_file(g1 + "/usr/lib/f", same);
    make_file(g2 + "/usr/lib/f", same);
    ASSERT_TRUE(succeeded(import(pool, "g1", g1)));
    ASSERT_TRUE(edit_only_object_record(pool, [](ObjectRecord& r) { r.content[0] ^= 0xff; }));
    ASSERT_TRUE(succeeded(import(pool, "g2", g2)));
    EXPECT_EQ(ino(g1 + "/usr/lib/f"), ino(g2 + "/usr/lib/f"));
    EXPECT_EQ(objects(pool).size(), 1u);
}

// 3. A setuid file shares only with an identical setuid file and keeps its mode.
TEST_P(Import, SetuidFileSharesOnlyWithSetuidFile) {
    TempDir dir;
    UNIFY_REQUIRE(need_immutable(dir.path()));
    std::string pool = dir / "pool", g1 = dir / "g1", g2 = dir / "g2";
    ASSERT_TRUE(init_pool(pool));
    const std::string content = "pretend this is a setuid binary\n";
    make_file(g1 + "/usr/bin/su", content, 04755);
    make_file(g2 + "/usr/bin/su", content, 04755);
    make_file(g2 + "/usr/bin/plain", content, 0755);
    ASSERT_EQ(stat_path(g1 + "/usr/bin/su").st_mode & 07777, 04755u);
    std::string before1 = manifest(g1), before2 = manifest(g2);

    ASSERT_TRUE(succeeded(import(pool, "g1", g1)));
    ASSERT_TRUE(succeeded(import(pool, "g2", g2)));

    EXPECT_EQ(ino(g1 + "/usr/bin/su"), ino(g2 + "/usr/bin/su"));
    EXPECT_EQ(nlink(g1 + "/usr/bin/su"), 3u);
    EXPECT_NE(ino(g2 + "/usr/bin/plain"), ino(g2 + "/usr/bin/su"));
    EXPECT_EQ(stat_path(g1 + "/usr/bin/su").st_mode & 07777, 04755u);
    EXPECT_EQ(stat_path(g2 + "/usr/bin/plain").st_mode & 07777, 0755u);
    EXPECT_EQ(manifest(g1), before1);
    EXPECT_EQ(manifest(g2), before2);
}

// 4. Default exclusions and --exclude keep files private, also on a later import without
// --exclude (the guest's excludes are stored).
TEST_P(Import, ExcludedFilesStayPrivate) {
    TempDir dir;
    UNIFY_REQUIRE(need_immutable(dir.path()));
    std::string pool = dir / "pool", g1 = dir / "g1", g2 = dir / "g2";
    ASSERT_TRUE(init_pool(pool));
    // (Not /var/lib/dpkg/status: that one is read as the guest's dpkg database.)
    const std::vector<std::string> by_default = {"/etc/passwd",    "/var/log/dpkg.log",
                                                 "/tmp/scratch",   "/home/u/notes",
                                                 "/root/.profile", "/srv/www/index.html"};
    const std::vector<std::string> by_option = {"/usr/lib/app.conf", "/usr/share/doc/README",
                                                "/usr/share/doc/pkg/copyright"};
    for (const std::string& g : {g1, g2}) {
        for (const auto& p : by_default) make_file(g + p, "shared content of " + p + "\n");
        for (const auto& p : by_option) make_file(g + p, "shared content of " + p + "\n");
        make_file(g + "/usr/lib/libx.so", "control: shared\n");
    }
    std::map<std::string, ino_t> inos;
    for (const std::string& g : {g1, g2}) {
        for (const auto& p : by_default) inos[g + p] = ino(g + p);
        for (const auto& p : by_option) inos[g + p] = ino(g + p);
    }
    std::string before1 = manifest(g1), before2 = manifest(g2);
    const std::vector<std::string> excludes = {"--exclude", "*.conf", "--exclude",
                                               "/usr/share/doc/*"};

    RunResult r1 = import(pool, "g1", g1, excludes);
    ASSERT_TRUE(succeeded(r1));
    RunResult r2 = import(pool, "g2", g2, excludes);
    ASSERT_TRUE(succeeded(r2));
    for (const RunResult* r : {&r1, &r2}) {
        // app.conf by name, README by the whole-path glob; pkg/ is a directory it matches.
        EXPECT_EQ(skipped_number(r->out, "excluded by --exclude"), 2) << r->out;
        EXPECT_EQ(skipped_number(r->out, "directories excluded by --exclude"), 1) << r->out;
        // /etc is walked for its safe subtrees (/etc/termcap, /etc/gconf/schemas), so
        // /etc/passwd is a file excluded by the default rules, not part of a pruned tree.
        EXPECT_EQ(skipped_number(r->out, "directories excluded by the default rules"), 5) << r->out;
        EXPECT_EQ(skipped_number(r->out, "excluded by the default rules"), 1) << r->out;
    }
    auto check_private = [&](const std::string& when) {
        EXPECT_EQ(ino(g1 + "/usr/lib/libx.so"), ino(g2 + "/usr/lib/libx.so")) << when;
        for (const auto& [p, i] : inos) {
            EXPECT_EQ(ino(p), i) << when << ": " << p;
            EXPECT_EQ(nlink(p), 1u) << when << ": " << p;
            EXPECT_FALSE(is_immutable(p)) << when << ": " << p;
        }
        EXPECT_EQ(manifest(g1), before1) << when;
        EXPECT_EQ(manifest(g2), before2) << when;
    };
    check_private("after the first imports");

    // Again without --exclude: the stored globs still apply.
    RunResult again1 = import(pool, "g1", g1);
    ASSERT_TRUE(succeeded(again1));
    RunResult again2 = import(pool, "g2", g2);
    ASSERT_TRUE(succeeded(again2));
    EXPECT_EQ(skipped_number(again1.out, "excluded by --exclude"), 2) << again1.out;
    EXPECT_EQ(skipped_number(again2.out, "directories excluded by --exclude"), 1) << again2.out;
    EXPECT_EQ(summary_number(again2.out, "newly linked"), 0) << again2.out;
    check_private("after the re-imports without --exclude");
    EXPECT_EQ(objects(pool).size(), 1u);
}

// 4b. Rules made stricter on a re-import (an --exclude added, --min-size raised): the files
// they now keep private and that are linked get private copies, as `unshare` gives (before,
// the walk skipped them and they stayed protected links that `who` listed and a package
// upgrade could not replace); the dry run says how many first and changes nothing.
TEST_P(Import, StricterRulesMakeTheirLinkedFilesPrivate) {
    TempDir dir;
    UNIFY_REQUIRE(need_immutable(dir.path()));
    std::string pool = dir / "pool", g1 = dir / "g1", g2 = dir / "g2";
    ASSERT_TRUE(init_pool(pool));
    for (const std::string& g : {g1, g2}) {
        make_file(g + "/usr/share/locale/de/app.mo", "translations\n");
        make_file(g + "/usr/share/locale/fr/app.mo", "traductions\n");
        make_file(g + "/usr/lib/tiny", "tiny\n");
        make_file(g + "/usr/lib/big", std::string(4000, 'b'));
    }
    ASSERT_TRUE(succeeded(import(pool, "g1", g1)));
    ASSERT_TRUE(succeeded(import(pool, "g2", g2)));
    for (const char* p : {"/usr/share/locale/de/app.mo", "/usr/lib/tiny"})
        ASSERT_TRUE(is_immutable(g1 + p)) << p;
    const std::string before = manifest(g1), before2 = manifest(g2);
    const std::vector<std::string> stricter = {"--exclude", "/usr/share/locale", "--min-size",
                                               "1000"};

    std::vector<std::string> dry_args = stricter;
    dry_args.insert(dry_args.begin(), "--dry-run");
    RunResult dry = import(pool, "g1", g1, dry_args);
    ASSERT_TRUE(succeeded(dry));
    EXPECT_EQ(summary_number(dry.out, "made private"), 3) << dry.out;
    EXPECT_TRUE(is_immutable(g1 + "/usr/lib/tiny")) << "the dry run changed something";

    RunResult r = import(pool, "g1", g1, stricter);
    ASSERT_TRUE(succeeded(r));
    EXPECT_EQ(summary_number(r.out, "made private"), 3) << r.out;
    for (const char* p :
         {"/usr/share/locale/de/app.mo", "/usr/share/locale/fr/app.mo", "/usr/lib/tiny"}) {
        EXPECT_EQ(nlink(g1 + p), 1u) << p;
        EXPECT_FALSE(is_immutable(g1 + p)) << p;
        EXPECT_TRUE(is_immutable(g2 + p)) << p << ": g2's rules did not change";
        EXPECT_EQ(who_paths(pool, g2 + p), std::set<std::string>{"g2:" + std::string(p)}) << p;
    }
    EXPECT_EQ(ino(g1 + "/usr/lib/big"), ino(g2 + "/usr/lib/big"));
    EXPECT_EQ(manifest(g1), before);
    EXPECT_EQ(manifest(g2), before2);
    // The next re-import has nothing more to do, and verify finds the pool as it should be.
    RunResult again = import(pool, "g1", g1);
    ASSERT_TRUE(succeeded(again));
    EXPECT_EQ(summary_number(again.out, "made private"), -1) << again.out;
    EXPECT_TRUE(succeeded(run_unify({"--pool", pool, "verify", "--full"})));
}

// 4c. "bytes saved" of names of one inode that fall into several batches (32 files each under
// a 256-fd limit): a name walked after others of its inode were replaced shows the link count
// left, down to 1, and was counted as freeing the inode again and again (a guest of hard-link
// pairs: 0 bytes by the dry run, megabytes by the import while `df` grew). The import now
// says what its dry run said.
TEST_P(Import, NamesOfOneInodeAcrossBatchesAreCountedOnce) {
    TempDir dir;
    UNIFY_REQUIRE(need_immutable(dir.path()));
    std::string pool = dir / "pool", g = dir / "g";
    ASSERT_TRUE(init_pool(pool));
    for (int i = 0; i < 40; ++i) {
        std::string a = g + "/usr/a/f" + std::to_string(i), b = g + "/usr/b/f" + std::to_string(i);
        make_file(a, std::string(4000 + size_t(i), 'p'));
        ASSERT_EQ(mkdir((g + "/usr/b").c_str(), 0755) == 0 || errno == EEXIST, true);
        ASSERT_EQ(link(a.c_str(), b.c_str()), 0);
    }
    make_file(g + "/usr/c/many0", "five\n");
    for (int i = 1; i < 100; ++i)
        ASSERT_EQ(
            link((g + "/usr/c/many0").c_str(), (g + "/usr/c/many" + std::to_string(i)).c_str()), 0);
    // A copy of the guest, hard links kept, imported second: its objects exist, nothing is
    // copied, and each inode is freed once, when its last name is replaced.
    ASSERT_EQ(sh("cp -a " + q(g) + " " + q(dir / "g2")), 0);
    auto limited = [&](const std::string& name, bool dry) {
        std::vector<std::string> args = {"-c",           "ulimit -n 256 && exec \"$0\" \"$@\"",
                                         unify_binary(), "--pool",
                                         pool,           "--json",
                                         "import"};
        if (dry) args.push_back("--dry-run");
        args.insert(args.end(), {name, dir / name});
        return run_program("/bin/sh", args);
    };
    auto saved = [](const std::string& out) {
        size_t at = out.find("\"bytes_saved\": ");
        return at == std::string::npos ? -1 : leading_count(out.substr(at + 15));
    };
    for (const char* name : {"g", "g2"}) {
        RunResult dry = limited(name, true);
        ASSERT_TRUE(succeeded(dry));
        RunResult real = limited(name, false);
        ASSERT_TRUE(succeeded(real));
        EXPECT_EQ(saved(real.out), saved(dry.out)) << name << "\n" << dry.out << "\n" << real.out;
        // g: every object is a copy of a guest inode with other names, so nothing is freed.
        if (std::string(name) == "g") EXPECT_EQ(saved(real.out), 0) << real.out;
        if (std::string(name) == "g2") EXPECT_GT(saved(real.out), 0) << real.out;
        // And every name is linked: one hashed while unify was replacing another name of its
        // inode (its ctime moved, then its link count) is not taken for a changed file (32 of
        // the 180 were, and now and then a few more where every member is leased).
        EXPECT_TRUE(contains(real.out, "\"newly_linked\": 180,")) << name << "\n" << real.out;
        EXPECT_TRUE(contains(real.out, "\"skipped\": {}")) << name << "\n" << real.out;
    }
}

// 5. Symlinks, devices, fifos, sockets, empty and small files are never changed.
TEST_P(Import, SpecialAndSmallFilesAreNeverChanged) {
    TempDir dir;
    UNIFY_REQUIRE(need_immutable(dir.path()));
    UNIFY_REQUIRE(need_root());
    std::string pool = dir / "pool", g1 = dir / "g1", g2 = dir / "g2";
    ASSERT_TRUE(init_pool(pool));
    const std::string big(200, 'b');
    // Outside both guests: a file identical to the shared one that the symlinks point at.
    make_file(dir / "outside/target", big);
    const std::vector<std::string> specials = {"/usr/lib/rel",  "/usr/lib/abs",  "/usr/lib/null",
                                               "/usr/lib/fifo", "/usr/lib/sock", "/usr/lib/empty",
                                               "/usr/lib/small"};
    for (const std::string& g : {g1, g2}) {
        make_file(g + "/usr/lib/big", big);
        make_file(g + "/usr/lib/empty", "");
        make_file(g + "/usr/lib/small", std::string(50, 's'));
        ASSERT_EQ(symlink("../../../outside/target", (g + "/usr/lib/rel").c_str()), 0);
        ASSERT_EQ(symlink((dir / "outside/target").c_str(), (g + "/usr/lib/abs").c_str()), 0);
        ASSERT_EQ(mknod((g + "/usr/lib/null").c_str(), S_IFCHR | 0666, makedev(1, 3)), 0);
        ASSERT_EQ(mkfifo((g + "/usr/lib/fifo").c_str(), 0644), 0);
        ASSERT_TRUE(make_socket(g + "/usr/lib/sock")) << strerror(errno);
    }
    ASSERT_EQ(read_file(g1 + "/usr/lib/rel"), big);  // the link really reaches the outside file
    std::map<std::string, struct stat> st_before;
    for (const std::string& g : {g1, g2})
        for (const auto& p : specials) st_before[g + p] = stat_path(g + p);
    struct stat outside_before = stat_path(dir / "outside/target");
    std::string before1 = manifest(g1), before2 = manifest(g2);
    std::string outside = manifest(dir / "outside");

    RunResult r1 = import(pool, "g1", g1, {"--min-size", "100"});
    ASSERT_TRUE(succeeded(r1));
    RunResult r2 = import(pool, "g2", g2, {"--min-size", "100"});
    ASSERT_TRUE(succeeded(r2));
    for (const RunResult* r : {&r1, &r2}) {
        EXPECT_EQ(skipped_number(r->out, "symlink"), 2) << r->out;
        EXPECT_EQ(skipped_number(r->out, "device, fifo or socket"), 3) << r->out;
        EXPECT_EQ(skipped_number(r->out, "smaller than --min-size"), 2) << r->out;
    }
    EXPECT_EQ(summary_number(r2.out, "newly linked"), 1) << r2.out;

    EXPECT_EQ(ino(g1 + "/usr/lib/big"), ino(g2 + "/usr/lib/big"));  // the control is shared
    for (const auto& [p, before] : st_before) {
        struct stat now = stat_path(p);
        EXPECT_EQ(now.st_ino, before.st_ino) << p;
        EXPECT_EQ(now.st_nlink, 1u) << p;
        EXPECT_EQ(now.st_ctim.tv_sec, before.st_ctim.tv_sec) << p;  // not even chattr-ed
        EXPECT_EQ(now.st_ctim.tv_nsec, before.st_ctim.tv_nsec) << p;
    }
    EXPECT_FALSE(is_immutable(g1 + "/usr/lib/small"));
    EXPECT_FALSE(is_immutable(g2 + "/usr/lib/empty"));
    struct stat outside_now = stat_path(dir / "outside/target");
    EXPECT_EQ(outside_now.st_ino, outside_before.st_ino);
    EXPECT_EQ(outside_now.st_nlink, 1u);
    EXPECT_EQ(outside_now.st_ctim.tv_nsec, outside_before.st_ctim.tv_nsec);
    EXPECT_FALSE(is_immutable(dir / "outside/target"));
    EXPECT_EQ(manifest(g1), before1);
    EXPECT_EQ(manifest(g2), before2);
    EXPECT_EQ(manifest(dir / "outside"), outside);
}

// 6. A filesystem mounted inside a guest root is not crossed.
TEST_P(Import, MountPointInsideGuestIsNotCrossed) {
    TempDir dir;
    UNIFY_REQUIRE(need_immutable(dir.path()));
    UNIFY_REQUIRE(need_root());
    std::string pool = dir / "pool", g1 = dir / "g1", g2 = dir / "g2";
    ASSERT_TRUE(init_pool(pool));
    const std::string content = "identical on ext4 and on the tmpfs\n";
    TmpfsMount mnt(g1 + "/usr/mnt");  // unmounted before `dir` is removed
    ASSERT_EQ(mnt.error(), "");
    ASSERT_NE(stat_path(g1 + "/usr/mnt").st_dev, stat_path(g1).st_dev);
    make_file(g1 + "/usr/mnt/f", content);
    make_file(g1 + "/usr/lib/f", content);  // control on the guest's own filesystem
    make_file(g2 + "/usr/lib/f", content);
    struct stat mounted_before = stat_path(g1 + "/usr/mnt/f");
    std::string before1 = manifest(g1), before2 = manifest(g2);

    // g2 first: the object exists when g1's walk could reach the tmpfs copy.
    ASSERT_TRUE(succeeded(import(pool, "g2", g2)));
    RunResult r = import(pool, "g1", g1);
    ASSERT_TRUE(succeeded(r));
    EXPECT_EQ(skipped_number(r.out, "mount point"), 1) << r.out;

    EXPECT_EQ(ino(g1 + "/usr/lib/f"), ino(g2 + "/usr/lib/f"));
    struct stat mounted_now = stat_path(g1 + "/usr/mnt/f");
    EXPECT_EQ(mounted_now.st_ino, mounted_before.st_ino);
    EXPECT_EQ(mounted_now.st_dev, mounted_before.st_dev);
    EXPECT_EQ(mounted_now.st_nlink, 1u);
    EXPECT_EQ(mounted_now.st_ctim.tv_nsec, mounted_before.st_ctim.tv_nsec);
    EXPECT_FALSE(is_immutable(g1 + "/usr/mnt/f"));
    EXPECT_EQ(manifest(g1), before1);
    EXPECT_EQ(manifest(g2), before2);
}

// 7. Hard links inside a guest: all names end up on the object, nothing is lost.
TEST_P(Import, PreexistingHardLinksEndUpOnTheObject) {
    TempDir dir;
    UNIFY_REQUIRE(need_immutable(dir.path()));
    std::string pool = dir / "pool", g1 = dir / "g1", g2 = dir / "g2";
    ASSERT_TRUE(init_pool(pool));
    const std::string content = "hard-linked content\n";
    make_file(g1 + "/usr/lib/a", content);
    ASSERT_EQ(sh("mkdir -p " + q(g1 + "/usr/share")), 0);
    ASSERT_EQ(link((g1 + "/usr/lib/a").c_str(), (g1 + "/usr/share/b").c_str()), 0);
    make_file(g2 + "/usr/lib/c", content);
    // A second pair whose other name lies in an excluded tree: that name keeps the old inode.
    make_file(g1 + "/usr/lib/x", "x content\n");
    ASSERT_EQ(sh("mkdir -p " + q(g1 + "/etc")), 0);
    ASSERT_EQ(link((g1 + "/usr/lib/x").c_str(), (g1 + "/etc/x").c_str()), 0);
    ASSERT_EQ(nlink(g1 + "/usr/lib/a"), 2u);
    ASSERT_EQ(ino(g1 + "/usr/lib/a"), ino(g1 + "/usr/share/b"));
    ino_t old_x = ino(g1 + "/etc/x");
    std::string before1 = manifest(g1), before2 = manifest(g2);

    RunResult r1 = import(pool, "g1", g1);
    ASSERT_TRUE(succeeded(r1));
    EXPECT_EQ(ino(g1 + "/usr/lib/a"), ino(g1 + "/usr/share/b"));
    EXPECT_EQ(manifest(g1), before1);
    ASSERT_TRUE(succeeded(import(pool, "g2", g2)));

    ino_t obj = ino(g1 + "/usr/lib/a");
    EXPECT_EQ(ino(g1 + "/usr/share/b"), obj);
    EXPECT_EQ(ino(g2 + "/usr/lib/c"), obj);
    EXPECT_EQ(nlink(g2 + "/usr/lib/c"), 4u);  // a, b, c and the pool
    EXPECT_FALSE(object_with_ino(pool, obj).empty());
    EXPECT_TRUE(is_immutable(g1 + "/usr/share/b"));
    for (const std::string& p : {g1 + "/usr/lib/a", g1 + "/usr/share/b", g2 + "/usr/lib/c"})
        EXPECT_EQ(read_file(p), content) << p;

    EXPECT_NE(ino(g1 + "/usr/lib/x"), old_x);
    EXPECT_EQ(ino(g1 + "/etc/x"), old_x);
    EXPECT_EQ(nlink(g1 + "/etc/x"), 1u);
    EXPECT_EQ(read_file(g1 + "/etc/x"), "x content\n");
    EXPECT_FALSE(is_immutable(g1 + "/etc/x"));

    EXPECT_EQ(manifest(g1), before1);
    EXPECT_EQ(manifest(g2), before2);
    EXPECT_EQ(temp_names(g1), "");
    EXPECT_EQ(temp_names(g2), "");
    EXPECT_EQ(capture("ls -A " + q(pool + "/tmp")), "");
}

// 8. A second import of an unchanged guest changes nothing and says so.
TEST_P(Import, ReimportOfUnchangedGuestIsIdempotent) {
    TempDir dir;
    UNIFY_REQUIRE(need_immutable(dir.path()));
    std::string pool = dir / "pool", g1 = dir / "g1";
    ASSERT_TRUE(init_pool(pool));
    const std::vector<std::string> eligible = {"/usr/bin/a", "/usr/bin/b", "/usr/lib/c",
                                               "/usr/lib/dup-of-c"};
    make_file(g1 + "/usr/bin/a", "a\n", 0755);
    make_file(g1 + "/usr/bin/b", "b\n", 0755);
    make_file(g1 + "/usr/lib/c", "c\n");
    make_file(g1 + "/usr/lib/dup-of-c", "c\n");
    make_file(g1 + "/etc/hostname", "g1\n");  // not eligible
    std::string before = manifest(g1);

    RunResult r1 = import(pool, "g1", g1);
    ASSERT_TRUE(succeeded(r1));
    EXPECT_EQ(summary_number(r1.out, "new objects"), 3) << r1.out;
    // The path each new object is made from counts as newly linked too.
    EXPECT_EQ(summary_number(r1.out, "newly linked"), int64_t(eligible.size())) << r1.out;
    EXPECT_EQ(summary_number(r1.out, "already linked"), 0) << r1.out;
    std::map<std::string, ino_t> inos;
    for (const auto& p : eligible) inos[p] = ino(g1 + p);
    EXPECT_EQ(inos["/usr/lib/c"], inos["/usr/lib/dup-of-c"]);
    std::string after_first = manifest(g1);
    EXPECT_EQ(after_first, before);
    size_t n_objects = objects(pool).size();

    RunResult r2 = import(pool, "g1", g1);
    ASSERT_TRUE(succeeded(r2));
    EXPECT_EQ(summary_number(r2.out, "already linked"), int64_t(eligible.size())) << r2.out;
    EXPECT_EQ(summary_number(r2.out, "newly linked"), 0) << r2.out;
    EXPECT_EQ(summary_number(r2.out, "new objects"), 0) << r2.out;
    EXPECT_NE(r2.out.find("newly linked      0"), std::string::npos) << r2.out;
    EXPECT_EQ(manifest(g1), after_first);
    for (const auto& p : eligible) EXPECT_EQ(ino(g1 + p), inos[p]) << p;
    EXPECT_EQ(objects(pool).size(), n_objects);
}

// 9. --dry-run changes nothing, and its figures are what the real import then does.
TEST_P(Import, DryRunChangesNothingAndPredictsTheImport) {
    TempDir dir;
    UNIFY_REQUIRE(need_immutable(dir.path()));
    std::string pool = dir / "pool", g1 = dir / "fresh1", g2 = dir / "fresh2";
    ASSERT_TRUE(init_pool(pool));
    for (const std::string& g : {g1, g2}) {
        make_file(g + "/usr/bin/a", "a\n", 0755);
        make_file(g + "/usr/lib/b", "b\n");
        make_file(g + "/usr/lib/b2", "b\n");  // duplicate inside the guest
        make_file(g + "/usr/lib/own-" + g.substr(g.size() - 1), "only in " + g + "\n");
    }
    // A hard-linked pair: its object is a copy, not the adopted inode, so replacing both names
    // saves nothing; the dry run said so while the real import counted 12 bytes saved (fixed
    // in importer/import.cc, Importer::count_saved).
    make_file(g1 + "/usr/lib/h1", "hard-linked\n");
    ASSERT_EQ(link((g1 + "/usr/lib/h1").c_str(), (g1 + "/usr/lib/h2").c_str()), 0);
    std::string list_before = run_unify({"--pool", pool, "list"}).out;

    auto numbers = [](const RunResult& r) {
        return std::vector<int64_t>{
            summary_number(r.out, "new objects"), summary_number(r.out, "newly linked"),
            summary_number(r.out, "already linked"), summary_number(r.out, "files seen")};
    };
    // Dry run against an empty pool, then the real import; then the same for a second guest
    // whose files partly exist as objects already.
    for (const std::string& g : {g1, g2}) {
        std::string name = g.substr(g.rfind('/') + 1);
        SCOPED_TRACE(name);
        std::string before = manifest(g);
        std::map<std::string, ino_t> inos;
        for (const auto& e : std::filesystem::recursive_directory_iterator(g))
            inos[e.path().string()] = ino(e.path().string());
        size_t n_objects = objects(pool).size();

        RunResult dry = import(pool, name, g, {"--dry-run"});
        ASSERT_TRUE(succeeded(dry));
        EXPECT_NE(dry.out.find("dry run"), std::string::npos) << dry.out;
        EXPECT_EQ(manifest(g), before);
        for (const auto& [p, i] : inos) EXPECT_EQ(ino(p), i) << p;
        EXPECT_EQ(objects(pool).size(), n_objects);
        EXPECT_EQ(temp_names(g), "");
        RunResult list = run_unify({"--pool", pool, "list"});
        ASSERT_TRUE(succeeded(list));
        EXPECT_EQ(list.out.find(name), std::string::npos) << list.out;

        RunResult real = import(pool, name, g);
        ASSERT_TRUE(succeeded(real));
        EXPECT_EQ(numbers(dry), numbers(real)) << "dry run:\n" << dry.out << "real:\n" << real.out;
        // Every line, bytes included, once the dry run's "would be" notes are taken out.
        EXPECT_EQ(without_dry_run_notes(dry.out), real.out);
        EXPECT_GT(summary_number(real.out, "newly linked"), 0) << real.out;
        EXPECT_EQ(manifest(g), before);
        EXPECT_NE(run_unify({"--pool", pool, "list"}).out.find(name), std::string::npos);
    }
    EXPECT_NE(list_before.find("no guests"), std::string::npos) << list_before;
}

// 10. After `unshare` and a change on the host, a re-import links the new content to a new
// object; the old object stays for the guest that still links it.
TEST_P(Import, ChangedFileAfterUnshareGetsNewObject) {
    TempDir dir;
    UNIFY_REQUIRE(need_immutable(dir.path()));
    std::string pool = dir / "pool", g1 = dir / "g1", g2 = dir / "g2";
    ASSERT_TRUE(init_pool(pool));
    make_file(g1 + "/usr/lib/f", "version 1\n");
    make_file(g2 + "/usr/lib/f", "version 1\n");
    ASSERT_TRUE(succeeded(import(pool, "g1", g1)));
    ASSERT_TRUE(succeeded(import(pool, "g2", g2)));
    ino_t old_obj = ino(g1 + "/usr/lib/f");
    ASSERT_EQ(ino(g2 + "/usr/lib/f"), old_obj);
    std::string old_path = object_with_ino(pool, old_obj);
    ASSERT_FALSE(old_path.empty());

    // The guest cannot replace the shared file itself ...
    EXPECT_NE(sh("rm -f " + q(g1 + "/usr/lib/f") + " 2>/dev/null"), 0);
    EXPECT_EQ(ino(g1 + "/usr/lib/f"), old_obj);
    // ... so the administrator unshares it first.
    RunResult u = run_unify({"--pool", pool, "unshare", "g1", "/usr/lib/f"});
    ASSERT_TRUE(succeeded(u));
    ASSERT_NE(ino(g1 + "/usr/lib/f"), old_obj);
    ASSERT_FALSE(is_immutable(g1 + "/usr/lib/f"));
    ASSERT_EQ(nlink(old_path), 2u);  // g2 and the pool
    make_file(g1 + "/usr/lib/f", "version 2, longer\n");
    std::string changed = manifest(g1);

    RunResult r = import(pool, "g1", g1);
    ASSERT_TRUE(succeeded(r));
    EXPECT_EQ(summary_number(r.out, "new objects"), 1) << r.out;
    ino_t new_obj = ino(g1 + "/usr/lib/f");
    EXPECT_NE(new_obj, old_obj);
    std::string new_path = object_with_ino(pool, new_obj);
    EXPECT_FALSE(new_path.empty()) << "g1's file is not an object";
    EXPECT_EQ(nlink(g1 + "/usr/lib/f"), 2u);
    EXPECT_TRUE(is_immutable(g1 + "/usr/lib/f"));
    EXPECT_EQ(read_file(g1 + "/usr/lib/f"), "version 2, longer\n");
    EXPECT_EQ(manifest(g1), changed);
    // The old object is still there, still linked by g2.
    EXPECT_EQ(ino(old_path), old_obj);
    EXPECT_EQ(ino(g2 + "/usr/lib/f"), old_obj);
    EXPECT_EQ(read_file(old_path), "version 1\n");
    EXPECT_EQ(read_file(g2 + "/usr/lib/f"), "version 1\n");
    EXPECT_TRUE(is_immutable(old_path));
    EXPECT_EQ(objects(pool).size(), 2u);
}

// 11. A stray temporary link to an object is swept, and so is the guest's original that an
// exchange displaced to a temporary name (a run killed before its unlink: a copy with the
// object's content and metadata); a look-alike that is neither is not.
TEST_P(Import, SweepsStrayTemporariesButNotLookAlikes) {
    TempDir dir;
    UNIFY_REQUIRE(need_immutable(dir.path()));
    UNIFY_REQUIRE(need_tool("chattr"));
    std::string pool = dir / "pool", g1 = dir / "g1";
    ASSERT_TRUE(init_pool(pool));
    make_file(g1 + "/usr/lib/f", "object content\n");
    ASSERT_TRUE(succeeded(import(pool, "g1", g1)));
    std::vector<Object> objs = objects(pool);
    ASSERT_EQ(objs.size(), 1u);
    std::string token = pool_token(pool);
    ASSERT_FALSE(token.empty());
    std::string prefix = ".unify-" + token + ".";

    // What an interrupted run leaves: a temporary link to the object next to the guest file.
    // And what an unshare killed right after its exchange leaves: the object's link at the
    // name of its private copy, which names no object (on a stock kernel only the object's
    // window lets it go).
    std::string stray = g1 + "/usr/lib/" + prefix + objs[0].name + ".1.1";
    std::string unshared = g1 + "/usr/lib/" + prefix + "copy.0123456789abcdef";
    ASSERT_EQ(sh("chattr -i " + q(objs[0].path)), 0);
    int linked = link(objs[0].path.c_str(), stray.c_str());
    int err = errno;
    if (linked == 0) {
        linked = link(objs[0].path.c_str(), unshared.c_str());
        err = errno;
    }
    ASSERT_EQ(sh("chattr +i " + q(objs[0].path)), 0);
    ASSERT_EQ(linked, 0) << strerror(err);
    ASSERT_EQ(nlink(objs[0].path), 4u);
    // The displaced original: every byte and the metadata of the id (mode, owner, mtime).
    std::string displaced = g1 + "/usr/lib/" + prefix + objs[0].name + ".3.3";
    ASSERT_EQ(sh("cp -a " + q(g1 + "/usr/lib/f") + " " + q(displaced)), 0);
    // Look-alikes: the prefix with a valid id but another inode (the same bytes, another
    // mtime), and with no id at all.
    std::string other = g1 + "/usr/lib/" + prefix + objs[0].name + ".2.2";
    std::string junk = g1 + "/usr/lib/" + prefix + "not-an-object";
    make_file(other, "object content\n");
    ASSERT_EQ(sh("touch -d @1000000000 " + q(other)), 0);
    make_file(junk, "junk\n");
    ino_t other_ino = ino(other), junk_ino = ino(junk);

    RunResult r = import(pool, "g1", g1);
    ASSERT_TRUE(succeeded(r));
    EXPECT_EQ(summary_number(r.out, "temporaries swept"), 3) << show(r);
    EXPECT_EQ(stat_path(stray).st_ino, 0u) << "stray temporary not removed";
    EXPECT_EQ(stat_path(unshared).st_ino, 0u) << "object link at a copy's name not removed";
    EXPECT_EQ(stat_path(displaced).st_ino, 0u) << "displaced original not removed";
    EXPECT_EQ(nlink(objs[0].path), 2u);
    EXPECT_TRUE(is_immutable(objs[0].path));
    EXPECT_EQ(ino(other), other_ino);
    EXPECT_EQ(ino(junk), junk_ino);
    EXPECT_EQ(read_file(junk), "junk\n");
    EXPECT_EQ(nlink(other), 1u);
    EXPECT_NE(r.err.find(other), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(junk), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("left alone"), std::string::npos) << r.err;
    EXPECT_EQ(objects(pool).size(), 1u);
}

// 12. Name and root conflicts are refused, clearly, before anything changes.
TEST_P(Import, ConflictsAreRefusedAndChangeNothing) {
    TempDir dir;
    UNIFY_REQUIRE(need_immutable(dir.path()));
    std::string pool = dir / "pool", g1 = dir / "g1", other = dir / "other";
    ASSERT_TRUE(init_pool(pool));
    make_file(g1 + "/usr/lib/f", "shared\n");
    make_file(other + "/usr/lib/f", "shared\n");
    make_file(other + "/usr/lib/g", "shared\n");
    ASSERT_TRUE(succeeded(import(pool, "g1", g1)));
    std::string list = run_unify({"--pool", pool, "list"}).out;
    ASSERT_TRUE(contains_squeezed(list, "g1 " + g1)) << list;  // aligned columns
    std::string status = run_unify({"--pool", pool, "status"}).out;
    std::string m1 = manifest(g1), m_other = manifest(other);
    ino_t f_other = ino(other + "/usr/lib/f");
    size_t n_objects = objects(pool).size();

    struct Case {
        std::string what, name, root, expect1, expect2;
    };
    const std::vector<Case> cases = {
        {"same name, another root", "g1", other, "registered with root " + g1, other},
        {"another name, same root", "g2", g1, "already registered as guest 'g1'", g1},
        {"root inside a guest root", "g3", g1 + "/usr", "overlaps", g1},
        {"missing root", "g4", dir / "missing", dir / "missing", "No such file"},
        {"invalid name", "a/b", other, "invalid guest name", "a/b"},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(c.what);
        RunResult r = import(pool, c.name, c.root);
        EXPECT_EQ(r.status, 1) << show(r);
        EXPECT_NE(r.err.find("unify: error:"), std::string::npos) << show(r);
        EXPECT_NE(r.err.find(c.expect1), std::string::npos) << show(r);
        EXPECT_NE(r.err.find(c.expect2), std::string::npos) << show(r);
        EXPECT_EQ(r.out, "");
        EXPECT_EQ(run_unify({"--pool", pool, "list"}).out, list);
        EXPECT_EQ(run_unify({"--pool", pool, "status"}).out, status);
        EXPECT_EQ(manifest(g1), m1);
        EXPECT_EQ(manifest(other), m_other);
        EXPECT_EQ(ino(other + "/usr/lib/f"), f_other);
        EXPECT_EQ(nlink(other + "/usr/lib/f"), 1u);
        EXPECT_EQ(objects(pool).size(), n_objects);
    }
}

// Invariant 1, watched by the kernel: every guest path is replaced by renaming over it, never
// removed first (vhashify renamed away, rmlint used rm; ln). inotify reports each removal
// and each rename away of a name in the guest's directories, however short the gap; only
// unify's own temporaries may go. Covers adoption, linking to an existing object, copies of
// hard-linked files, unshare and gc.
// The files a guest's paths had before they became object links are unlinked beside the link
// loop (store/trash.h); by the time import returns each is gone and nothing waits in the pool.
TEST_P(Import, ReplacedGuestFilesAreFreedBeforeImportReturns) {
    TempDir dir;
    UNIFY_REQUIRE(need_immutable(dir.path()));
    std::string pool = dir / "pool", g1 = dir / "g1", g2 = dir / "g2";
    ASSERT_TRUE(init_pool(pool));
    constexpr int kFiles = 40;
    for (const std::string& g : {g1, g2})
        for (int i = 0; i < kFiles; ++i)
            make_file(g + "/usr/lib/f" + std::to_string(i), std::string(3000 + i, 'x'));
    ASSERT_TRUE(succeeded(import(pool, "g1", g1)));
    std::vector<int> held;  // g2's own inodes, read-only (no writer: nothing stops the import)
    for (int i = 0; i < kFiles; ++i) {
        held.push_back(open((g2 + "/usr/lib/f" + std::to_string(i)).c_str(), O_RDONLY));
        ASSERT_GE(held.back(), 0);
    }
    RunResult r = import(pool, "g2", g2);
    ASSERT_TRUE(succeeded(r));
    EXPECT_EQ(summary_number(r.out, "newly linked"), kFiles) << r.out;
    for (int i = 0; i < kFiles; ++i) {
        struct stat st {};
        ASSERT_EQ(fstat(held[i], &st), 0);
        EXPECT_EQ(st.st_nlink, 0u) << "g2's old f" << i << " still has a name somewhere";
        close(held[i]);
        EXPECT_EQ(nlink(g2 + "/usr/lib/f" + std::to_string(i)), 3u);
    }
    EXPECT_EQ(entries(pool + "/tmp"), std::set<std::string>{});
    EXPECT_EQ(temp_names(dir.path()), "");
}

TEST_P(Import, GuestPathsAreReplacedByRenameNeverRemovedFirst) {
    TempDir dir;
    UNIFY_REQUIRE(need_immutable(dir.path()));
    std::string pool = dir / "pool", g1 = dir / "g1", g2 = dir / "g2";
    ASSERT_TRUE(init_pool(pool));
    for (const std::string& g : {g1, g2}) {
        make_file(g + "/usr/lib/shared", "in both guests\n");
        make_file(g + "/usr/bin/pair-a", "hard-linked in both\n");
        ASSERT_EQ(link((g + "/usr/bin/pair-a").c_str(), (g + "/usr/bin/pair-b").c_str()), 0);
    }
    make_file(g2 + "/usr/share/own", "only in g2\n");
    ASSERT_TRUE(succeeded(import(pool, "g1", g1)));

    int in = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    ASSERT_GE(in, 0);
    for (const char* d : {"", "/usr", "/usr/lib", "/usr/bin", "/usr/share"})
        ASSERT_GE(inotify_add_watch(in, (g2 + d).c_str(), IN_DELETE | IN_MOVE), 0) << d;
    ASSERT_TRUE(succeeded(import(pool, "g2", g2)));
    ASSERT_EQ(nlink(g2 + "/usr/lib/shared"), 3u);  // g1, g2 and the pool
    ASSERT_EQ(nlink(g2 + "/usr/share/own"), 2u);
    ASSERT_TRUE(succeeded(run_unify({"--pool", pool, "unshare", "g2"})));
    ASSERT_EQ(nlink(g2 + "/usr/lib/shared"), 1u);
    ASSERT_TRUE(succeeded(import(pool, "g2", g2)));
    ASSERT_TRUE(succeeded(run_unify({"--pool", pool, "gc"})));

    // A RENAME_EXCHANGE shows as two moves, "temporary -> name" and "name -> temporary"
    // (each a MOVED_FROM and a MOVED_TO with one cookie): the name is renamed away in the
    // same system call that gives it its new inode. Windows run side by side on ext4, so
    // other moves may come between the two: they are matched by cookie and names.
    struct Move {
        std::string from, to;
        int from_wd = -1, to_wd = -1;
    };
    std::map<uint32_t, Move> moves;
    std::vector<uint32_t> order;
    std::string removed;
    alignas(inotify_event) char buf[64 * 1024];
    for (ssize_t n; (n = read(in, buf, sizeof buf)) > 0;) {
        for (char* p = buf; p < buf + n;) {
            auto* ev = reinterpret_cast<inotify_event*>(p);
            std::string name = ev->len ? ev->name : "";
            bool ours = name.rfind(".unify-", 0) == 0;
            if (ev->mask & IN_DELETE && !ours) removed += name + " removed\n";
            if (ev->mask & (IN_MOVED_FROM | IN_MOVED_TO)) {
                if (!moves.count(ev->cookie)) order.push_back(ev->cookie);
                Move& m = moves[ev->cookie];
                (ev->mask & IN_MOVED_FROM ? m.from : m.to) = name;
                (ev->mask & IN_MOVED_FROM ? m.from_wd : m.to_wd) = ev->wd;
            }
            p += sizeof(inotify_event) + ev->len;
        }
    }
    for (uint32_t c : order) {
        const Move& away = moves[c];
        if (away.from.empty() || away.from.rfind(".unify-", 0) == 0) continue;
        bool exchanged = false;  // the temporary it went to came to its name
        for (const auto& [c2, in] : moves)
            exchanged |= c2 != c && in.from == away.to && in.from_wd == away.to_wd &&
                         in.to == away.from && in.to_wd == away.from_wd;
        if (!exchanged) removed += away.from + " renamed away\n";
    }
    close(in);
    EXPECT_EQ(removed, "") << "a guest path was missing for a moment";
}

// A guest can nest directories deeper than the open-file limit (mkdirat and openat, one level
// at a time). Its import walks it all the same, under a hard limit of 1,024 fds, instead of
// ending in EMFILE: the walk keeps at most kOpenDirLevels directory fds open and reopens an
// ancestor through "..". Files at every 100th level, down to the bottom, are shared.
TEST_P(Import, ADirectoryChainDeeperThanTheFdLimitIsImported) {
    TempDir dir;
    UNIFY_REQUIRE(need_immutable(dir.path()));
    UNIFY_REQUIRE(need_tool("prlimit"));
    constexpr size_t kLimit = 1024, kDepth = 1500, kEvery = 100;
    std::string pool = dir / "pool", g1 = dir / "g1", g2 = dir / "g2";
    ASSERT_TRUE(init_pool(pool));
    std::string chain;  // "d/d/.../d", kDepth levels
    for (const std::string& g : {g1, g2}) {
        make_file(g + "/usr/share/top", "at the top\n");
        int fd = open(g.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        ASSERT_GE(fd, 0);
        chain.clear();
        for (size_t k = 1; k <= kDepth; ++k) {
            ASSERT_EQ(mkdirat(fd, "d", 0755), 0) << k;
            int sub = openat(fd, "d", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            ASSERT_GE(sub, 0) << k;
            close(fd);
            fd = sub;
            chain += chain.empty() ? "d" : "/d";
            if (k % kEvery == 0) make_file(g + "/" + chain + "/f", "level " + std::to_string(k));
        }
        close(fd);
    }
    std::string bottom = "/" + chain + "/f";
    ASSERT_LT((g1 + bottom).size(), size_t(PATH_MAX));
    for (const auto& [name, root] : {std::pair{"g1", g1}, std::pair{"g2", g2}}) {
        RunResult r =
            run_program("/usr/bin/prlimit",
                        {"--nofile=" + std::to_string(kLimit) + ":" + std::to_string(kLimit),
                         unify_binary(), "--pool", pool, "import", name, root});
        ASSERT_TRUE(succeeded(r));
    }
    EXPECT_EQ(ino(g1 + "/usr/share/top"), ino(g2 + "/usr/share/top"));
    std::string level;
    for (size_t k = 1; k <= kDepth; ++k) {
        level += "/d";
        if (k % kEvery) continue;
        EXPECT_EQ(ino(g1 + level + "/f"), ino(g2 + level + "/f")) << "level " << k;
        EXPECT_EQ(nlink(g1 + level + "/f"), 3u) << "level " << k;
    }
    EXPECT_TRUE(succeeded(run_unify({"--pool", pool, "verify", "--full"})));
    EXPECT_EQ(read_file(g2 + bottom), "level " + std::to_string(kDepth));
}

}  // namespace
}  // namespace unify::test
