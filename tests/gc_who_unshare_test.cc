// End-to-end tests of gc, who and unshare through the real binary: three small guests on
// /var/tmp share some files, differ on others; the pool's objects directory and the link
// counts on the filesystem are the ground truth the output is checked against.
#include <signal.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <set>
#include <sstream>

#include "tests/index_dump.h"
#include "tests/sample_guests.h"
#include "tests/test_support.h"

namespace unify::test {
namespace {

namespace fs = std::filesystem;

// Sizes chosen so that the byte figures gc prints are known strings.
const std::string kTool = "tool v1\n" + std::string(1492, 't');    // 1,500 bytes
const std::string kToolG3 = "tool v3\n" + std::string(992, 'T');   // 1,000 bytes
const std::string kLib = "libc\n" + std::string(3995, 'l');        // 4,000 bytes
const std::string kDoc = "readme\n" + std::string(293, 'd');       // 300 bytes
const std::string kPrivate = "private\n" + std::string(692, 'p');  // 700 bytes
const std::string kConf = "conf=1\n";

// Three guests below `dir`:
//   /usr/bin/tool        g1 = g2 (setuid, owned 1234:5678, user.* xattr); g3 differs
//   /usr/lib/libc.so     g1 = g2 = g3
//   /usr/share/doc/readme g1 = g2
//   /usr/local/bin/private only in g1
//   /etc/conf            in all three (excluded by the default rules)
struct Sample : ThreeGuests {
    explicit Sample(const TempDir& dir) : ThreeGuests(dir) {
        for (const auto& g : {g1, g2, g3}) {
            file(g + "/usr/lib/libc.so", kLib, 0644, 1);
            file(g + "/etc/conf", kConf, 0644, 2);
        }
        for (const auto& g : {g1, g2}) {
            file(g + "/usr/bin/tool", kTool, 0755, 3);
            // Strong metadata on a shared file: unshare must give all of it back.
            if (chown((g + "/usr/bin/tool").c_str(), 1234, 5678) != 0)
                ADD_FAILURE() << "chown " << g << ": " << strerror(errno);
            if (chmod((g + "/usr/bin/tool").c_str(), 04755) != 0)
                ADD_FAILURE() << "chmod " << g << ": " << strerror(errno);
            const char v[] = "sample-value";
            if (setxattr((g + "/usr/bin/tool").c_str(), "user.unify-test", v, sizeof v - 1, 0) != 0)
                ADD_FAILURE() << "setxattr " << g << ": " << strerror(errno);
            set_mtime(g + "/usr/bin/tool", kSampleMtime, 3);
            file(g + "/usr/share/doc/readme", kDoc, 0644, 4);
        }
        file(g3 + "/usr/bin/tool", kToolG3, 0755, 3);
        file(g1 + "/usr/local/bin/private", kPrivate, 0600, 5);
    }
};

std::string hex_of(const std::string& object) {
    return object.substr(3);
}

nlink_t nlink(const std::string& path) {
    return stat_path(path).st_nlink;
}

// "guest:/path" for each line the `who` listing prints below "shared by".
std::set<std::string> who_links(const std::string& out) {
    std::set<std::string> links;
    std::istringstream in(out);
    std::string line;
    bool listing = false;
    while (std::getline(in, line)) {
        if (line.rfind("shared by ", 0) == 0) {
            listing = true;
            continue;
        }
        if (!listing || line.rfind("  ", 0) != 0) continue;
        std::istringstream f(line);
        std::string guest, path;
        f >> guest >> path;
        links.insert(guest + ":" + path);
    }
    return links;
}

// Every test runs on both of import's paths (tests/test_support.h).
using Gc = BothSettlePaths;
using Who = BothSettlePaths;
using Unshare = BothSettlePaths;
UNIFY_ON_BOTH_SETTLE_PATHS(Gc);
UNIFY_ON_BOTH_SETTLE_PATHS(Who);
UNIFY_ON_BOTH_SETTLE_PATHS(Unshare);

// ---------------------------------------------------------------------------------------
// Gc

TEST_P(Gc, AfterImportRemovesNothing) {
    TempDir dir;
    UNIFY_REQUIRE(need_immutable(dir.path()));
    Sample s(dir);
    ASSERT_TRUE(s.init_and_import());
    auto before = objects(s.pool);
    // tool (g1=g2), tool (g3), libc, readme, private.
    ASSERT_EQ(before.size(), 5u);
    for (const auto& o : before) EXPECT_GT(nlink(s.pool + "/objects/" + o), 1u) << o;

    auto r = s.unify({"gc"});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.err, "");
    EXPECT_TRUE(contains_squeezed(r.out, "objects seen      5\n")) << r.out;
    EXPECT_TRUE(contains_squeezed(r.out, "objects removed 0\n")) << r.out;
    EXPECT_TRUE(contains_squeezed(r.out, "bytes reclaimed 0 bytes\n")) << r.out;
    EXPECT_TRUE(contains_squeezed(r.out, "stale link records dropped 0\n")) << r.out;
    EXPECT_EQ(objects(s.pool), before);
}

TEST_P(Gc, RemovesExactlyTheObjectsOnlyThePoolLinks) {
    TempDir dir;
    UNIFY_REQUIRE(need_immutable(dir.path()));
    Sample s(dir);
    ASSERT_TRUE(s.init_and_import());
    std::string tool_obj = object_of(s.pool, s.g1 + "/usr/bin/tool");
    std::string private_obj = object_of(s.pool, s.g1 + "/usr/local/bin/private");
    ASSERT_NE(tool_obj, "");
    ASSERT_NE(private_obj, "");
    ASSERT_EQ(object_of(s.pool, s.g2 + "/usr/bin/tool"), tool_obj);

    // The host path form for g2, the guest path form for g1.
    auto r = s.unify({"unshare", "g2", s.g2 + "/usr/bin/tool"});
    ASSERT_EQ(r.status, 0) << r.err;
    r = s.unify({"unshare", "g1", "/usr/bin/tool", "/usr/local/bin/private"});
    ASSERT_EQ(r.status, 0) << r.err;

    auto before = objects(s.pool);
    ASSERT_EQ(before.size(), 5u);
    std::set<std::string> lonely;
    for (const auto& o : before)
        if (nlink(s.pool + "/objects/" + o) == 1) lonely.insert(o);
    ASSERT_EQ(lonely, (std::set<std::string>{tool_obj, private_obj}));
    for (const auto& o : lonely)
        EXPECT_TRUE(is_immutable(s.pool + "/objects/" + o)) << o << " should still be protected";

    // Dry run first: the same figures, nothing removed.
    r = s.unify({"gc", "--dry-run"});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_TRUE(contains_squeezed(r.out, "dry run, nothing changed")) << r.out;
    EXPECT_TRUE(contains_squeezed(r.out, "objects would be removed 2\n")) << r.out;
    EXPECT_TRUE(contains_squeezed(r.out, "bytes would be reclaimed 2.2 kB (2,200 bytes)\n"))
        << r.out;
    EXPECT_TRUE(contains_squeezed(r.out, "stale link records would be dropped 0\n")) << r.out;
    EXPECT_EQ(objects(s.pool), before);
    for (const auto& o : lonely) EXPECT_TRUE(is_immutable(s.pool + "/objects/" + o)) << o;

    // The real run: immutable objects are unlocked and removed without an error.
    r = s.unify({"gc"});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.err, "");
    EXPECT_TRUE(contains_squeezed(r.out, "objects seen      5\n")) << r.out;
    EXPECT_TRUE(contains_squeezed(r.out, "objects removed 2\n")) << r.out;
    EXPECT_TRUE(contains_squeezed(r.out, "bytes reclaimed 2.2 kB (2,200 bytes)\n")) << r.out;
    auto after = objects(s.pool);
    std::set<std::string> expected;
    for (const auto& o : before)
        if (!lonely.count(o)) expected.insert(o);
    EXPECT_EQ(after, expected);
    for (const auto& o : after) EXPECT_GT(nlink(s.pool + "/objects/" + o), 1u) << o;

