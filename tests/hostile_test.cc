// Guest roots are untrusted input (docs/DESIGN.md invariant 4). Each test builds a guest that
// tries to lead import somewhere else, then checks that nothing outside the guest roots and
// the pool was linked, renamed or had its flags changed (its inode, link count, ctime and
// flags are as before), and that the guest itself lost nothing.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "tests/sample_guests.h"
#include "tests/test_support.h"

namespace unify {
namespace {

using test::TempDir;

// A host directory next to the guests, holding a file identical to a guest file.
struct Bystander {
    std::string path;
    struct stat st;
};

Bystander make_bystander(const std::string& file, const std::string& content) {
    test::write_file(file, content);
    test::set_mtime(file, 1700000000, 5);
    return {file, test::stat_path(file)};
}

void expect_untouched(const Bystander& b) {
    struct stat now = test::stat_path(b.path);
    EXPECT_EQ(now.st_ino, b.st.st_ino) << b.path;
    EXPECT_EQ(now.st_nlink, b.st.st_nlink) << b.path << " gained a link";
    EXPECT_EQ(now.st_ctim.tv_sec, b.st.st_ctim.tv_sec) << b.path << " was changed";
    EXPECT_EQ(now.st_ctim.tv_nsec, b.st.st_ctim.tv_nsec) << b.path << " was changed";
    EXPECT_FALSE(test::is_immutable(b.path)) << b.path << " got the immutable flag";
}

struct Guests {
    TempDir dir;
    std::string pool = dir / "pool";
    Guests() { EXPECT_EQ(test::run_unify({"--pool", pool, "init"}).status, 0); }
    test::RunResult import(const std::string& g) {
        return test::run_unify({"--pool", pool, "import", g, dir / g});
    }
};

TEST(Hostile, SymlinksOutOfTheGuestAreNeverFollowed) {
    Guests s;
    UNIFY_REQUIRE(test::need_immutable(s.dir.path()));
    const std::string same = "identical to a host file\n";
    Bystander host = make_bystander(s.dir / "host/secret", same);
    for (const char* g : {"g1", "g2"}) {
        std::string root = s.dir / g;
        test::write_file(root + "/usr/bin/real", same);
        test::set_mtime(root + "/usr/bin/real", 1700000000, 5);
        ASSERT_EQ(symlink((s.dir / "host").c_str(), (root + "/usr/hostdir").c_str()), 0);
        ASSERT_EQ(symlink((s.dir / "host/secret").c_str(), (root + "/usr/abs").c_str()), 0);
        ASSERT_EQ(symlink("../../../host/secret", (root + "/usr/bin/dots").c_str()), 0);
        ASSERT_EQ(symlink("../../..", (root + "/usr/up").c_str()), 0);
    }
    std::string before = test::manifest(s.dir / "g1");
    for (const char* g : {"g1", "g2"}) {
        auto r = s.import(g);
        ASSERT_EQ(r.status, 0) << r.err;
    }
    expect_untouched(host);
    EXPECT_EQ(test::manifest(s.dir / "g1"), before);
    EXPECT_EQ(test::stat_path(s.dir / "g1/usr/bin/real").st_ino,
              test::stat_path(s.dir / "g2/usr/bin/real").st_ino);
    // who through a symlink of the guest is refused, not followed.
    auto who = test::run_unify({"--pool", s.pool, "who", "g1:/usr/hostdir/secret"});
    EXPECT_NE(who.status, 0);
}

TEST(Hostile, DirectorySwappedForASymlinkDuringImport) {
    Guests s;
    UNIFY_REQUIRE(test::need_immutable(s.dir.path()));
    const std::string same = "swap target content\n";
    std::vector<Bystander> hosts;
    for (int i = 0; i < 50; ++i)
        hosts.push_back(
            make_bystander(s.dir / ("host/f" + std::to_string(i)), same + std::to_string(i)));
    for (const char* g : {"g1", "g2"}) {
        for (int i = 0; i < 50; ++i) {
            std::string f = s.dir / (std::string(g) + "/usr/lib/f" + std::to_string(i));
            test::write_file(f, same + std::to_string(i));
            test::set_mtime(f, 1700000000, 5);
        }
        for (int i = 0; i < 200; ++i)
            test::write_file(s.dir / (std::string(g) + "/usr/share/pad" + std::to_string(i)),
                             std::string(32 * 1024, char('a' + i % 26)));
    }
    ASSERT_EQ(s.import("g1").status, 0);
    // The guest keeps swapping its own /usr/lib for a symlink to the host directory.
    std::atomic<bool> stop{false};
    std::string lib = s.dir / "g2/usr/lib", hidden = s.dir / "g2/usr/.lib-real";
    std::thread swapper([&] {
        while (!stop) {
            if (rename(lib.c_str(), hidden.c_str()) == 0) {
                symlink((s.dir / "host").c_str(), lib.c_str());
                usleep(300);
                unlink(lib.c_str());
                rename(hidden.c_str(), lib.c_str());
            }
            usleep(300);
        }
    });
    // Each run may skip what it cannot reach, but must not fail.
    for (int round = 0; round < 5; ++round) {
        auto r = s.import("g2");
        EXPECT_EQ(r.status, 0) << "round " << round << ": " << r.err;
    }
    stop = true;
    swapper.join();
    for (const auto& h : hosts) expect_untouched(h);
    // Once the guest stops, a last import links everything.
    ASSERT_EQ(s.import("g2").status, 0);
    for (const auto& h : hosts) expect_untouched(h);
    EXPECT_EQ(test::stat_path(s.dir / "g2/usr/lib/f7").st_ino,
              test::stat_path(s.dir / "g1/usr/lib/f7").st_ino);
    EXPECT_EQ(test::read_file(s.dir / "g2/usr/lib/f7"), same + "7");
}

TEST(Hostile, OddFileNamesAreLinkedAndPrintedSafely) {
    Guests s;
    UNIFY_REQUIRE(test::need_immutable(s.dir.path()));
    const std::vector<std::string> names = {"new\nline",
                                            "tab\there",
                                            std::string("ctl\x01\x1b[31m", 9),
                                            "bad\xff\xfe utf8",
                                            "caf\xc3\xa9",
                                            " lead space",
                                            "-dash"};
    for (const char* g : {"g1", "g2"})
        for (const auto& n : names) {
            std::string f = s.dir / (std::string(g) + "/usr/odd/" + n);
            test::write_file(f, "odd " + n);
            test::set_mtime(f, 1700000000, 5);
        }
    // Every line is printable, and none was started by a name's newline ("new\nline").
    auto expect_printable = [](const test::RunResult& r, const std::string& what) {
        for (const std::string& text : {r.out, r.err}) {
            for (unsigned char c : text)
                EXPECT_TRUE(c == '\n' || (c >= 0x20 && c != 0x7f)) << what << ": byte " << int(c);
            EXPECT_EQ(text.find("\nline"), std::string::npos) << what << ":\n" << text;
            EXPECT_EQ(text.find('\xff'), std::string::npos) << what;
        }
    };
    for (const char* g : {"g1", "g2"}) {
        auto r = test::run_unify({"--pool", s.pool, "import", g, s.dir / g, "-v"});
        ASSERT_EQ(r.status, 0) << r.err;
        expect_printable(r, std::string("import -v ") + g);
    }
    for (const auto& n : names) {
        auto r = test::run_unify(
            {"--pool", s.pool, "import", "g1", s.dir / "g1", "--explain", "/usr/odd/" + n});
        expect_printable(r, "--explain " + n);
    }
    for (const auto& n : names) {
        EXPECT_EQ(test::stat_path(s.dir / ("g1/usr/odd/" + n)).st_ino,
                  test::stat_path(s.dir / ("g2/usr/odd/" + n)).st_ino)
            << "not linked: " << n;
        auto who = test::run_unify({"--pool", s.pool, "who", s.dir / ("g1/usr/odd/" + n)});
        ASSERT_EQ(who.status, 0) << who.err;
        // Every output line is printable: no raw control byte or invalid UTF-8 reaches the tty.
        for (unsigned char c : who.out) EXPECT_TRUE(c == '\n' || c >= 0x20) << int(c);
        EXPECT_EQ(who.out.find('\xff'), std::string::npos);
        EXPECT_NE(who.out.find("g2"), std::string::npos) << who.out;
    }
    auto who = test::run_unify({"--pool", s.pool, "who", s.dir / "g1/usr/odd/new\nline"});
    EXPECT_NE(who.out.find("/usr/odd/new\\nline"), std::string::npos) << who.out;
    auto r =
        test::run_unify({"--pool", s.pool, "forget", "g1", "--delete-root", "--dry-run", "-v"});
    EXPECT_EQ(r.status, 0) << r.err;
    expect_printable(r, "forget --delete-root --dry-run -v");
    r = test::run_unify({"--pool", s.pool, "unshare", "g2", "-v"});
    EXPECT_EQ(r.status, 0) << r.err;
    expect_printable(r, "unshare -v");
    EXPECT_NE(r.err.find("/usr/odd/new\\nline"), std::string::npos) << r.err;
}

// Builds root/a0/a1/... `depth` levels of `name_len`-character names with *at() calls, since
// the whole path is longer than PATH_MAX; puts `file` with `content` at the bottom.
void make_deep(const std::string& root, int depth, size_t name_len, const std::string& content) {
    test::sh("mkdir -p '" + root + "'");
    int fd = open(root.c_str(), O_RDONLY | O_DIRECTORY);
    ASSERT_GE(fd, 0);
    for (int i = 0; i < depth; ++i) {
        std::string name = std::to_string(i);
        name.resize(name_len, 'd');
        ASSERT_EQ(mkdirat(fd, name.c_str(), 0755), 0);
        int next = openat(fd, name.c_str(), O_RDONLY | O_DIRECTORY);
        close(fd);
        ASSERT_GE(next, 0);
        fd = next;
    }
    int f = openat(fd, "bottom", O_CREAT | O_WRONLY, 0644);
    ASSERT_GE(f, 0);
    ASSERT_EQ(write(f, content.data(), content.size()), ssize_t(content.size()));
    struct timespec t[2] = {{1700000000, 5}, {1700000000, 5}};
    futimens(f, t);
    close(f);
    struct stat st;
    ASSERT_EQ(fstatat(fd, "bottom", &st, 0), 0);
    close(fd);
}

TEST(Hostile, TreesDeeperThanPathMax) {
    Guests s;
    UNIFY_REQUIRE(test::need_immutable(s.dir.path()));
    // 250 levels of 30 characters: about 7,750 bytes, well past PATH_MAX (4,096).
    for (const char* g : {"g1", "g2"})
        make_deep(s.dir / (std::string(g) + "/usr/deep"), 250, 30, "deep down\n");
    for (const char* g : {"g1", "g2"}) {
        auto r = s.import(g);
        ASSERT_EQ(r.status, 0) << r.err;
    }
    auto st = test::run_unify({"--pool", s.pool, "status"});
    EXPECT_NE(st.out.find("linked paths      2"), std::string::npos) << st.out;
    // The bottom files of the two guests are one object inode now.
    ASSERT_EQ(test::sh("test \"$(find '" + s.dir.path() + "/g1' '" + s.dir.path() +
                       "/g2' -name bottom -printf '%i\\n' | sort -u | wc -l)\" = 1"),
              0);
}

TEST(Hostile, ManyHardLinksOfOneFile) {
    Guests s;
    UNIFY_REQUIRE(test::need_immutable(s.dir.path()));
    test::write_file(s.dir / "g1/usr/lib/one", "linked everywhere\n");
    test::set_mtime(s.dir / "g1/usr/lib/one", 1700000000, 5);
    for (int i = 0; i < 2000; ++i)
        ASSERT_EQ(link((s.dir / "g1/usr/lib/one").c_str(),
                       (s.dir / ("g1/usr/lib/l" + std::to_string(i))).c_str()),
                  0);
    test::write_file(s.dir / "g2/usr/lib/one", "linked everywhere\n");
    test::set_mtime(s.dir / "g2/usr/lib/one", 1700000000, 5);
    std::string before = test::manifest(s.dir / "g1");
    for (const char* g : {"g1", "g2"}) {
        auto r = s.import(g);
        ASSERT_EQ(r.status, 0) << r.err;
    }
    EXPECT_EQ(test::manifest(s.dir / "g1"), before);
    struct stat one = test::stat_path(s.dir / "g1/usr/lib/one");
    EXPECT_EQ(one.st_nlink, 2001u + 1u + 1u);  // g1's names, g2's, the pool's
    EXPECT_EQ(test::stat_path(s.dir / "g1/usr/lib/l1999").st_ino, one.st_ino);
    EXPECT_EQ(test::stat_path(s.dir / "g2/usr/lib/one").st_ino, one.st_ino);
}

// g1 imported with one 8 KiB file, and `path` in g2 written with the same bytes and mtime:
// a file of an object's content, not linked yet. Returns the bytes.
std::string object_content_at(Guests& s, const std::string& path) {
    const std::string content(8192, 'c');
    for (const std::string& p : {s.dir / "g1/usr/share/data", path}) {
        test::write_file(p, content);
        test::set_mtime(p, 1700000000, 5);
    }
    EXPECT_EQ(s.import("g1").status, 0);
    return content;
}

// What UNIFY_FAULT_REWRITE makes of `content`: its first byte flipped.
std::string rewritten(std::string content) {
    content[0] = char(~content[0]);
    return content;
}

// After unify hashed a guest file, the guest rewrites it in place (same size, mtime put
// back: only ctime shows it) and gives it a second name. The moved link count must not excuse
// the moved ctime: the path is skipped as changed and keeps the guest's bytes (before, the
// object replaced it and the write survived only at the new name). On XFS, btrfs and tmpfs
// the lease taken after this point sees the same.
TEST(Hostile, ARewriteHiddenBehindANewLinkIsNotUndone) {
    Guests s;
    UNIFY_REQUIRE(test::need_immutable(s.dir.path()));
    const std::string a = s.dir / "g2/usr/share/data", added = s.dir / "g2/usr/share/data.2";
    const std::string content = object_content_at(s, a);
    const std::string done = s.dir / "rewritten";
    auto r = test::run_unify_faults(
        {"--pool", s.pool, "--json", "import", "g2", s.dir / "g2"},
        {"UNIFY_FAULT_SETTLE=settled", "UNIFY_FAULT_REWRITE=lease.ahead:1:" + a,
         "UNIFY_FAULT_LINK=lease.ahead:1:" + a + ":" + added, "UNIFY_FAULT_REWRITE_DONE=" + done});
    ASSERT_EQ(r.status, 0) << r.out << r.err;
    ASSERT_TRUE(test::stat_path(done).st_ino) << "the rewrite did not land";
    EXPECT_TRUE(test::object_of(s.pool, a).empty())
        << a << " became the object: the guest's rewrite is undone\n"
        << r.out;
    EXPECT_TRUE(test::read_file(a) == rewritten(content)) << a << " lost the guest's write";
    EXPECT_EQ(test::stat_path(a).st_ino, test::stat_path(added).st_ino);
    EXPECT_EQ(test::run_unify({"--pool", s.pool, "verify", "--full"}).status, 0);
}

// A just-made file of a later guest with the bytes of the first guest's object at its path:
// compared with that object instead of hashed.
struct CopyOfAnObject {
    Guests s;
    const std::string a = s.dir / "g2/usr/share/data";
    const std::string content = std::string(16 * 1024, 'c');  // compared from 16 KiB on
    const std::string done = s.dir / "rewritten";
    testing::AssertionResult import_g1() {
        for (const std::string& p : {s.dir / "g1/usr/share/data", a}) {
            test::write_file(p, content);
            test::set_mtime(p, 1700000000, 5);
        }
        int status = s.import("g1").status;
        return status == 0 ? testing::AssertionSuccess()
                           : testing::AssertionFailure() << "import g1: status " << status;
    }
    // g2 imported with every file unsettled, the guest rewriting `a` in place (same size,
    // mtime put back) after the hash pass, before any other lease; plus `env`.
    test::RunResult import_g2_rewriting(std::vector<std::string> env = {}) {
        env.insert(env.end(),
                   {"UNIFY_FAULT_SETTLE=unsettled", "UNIFY_FAULT_REWRITE=lease.ahead:1:" + a,
                    "UNIFY_FAULT_REWRITE_DONE=" + done});
        return test::run_unify_faults({"--pool", s.pool, "--json", "import", "g2", s.dir / "g2"},
                                      env);
    }
};

// The hash pass reads a just-made file under a read lease it keeps until the file is linked
// (importer/settle.h): the guest's rewrite after the hash is held off (its non-blocking open
// fails and breaks the lease), and the broken lease makes the path busy: skipped, its bytes
// the guest's. Before, the lease came after the hash: the rewrite landed, and only a second
// read of the file caught it.
TEST(Hostile, ARewriteOfAJustMadeFileAfterItsHashIsHeldOffByTheLeaseItWasReadUnder) {
    CopyOfAnObject c;
    UNIFY_REQUIRE(test::need_immutable(c.s.dir.path()));
    ASSERT_TRUE(c.import_g1());
    auto r = c.import_g2_rewriting();
    ASSERT_EQ(r.status, 0) << r.out << r.err;
    EXPECT_FALSE(test::stat_path(c.done).st_ino)
        << "the rewrite landed: no lease held the file since its hash";
    EXPECT_TRUE(test::object_of(c.s.pool, c.a).empty())
        << c.a << " was linked on a lease a writer had broken\n"
        << r.out;
    EXPECT_TRUE(test::contains(r.out, "busy")) << r.out;
    EXPECT_TRUE(test::read_file(c.a) == c.content);
    EXPECT_EQ(test::run_unify({"--pool", c.s.pool, "verify", "--full"}).status, 0);
}

// Where the hash pass could not lease it (a writer had it open then: made so here by
// UNIFY_FAULT_ERRNO), the file is re-read under a lease taken before it is replaced, and so
// compared with the object again. The guest rewrites it between the two: the re-read must
// see the new bytes, and the path keeps them.
TEST(Hostile, ARewriteOfACopyBeforeItsLeaseIsSeenByTheReRead) {
    CopyOfAnObject c;
    UNIFY_REQUIRE(test::need_immutable(c.s.dir.path()));
    ASSERT_TRUE(c.import_g1());
    auto r = c.import_g2_rewriting({"UNIFY_FAULT_ERRNO=hash.lease:EAGAIN:g2/usr/share/data"});
    ASSERT_EQ(r.status, 0) << r.out << r.err;
    ASSERT_TRUE(test::stat_path(c.done).st_ino) << "the rewrite did not land";
    EXPECT_TRUE(test::object_of(c.s.pool, c.a).empty())
        << c.a << " became an object: the guest's rewrite is undone\n"
        << r.out;
    EXPECT_TRUE(test::read_file(c.a) == rewritten(c.content)) << c.a << " lost the guest's write";
    EXPECT_EQ(test::run_unify({"--pool", c.s.pool, "verify", "--full"}).status, 0);
}

// A guest file with two names, both of an object's content. Replacing the first name moves
// the inode's link count and ctime; the guest then rewrites the inode in place through the
// second name. ctime cannot tell that write from unify's own unlink, so the second name is
// read again before it is replaced (link_over's recheck): its new bytes stay (skipped as
// changed), never lost with the inode. Where the flag does not stop earlier writers, the
// second name's lease stops the write instead (the rewrite cannot land).
TEST(Hostile, ARewriteAfterUnifyMovedTheLinkCountIsNotLost) {
    Guests s;
    UNIFY_REQUIRE(test::need_immutable(s.dir.path()));
    const std::string a = s.dir / "g2/usr/a/data", b = s.dir / "g2/usr/b/data";
    const std::string content = object_content_at(s, a);
    ASSERT_EQ(mkdir((s.dir / "g2/usr/b").c_str(), 0755), 0);
    ASSERT_EQ(link(a.c_str(), b.c_str()), 0);
    const std::string done = s.dir / "rewritten";
    // The walk takes /usr's entries in readdir order: the name walked second is linked second,
    // and it is rewritten at the second replace.check, after the first became the object.
    std::string first, second;
    {
        DIR* d = opendir((s.dir / "g2/usr").c_str());
        ASSERT_NE(d, nullptr);
        while (dirent* e = readdir(d)) {
            std::string n = e->d_name;
            if (n != "a" && n != "b") continue;
            (first.empty() ? first : second) = s.dir / ("g2/usr/" + n + "/data");
        }
        closedir(d);
    }
    auto r = test::run_unify_faults(
        {"--pool", s.pool, "--json", "import", "g2", s.dir / "g2"},
        {"UNIFY_FAULT_SETTLE=settled", "UNIFY_FAULT_REWRITE=replace.check:2:" + second,
         "UNIFY_FAULT_REWRITE_DONE=" + done});
    ASSERT_EQ(r.status, 0) << r.out << r.err;
    const bool wrote = test::stat_path(done).st_ino != 0;
    EXPECT_FALSE(test::object_of(s.pool, first).empty()) << first << " was not linked\n" << r.out;
    EXPECT_TRUE(test::read_file(first) == content) << first;
    if (wrote) {
        EXPECT_TRUE(test::object_of(s.pool, second).empty())
            << second << " became the object: the guest's rewrite is lost\n"
            << r.out;
        EXPECT_TRUE(test::read_file(second) == rewritten(content))
            << second << " lost the guest's write";
    } else {
        EXPECT_TRUE(test::read_file(second) == content) << second;
    }
    EXPECT_EQ(test::run_unify({"--pool", s.pool, "verify", "--full"}).status, 0);
}

TEST(Hostile, ArbitraryOwnersAndSetidFilesShareOnlyWhenEqual) {
    Guests s;
    UNIFY_REQUIRE(test::need_immutable(s.dir.path()));
    struct Variant {
        const char* name;
        uid_t uid;
        gid_t gid;
        mode_t mode;
    };
    // g1 and g2 agree on every file; g3 differs from them in exactly one attribute each.
    const Variant same[] = {{"big-uid", 4000000000u, 4000000001u, 0644},
                            {"setuid", 0, 0, 04755},
                            {"setgid", 0, 50, 02755},
                            {"sticky", 0, 0, 01755}};
    const Variant other[] = {{"big-uid", 4000000000u, 4000000002u, 0644},
                             {"setuid", 0, 0, 0755},
                             {"setgid", 0, 50, 0755},
                             {"sticky", 0, 0, 0755}};
    auto make = [&](const std::string& g, const Variant& v) {
        std::string f = s.dir / (g + "/usr/bin/" + v.name);
        test::write_file(f, std::string("same bytes for ") + v.name);
        ASSERT_EQ(chown(f.c_str(), v.uid, v.gid), 0);
        ASSERT_EQ(chmod(f.c_str(), v.mode), 0);
        test::set_mtime(f, 1700000000, 5);
    };
    for (const auto& v : same) {
        make("g1", v);
        make("g2", v);
    }
    for (const auto& v : other) make("g3", v);
    std::string before3 = test::manifest(s.dir / "g3");
    for (const char* g : {"g1", "g2", "g3"}) ASSERT_EQ(s.import(g).status, 0);
    for (const auto& v : same) {
        std::string n = std::string("/usr/bin/") + v.name;
        struct stat a = test::stat_path(s.dir / ("g1" + n)),
                    b = test::stat_path(s.dir / ("g2" + n)),
                    c = test::stat_path(s.dir / ("g3" + n));
        EXPECT_EQ(a.st_ino, b.st_ino) << v.name;
        EXPECT_NE(a.st_ino, c.st_ino) << v.name << " shared across different metadata";
        EXPECT_EQ(a.st_mode & 07777, v.mode) << v.name;
        EXPECT_EQ(a.st_uid, v.uid) << v.name;
        EXPECT_EQ(a.st_gid, v.gid) << v.name;
    }
    EXPECT_EQ(test::manifest(s.dir / "g3"), before3);
}

}  // namespace
}  // namespace unify
