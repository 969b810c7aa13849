// End-to-end tests of unify verify through the real binary: three small guests share a tool
// (g1 = g2) and a library (all three); the tests damage the tool's object in one way each,
// the way a guest or an admin could (content, mode, protection flag, a removed file), and
// check that verify names the damage and the guest paths, that --quarantine moves it aside
// without changing what any guest sees, and that a later import makes a correct object.
#include <lmdb.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include "store/index.h"
#include "tests/sample_guests.h"
#include "tests/test_support.h"

namespace unify::test {
namespace {

namespace fs = std::filesystem;

const std::string kTool = "tool v1\n" + std::string(1492, 't');
const std::string kLib = "libc\n" + std::string(3995, 'l');
const std::string kOwn = "own\n";

struct Pool3 : ThreeGuests {
    explicit Pool3(const TempDir& dir) : ThreeGuests(dir) {
        for (const auto& g : {g1, g2, g3}) file(g + "/usr/lib/libc.so", kLib, 0644, 1);
        for (const auto& g : {g1, g2}) {
            file(g + "/usr/bin/tool", kTool, 0755, 2);
            const char v[] = "sample";
            if (setxattr((g + "/usr/bin/tool").c_str(), "user.unify-test", v, sizeof v - 1, 0) != 0)
                ADD_FAILURE() << "setxattr: " << strerror(errno);
            set_mtime(g + "/usr/bin/tool", kSampleMtime, 2);
        }
        file(g3 + "/usr/local/bin/own", kOwn, 0700, 3);
    }