    // The private copies are untouched by gc; a second gc finds nothing.
    EXPECT_EQ(read_file(s.g1 + "/usr/bin/tool"), kTool);
    EXPECT_EQ(read_file(s.g2 + "/usr/bin/tool"), kTool);
    EXPECT_EQ(read_file(s.g1 + "/usr/local/bin/private"), kPrivate);
    r = s.unify({"gc"});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_TRUE(contains_squeezed(r.out, "objects removed 0\n")) << r.out;
    EXPECT_EQ(objects(s.pool), after);
}

TEST_P(Gc, DropsStaleLinkRecordOfAPathReplacedOnTheHost) {
    TempDir dir;
    UNIFY_REQUIRE(need_immutable(dir.path()));
    Sample s(dir);
    ASSERT_TRUE(s.init_and_import());
    std::string doc_obj = object_of(s.pool, s.g1 + "/usr/share/doc/readme");
    ASSERT_NE(doc_obj, "");

    // A protected file cannot be renamed or removed, but its directory can be moved away;
    // the path then names a new private file while the index still records the old link.
    // (unshare + rm + write would not do: unshare drops the record itself.)
    ASSERT_EQ(0, sh("mv '" + s.g1 + "/usr/share/doc' '" + s.g1 + "/usr/share/doc.old'"));
    write_file(s.g1 + "/usr/share/doc/readme", "a newer readme\n");
    auto objs = objects(s.pool);

    auto r = s.unify({"who", doc_obj.substr(3)});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(who_links(r.out), (std::set<std::string>{"g2:/usr/share/doc/readme"})) << r.out;

    // Plain gc reads the pool only: the object has links, nothing to do.
    r = s.unify({"gc"});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_TRUE(contains_squeezed(r.out, "stale link records dropped 0\n")) << r.out;
    EXPECT_TRUE(
        contains_squeezed(dump_index(s.pool), "path=/usr/share/doc/readme id=" + hex_of(doc_obj)));

    r = s.unify({"gc", "--reconcile", "--dry-run"});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_TRUE(contains_squeezed(r.out, "stale link records would be dropped 1\n")) << r.out;
    EXPECT_TRUE(contains_squeezed(r.out, "objects would be removed 0\n")) << r.out;

    r = s.unify({"gc", "--reconcile"});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_TRUE(contains_squeezed(r.out, "stale link records dropped 1\n")) << r.out;
    EXPECT_TRUE(contains_squeezed(r.out, "objects removed 0\n")) << r.out;
    EXPECT_EQ(objects(s.pool), objs);  // still linked by g2 and by the moved directory

    r = s.unify({"who", "g1:/usr/share/doc/readme"});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_TRUE(contains_squeezed(r.out, "is not unified")) << r.out;
    r = s.unify({"who", doc_obj.substr(3)});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(who_links(r.out), (std::set<std::string>{"g2:/usr/share/doc/readme"})) << r.out;

    // Dropped once: the next gc finds nothing stale.
    r = s.unify({"gc", "--reconcile"});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_TRUE(contains_squeezed(r.out, "stale link records dropped 0\n")) << r.out;

    // The brief's way of replacing a file (unshare, rm, write anew): who forgets it at once,
    // and gc has no record left to drop.
    r = s.unify({"unshare", "g2", "/usr/share/doc/readme"});
    ASSERT_EQ(r.status, 0) << r.err;
    ASSERT_EQ(0, unlink((s.g2 + "/usr/share/doc/readme").c_str()));
    write_file(s.g2 + "/usr/share/doc/readme", "g2's own readme\n");
    r = s.unify({"who", doc_obj.substr(3)});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(who_links(r.out), std::set<std::string>{}) << r.out;
    r = s.unify({"gc"});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_TRUE(contains_squeezed(r.out, "stale link records dropped 0\n")) << r.out;
    // doc.old/readme in g1 still links the object, so it stays.
    EXPECT_TRUE(objects(s.pool).count(doc_obj));
}

