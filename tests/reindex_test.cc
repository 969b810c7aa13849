// End-to-end tests of unify reindex and of the commands' answer to a lost or damaged index:
// three guests are imported (shared and private files, a setuid file with an owner and an
// xattr, hard links inside a guest, an include and an exclude rule, --min-size, a rule that
// changed after its files were linked), the index is dumped table by table, then lost or
// overwritten with garbage; every command must then say to run `unify reindex`, and the
// index reindex builds must dump exactly as the one it replaces (tests/index_dump.cc says
// which two fields are left out and why).
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <filesystem>
#include <set>

#include "tests/index_dump.h"
#include "tests/test_support.h"

namespace unify::test {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kMtime = 1700000000;

void file(const std::string& path, const std::string& content, mode_t mode, int64_t ns) {
    write_file(path, content, mode);
    set_mtime(path, kMtime, ns);
}

struct Guests3 {
    explicit Guests3(const TempDir& dir)
        : pool(dir / "pool"), g1(dir / "g1"), g2(dir / "g2"), g3(dir / "g3") {
        for (const auto& g : {g1, g2, g3}) {
            file(g + "/usr/lib/libc.so", "libc\n" + std::string(3000, 'l'), 0644, 1);
            file(g + "/etc/hostname", g + "\n", 0644, 2);        // default rules: private
            file(g + "/etc/ssl/certs/ca.pem", "ca\n", 0644, 3);  // private unless included
        }
        for (const auto& g : {g1, g2}) {
            std::string tool = g + "/usr/bin/tool";
            file(tool, "tool\n" + std::string(1000, 't'), 04755, 4);
            if (chown(tool.c_str(), 1234, 5678) != 0 || chmod(tool.c_str(), 04755) != 0)
                ADD_FAILURE() << "chown/chmod " << tool << ": " << strerror(errno);
            const char v[] = "value";
            if (setxattr(tool.c_str(), "user.unify-test", v, sizeof v - 1, 0) != 0)
                ADD_FAILURE() << "setxattr " << tool << ": " << strerror(errno);
            set_mtime(tool, kMtime, 4);
            file(g + "/usr/share/doc/readme", "readme\n", 0644, 5);
        }
        // Two hard links inside g1 (its object is a copy), a file below --min-size in g2,
        // and a private file of g3's own.
        file(g1 + "/usr/bin/a", "hard-linked\n", 0755, 6);
        if (link((g1 + "/usr/bin/a").c_str(), (g1 + "/usr/bin/b").c_str()) != 0)
            ADD_FAILURE() << "link: " << strerror(errno);
        file(g2 + "/usr/bin/tiny", "t\n", 0755, 7);
        file(g3 + "/opt/own", "own\n", 0600, 8);
    }

    RunResult unify(std::vector<std::string> args) const {
        args.insert(args.begin(), {"--pool", pool});
        return run_unify(args);
    }

    bool init_and_import() const {
        std::vector<std::vector<std::string>> steps = {
            {"init", "--protect", "immutable"},
            // g1 first links its docs, then keeps them private: the second import gives them
            // private copies (made_private), and reindex must not find them linked again.
            {"import", "g1", g1, "--include", "/etc/ssl/certs"},
            {"import", "g1", g1, "--include", "/etc/ssl/certs", "--exclude", "/usr/share/doc"},
            {"import", "g2", g2, "--min-size", "3"},
            {"import", "g3", g3},
        };
        for (const auto& args : steps) {
            auto r = unify(args);
            EXPECT_EQ(r.status, 0)
                << args[0] << " " << (args.size() > 1 ? args[1] : "") << ": " << r.err;
            if (r.status != 0) return false;
        }
        return true;
    }