    // POOL/objects/ab/<hex> of the inode at `path`.
    std::string object_of(const std::string& path) const {
        auto by_ino = objects_by_inode(pool);
        auto it = by_ino.find(stat_path(path).st_ino);
        if (it == by_ino.end()) return "";
        return pool + "/objects/" + it->second.substr(0, 2) + "/" + it->second;
    }
};

// Runs a shell snippet on an object with its immutable flag lifted, then sets it again.
void with_flag_lifted(const std::string& object, const std::string& command) {
    ASSERT_EQ(sh("chattr -i '" + object + "'"), 0);
    ASSERT_EQ(sh(command), 0) << command;
    ASSERT_EQ(sh("chattr +i '" + object + "'"), 0);
}

// One byte of the content changed in place; size and mtime as they were.
void damage_content(const std::string& object) {
    struct stat st = stat_path(object);
    ASSERT_EQ(sh("chattr -i '" + object + "'"), 0);
    ASSERT_EQ(sh("printf X | dd of='" + object + "' bs=1 seek=1 conv=notrunc status=none"), 0);
    set_mtime(object, st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
    ASSERT_EQ(sh("chattr +i '" + object + "'"), 0);
}

// A saving that three guests share does not divide evenly (libc: 2 x 4000 bytes over 3
// links): the guests' shares still add up to the pool's figure, as README says.
TEST(Status, GuestSharesAddUpToThePoolsSaving) {
    TempDir dir;
    UNIFY_REQUIRE(need_immutable(dir.path()));
    Pool3 s(dir);
    ASSERT_TRUE(s.init_and_import());
    auto r = s.unify({"status", "--json"});
    ASSERT_EQ(r.status, 0) << r.err;
    auto j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j["pool"]["bytes_saved"], 2 * kLib.size() + kTool.size());
    uint64_t sum = 0;
    for (const auto& g : j["guests"]) sum += g["bytes_saved"].get<uint64_t>();
    EXPECT_EQ(sum, j["pool"]["bytes_saved"].get<uint64_t>()) << j.dump();
}

TEST(Verify, CleanPoolExitsZero) {
    TempDir dir;
    UNIFY_REQUIRE(need_immutable(dir.path()));
    Pool3 s(dir);
    ASSERT_TRUE(s.init_and_import());
    for (auto args :
         {std::vector<std::string>{"verify"}, {"verify", "--full"}, {"verify", "--quarantine"}}) {
        auto r = s.unify(args);
        EXPECT_EQ(r.status, 0) << args.back() << "\n" << r.out << r.err;
        EXPECT_TRUE(contains(r.out, "objects checked   3 ")) << r.out;
        EXPECT_TRUE(contains(r.out, "damaged           0\n")) << r.out;
        EXPECT_FALSE(contains(r.out, "damaged object")) << r.out;
    }
    EXPECT_FALSE(fs::exists(s.pool + "/quarantine")) << "a clean pool needs no quarantine";
}

TEST(Verify, CatchesChangedContentByXxh3AndSha256) {
    TempDir dir;
    UNIFY_REQUIRE(need_immutable(dir.path()));
    Pool3 s(dir);
    ASSERT_TRUE(s.init_and_import());
    std::string obj = s.object_of(s.g1 + "/usr/bin/tool");
    ASSERT_NE(obj, "");
    damage_content(obj);
    for (auto args : {std::vector<std::string>{"verify"}, {"verify", "--full"}}) {
        auto r = s.unify(args);
        EXPECT_EQ(r.status, 1) << args.back() << "\n" << r.out << r.err;
        EXPECT_TRUE(contains(r.out, "damaged object " + obj + "\n")) << r.out;
        EXPECT_TRUE(contains(r.out, "content does not match its index record")) << r.out;
        EXPECT_FALSE(contains(r.out, "metadata")) << "only the content changed\n" << r.out;
        EXPECT_TRUE(contains(r.out, "linked by g1:/usr/bin/tool\n")) << r.out;
        EXPECT_TRUE(contains(r.out, "linked by g2:/usr/bin/tool\n")) << r.out;
        EXPECT_FALSE(contains(r.out, "g3:")) << r.out;
        EXPECT_TRUE(contains(r.out, "damaged           1\n")) << r.out;
    }
}

// A guest chooses its file names: a newline in one must not let it forge a line of verify's
// report, nor invalid UTF-8 reach the terminal raw (who, import -v and the others print the
// escaped form too).
TEST(Verify, GuestPathsOfADamagedObjectArePrintedEscaped) {
    TempDir dir;
    UNIFY_REQUIRE(need_immutable(dir.path()));
    Pool3 s(dir);
    const std::string odd = "/usr/bin/x\n  linked by g3:/FORGED\xff";
    ThreeGuests::file(s.g1 + odd, "odd\n", 0644, 9);
    ASSERT_TRUE(s.init_and_import());
    std::string obj = s.object_of(s.g1 + odd);
    ASSERT_NE(obj, "");
    with_flag_lifted(obj, "chmod 0700 '" + obj + "'");
    auto r = s.unify({"verify"});
    EXPECT_EQ(r.status, 1) << r.out << r.err;
    EXPECT_TRUE(contains(r.out, "linked by g1:/usr/bin/x\\n  linked by g3:/FORGED\\xff\n"))
        << r.out;
    EXPECT_FALSE(contains(r.out, "\n  linked by g3:")) << r.out;
}

TEST(Verify, CatchesChangedModeAsMetadata) {
    TempDir dir;
    UNIFY_REQUIRE(need_immutable(dir.path()));
    Pool3 s(dir);
    ASSERT_TRUE(s.init_and_import());
    std::string obj = s.object_of(s.g2 + "/usr/bin/tool");
    ASSERT_NE(obj, "");
    with_flag_lifted(obj, "chmod 0700 '" + obj + "'");
    auto r = s.unify({"verify"});
    EXPECT_EQ(r.status, 1) << r.out << r.err;
    EXPECT_TRUE(contains(r.out, "damaged object " + obj + "\n")) << r.out;
    EXPECT_TRUE(contains(r.out, "metadata (type, mode, owner, mtime or xattrs) does not match"))
        << r.out;
    EXPECT_FALSE(contains(r.out, "content does not match")) << r.out;
    EXPECT_TRUE(contains(r.out, "linked by g1:/usr/bin/tool\n")) << r.out;
    EXPECT_TRUE(contains(r.out, "linked by g2:/usr/bin/tool\n")) << r.out;
}

// Import trusts an object by its id: one damaged behind unify's back in a way a look at its
// inode shows (cut short with its mtime put back, or chmod-ed) must not take the place of a
// new guest's good file. The guest keeps its own file; verify --quarantine and the next
// import then give it a correct object.
TEST(Verify, ADamagedObjectTakesNoGoodFileFromANewGuest) {
    for (const std::string damage : {"truncate -s 100", "chmod 0700"}) {
        TempDir dir;
        UNIFY_REQUIRE(need_immutable(dir.path()));
        Pool3 s(dir);
        ASSERT_TRUE(s.init_and_import());
        std::string obj = s.object_of(s.g1 + "/usr/bin/tool");
        ASSERT_NE(obj, "");
        struct stat before = stat_path(obj);
        ASSERT_EQ(sh("chattr -i '" + obj + "' && " + damage + " '" + obj + "'"), 0);
        set_mtime(obj, before.st_mtim.tv_sec, before.st_mtim.tv_nsec);
        ASSERT_EQ(sh("chattr +i '" + obj + "'"), 0);

        std::string g4 = dir / "g4", tool = g4 + "/usr/bin/tool";
        ThreeGuests::file(g4 + "/usr/lib/libc.so", kLib, 0644, 1);
        ThreeGuests::file(tool, kTool, 0755, 2);
        const char v[] = "sample";
        ASSERT_EQ(setxattr(tool.c_str(), "user.unify-test", v, sizeof v - 1, 0), 0);
        set_mtime(tool, kSampleMtime, 2);
        ino_t own = stat_path(tool).st_ino;

        auto r = s.unify({"import", "g4", g4, "--dry-run", "--json"});
        EXPECT_EQ(r.status, 0) << damage << "\n" << r.out << r.err;
        EXPECT_TRUE(contains(r.err, "does not match its id")) << damage << "\n" << r.err;
        EXPECT_TRUE(contains(r.out, "\"damaged_object\": 1")) << damage << "\n" << r.out;
        r = s.unify({"import", "g4", g4});
        EXPECT_EQ(r.status, 0) << damage << "\n" << r.out << r.err;
        EXPECT_TRUE(contains(r.err, "does not match its id")) << damage << "\n" << r.err;
        EXPECT_EQ(read_file(tool), kTool) << damage;
        EXPECT_EQ(stat_path(tool).st_mode & 07777, 0755u) << damage;
        EXPECT_EQ(stat_path(tool).st_ino, own) << damage << ": linked to the damaged object";
        EXPECT_NE(stat_path(g4 + "/usr/lib/libc.so").st_nlink, 1u) << "the rest is linked";

        r = s.unify({"verify", "--quarantine"});
        EXPECT_EQ(r.status, 1) << r.out << r.err;
        r = s.unify({"import", "g4", g4});
        EXPECT_EQ(r.status, 0) << r.out << r.err;
        EXPECT_FALSE(contains(r.err, "does not match its id")) << r.err;
        EXPECT_EQ(read_file(tool), kTool) << damage;
        EXPECT_TRUE(is_immutable(tool)) << damage << ": not linked to a correct object";
        EXPECT_EQ(objects_not_matching_their_id(s.pool), std::vector<std::string>{});
    }
}

TEST(Verify, CatchesAMissingFlagAndQuarantineProtectsItAgain) {
    TempDir dir;
    UNIFY_REQUIRE(need_immutable(dir.path()));
    Pool3 s(dir);
    ASSERT_TRUE(s.init_and_import());
    std::string obj = s.object_of(s.g3 + "/usr/lib/libc.so");
    ASSERT_NE(obj, "");
    ASSERT_EQ(sh("chattr -i '" + obj + "'"), 0);
    auto r = s.unify({"verify"});
    EXPECT_EQ(r.status, 1) << r.out << r.err;
    EXPECT_TRUE(contains(r.out, "damaged object " + obj + "\n  not protected")) << r.out;
    for (const char* g : {"g1", "g2", "g3"})
        EXPECT_TRUE(contains(r.out, std::string("linked by ") + g + ":/usr/lib/libc.so\n"))
            << r.out;

    // Content and metadata still give its id: protecting it again is the repair.
    r = s.unify({"verify", "--quarantine"});
    EXPECT_EQ(r.status, 1) << r.out << r.err;
    EXPECT_TRUE(contains(r.out, "quarantine: protected again")) << r.out;
    EXPECT_TRUE(is_immutable(obj));
    EXPECT_FALSE(fs::exists(s.pool + "/quarantine"));
    r = s.unify({"verify"});
    EXPECT_EQ(r.status, 0) << r.out << r.err;
}

// A damaged object linked from a guest whose root cannot be opened now (a symlink put at
// its path): whether that guest's paths still link it is not known, so --quarantine leaves
// the object in place and says why, instead of dropping those records and leaving the guest
// an immutable link of the quarantined inode.
TEST(Verify, QuarantineLeavesAnObjectWhoseGuestRootCannotBeOpened) {
    TempDir dir;
    UNIFY_REQUIRE(need_immutable(dir.path()));
    Pool3 s(dir);
    ASSERT_TRUE(s.init_and_import());
    std::string obj = s.object_of(s.g1 + "/usr/bin/tool");
    ASSERT_NE(obj, "");
    damage_content(obj);
    ASSERT_EQ(rename(s.g2.c_str(), (dir / "g2.away").c_str()), 0);
    ASSERT_EQ(symlink((dir / "g2.away").c_str(), s.g2.c_str()), 0);
    auto r = s.unify({"verify", "--quarantine"});
    EXPECT_EQ(r.status, 1) << r.out << r.err;
    EXPECT_TRUE(contains(r.out, "not quarantined")) << r.out;
    EXPECT_TRUE(fs::exists(obj)) << "moved aside with g2's link unknown";
    EXPECT_EQ(stat_path(dir / "g2.away/usr/bin/tool").st_ino, stat_path(obj).st_ino);
    ASSERT_EQ(unlink(s.g2.c_str()), 0);
    ASSERT_EQ(rename((dir / "g2.away").c_str(), s.g2.c_str()), 0);
    r = s.unify({"verify", "--quarantine"});
    EXPECT_TRUE(contains(r.out, "2 guest paths unshared")) << r.out;
    EXPECT_FALSE(is_immutable(s.g2 + "/usr/bin/tool"));
}

TEST(Verify, QuarantineMovesTheObjectAsideAndAnImportMakesItAnew) {
    TempDir dir;
    UNIFY_REQUIRE(need_immutable(dir.path()));
    Pool3 s(dir);
    ASSERT_TRUE(s.init_and_import());
    std::string obj = s.object_of(s.g1 + "/usr/bin/tool");
    ASSERT_NE(obj, "");
    std::string hex = obj.substr(obj.rfind('/') + 1);
    damage_content(obj);
    std::string g1_before = manifest(s.g1), g2_before = manifest(s.g2);

    auto r = s.unify({"verify", "--quarantine"});
    EXPECT_EQ(r.status, 1) << r.out << r.err;
    EXPECT_TRUE(contains(r.out, "linked by g1:/usr/bin/tool\n")) << r.out;
    EXPECT_TRUE(contains(r.out, "linked by g2:/usr/bin/tool\n")) << r.out;
    EXPECT_TRUE(contains(r.out, "quarantine: moved to " + s.pool + "/quarantine/" + hex + "."))
        << r.out;
    EXPECT_TRUE(contains(r.out, "2 guest paths unshared")) << r.out;
    EXPECT_TRUE(contains(r.out, "its index record dropped")) << r.out;

    // Out of the pool, into POOL/quarantine (0700), still protected.
    EXPECT_FALSE(fs::exists(obj));
    struct stat q = stat_path(s.pool + "/quarantine");
    EXPECT_EQ(q.st_mode & 07777, 0700u);
    auto quarantined = entries(s.pool + "/quarantine");
    ASSERT_EQ(quarantined.size(), 1u);
    std::string moved = s.pool + "/quarantine/" + *quarantined.begin();
    EXPECT_TRUE(quarantined.begin()->starts_with(hex + ".")) << *quarantined.begin();
    EXPECT_TRUE(is_immutable(moved));
    // The guests see exactly what they saw before, as private files now.
    EXPECT_EQ(manifest(s.g1), g1_before);
    EXPECT_EQ(manifest(s.g2), g2_before);
    EXPECT_EQ(stat_path(s.g1 + "/usr/bin/tool").st_nlink, 1u);
    EXPECT_FALSE(is_immutable(s.g1 + "/usr/bin/tool"));
    EXPECT_EQ(stat_path(moved).st_nlink, 1u);
    // The record is gone: no id starts with it any more.
    r = s.unify({"who", hex});
    EXPECT_EQ(r.status, 1) << r.out;
    EXPECT_TRUE(contains(r.err, "no object id starts with")) << r.err;

    r = s.unify({"verify"});
    EXPECT_EQ(r.status, 0) << "after the quarantine\n" << r.out << r.err;

    // A guest with a good copy: its import makes the object again, under the same id.
    std::string g4 = dir / "g4";
    Pool3::file(g4 + "/usr/bin/tool", kTool, 0755, 2);
    const char v[] = "sample";
    ASSERT_EQ(setxattr((g4 + "/usr/bin/tool").c_str(), "user.unify-test", v, sizeof v - 1, 0), 0);
    set_mtime(g4 + "/usr/bin/tool", kSampleMtime, 2);
    r = s.unify({"import", "g4", g4});
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_TRUE(contains(r.out, "new objects       1 ")) << r.out;
    EXPECT_EQ(s.object_of(g4 + "/usr/bin/tool"), obj);
    EXPECT_TRUE(objects_not_matching_their_id(s.pool).empty());
    r = s.unify({"verify", "--full"});
    EXPECT_EQ(r.status, 0) << r.out << r.err;
    r = s.unify({"who", hex});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_TRUE(contains(r.out, "g4")) << r.out;
}

TEST(Verify, MissingObjectFailsAndQuarantineDropsItsRecords) {
    TempDir dir;
    UNIFY_REQUIRE(need_immutable(dir.path()));
    Pool3 s(dir);
    ASSERT_TRUE(s.init_and_import());
    std::string obj = s.object_of(s.g3 + "/usr/local/bin/own");
    ASSERT_NE(obj, "");
    std::string hex = obj.substr(obj.rfind('/') + 1);
    ASSERT_EQ(sh("chattr -i '" + obj + "' && rm '" + obj + "'"), 0);
    auto r = s.unify({"verify"});
    EXPECT_EQ(r.status, 1) << r.out << r.err;
    EXPECT_TRUE(contains(r.out, "missing object " + hex)) << r.out;
    EXPECT_TRUE(contains(r.out, "recorded as linked by g3:/usr/local/bin/own\n")) << r.out;
    r = s.unify({"verify", "--quarantine"});
    EXPECT_EQ(r.status, 1) << r.out << r.err;
    EXPECT_TRUE(contains(r.out, "record and 1 link record dropped")) << r.out;
    r = s.unify({"verify"});
    EXPECT_EQ(r.status, 0) << r.out << r.err;
}

TEST(Verify, UnindexedObjectsAndStrayFilesAreReportedButDoNotFail) {
    TempDir dir;
    UNIFY_REQUIRE(need_immutable(dir.path()));
    Pool3 s(dir);
    ASSERT_TRUE(s.init_and_import());
    std::string obj = s.object_of(s.g3 + "/usr/local/bin/own");
    ASSERT_NE(obj, "");
    std::string hex = obj.substr(obj.rfind('/') + 1);
    {  // What an import killed before its index commit leaves: an object without a record.
        auto index = Index::open(s.pool + "/index", false);
        ASSERT_TRUE(index) << index.error().message;
        auto txn = (*index)->write();
        ASSERT_TRUE(txn);
        ASSERT_TRUE((*txn)->delete_object(*ObjectId::from_hex(hex)));
        ASSERT_TRUE((*txn)->commit());
    }
    write_file(s.pool + "/objects/ab/not-an-object", "junk\n");
    auto r = s.unify({"verify"});
    EXPECT_EQ(r.status, 0) << r.out << r.err;
    EXPECT_TRUE(contains(r.out, "unindexed object " + obj)) << r.out;
    EXPECT_TRUE(contains(r.out, "stray file " + s.pool + "/objects/ab/not-an-object")) << r.out;
    EXPECT_TRUE(contains(r.out, "unindexed         1\n")) << r.out;
    EXPECT_TRUE(contains(r.out, "stray files       1\n")) << r.out;
    // Without a record, verify hashes it whole: a damaged one is still caught.
    damage_content(obj);
    r = s.unify({"verify"});
    EXPECT_EQ(r.status, 1) << r.out << r.err;
    EXPECT_TRUE(contains(r.out, "do not give its id")) << r.out;
}

// On XFS (btrfs and tmpfs alike) the immutable flag does not stop the owner of an inode from
// setting its other flags: a guest sets nodump and noatime on a shared object through its own
// name, and every guest linking it has them.
struct FlaggedObject {
    explicit FlaggedObject(const std::string& type = "xfs") : fs(type, 320) {}
    LoopFs fs;
    const std::string pool = fs / "pool", g1 = fs / "g1", g2 = fs / "g2";
    std::string obj;  // under POOL/objects
    RunResult u(std::vector<std::string> args) const {
        args.insert(args.begin(), {"--pool", pool});
        return run_unify(args);
    }
    // g1 and g2 imported, sharing /usr/bin/tool.
    void share() {
        for (const std::string& g : {g1, g2})
            ThreeGuests::file(g + "/usr/bin/tool", "tool\n", 0755, 1);
        ASSERT_EQ(u({"init", "--share", "hardlink", "--protect", "immutable"}).status, 0);
        ASSERT_EQ(u({"import", "g1", g1}).status, 0);
        ASSERT_EQ(u({"import", "g2", g2}).status, 0);
        obj = object_of(pool, g1 + "/usr/bin/tool");
        ASSERT_NE(obj, "");
    }
    // What g1's root does through its name of the object.
    void flag() {
        ASSERT_EQ(sh("chattr +d +A '" + g1 + "/usr/bin/tool'"), 0)
            << "the filesystem refused: nothing to test";
    }
};

// verify names the object and the flags and exits 1; --quarantine clears them, and nothing
// else of the object changes.
TEST(Verify, FlagsAGuestSetOnASharedObjectAreReportedAndCleared) {
    FlaggedObject f;
    UNIFY_REQUIRE(f.fs.reason());
    ASSERT_NO_FATAL_FAILURE(f.share());
    const std::string m1 = manifest(f.g1), m2 = manifest(f.g2);
    ASSERT_NO_FATAL_FAILURE(f.flag());
    auto r = f.u({"verify"});
    EXPECT_EQ(r.status, 1) << r.out << r.err;
    EXPECT_TRUE(contains(r.out, "flags set by a guest on " + f.pool + "/objects/" + f.obj +
                                    ": nodump, noatime (every guest linking it has them"))
        << r.out;
    r = f.u({"--json", "verify"});
    EXPECT_TRUE(contains(r.out, "\"flags\": \"nodump, noatime\"")) << r.out;
    r = f.u({"verify", "--quarantine"});
    EXPECT_EQ(r.status, 0) << r.out << r.err;
    EXPECT_TRUE(contains(r.out, ": nodump, noatime (cleared)")) << r.out;
    r = f.u({"verify", "--full"});
    EXPECT_EQ(r.status, 0) << r.out << r.err;
    EXPECT_TRUE(is_immutable(f.g2 + "/usr/bin/tool"));
    EXPECT_EQ(object_of(f.pool, f.g2 + "/usr/bin/tool"), f.obj);
    EXPECT_EQ(manifest(f.g1), m1);
    EXPECT_EQ(manifest(f.g2), m2);
}

// The next import that links the object (its window: flag lifted, link, flag set again)
// clears them too, without waiting for a verify --quarantine.
void cleared_by_the_next_import(FlaggedObject& f) {
    ASSERT_NO_FATAL_FAILURE(f.share());
    ASSERT_NO_FATAL_FAILURE(f.flag());
    ASSERT_EQ(f.u({"verify"}).status, 1) << "verify did not see the flags";
    const std::string g3 = f.fs / "g3";
    ThreeGuests::file(g3 + "/usr/bin/tool", "tool\n", 0755, 1);
    auto r = f.u({"import", "g3", g3});
    ASSERT_EQ(r.status, 0) << r.out << r.err;
    EXPECT_EQ(object_of(f.pool, g3 + "/usr/bin/tool"), f.obj);
    r = f.u({"verify", "--full"});
    EXPECT_EQ(r.status, 0) << r.out << r.err;
    EXPECT_FALSE(contains(r.out, "flags set by a guest")) << r.out;
    EXPECT_TRUE(is_immutable(f.g1 + "/usr/bin/tool"));
}

TEST(Verify, FlagsAGuestSetOnASharedObjectAreClearedByTheNextImportLinkingIt) {
    for (const char* type : {"xfs", "btrfs"}) {
        SCOPED_TRACE(type);
        FlaggedObject f(type);
        UNIFY_REQUIRE(f.fs.reason());
        ASSERT_NO_FATAL_FAILURE(cleared_by_the_next_import(f));
    }
}

TEST(Verify, JsonNamesTheDamageAndExitsOne) {
    TempDir dir;
    UNIFY_REQUIRE(need_immutable(dir.path()));
    Pool3 s(dir);
    ASSERT_TRUE(s.init_and_import());
    std::string obj = s.object_of(s.g1 + "/usr/bin/tool");
    ASSERT_NE(obj, "");
    with_flag_lifted(obj, "chmod 0700 '" + obj + "'");
    auto r = s.unify({"--json", "verify"});
    EXPECT_EQ(r.status, 1) << r.out << r.err;
    auto j = nlohmann::json::parse(r.out, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << r.out;
    EXPECT_EQ(j["command"], "verify");
    EXPECT_EQ(j["ok"], false);
    ASSERT_EQ(j["damaged"].size(), 1u) << r.out;
    EXPECT_EQ(j["damaged"][0]["id"], obj.substr(obj.rfind('/') + 1));
    EXPECT_EQ(j["damaged"][0]["metadata"], true);
    EXPECT_EQ(j["damaged"][0]["content"], false);
    EXPECT_EQ(j["damaged"][0]["links"].size(), 2u);
}

// A link record the index cannot decode: verify reads every one and fails with the reindex
// hint, rather than saying the pool is clean while who and import of that guest fail.
TEST(Verify, ACorruptLinkRecordFailsWithTheReindexHint) {
    TempDir dir;
    UNIFY_REQUIRE(need_immutable(dir.path()));
    Pool3 s(dir);
    ASSERT_TRUE(s.init_and_import());
    {
        MDB_env* env = nullptr;
        ASSERT_EQ(mdb_env_create(&env), 0);
        ASSERT_EQ(mdb_env_set_maxdbs(env, 10), 0);
        ASSERT_EQ(mdb_env_open(env, (s.pool + "/index").c_str(), 0, 0600), 0);
        MDB_txn* txn = nullptr;
        ASSERT_EQ(mdb_txn_begin(env, nullptr, 0, &txn), 0);
        MDB_dbi dbi;
        ASSERT_EQ(mdb_dbi_open(txn, "links", 0, &dbi), 0);
        MDB_cursor* c = nullptr;
        ASSERT_EQ(mdb_cursor_open(txn, dbi, &c), 0);
        MDB_val k, v;
        ASSERT_EQ(mdb_cursor_get(c, &k, &v, MDB_LAST), 0);
        char garbage[] = "\xff";
        MDB_val bad{1, garbage};
        ASSERT_EQ(mdb_cursor_put(c, &k, &bad, MDB_CURRENT), 0);
        mdb_cursor_close(c);
        ASSERT_EQ(mdb_txn_commit(txn), 0);
        mdb_env_close(env);
    }
    auto r = s.unify({"verify"});
    EXPECT_EQ(r.status, 1) << r.out << r.err;
    EXPECT_TRUE(contains(r.err, "corrupt record in links")) << r.err;
    EXPECT_TRUE(contains(r.err, "unify reindex")) << r.err;
    ASSERT_EQ(s.unify({"reindex"}).status, 0);
    r = s.unify({"verify"});
    EXPECT_EQ(r.status, 0) << r.out << r.err;
}

TEST(Verify, BrokenIndexSaysReindex) {
    TempDir dir;
    UNIFY_REQUIRE(need_immutable(dir.path()));
    Pool3 s(dir);
    ASSERT_TRUE(s.init_and_import());
    ASSERT_EQ(sh("rm -r '" + s.pool + "/index'"), 0);
    auto r = s.unify({"verify"});
    EXPECT_EQ(r.status, 1) << r.out << r.err;
    EXPECT_TRUE(contains(r.err, s.pool + "/index")) << r.err;
    EXPECT_TRUE(contains(r.err, "run `unify reindex`")) << r.err;
}

}  // namespace
}  // namespace unify::test