// Re-import drops the records of its guest's paths that are gone; the other guests' stay.
TEST_P(Gc, ReimportDropsRecordsOfRemovedPathsAndOfObjectsGcRemoved) {
    TempDir dir;
    UNIFY_REQUIRE(need_immutable(dir.path()));
    Sample s(dir);
    ASSERT_TRUE(s.init_and_import());
    std::string doc_obj = object_of(s.pool, s.g1 + "/usr/share/doc/readme");
    ASSERT_NE(doc_obj, "");
    std::string g1_record = "path=/usr/share/doc/readme id=" + hex_of(doc_obj);
    auto count = [](const std::string& text, const std::string& what) {
        size_t n = 0;
        for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1))
            ++n;
        return n;
    };
    // guest g1 and g2 each: one link record and one reverse entry.
    ASSERT_EQ(count(dump_index(s.pool), g1_record), 4u) << dump_index(s.pool);

    // The directory leaves the guest behind unify's back (its protected file cannot be
    // removed, but the directory can be moved); plain gc still sees two links.
    std::string outside = dir.path() + "/outside-doc";
    ASSERT_EQ(0, sh("mv '" + s.g1 + "/usr/share/doc' '" + outside + "'"));
    auto r = s.unify({"gc"});
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_TRUE(contains_squeezed(r.out, "objects removed 0\n")) << r.out;

    // A path that now holds other content is linked anew and its record rewritten, not
    // dropped, and the dry run must say the same. (Its protected file cannot be replaced in
    // place; its directory can be moved and made again.)
    ASSERT_EQ(0, sh("mv '" + s.g1 + "/usr/lib' '" + s.g1 + "/usr/lib.old'"));
    write_file(s.g1 + "/usr/lib/libc.so", "libc v2\n");
    r = s.unify({"import", "g1", s.g1, "--dry-run"});
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_TRUE(contains_squeezed(r.out, "records dropped   1 (dry run: would be)")) << r.out;
    EXPECT_EQ(count(dump_index(s.pool), g1_record), 4u);
    r = s.unify({"import", "g1", s.g1});
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_TRUE(contains_squeezed(r.out, "records dropped   1 ")) << r.out;
    EXPECT_EQ(count(dump_index(s.pool), g1_record), 2u) << "g2's record and reverse entry stay";
    r = s.unify({"import", "g1", s.g1});
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_FALSE(contains_squeezed(r.out, "records dropped")) << r.out;

    // g2's copy goes behind unify's back too, and the moved file is deleted: only the pool
    // links the object now, while g2's record still names it. gc removes the object reading
    // no guest path and no record; g2's next import drops the record.
    ASSERT_EQ(0, sh("mv '" + s.g2 + "/usr/share/doc' '" + outside + "2'"));
    ASSERT_EQ(0, sh("chattr -i '" + outside + "/readme' && rm -rf '" + outside +
                    "' && chattr -i '" + outside + "2/readme' && rm -rf '" + outside + "2'"));
    ASSERT_EQ(nlink(s.pool + "/objects/" + doc_obj), 1u);
    r = s.unify({"gc", "--dry-run"});
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_TRUE(contains_squeezed(r.out, "objects would be removed 1\n")) << r.out;
    r = s.unify({"gc"});
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_TRUE(contains_squeezed(r.out, "objects removed 1\n")) << r.out;
    EXPECT_FALSE(objects(s.pool).count(doc_obj));
    EXPECT_EQ(count(dump_index(s.pool), "object " + hex_of(doc_obj)), 0u);
    // (the dump lists reverse entries under their object record, which is gone)
    EXPECT_EQ(count(dump_index(s.pool), g1_record), 1u) << "g2's record stays until g2's import";
    r = s.unify({"import", "g2", s.g2});
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_TRUE(contains_squeezed(r.out, "records dropped   1 ")) << r.out;
    std::string dump = dump_index(s.pool);
    EXPECT_EQ(count(dump, hex_of(doc_obj)), 0u) << dump;
    r = s.unify({"verify"});
    EXPECT_EQ(r.status, 0) << r.out << r.err;
}

// gc killed between its unlinks and its index commit (the OOM killer): the objects are gone,
// their records stay. The next gc lists only files, so it must find those records by the
// index and drop them, or status, verify and re-imports would count them for ever.
TEST_P(Gc, AKilledGcsRecordsAreDroppedByTheNextOne) {
    TempDir dir;
    UNIFY_REQUIRE(need_immutable(dir.path()));
    Sample s(dir);
    ASSERT_TRUE(s.init_and_import());
    std::string private_obj = object_of(s.pool, s.g1 + "/usr/local/bin/private");
    ASSERT_EQ(s.unify({"unshare", "g1", "/usr/local/bin/private"}).status, 0);
    auto r = run_unify_faults({"--pool", s.pool, "gc"}, {"UNIFY_FAULT=index.commit:1"});
    ASSERT_EQ(r.status, 128 + SIGKILL) << r.out << r.err;
    ASSERT_FALSE(objects(s.pool).count(private_obj)) << "the premise: the object was removed";
    r = s.unify({"gc", "--dry-run"});
    EXPECT_TRUE(contains_squeezed(r.out, "records of objects without a file would be dropped 1"))
        << r.out;
    r = s.unify({"--json", "gc"});
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_TRUE(contains(r.out, "\"object_records_dropped\": 1")) << r.out;
    r = s.unify({"verify"});
    EXPECT_EQ(r.status, 0) << r.out << r.err;
    r = s.unify({"gc"});
    EXPECT_FALSE(contains(r.out, "without a file")) << r.out;
}