    std::string pool, g1, g2, g3;
};

// The dump of a freshly imported pool, with a sanity check that it holds what it should.
std::string imported_dump(const Guests3& s) {
    std::string dump = dump_index(s.pool);
    EXPECT_FALSE(dump.starts_with("ERROR")) << dump;
    for (const char* want :
         {"name=g1", "name=g2", "name=g3", "rules=[+/etc/ssl/certs;-/usr/share/doc;]", "min_size=3",
          "path=/usr/bin/tool", "path=/usr/bin/a ", "path=/usr/bin/b ",
          "link guest=1 path=/etc/ssl/certs/ca.pem", "path=/opt/own"})
        EXPECT_TRUE(contains(dump, want)) << want << " not in\n" << dump;
    EXPECT_FALSE(contains(dump, "path=/usr/bin/tiny")) << dump;
    EXPECT_FALSE(contains(dump, "path=/etc/hostname")) << dump;
    EXPECT_FALSE(contains(dump, "link guest=1 path=/usr/share/doc/readme")) << dump;
    return dump;
}

// Every command that reads the index fails with a message that names it and says what to do.
void expect_reindex_advice(const Guests3& s) {
    for (auto args : {std::vector<std::string>{"status"},
                      {"list"},
                      {"who", s.g1 + "/usr/bin/tool"},
                      {"gc"},
                      {"verify"},
                      {"import", "g3", s.g3},
                      {"unshare", "g1"}}) {
        auto r = s.unify(args);
        EXPECT_EQ(r.status, 1) << args[0] << "\n" << r.out << r.err;
        EXPECT_TRUE(contains(r.err, s.pool + "/index")) << args[0] << ": " << r.err;
        EXPECT_TRUE(contains(r.err, "run `unify reindex`")) << args[0] << ": " << r.err;
    }
}

TEST(Reindex, RebuildsTheSameIndexAfterItWasDeleted) {
    TempDir dir;
    UNIFY_REQUIRE(need_immutable(dir.path()));
    Guests3 s(dir);
    ASSERT_TRUE(s.init_and_import());
    std::string before = imported_dump(s);
    std::string g1 = manifest(s.g1);
    auto objects = objects_by_inode(s.pool);

    ASSERT_EQ(sh("rm -r '" + s.pool + "/index'"), 0);
    expect_reindex_advice(s);

    auto r = s.unify({"reindex"});
    ASSERT_EQ(r.status, 0) << r.out << r.err;
    EXPECT_TRUE(contains(r.out, "guests            3 (from " + s.pool + "/guests.conf)")) << r.out;
    EXPECT_TRUE(contains(r.out, "old index         none")) << r.out;
    EXPECT_EQ(r.err, "");
    EXPECT_EQ(dump_index(s.pool), before);
    // Reindex changes nothing in the guests and the pool's objects.
    EXPECT_EQ(manifest(s.g1), g1);
    EXPECT_EQ(objects_by_inode(s.pool), objects);

    // And the pool works as before: status, verify, another import that finds all linked.
    r = s.unify({"status"});
    EXPECT_EQ(r.status, 0) << r.err;
    r = s.unify({"verify", "--full"});
    EXPECT_EQ(r.status, 0) << r.out << r.err;
    r = s.unify({"import", "g3", s.g3});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_TRUE(contains(r.out, "newly linked      0\n")) << r.out;
}

TEST(Reindex, RebuildsTheSameIndexFromAGarbageDataFile) {
    TempDir dir;
    UNIFY_REQUIRE(need_immutable(dir.path()));
    Guests3 s(dir);
    ASSERT_TRUE(s.init_and_import());
    std::string before = imported_dump(s);

    std::string data = s.pool + "/index/data.mdb";
    auto size = stat_path(data).st_size;
    ASSERT_GT(size, 0);
    ASSERT_EQ(sh("head -c " + std::to_string(size) + " /dev/urandom > '" + data + "'"), 0);
    expect_reindex_advice(s);

    auto r = s.unify({"reindex"});
    ASSERT_EQ(r.status, 0) << r.out << r.err;
    EXPECT_EQ(dump_index(s.pool), before);
    // The damaged index was moved aside, not deleted.
    std::set<std::string> old;
    for (const auto& e : entries(s.pool))
        if (e.starts_with("index.old.")) old.insert(e);
    ASSERT_EQ(old.size(), 1u);
    EXPECT_TRUE(contains(r.out, "moved to " + s.pool + "/" + *old.begin())) << r.out;
    EXPECT_FALSE(fs::exists(s.pool + "/index.new"));
    r = s.unify({"verify"});
    EXPECT_EQ(r.status, 0) << r.out << r.err;
}

TEST(Reindex, WithoutTheRegistryTakesTheGuestsFromAReadableIndex) {
    TempDir dir;
    UNIFY_REQUIRE(need_immutable(dir.path()));
    Guests3 s(dir);
    ASSERT_TRUE(s.init_and_import());
    std::string before = imported_dump(s);
    std::string registry = read_file(s.pool + "/guests.conf");
    ASSERT_TRUE(contains(registry, "name=g2")) << registry;
    ASSERT_EQ(unlink((s.pool + "/guests.conf").c_str()), 0);
    // A killed reindex left a half-built index behind: it is removed, not trusted.
    write_file(s.pool + "/index.new/data.mdb", "half\n");

    auto r = s.unify({"reindex"});
    ASSERT_EQ(r.status, 0) << r.out << r.err;
    EXPECT_TRUE(contains(r.out, "(from the old index)")) << r.out;
    EXPECT_EQ(dump_index(s.pool), before);
    EXPECT_EQ(read_file(s.pool + "/guests.conf"), registry);
}

TEST(Reindex, WithNoGuestsKnownRecordsTheObjectsAndAnImportTheLinks) {
    TempDir dir;
    UNIFY_REQUIRE(need_immutable(dir.path()));
    Guests3 s(dir);
    ASSERT_TRUE(s.init_and_import());
    ASSERT_EQ(sh("rm -r '" + s.pool + "/index' '" + s.pool + "/guests.conf'"), 0);
    auto r = s.unify({"reindex"});
    ASSERT_EQ(r.status, 0) << r.out << r.err;
    EXPECT_TRUE(contains(r.err, "no guest registry")) << r.err;
    EXPECT_TRUE(contains(r.out, "links             0\n")) << r.out;
    r = s.unify({"import", "g3", s.g3});
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_TRUE(contains(r.out, "new objects       0 ")) << r.out;
    r = s.unify({"verify"});
    EXPECT_EQ(r.status, 0) << r.out << r.err;
}

TEST(Reindex, CountsOverflowReplicas) {
    // ext4 allows 65,000 links per inode: 65,010 identical files make a replica ".1", and
    // reindex must record both inodes (replicas=2) and which paths link which.
    LoopFs fs("ext4", 160, "-N 90000");
    UNIFY_REQUIRE(fs.reason());
    UNIFY_REQUIRE(need_immutable(fs.path()));
    std::string pool = fs / "pool", g1 = fs / "g1";
    ASSERT_EQ(run_unify({"--pool", pool, "init"}).status, 0);
    for (size_t d = 0; d < 5; ++d)
        ASSERT_TRUE(write_many(g1 + "/usr/share/d" + std::to_string(d), "f", 13002,
                               "the same bytes everywhere\n"));
    auto r = run_unify({"--pool", pool, "import", "g1", g1});
    ASSERT_EQ(r.status, 0) << r.err;
    ASSERT_EQ(objects_by_inode(pool).size(), 2u);
    std::string before = dump_index(pool);
    EXPECT_TRUE(contains(before, " replicas=2\n")) << before.substr(0, 2000);
    EXPECT_TRUE(contains(before, " replica=1 ")) << before.substr(0, 2000);

    ASSERT_EQ(sh("rm -r '" + pool + "/index'"), 0);
    r = run_unify({"--pool", pool, "reindex"});
    ASSERT_EQ(r.status, 0) << r.out << r.err;
    EXPECT_TRUE(contains(r.out, "objects           1 (2 files, ")) << r.out;
    EXPECT_TRUE(contains(r.out, "links             65,010\n")) << r.out;
    EXPECT_TRUE(dump_index(pool) == before) << "the rebuilt index differs";
}

TEST(Reindex, GuestRegistryFollowsImport) {
    TempDir dir;
    UNIFY_REQUIRE(need_immutable(dir.path()));
    Guests3 s(dir);
    ASSERT_TRUE(s.init_and_import());
    std::string reg = read_file(s.pool + "/guests.conf");
    EXPECT_TRUE(contains(reg, "version\t1\n")) << reg;
    EXPECT_TRUE(contains(reg, "\tname=g1\troot=" + s.g1 + "\t")) << reg;
    EXPECT_TRUE(contains(reg, "\trule=+/etc/ssl/certs\trule=-/usr/share/doc\n")) << reg;
    EXPECT_TRUE(contains(reg, "\tmin_size=3\t")) << reg;
    EXPECT_EQ(stat_path(s.pool + "/guests.conf").st_mode & 0777, 0600u);
    // A dry run registers nothing.
    std::string g4 = dir / "g4";
    file(g4 + "/usr/bin/x", "x\n", 0755, 1);
    auto r = s.unify({"import", "--dry-run", "g4", g4});
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(read_file(s.pool + "/guests.conf"), reg);
    r = s.unify({"import", "g4", g4});
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_TRUE(contains(read_file(s.pool + "/guests.conf"), "\tname=g4\t"));
}

}  // namespace
}  // namespace unify::test