// After such a kill verify counts what that gc removed as missing and the object it was
// removing as not protected (exit 1, rightly: the index is not the pool's mirror). It must say
// that a gc was interrupted and that running gc again finishes it, not send the admin to
// verify --quarantine for damage there is none of.
TEST_P(Gc, VerifyAfterAKilledGcSaysToRunGcAgain) {
    TempDir dir;
    UNIFY_REQUIRE(need_immutable(dir.path()));
    Sample s(dir);
    ASSERT_TRUE(s.init_and_import());
    // Two objects no guest links any more: g1's private file and g3's own tool.
    ASSERT_EQ(s.unify({"unshare", "g1", "/usr/local/bin/private"}).status, 0);
    ASSERT_EQ(s.unify({"unshare", "g3", "/usr/bin/tool"}).status, 0);
    // Killed after unprotecting the second, before unlinking it.
    auto r = run_unify_faults({"--pool", s.pool, "gc"}, {"UNIFY_FAULT=gc.unlink:2"});
    ASSERT_EQ(r.status, 128 + SIGKILL) << r.out << r.err;
    ASSERT_TRUE(fs::exists(s.pool + "/gc-unlinking")) << "the premise: a gc was killed";
    r = s.unify({"verify"});
    EXPECT_EQ(r.status, 1) << r.out << r.err;
    EXPECT_TRUE(contains_squeezed(r.out, "missing 1\n")) << r.out;
    EXPECT_TRUE(contains_squeezed(r.out, "damaged 1\n")) << r.out;
    EXPECT_TRUE(contains_squeezed(r.out, "a gc was interrupted")) << r.out;
    EXPECT_TRUE(contains_squeezed(r.out, "run `unify gc` again to finish it")) << r.out;
    EXPECT_FALSE(contains_squeezed(r.out, "verify --quarantine")) << r.out;
    r = s.unify({"--json", "verify"});
    EXPECT_EQ(r.status, 1) << r.err;
    EXPECT_TRUE(contains(r.out, "\"gc_interrupted\": true")) << r.out;
    ASSERT_EQ(s.unify({"gc"}).status, 0);
    r = s.unify({"--json", "verify"});
    EXPECT_EQ(r.status, 0) << r.out << r.err;
    EXPECT_TRUE(contains(r.out, "\"gc_interrupted\": false")) << r.out;
}

// A guest adds a name of a shared object while a window has the flag lifted (link() is not
// stopped by the lease). forget must make that name private too: left an immutable link of
// the shared object, the admin's rm -rf of the forgotten guest fails and gc never frees it.
TEST_P(Unshare, ForgetMakesPrivateTheLinksAGuestPlantedUnrecorded) {
    TempDir dir;
    UNIFY_REQUIRE(need_immutable(dir.path()));
    Sample s(dir);
    ASSERT_TRUE(s.init_and_import());
    std::string lib = s.g1 + "/usr/lib/libc.so", planted = s.g1 + "/var/planted";
    ASSERT_EQ(sh("mkdir -p '" + s.g1 + "/var' && chattr -i '" + lib + "' && ln '" + lib + "' '" +
                 planted + "' && chattr +i '" + lib + "'"),
              0);
    const std::string m2 = manifest(s.g2);
    auto r = s.unify({"forget", "g1", "--dry-run"});
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_TRUE(contains(r.err, "1 name(s) of pool objects that no record names")) << r.err;
    EXPECT_TRUE(is_immutable(planted));
    r = s.unify({"--json", "forget", "g1"});
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_TRUE(contains(r.out, "\"unrecorded_links\": 1")) << r.out;
    EXPECT_EQ(nlink(planted), 1u);
    EXPECT_FALSE(is_immutable(planted));
    EXPECT_EQ(read_file(planted), kLib);
    EXPECT_EQ(sh("rm -rf '" + s.g1 + "'"), 0) << "the forgotten guest cannot be removed";
    EXPECT_EQ(manifest(s.g2), m2);
    r = s.unify({"verify", "--full"});
    EXPECT_EQ(r.status, 0) << r.out << r.err;
}

// ---------------------------------------------------------------------------------------
// Who

TEST_P(Who, HostPathGuestPathAndIdPrefixesListExactlyTheSharers) {
    TempDir dir;
    UNIFY_REQUIRE(need_immutable(dir.path()));
    Sample s(dir);
    ASSERT_TRUE(s.init_and_import());
    std::string tool_obj = object_of(s.pool, s.g1 + "/usr/bin/tool");
    ASSERT_NE(tool_obj, "");
    std::string hex = hex_of(tool_obj);
    ASSERT_EQ(hex.size(), 64u);
    std::string upper = hex.substr(0, 10);
    for (auto& c : upper) c = char(toupper(c));

    const std::set<std::string> tool_sharers = {"g1:/usr/bin/tool", "g2:/usr/bin/tool"};
    for (const std::string& target :
         {s.g1 + "/usr/bin/tool", s.g2 + "/usr/bin/./tool", std::string("g1:/usr/bin/tool"),
          std::string("g2:/usr/bin/tool"), hex.substr(0, 8), hex.substr(0, 12), upper, hex}) {
        auto r = s.unify({"who", target});
        EXPECT_EQ(r.status, 0) << target << ": " << r.err;
        EXPECT_TRUE(contains_squeezed(r.out, "object " + hex + "\n")) << target << ": " << r.out;
        EXPECT_TRUE(contains_squeezed(r.out, "size   1.5 kB (1,500 bytes)\n"))
            << target << ": " << r.out;
        EXPECT_TRUE(contains_squeezed(r.out, "shared by 2 paths")) << target << ": " << r.out;
        EXPECT_EQ(who_links(r.out), tool_sharers) << target << ": " << r.out;
    }

    // g3's tool has other content: its own object, only g3 listed.
    auto r = s.unify({"who", "g3:/usr/bin/tool"});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(who_links(r.out), std::set<std::string>{"g3:/usr/bin/tool"}) << r.out;
    EXPECT_FALSE(contains_squeezed(r.out, hex)) << r.out;

    // libc is the same in all three.
    r = s.unify({"who", s.g3 + "/usr/lib/libc.so"});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(who_links(r.out), (std::set<std::string>{"g1:/usr/lib/libc.so", "g2:/usr/lib/libc.so",
                                                       "g3:/usr/lib/libc.so"}))
        << r.out;
    // Looked at on one thread or on one per guest (query/who.cc named_links), the listing is
    // the same, guest by guest in the order they were registered.
    auto one = s.unify({"-j", "1", "who", "g3:/usr/lib/libc.so"});
    EXPECT_EQ(one.status, 0) << one.err;
    EXPECT_LT(one.out.find("g1 "), one.out.find("g2 ")) << one.out;
    EXPECT_LT(one.out.find("g2 "), one.out.find("g3 ")) << one.out;
    for (const char* jobs : {"2", "3", "4"}) {
        auto many = s.unify({"-j", jobs, "who", "g3:/usr/lib/libc.so"});
        EXPECT_EQ(many.status, 0) << many.err;
        EXPECT_EQ(many.out, one.out) << jobs << " threads";
    }
}

// `who` of a guest path looks up only that name in each directory that holds the object, and
// trusts that answer only when the object's link count leaves room for no other name. Every
// way it must not: a second name in the same directory, a name in another directory, and a
// path of that name replaced by another file while another name in its directory holds.
TEST_P(Who, AskedByPathListsEveryOtherNameOfTheObjectToo) {
    TempDir dir;
    UNIFY_REQUIRE(need_immutable(dir.path()));
    ThreeGuests s(dir);
    const std::string a = "object a\n", b = "object b\n", d = "object d\n", e = "object e\n";
    for (const auto& g : {s.g1, s.g2, s.g3}) {
        ThreeGuests::file(g + "/usr/lib/a", a, 0644, 1);
        ThreeGuests::file(g + "/usr/lib/d", d, 0644, 3);
        ThreeGuests::file(g + "/usr/lib/e", e, 0644, 4);
    }
    ThreeGuests::file(s.g1 + "/usr/lib/a.copy", a, 0644, 1);  // same directory
    ThreeGuests::file(s.g1 + "/usr/lib/b", b, 0644, 2);       // b: another directory in g2
    ThreeGuests::file(s.g2 + "/usr/share/b.elsewhere", b, 0644, 2);
    ThreeGuests::file(s.g2 + "/usr/lib/d.copy", d, 0644, 3);  // holds once g2's d is gone
    ASSERT_TRUE(s.init_and_import());
    // g2's d becomes another file behind unify's back (as in a window a guest raced).
    std::string g2d = s.g2 + "/usr/lib/d";
    ASSERT_EQ(sh("chattr -i '" + g2d + "'"), 0);
    write_file(s.g2 + "/usr/lib/d.new", "g2's own d\n");
    ASSERT_EQ(rename((s.g2 + "/usr/lib/d.new").c_str(), g2d.c_str()), 0);
    ASSERT_EQ(sh("chattr +i '" + s.g2 + "/usr/lib/d.copy'"), 0);

    auto listed = [&](const std::string& target) {
        auto r = s.unify({"who", target});
        EXPECT_EQ(r.status, 0) << target << ": " << r.err;
        return who_links(r.out);
    };
    using Set = std::set<std::string>;
    const std::map<std::string, Set> sharers = {
        {"/usr/lib/a", {"g1:/usr/lib/a", "g1:/usr/lib/a.copy", "g2:/usr/lib/a", "g3:/usr/lib/a"}},
        {"/usr/lib/b", {"g1:/usr/lib/b", "g2:/usr/share/b.elsewhere"}},
        {"/usr/lib/d", {"g1:/usr/lib/d", "g2:/usr/lib/d.copy", "g3:/usr/lib/d"}},
        // One name in each directory: the answer of the lookups alone.
        {"/usr/lib/e", {"g1:/usr/lib/e", "g2:/usr/lib/e", "g3:/usr/lib/e"}},
    };
    for (const auto& [rel, want] : sharers) {
        EXPECT_EQ(listed("g1:" + rel), want) << rel;
        EXPECT_EQ(listed(s.g1 + rel), want) << rel;  // a host path
        // By id, the name of the object's first link is the one looked up.
        std::string hex = hex_of(object_of(s.pool, s.g1 + rel));
        ASSERT_EQ(hex.size(), 64u) << rel;
        EXPECT_EQ(listed(hex), want) << rel;
    }
}

TEST_P(Who, FileThatIsNotUnifiedIsReportedAsSuch) {
    TempDir dir;
    UNIFY_REQUIRE(need_immutable(dir.path()));
    Sample s(dir);
    ASSERT_TRUE(s.init_and_import());
    // A file added after the import, and a file below the default exclusion /etc.
    Sample::file(s.g1 + "/usr/local/bin/new", "added later\n", 0755, 9);
    for (const std::string& target :
         {s.g1 + "/usr/local/bin/new", std::string("g1:/usr/local/bin/new"), s.g2 + "/etc/conf",
          std::string("g3:/etc/conf")}) {
        auto r = s.unify({"who", target});
        EXPECT_EQ(r.status, 0) << target << ": " << r.err;
        EXPECT_TRUE(contains_squeezed(r.out, "is not unified")) << target << ": " << r.out;
        EXPECT_FALSE(contains_squeezed(r.out, "shared by")) << target << ": " << r.out;
    }
}

TEST_P(Who, BadTargetsFailWithAClearMessage) {
    TempDir dir;
    UNIFY_REQUIRE(need_immutable(dir.path()));
    Sample s(dir);
    ASSERT_TRUE(s.init_and_import());
    auto objs = objects(s.pool);

    auto r = s.unify({"who", "abcdef1"});  // 7 hex digits
    EXPECT_EQ(r.status, 1);
    EXPECT_TRUE(contains_squeezed(r.err, "abcdef1")) << r.err;
    EXPECT_TRUE(contains_squeezed(r.err, "at least 8 hex digits")) << r.err;
    EXPECT_EQ(r.out, "");

    // A prefix no object has: flip the first digit of an existing id until none matches.
    std::string unknown;
    for (char c : std::string("0123456789abcdef")) {
        std::string p = std::string(1, c) + "0000000";
        bool used = false;
        for (const auto& o : objs) used = used || hex_of(o).rfind(p, 0) == 0;
        if (!used) {
            unknown = p;
            break;
        }
    }
    ASSERT_NE(unknown, "");
    r = s.unify({"who", unknown});
    EXPECT_EQ(r.status, 1);
    EXPECT_TRUE(contains_squeezed(r.err, "no object id starts with " + unknown)) << r.err;
    EXPECT_EQ(r.out, "");

    std::string outside = dir / "elsewhere/usr/bin/tool";
    write_file(outside, kTool);
    r = s.unify({"who", outside});
    EXPECT_EQ(r.status, 1);
    EXPECT_TRUE(contains_squeezed(r.err, outside)) << r.err;
    EXPECT_TRUE(contains_squeezed(r.err, "not inside a registered guest root")) << r.err;

    r = s.unify({"who", "nosuch:/usr/bin/tool"});
    EXPECT_EQ(r.status, 1);
    EXPECT_TRUE(contains_squeezed(r.err, "no guest named 'nosuch'")) << r.err;

    r = s.unify({"who", "g1:/usr/bin/missing"});
    EXPECT_EQ(r.status, 1);
    EXPECT_TRUE(contains_squeezed(r.err, s.g1 + "/usr/bin/missing")) << r.err;
    EXPECT_TRUE(contains_squeezed(r.err, "does not exist")) << r.err;
    EXPECT_EQ(objects(s.pool), objs);
}

// A filesystem mounted inside a guest after its import: `ls` shows the files below it, so
// "does not exist in the guest" would send the admin looking for the wrong thing. who,
// unshare and import --explain say which directory is the mount point that unify does not
// cross; who still fails (exit 1), unshare still has nothing to do.
TEST_P(Who, PathBelowAMountPointNamesTheMountPoint) {
    TempDir dir;
    UNIFY_REQUIRE(need_immutable(dir.path()));
    UNIFY_REQUIRE(need_root());
    Sample s(dir);
    ASSERT_TRUE(s.init_and_import());
    TmpfsMount mnt(s.g1 + "/usr/local/mnt");  // unmounted before `dir` is removed
    ASSERT_EQ(mnt.error(), "");
    write_file(s.g1 + "/usr/local/mnt/sub/file", kTool);
    const std::string said = "below a mount point at /usr/local/mnt inside the guest";
    for (const std::string& target :
         {std::string("g1:/usr/local/mnt/sub/file"), s.g1 + "/usr/local/mnt/sub/file"}) {
        auto r = s.unify({"who", target});
        EXPECT_EQ(r.status, 1) << target;
        EXPECT_TRUE(contains_squeezed(r.err, said)) << target << ": " << r.err;
        EXPECT_TRUE(contains_squeezed(r.err, "EXDEV")) << target << ": " << r.err;
        EXPECT_FALSE(contains_squeezed(r.err, "does not exist")) << target << ": " << r.err;
    }
    auto r = s.unify({"unshare", "g1", "/usr/local/mnt/sub/file"});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_TRUE(contains_squeezed(r.err, "g1:/usr/local/mnt/sub/file is " + said)) << r.err;
    r = s.unify({"import", "g1", s.g1, "--explain", "/usr/local/mnt/sub/file"});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_TRUE(contains_squeezed(r.out, "not unified: " + said)) << r.out;
    r = s.unify({"import", "g1", s.g1, "--explain", "/usr/local/mnt"});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_TRUE(
        contains_squeezed(r.out, "a mount point inside the guest, which unify does not cross"))
        << r.out;
    // A path that is not there, beside the mount, is still said to be missing.
    r = s.unify({"who", "g1:/usr/local/missing"});
    EXPECT_EQ(r.status, 1);
    EXPECT_TRUE(contains_squeezed(r.err, "does not exist in the guest")) << r.err;
}

TEST_P(Who, PathReplacedOnTheHostIsNoLongerListedEvenBeforeGc) {
    TempDir dir;
    UNIFY_REQUIRE(need_immutable(dir.path()));
    Sample s(dir);
    ASSERT_TRUE(s.init_and_import());
    std::string lib_hex = hex_of(object_of(s.pool, s.g1 + "/usr/lib/libc.so"));
    std::string tool_hex = hex_of(object_of(s.pool, s.g1 + "/usr/bin/tool"));
    ASSERT_EQ(lib_hex.size(), 64u);

    // g2's libc: unshare, remove, write a different file.
    auto r = s.unify({"unshare", "g2", "/usr/lib/libc.so"});
    ASSERT_EQ(r.status, 0) << r.err;
    ASSERT_EQ(0, unlink((s.g2 + "/usr/lib/libc.so").c_str()));
    write_file(s.g2 + "/usr/lib/libc.so", "libc, g2's own build\n");
    // g1's tool: its directory moved away (the index still has the record; who must check).
    ASSERT_EQ(0, sh("mv '" + s.g1 + "/usr/bin' '" + s.g1 + "/usr/bin.old'"));
    write_file(s.g1 + "/usr/bin/tool", "g1's own tool\n", 0755);

    r = s.unify({"who", lib_hex});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(who_links(r.out),
              (std::set<std::string>{"g1:/usr/lib/libc.so", "g3:/usr/lib/libc.so"}))
        << r.out;
    r = s.unify({"who", s.g1 + "/usr/lib/libc.so"});
    EXPECT_EQ(who_links(r.out),
              (std::set<std::string>{"g1:/usr/lib/libc.so", "g3:/usr/lib/libc.so"}))
        << r.out;
    r = s.unify({"who", "g2:/usr/lib/libc.so"});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_TRUE(contains_squeezed(r.out, "is not unified")) << r.out;

    r = s.unify({"who", tool_hex});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(who_links(r.out), std::set<std::string>{"g2:/usr/bin/tool"}) << r.out;
    r = s.unify({"who", "g1:/usr/bin/tool"});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_TRUE(contains_squeezed(r.out, "is not unified")) << r.out;
}

// ---------------------------------------------------------------------------------------
// Unshare

TEST_P(Unshare, WholeGuestGetsPrivateFilesIdenticalToBeforeImport) {
    TempDir dir;
    UNIFY_REQUIRE(need_immutable(dir.path()));
    Sample s(dir);
    const std::string m1 = manifest(s.g1), m2 = manifest(s.g2);
    ASSERT_TRUE(contains_squeezed(m1, "./usr/bin/tool mode=104755 uid=1234 gid=5678")) << m1;
    ASSERT_TRUE(contains_squeezed(m1, "xattr:user.unify-test=")) << m1;
    ASSERT_TRUE(s.init_and_import());

    const std::vector<std::string> files = {"/usr/bin/tool", "/usr/lib/libc.so",
                                            "/usr/share/doc/readme", "/usr/local/bin/private"};
    // The import really shared them (so unshare has something to undo).
    EXPECT_EQ(nlink(s.g1 + "/usr/bin/tool"), 3u);     // pool, g1, g2
    EXPECT_EQ(nlink(s.g1 + "/usr/lib/libc.so"), 4u);  // pool, g1, g2, g3
    for (const auto& f : files) EXPECT_TRUE(is_immutable(s.g1 + f)) << f;
    EXPECT_EQ(manifest(s.g1), m1);

    auto r = s.unify({"unshare", "g1"});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_TRUE(contains_squeezed(r.out, "files made private 4\n")) << r.out;
    EXPECT_TRUE(contains_squeezed(r.out, "bytes copied       6.5 kB (6,500 bytes)\n")) << r.out;
    for (const auto& f : files) {
        EXPECT_EQ(nlink(s.g1 + f), 1u) << f;
        EXPECT_FALSE(is_immutable(s.g1 + f)) << f;
    }
    EXPECT_EQ(manifest(s.g1), m1);
    // The private copies are really writable now.
    write_file(s.g1 + "/usr/bin/tool", "upgraded\n", 0755);
    EXPECT_EQ(read_file(s.g1 + "/usr/bin/tool"), "upgraded\n");

    // g2 keeps its links, unchanged; the tool object is still shared by g2 alone.
    EXPECT_EQ(manifest(s.g2), m2);
    EXPECT_EQ(nlink(s.g2 + "/usr/bin/tool"), 2u);
    EXPECT_TRUE(is_immutable(s.g2 + "/usr/bin/tool"));
    EXPECT_EQ(nlink(s.g2 + "/usr/lib/libc.so"), 3u);
    r = s.unify({"who", "g1:/usr/lib/libc.so"});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_TRUE(contains_squeezed(r.out, "is not unified")) << r.out;
    r = s.unify({"who", "g2:/usr/lib/libc.so"});
    EXPECT_EQ(who_links(r.out),
              (std::set<std::string>{"g2:/usr/lib/libc.so", "g3:/usr/lib/libc.so"}))
        << r.out;

    // Unsharing again finds nothing left to do.
    r = s.unify({"unshare", "g1"});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_TRUE(contains_squeezed(r.out, "files made private 0\n")) << r.out;
}

TEST_P(Unshare, OnePathByGuestPathOrHostPathLeavesTheRestLinked) {
    TempDir dir;
    UNIFY_REQUIRE(need_immutable(dir.path()));
    Sample s(dir);
    const std::string m1 = manifest(s.g1);
    ASSERT_TRUE(s.init_and_import());

    auto r = s.unify({"unshare", "g1", "/usr/bin/tool"});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_TRUE(contains_squeezed(r.out, "files made private 1\n")) << r.out;
    EXPECT_EQ(nlink(s.g1 + "/usr/bin/tool"), 1u);
    EXPECT_FALSE(is_immutable(s.g1 + "/usr/bin/tool"));
    for (const std::string f :
         {"/usr/lib/libc.so", "/usr/share/doc/readme", "/usr/local/bin/private"}) {
        EXPECT_GT(nlink(s.g1 + f), 1u) << f;
        EXPECT_TRUE(is_immutable(s.g1 + f)) << f;
    }

    r = s.unify({"unshare", "g1", s.g1 + "/usr/lib/libc.so"});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_TRUE(contains_squeezed(r.out, "files made private 1\n")) << r.out;
    EXPECT_EQ(nlink(s.g1 + "/usr/lib/libc.so"), 1u);
    EXPECT_FALSE(is_immutable(s.g1 + "/usr/lib/libc.so"));
    EXPECT_EQ(nlink(s.g2 + "/usr/lib/libc.so"), 3u);  // pool, g2, g3
    for (const std::string f : {"/usr/share/doc/readme", "/usr/local/bin/private"})
        EXPECT_GT(nlink(s.g1 + f), 1u) << f;
    EXPECT_EQ(manifest(s.g1), m1);

    // A path that is not unified is reported and changes nothing.
    r = s.unify({"unshare", "g1", "/etc/conf"});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_TRUE(contains_squeezed(r.err, "g1:/etc/conf is not unified")) << r.err;
    EXPECT_TRUE(contains_squeezed(r.out, "files made private 0\n")) << r.out;
    EXPECT_EQ(manifest(s.g1), m1);
}

TEST_P(Unshare, GcThenReclaimsOnlyObjectsNoGuestLinks) {
    TempDir dir;
    UNIFY_REQUIRE(need_immutable(dir.path()));
    Sample s(dir);
    ASSERT_TRUE(s.init_and_import());
    std::string private_obj = object_of(s.pool, s.g1 + "/usr/local/bin/private");
    auto before = objects(s.pool);
    ASSERT_EQ(before.size(), 5u);

    auto r = s.unify({"unshare", "g1"});
    ASSERT_EQ(r.status, 0) << r.err;
    r = s.unify({"gc"});
    EXPECT_EQ(r.status, 0) << r.err;
    // Only g1 had the private file; tool, libc and readme are still linked by g2 (and g3).
    EXPECT_TRUE(contains_squeezed(r.out, "objects removed 1\n")) << r.out;
    EXPECT_TRUE(contains_squeezed(r.out, "bytes reclaimed 700 bytes\n")) << r.out;
    auto after = objects(s.pool);
    before.erase(private_obj);
    EXPECT_EQ(after, before);
    for (const auto& o : after) EXPECT_GT(nlink(s.pool + "/objects/" + o), 1u) << o;

    // Unsharing g2 as well frees tool and readme; libc stays for g3.
    r = s.unify({"unshare", "g2"});
    ASSERT_EQ(r.status, 0) << r.err;
    r = s.unify({"gc"});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_TRUE(contains_squeezed(r.out, "objects removed 2\n")) << r.out;
    EXPECT_TRUE(contains_squeezed(r.out, "bytes reclaimed 1.8 kB (1,800 bytes)\n")) << r.out;
    after = objects(s.pool);
    EXPECT_EQ(after.size(), 2u);  // libc, g3's tool
    EXPECT_TRUE(after.count(object_of(s.pool, s.g3 + "/usr/lib/libc.so")));
    EXPECT_TRUE(after.count(object_of(s.pool, s.g3 + "/usr/bin/tool")));
}

TEST_P(Unshare, UnknownGuestFailsClearly) {
    TempDir dir;
    UNIFY_REQUIRE(need_immutable(dir.path()));
    Sample s(dir);
    ASSERT_TRUE(s.init_and_import());
    const std::string m1 = manifest(s.g1);
    auto objs = objects(s.pool);
    auto r = s.unify({"unshare", "nosuch"});
    EXPECT_EQ(r.status, 1);
    EXPECT_TRUE(contains_squeezed(r.err, "no guest named 'nosuch'")) << r.err;
    EXPECT_EQ(r.out, "");
    r = s.unify({"unshare", "nosuch", "/usr/bin/tool"});
    EXPECT_EQ(r.status, 1);
    EXPECT_TRUE(contains_squeezed(r.err, "no guest named 'nosuch'")) << r.err;
    EXPECT_EQ(manifest(s.g1), m1);
    EXPECT_EQ(nlink(s.g1 + "/usr/bin/tool"), 3u);
    EXPECT_EQ(objects(s.pool), objs);
}

// A path that is no longer its object (a killed run's, an upgrade's) only has its record
// dropped by unshare and forget; their dry runs must say so too, not count it as a copy.
TEST_P(Unshare, DryRunPredictsTheRecordsOfPathsNoLongerLinked) {
    TempDir dir;
    UNIFY_REQUIRE(need_immutable(dir.path()));
    Sample s(dir);
    ASSERT_TRUE(s.init_and_import());
    std::string outside = dir.path() + "/outside-doc";
    ASSERT_EQ(0, sh("mv '" + s.g1 + "/usr/share/doc' '" + outside + "'"));
    write_file(s.g1 + "/usr/share/doc/readme", "the guest's own now\n");
    for (const std::string cmd : {"unshare", "forget"}) {
        auto r = s.unify({cmd, "--dry-run", "g1"});
        EXPECT_EQ(r.status, 0) << r.err;
        EXPECT_TRUE(contains_squeezed(r.out, "files made private 3 (dry run: would be)")) << r.out;
        EXPECT_TRUE(contains_squeezed(r.out, "records dropped 1 (paths no longer linked)"))
            << r.out;
    }
    auto r = s.unify({"unshare", "g1"});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_TRUE(contains_squeezed(r.out, "files made private 3\n")) << r.out;
    EXPECT_TRUE(contains_squeezed(r.out, "records dropped 1 (paths no longer linked)")) << r.out;
    sh("chattr -R -i '" + outside + "'");
}

TEST_P(Unshare, DryRunChangesNothing) {
    TempDir dir;
    UNIFY_REQUIRE(need_immutable(dir.path()));
    Sample s(dir);
    ASSERT_TRUE(s.init_and_import());
    const std::string m1 = manifest(s.g1);
    std::map<std::string, ino_t> inodes;
    for (const std::string f :
         {"/usr/bin/tool", "/usr/lib/libc.so", "/usr/share/doc/readme", "/usr/local/bin/private"})
        inodes[f] = stat_path(s.g1 + f).st_ino;

    auto r = s.unify({"unshare", "--dry-run", "g1"});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_TRUE(contains_squeezed(r.out, "files made private 4 (dry run: would be)\n")) << r.out;
    r = s.unify({"unshare", "g1", "--dry-run", "/usr/bin/tool"});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_TRUE(contains_squeezed(r.out, "files made private 1 (dry run: would be)\n")) << r.out;

    EXPECT_EQ(manifest(s.g1), m1);
    for (const auto& [f, ino] : inodes) {
        EXPECT_EQ(stat_path(s.g1 + f).st_ino, ino) << f;
        EXPECT_GT(nlink(s.g1 + f), 1u) << f;
        EXPECT_TRUE(is_immutable(s.g1 + f)) << f;
    }
    // The index still has every link: who lists g1, and a real unshare does all four.
    r = s.unify({"who", "g1:/usr/bin/tool"});
    EXPECT_EQ(who_links(r.out), (std::set<std::string>{"g1:/usr/bin/tool", "g2:/usr/bin/tool"}))
        << r.out;
    r = s.unify({"unshare", "g1"});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_TRUE(contains_squeezed(r.out, "files made private 4\n")) << r.out;
}

}  // namespace
}  // namespace unify::test
