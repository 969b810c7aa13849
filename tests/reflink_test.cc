// End-to-end tests of reflink pools (`unify init --share reflink`, issue 14) through the real
// binary, on an XFS and a btrfs loop image each: guest files keep their inode, metadata and
// bytes and share the object's blocks; a guest writing its own file (also through an fd
// opened before the import) changes only that file; who, verify, gc, unshare and forget
// answer from the filesystem. And init: auto picks the mode the filesystem has, reflink is
// refused clearly on ext4 and tmpfs, --protect is for hardlink pools only.
#include <fcntl.h>
#include <linux/fs.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <xxhash.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <set>

#include "store/extents.h"
#include "store/fd.h"
#include "store/hasher.h"
#include "store/index.h"
#include "store/pool.h"
#include "tests/package_fixture.h"
#include "tests/test_support.h"

namespace unify::test {
namespace {

using Json = nlohmann::json;

constexpr int64_t kMtime = 1700000000;

void file(const std::string& path, const std::string& content, mode_t mode, uid_t uid, int64_t ns) {
    write_file(path, content, mode);
    ASSERT_EQ(lchown(path.c_str(), uid, uid), 0);
    set_mtime(path, kMtime, ns);
}

std::vector<Extent> extents_of(const std::string& path) {
    Fd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
    EXPECT_TRUE(fd.valid()) << path;
    auto e = file_extents(fd.get(), path);
    EXPECT_TRUE(e) << e.error().message;
    return e ? *e : std::vector<Extent>{};
}

// a and b map all their bytes to the same blocks.
bool share_blocks(const std::string& a, const std::string& b) {
    return same_blocks(extents_of(a), extents_of(b), uint64_t(stat_path(a).st_size));
}

// What must not change for a guest: manifest (content, mode, owner, mtime, xattrs) plus,
// per file, its inode number and ctime.
std::string identity(const std::string& root) {
    std::string out = manifest(root);
    std::string paths = root + "/usr/lib/";
    for (const char* f : {"big", "mid", "small", "private"}) {
        struct stat st = stat_path(paths + f);
        out += std::string(f) + " ino " + std::to_string(st.st_ino) + " ctime " +
               std::to_string(st.st_ctim.tv_sec) + "." + std::to_string(st.st_ctim.tv_nsec) + "\n";
    }
    return out;
}

std::set<std::string> who(const std::string& pool, const std::string& target) {
    return who_paths(pool, target);
}

// Bytes no other file of a test has: nothing shares blocks with them by chance.
std::string random_bytes(size_t size, uint64_t seed) {
    std::mt19937_64 gen(seed);
    std::string out(size, '\0');
    for (char& c : out) c = char(gen());
    return out;
}

// Every object file of the pool, as "ab/<name>".
std::set<std::string> pool_objects(const std::string& pool) {
    std::set<std::string> out;
    for (const auto& e : std::filesystem::recursive_directory_iterator(pool + "/objects"))
        if (e.is_regular_file())
            out.insert(std::filesystem::relative(e.path(), pool + "/objects").string());
    return out;
}

// The object whose blocks are all of the file's, "" if none.
std::string object_sharing(const std::string& pool, const std::string& path) {
    for (const auto& o : pool_objects(pool)) {
        std::string object = pool + "/objects/" + o;
        if (stat_path(object).st_size == stat_path(path).st_size && share_blocks(object, path))
            return o;
    }
    return "";
}

Json json_of(const RunResult& r) {
    EXPECT_EQ(r.status, 0) << r.out << r.err;
    return Json::parse(r.out, nullptr, false);
}

class Reflink : public testing::TestWithParam<std::string> {
  protected:
    void SetUp() override {
        fs_ = std::make_unique<LoopFs>(GetParam(), 320);
        UNIFY_REQUIRE(fs_->reason());
        pool = *fs_ / "pool";
        g1 = *fs_ / "g1";
        g2 = *fs_ / "g2";
        // Same content, different metadata: shared blocks all the same (content-only ids).
        std::string big(600 * 1024, 'b'), mid(64 * 1024, 'm');
        big += "end";
        file(g1 + "/usr/lib/big", big, 0644, 0, 1);
        file(g2 + "/usr/lib/big", big, 0600, 1000, 2);
        file(g1 + "/usr/lib/mid", mid, 0755, 0, 3);
        file(g2 + "/usr/lib/mid", mid, 0755, 0, 3);
        // btrfs keeps 1000 bytes inline in its metadata: nothing to share there.
        file(g1 + "/usr/lib/small", std::string(1000, 's'), 0644, 0, 4);
        file(g2 + "/usr/lib/small", std::string(1000, 's'), 0644, 0, 4);
        file(g1 + "/usr/lib/private", std::string(8192, '1'), 0644, 0, 5);
        file(g2 + "/usr/lib/private", std::string(8192, '2'), 0644, 0, 5);
        ASSERT_EQ(setxattr((g2 + "/usr/lib/big").c_str(), "user.note", "g2", 2, 0), 0);
        // Public package data under /var shares in a reflink pool; the rest of /var does not.
        std::string lists(256 * 1024, 'l');
        file(g1 + kLists, lists, 0644, 0, 6);
        file(g2 + kLists, lists, 0644, 0, 7);
        file(g1 + "/var/log/boot.log", lists, 0644, 0, 6);
        file(g2 + "/var/log/boot.log", lists, 0644, 0, 6);
        // Below a reflink pool's default --min-size (64 KiB): shared only when asked.
        file(g1 + "/usr/lib/under", std::string(60 * 1024, 'u'), 0644, 0, 8);
        file(g2 + "/usr/lib/under", std::string(60 * 1024, 'u'), 0644, 0, 8);
    }
    static constexpr const char* kLists = "/var/lib/apt/lists/deb.debian.org_dists_stable_Packages";
    RunResult unify(std::vector<std::string> args) const {
        args.insert(args.begin(), {"--pool", pool});
        return run_unify(args);
    }
    // min_size: "" for the pool's default (64 KiB); the other tests share small files too.
    void init_and_import(const std::string& min_size = "1") {
        auto r = unify({"init", "--share", "reflink"});
        ASSERT_EQ(r.status, 0) << r.out << r.err;
        for (const auto& [name, root] : {std::pair{"g1", g1}, {"g2", g2}}) {
            std::vector<std::string> args = {"import", name, root};
            if (!min_size.empty()) args.insert(args.end(), {"--min-size", min_size});
            r = unify(args);
            ASSERT_EQ(r.status, 0) << name << ": " << r.out << r.err;
        }
    }

    // gc --dry-run says it would remove n objects and removes none; gc then removes the same
    // n objects, the same bytes.
    void expect_gc_removes(int n) const {
        size_t before = pool_objects(pool).size();
        Json dry = json_of(unify({"--json", "gc", "--dry-run"}));
        EXPECT_EQ(dry["objects_removed"], n) << dry.dump();
        EXPECT_EQ(pool_objects(pool).size(), before) << "gc --dry-run removed an object";
        Json j = json_of(unify({"--json", "gc"}));
        EXPECT_EQ(j["objects_removed"], n) << j.dump();
        EXPECT_EQ(j["bytes_reclaimed"], dry["bytes_reclaimed"]) << j.dump() << dry.dump();
    }

    std::unique_ptr<LoopFs> fs_;
    std::string pool, g1, g2;
};

// Blocks are shared anywhere on one filesystem: a guest root reached through a bind mount,
// and on btrfs one subvolume per guest (an st_dev of its own), are imported and shared.
TEST_P(Reflink, GuestRootsThroughABindMountOrInASubvolumeShare) {
    ASSERT_EQ(unify({"init", "--share", "reflink"}).status, 0);
    ASSERT_EQ(unify({"import", "g1", g1, "--min-size", "1"}).status, 0);
    BindMount bind(g2, *fs_ / "g2-bind");
    UNIFY_REQUIRE(bind.error());
    auto r = unify({"import", "g2", *fs_ / "g2-bind", "--min-size", "1"});
    ASSERT_EQ(r.status, 0) << r.out << r.err;
    EXPECT_TRUE(share_blocks(g1 + "/usr/lib/mid", g2 + "/usr/lib/mid"));
    if (GetParam() != "btrfs") return;
    std::string sv = *fs_ / "sv";
    ASSERT_EQ(sh("btrfs -q subvolume create '" + sv + "' && cp -a '" + g1 + "/usr' '" + sv + "/'"),
              0);
    ASSERT_NE(stat_path(sv).st_dev, stat_path(g1).st_dev) << "a subvolume has its own st_dev";
    r = unify({"import", "sv", sv, "--min-size", "1"});
    ASSERT_EQ(r.status, 0) << r.out << r.err;
    EXPECT_TRUE(share_blocks(g1 + "/usr/lib/mid", sv + "/usr/lib/mid"));
    EXPECT_EQ(who(pool, sv + "/usr/lib/mid"),
              (std::set<std::string>{"g1:/usr/lib/mid", "g2:/usr/lib/mid", "sv:/usr/lib/mid"}));
    r = unify({"verify", "--full"});
    EXPECT_EQ(r.status, 0) << r.out << r.err;
    r = unify({"reindex"});
    ASSERT_EQ(r.status, 0) << r.out << r.err;
    EXPECT_EQ(who(pool, sv + "/usr/lib/mid").size(), 3u) << "reindex found the subvolume's links";
}

// A reflink pool takes roots through other mounts of its filesystem; so a bind mount of the
// directory that holds the pool, put at a registered root's path, is a real directory that
// no path check tells from the guest's: forget --delete-root must still see that the pool is
// inside and delete nothing.
TEST_P(Reflink, DeleteRootOfABindMountOfThePoolsDirectoryDeletesNothing) {
    ASSERT_EQ(unify({"init", "--share", "reflink"}).status, 0);
    ASSERT_EQ(unify({"import", "g1", g1, "--min-size", "1"}).status, 0);
    ASSERT_EQ(unify({"import", "g2", g2, "--min-size", "1"}).status, 0);
    ASSERT_EQ(rename(g1.c_str(), (*fs_ / "g1.moved").c_str()), 0);
    ASSERT_EQ(mkdir(g1.c_str(), 0755), 0);
    const auto objects_before = pool_objects(pool);
    {
        BindMount bind(fs_->path(), g1);
        UNIFY_REQUIRE(bind.error());
        auto r = unify({"forget", "g1", "--delete-root"});
        EXPECT_EQ(r.status, 1) << r.out << r.err;
        EXPECT_NE(r.err.find("which holds the pool"), std::string::npos) << r.err;
        EXPECT_EQ(pool_objects(pool), objects_before);
        EXPECT_EQ(unify({"verify", "--full"}).status, 0);
    }
}

// A file whose tail is preallocated and never written (fallocate) reads as zeros there; the
// clone leaves that range a hole in the object while the guest file keeps its unwritten
// extent: still the same bytes from the same blocks, so who lists it and verify finds it
// sharing. A file of holes only has nothing to share: skipped, so that no object without
// extents is made for gc to take while records still name it.
TEST_P(Reflink, PreallocatedFilesShareAndFilesOfHolesAreSkipped) {
    std::string data;
    for (int i = 0; i < 100000; ++i) data += char('a' + (i * 7919) % 26);
    std::string pre = "/usr/lib/prealloc", holes = "/usr/lib/holes";
    file(g1 + pre, data, 0644, 0, 9);
    ASSERT_EQ(sh("fallocate -o 100000 -l 2000000 '" + g1 + pre + "' && truncate -s 2100000 '" + g1 +
                 pre + "'"),
              0);
    set_mtime(g1 + pre, kMtime, 9);
    file(g2 + pre, data + std::string(2000000, '\0'), 0644, 0, 9);
    for (const auto& g : {g1, g2}) {
        ASSERT_EQ(sh("truncate -s 5M '" + g + holes + "'"), 0);
        set_mtime(g + holes, kMtime, 10);
    }
    ASSERT_EQ(unify({"init", "--share", "reflink"}).status, 0);
    for (const auto& [name, root] : {std::pair{"g1", g1}, {"g2", g2}}) {
        auto j = json_of(unify({"--json", "import", name, root, "--min-size", "1"}));
        EXPECT_EQ(j["skipped"]["sparse"], 1) << j.dump();
    }
    EXPECT_EQ(who(pool, g1 + pre), (std::set<std::string>{"g1:" + pre, "g2:" + pre}));
    auto j = json_of(unify({"--json", "verify"}));
    EXPECT_EQ(j["sharers_gone"].size(), 0u) << j.dump();
    ASSERT_EQ(unify({"gc"}).status, 0);
    EXPECT_EQ(who(pool, g2 + pre).size(), 2u) << "gc took the object";
    j = json_of(unify({"--json", "verify", "--full"}));
    EXPECT_EQ(j["sharers_gone"].size(), 0u) << j.dump();
    EXPECT_EQ(read_file(g1 + holes), std::string(5 << 20, '\0'));
}

// Files the filesystem will not remap (immutable, and on btrfs no-copy-on-write) are skipped
// as refused, named for what they are, and left exactly as they were.
TEST_P(Reflink, FilesTheFilesystemRefusesToShareAreSkippedAsRefused) {
    ASSERT_EQ(unify({"init", "--share", "reflink"}).status, 0);
    ASSERT_EQ(unify({"import", "g1", g1, "--min-size", "1"}).status, 0);
    ASSERT_EQ(sh("chattr +i '" + g2 + "/usr/lib/mid'"), 0);
    size_t refused = 1;
    if (GetParam() == "btrfs") {
        // +C only takes on an empty file: made empty, flagged, then written.
        std::string big = g2 + "/usr/lib/big";
        std::string content = read_file(big);
        ASSERT_EQ(sh("rm '" + big + "' && touch '" + big + "' && chattr +C '" + big + "'"), 0);
        file(big, content, 0600, 1000, 2);
        refused = 2;
    }
    const std::string before = manifest(g2);
    auto j = json_of(unify({"--json", "import", "g2", g2, "--min-size", "1"}));
    EXPECT_EQ(j["skipped"]["refused"], refused) << j.dump();
    EXPECT_EQ(j["skipped"].count("flagged"), 0u) << j.dump();
    EXPECT_EQ(manifest(g2), before);
    EXPECT_EQ(sh("chattr -i '" + g2 + "/usr/lib/mid'"), 0);
}

// bytes_saved is the blocks freed: a file with a second name in its guest is one inode, whose
// blocks go once; and the first guest's file an object is cloned from frees nothing, by any
// of its names (README, "What the commands print").
TEST_P(Reflink, BytesSavedCountsAnInodeOnceAndTheObjectsSourceNever) {
    for (const auto& g : {g1, g2})
        ASSERT_EQ(link((g + "/usr/lib/big").c_str(), (g + "/usr/lib/big.2").c_str()), 0);
    // g2's copy of "grown" was written, closed, then appended to: XFS keeps blocks it
    // preallocated past its end, which a dedupe does not free.
    std::string grown(50 * 65536, 'g');
    write_file(g1 + "/usr/lib/grown", grown + "tail");
    write_file(g2 + "/usr/lib/grown", grown);
    {
        Fd fd(open((g2 + "/usr/lib/grown").c_str(), O_WRONLY | O_APPEND | O_CLOEXEC));
        ASSERT_EQ(write(fd.get(), "tail", 4), 4);
    }
    ASSERT_EQ(unify({"init", "--share", "reflink"}).status, 0);
    // g2 shares big (one inode, two names), mid, grown and the apt list with g1's objects.
    uint64_t g2_freed = 0;
    for (const char* f : {"/usr/lib/big", "/usr/lib/mid", "/usr/lib/grown", kLists}) {
        struct stat st = stat_path(g2 + f);
        g2_freed +=
            std::min(uint64_t(st.st_blocks) * 512, (uint64_t(st.st_size) + 4095) / 4096 * 4096);
    }
    for (const auto& [name, root] : {std::pair{"g1", g1}, {"g2", g2}}) {
        auto dry = json_of(unify({"--json", "import", name, root, "--dry-run"}));
        auto j = json_of(unify({"--json", "import", name, root}));
        EXPECT_EQ(dry["bytes_saved"], j["bytes_saved"]) << name;
        EXPECT_EQ(j["bytes_saved"], std::string(name) == "g1" ? 0 : g2_freed) << j.dump();
    }
    EXPECT_TRUE(share_blocks(g1 + "/usr/lib/big", g2 + "/usr/lib/big.2"));
}

TEST_P(Reflink, ImportKeepsEveryInodeAndItsMetadataAndSharesBlocks) {
    std::string before1 = identity(g1), before2 = identity(g2);
    ASSERT_NO_FATAL_FAILURE(init_and_import(""));
    EXPECT_EQ(identity(g1), before1);
    EXPECT_EQ(identity(g2), before2);
    EXPECT_TRUE(share_blocks(g1 + "/usr/lib/big", g2 + "/usr/lib/big"));
    EXPECT_TRUE(share_blocks(g1 + "/usr/lib/mid", g2 + "/usr/lib/mid"));
    EXPECT_FALSE(share_blocks(g1 + "/usr/lib/private", g2 + "/usr/lib/private"));
    EXPECT_TRUE(share_blocks(g1 + kLists, g2 + kLists));
    EXPECT_FALSE(share_blocks(g1 + "/usr/lib/under", g2 + "/usr/lib/under"));
    EXPECT_FALSE(share_blocks(g1 + "/var/log/boot.log", g2 + "/var/log/boot.log"));
    EXPECT_EQ(who(pool, "g1:/usr/lib/big"),
              (std::set<std::string>{"g1:/usr/lib/big", "g2:/usr/lib/big"}));
    // Nothing unify made is visible in the guests.
    EXPECT_EQ(sh("find '" + g1 + "' '" + g2 + "' -name '.unify-*' | grep -q ."), 1);
    // The re-import costs a statx per file: everything is already shared.
    auto r = unify({"--json", "import", "g2", g2});
    Json j = json_of(r);
    EXPECT_EQ(j["newly_linked"], 0) << r.out;
    EXPECT_GE(j["already_linked"].get<int>(), 2) << r.out;
    EXPECT_EQ(unify({"verify", "--full"}).status, 0);
    Json st = json_of(unify({"--json", "status"}));
    EXPECT_EQ(st["pool"]["share"], "reflink") << st.dump();
    EXPECT_GT(st["pool"]["bytes_saved"].get<uint64_t>(), 600u * 1024) << st.dump();
    EXPECT_TRUE(contains_squeezed(unify({"status"}).out, "share mode reflink"));
    // --explain and reindex use the reflink pool's rules too.
    r = unify({"import", "g1", g1, "--explain", kLists});
    EXPECT_TRUE(
        contains(r.out + r.err, "unified (included by the default rule '+ /var/lib/apt/lists'"))
        << r.out << r.err;
    r = unify({"reindex"});
    ASSERT_EQ(r.status, 0) << r.out << r.err;
    EXPECT_EQ(who(pool, std::string("g1:") + kLists),
              (std::set<std::string>{std::string("g1:") + kLists, std::string("g2:") + kLists}));
}

TEST_P(Reflink, AWriterHoldingItsFileAcrossTheImportChangesOnlyItsOwnFile) {
    std::string big1 = read_file(g1 + "/usr/lib/big");
    int w = open((g2 + "/usr/lib/big").c_str(), O_WRONLY | O_CLOEXEC);
    ASSERT_GE(w, 0);
    ASSERT_NO_FATAL_FAILURE(init_and_import());
    EXPECT_TRUE(share_blocks(g1 + "/usr/lib/big", g2 + "/usr/lib/big"));
    ASSERT_EQ(pwrite(w, "EVIL", 4, 0), 4);
    // The writer puts the mtime back: only the ctime tells the re-import to look again.
    struct timespec times[2] = {{0, UTIME_OMIT}, {kMtime, 2}};
    ASSERT_EQ(futimens(w, times), 0);
    ASSERT_EQ(fsync(w), 0);
    close(w);
    EXPECT_EQ(read_file(g1 + "/usr/lib/big"), big1) << "the write reached another guest";
    EXPECT_EQ(read_file(g2 + "/usr/lib/big").substr(0, 4), "EVIL");
    EXPECT_EQ(unify({"verify", "--full"}).status, 0) << "the write reached the object";
    EXPECT_EQ(who(pool, "g1:/usr/lib/big"), std::set<std::string>{"g1:/usr/lib/big"});
    // The write moved the file's ctime: the re-import hashes it again, a new object.
    ASSERT_EQ(stat_path(g2 + "/usr/lib/big").st_mtim.tv_nsec, 2);
    Json j = json_of(unify({"--json", "import", "g2", g2}));
    EXPECT_EQ(j["new_objects"], 1) << j.dump();
    EXPECT_EQ(j["records_dropped"], 0) << j.dump();
}

TEST_P(Reflink, GcRemovesExactlyTheObjectsNoFileSharesAnyMore) {
    ASSERT_NO_FATAL_FAILURE(init_and_import());
    Json j = json_of(unify({"--json", "gc"}));
    EXPECT_EQ(j["objects_removed"], 0) << "gc removed an object guests share: " << j.dump();
    // Each private file made an object only its guest shares: g1 removes its file, g2
    // rewrites its own (same inode, new blocks).
    ASSERT_EQ(unlink((g1 + "/usr/lib/private").c_str()), 0);
    ASSERT_EQ(sh("printf x > '" + g2 + "/usr/lib/private' && sync"), 0);
    j = json_of(unify({"--json", "gc"}));
    EXPECT_EQ(j["objects_removed"], 2) << j.dump();
    // What guests still share stays, and their files never depended on it anyway.
    EXPECT_EQ(who(pool, "g1:/usr/lib/big").size(), 2u);
    EXPECT_EQ(unify({"verify", "--full"}).status, 0);
    EXPECT_EQ(read_file(g2 + "/usr/lib/private"), "x");
}

// A guest process holds a write lease on one of its shared files: unshare's open of it would
// have to break the lease, and it does not wait; it stops there saying why and what to do.
TEST_P(Reflink, UnshareOfAFileUnderALeaseSaysSo) {
    ASSERT_NO_FATAL_FAILURE(init_and_import());
    std::string f = g1 + "/usr/lib/private";
    // The lease's holder is told of a break by SIGIO, whose default action ends it.
    auto old_sigio = signal(SIGIO, SIG_IGN);
    int fd = open(f.c_str(), O_WRONLY | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(fcntl(fd, F_SETLEASE, F_WRLCK), 0) << strerror(errno);
    auto r = unify({"unshare", "g1", "/usr/lib/private"});
    EXPECT_EQ(r.status, 1) << r.out << r.err;
    EXPECT_NE(r.err.find("a process holds a lease on it"), std::string::npos) << r.err;
    fcntl(fd, F_SETLEASE, F_UNLCK);  // the break may have taken it already
    close(fd);
    signal(SIGIO, old_sigio);
    r = unify({"unshare", "g1", "/usr/lib/private"});
    EXPECT_EQ(r.status, 0) << r.out << r.err;
}

// A guest points its shared file's blocks at a private copy of its own (FIDEDUPERANGE of the
// same bytes moves neither mtime nor ctime): no file shares the object any more and gc
// removes it. The record that names it must go with it: the next import's look at an
// unchanged file is one statx, and it counted the file as linked to nothing for ever.
TEST_P(Reflink, GcDropsTheRecordsOfWhatItRemovesSoTheNextImportSharesAgain) {
    ASSERT_NO_FATAL_FAILURE(init_and_import());
    std::string f = g1 + "/usr/lib/private", mine = *fs_ / "mine";
    ASSERT_EQ(who(pool, "g1:/usr/lib/private"), std::set<std::string>{"g1:/usr/lib/private"});
    auto before = stat_path(f);
    ASSERT_EQ(sh("cp --reflink=never '" + f + "' '" + mine + "' && xfs_io -c 'dedupe " + mine +
                 " 0 0 " + std::to_string(before.st_size) + "' '" + f + "' >/dev/null"),
              0);
    ASSERT_EQ(stat_path(f).st_ctim.tv_nsec, before.st_ctim.tv_nsec) << "the premise: no ctime";
    Json j = json_of(unify({"--json", "gc"}));
    EXPECT_EQ(j["objects_removed"], 1) << j.dump();
    EXPECT_EQ(j["links_dropped"], 1) << j.dump();
    j = json_of(unify({"--json", "import", "g1", g1, "--min-size", "1"}));
    EXPECT_EQ(j["new_objects"], 1) << j.dump();
    EXPECT_EQ(who(pool, "g1:/usr/lib/private"), std::set<std::string>{"g1:/usr/lib/private"});
    EXPECT_EQ(unify({"verify", "--full"}).status, 0);
}

// A guest file appended to and imported again makes a second object, cloned from the file,
// that still shares the first one's blocks; once the file is gone each object's only sharer
// is the other. No guest file shares either: gc removes both (FIEMAP's shared flag alone
// kept them for ever), and --dry-run says so first. An object a guest file shares stays.
TEST_P(Reflink, GcRemovesObjectsThatShareBlocksOnlyWithEachOther) {
    std::string r1 = *fs_ / "r1", keep = random_bytes(1 << 20, 1);
    write_file(r1 + "/usr/keep", keep);
    write_file(r1 + "/usr/f", random_bytes(4000000, 2));
    ASSERT_EQ(unify({"init", "--share", "reflink"}).status, 0);
    ASSERT_EQ(unify({"import", "r1", r1}).status, 0);
    ASSERT_EQ(sh("echo more >> '" + r1 + "/usr/f'"), 0);
    ASSERT_EQ(unify({"import", "r1", r1}).status, 0);
    ASSERT_EQ(unlink((r1 + "/usr/f").c_str()), 0);
    ASSERT_EQ(unify({"import", "r1", r1}).status, 0);
    ASSERT_EQ(pool_objects(pool).size(), 3u);
    std::string kept = object_sharing(pool, r1 + "/usr/keep");
    ASSERT_NE(kept, "");

    expect_gc_removes(2);
    EXPECT_EQ(pool_objects(pool), std::set<std::string>{kept});
    EXPECT_EQ(read_file(r1 + "/usr/keep"), keep);
    EXPECT_TRUE(share_blocks(pool + "/objects/" + kept, r1 + "/usr/keep"));
    EXPECT_EQ(unify({"verify", "--full"}).status, 0);
    Json st = json_of(unify({"--json", "status"}));
    EXPECT_EQ(st["pool"]["objects"], 1) << st.dump();
    EXPECT_EQ(json_of(unify({"--json", "gc"}))["objects_removed"], 0);
}

// The first object of an appended file: no record names it, and every shared block of it is
// the second object's (and that object's guest file's) too. Removing it frees only its own
// blocks; the second object and the file go on sharing theirs.
TEST_P(Reflink, GcRemovesAnUnrecordedObjectWhoseSharedBlocksAnotherObjectHolds) {
    std::string r1 = *fs_ / "r1", f = r1 + "/usr/f", content = random_bytes(4000000, 3);
    write_file(f, content);
    ASSERT_EQ(unify({"init", "--share", "reflink"}).status, 0);
    ASSERT_EQ(unify({"import", "r1", r1}).status, 0);
    ASSERT_EQ(sh("echo more >> '" + f + "'"), 0);
    ASSERT_EQ(unify({"import", "r1", r1}).status, 0);
    ASSERT_EQ(pool_objects(pool).size(), 2u);
    std::string second = object_sharing(pool, f);
    ASSERT_NE(second, "");

    expect_gc_removes(1);
    EXPECT_EQ(pool_objects(pool), std::set<std::string>{second});
    EXPECT_EQ(read_file(f), content + "more\n");
    EXPECT_TRUE(share_blocks(pool + "/objects/" + second, f));
    EXPECT_EQ(who(pool, "r1:/usr/f"), std::set<std::string>{"r1:/usr/f"});
    EXPECT_EQ(unify({"verify", "--full"}).status, 0);
}

// The guard: a file cut to a block-aligned prefix and imported again makes an object all of
// whose blocks the first object holds too. Every shared block of the new object is another
// object's, but a recorded guest file shares it, so it stays; the first object, which no
// record names, goes.
TEST_P(Reflink, GcKeepsAnObjectARecordedFileSharesThoughAnotherObjectHoldsAllItsBlocks) {
    std::string r1 = *fs_ / "r1", f = r1 + "/usr/f", content = random_bytes(8 << 20, 4);
    write_file(f, content);
    ASSERT_EQ(unify({"init", "--share", "reflink"}).status, 0);
    ASSERT_EQ(unify({"import", "r1", r1}).status, 0);
    ASSERT_EQ(truncate(f.c_str(), 4 << 20), 0);
    ASSERT_EQ(unify({"import", "r1", r1}).status, 0);
    ASSERT_EQ(pool_objects(pool).size(), 2u);
    std::string prefix = object_sharing(pool, f);
    ASSERT_NE(prefix, "");

    expect_gc_removes(1);
    EXPECT_EQ(pool_objects(pool), std::set<std::string>{prefix});
    EXPECT_EQ(read_file(f), content.substr(0, 4 << 20));
    EXPECT_TRUE(share_blocks(pool + "/objects/" + prefix, f));
    EXPECT_EQ(who(pool, "r1:/usr/f"), std::set<std::string>{"r1:/usr/f"});
    EXPECT_EQ(unify({"verify", "--full"}).status, 0);
    EXPECT_EQ(json_of(unify({"--json", "gc"}))["objects_removed"], 0);
}

TEST_P(Reflink, UnshareGivesPrivateBlocksInPlaceAndForgetOnlyDropsRecords) {
    ASSERT_NO_FATAL_FAILURE(init_and_import());
    std::string before1 = identity(g1), before2 = identity(g2);
    auto r = unify({"unshare", "g1", "/usr/lib/big"});
    ASSERT_EQ(r.status, 0) << r.out << r.err;
    EXPECT_EQ(identity(g1), before1) << "unshare changed the file, its inode or its times";
    EXPECT_FALSE(share_blocks(g1 + "/usr/lib/big", g2 + "/usr/lib/big"));
    EXPECT_EQ(who(pool, "g2:/usr/lib/big"), std::set<std::string>{"g2:/usr/lib/big"});
    r = unify({"forget", "g2"});
    ASSERT_EQ(r.status, 0) << r.out << r.err;
    EXPECT_EQ(identity(g2), before2);
    EXPECT_TRUE(share_blocks(g1 + "/usr/lib/mid", g2 + "/usr/lib/mid"))
        << "forget needs no private blocks in a reflink pool";
}

// The acceptance of issue 14 with the real package manager: a guest of a reflink pool takes
// a package upgrade with no unify command at all, the others are unchanged, and the pool
// follows: who, re-import, verify --full, gc.
TEST_P(Reflink, DpkgUpgradeNeedsNoUnifyCommandAndGcFreesWhatNobodySharesAfterIt) {
    UNIFY_REQUIRE(need_tools({"dpkg", "dpkg-deb"}));
    std::string debs = *fs_ / "debs", g3 = *fs_ / "g3";
    build_debs(debs, true);
    for (const auto& g : {g1, g2, g3}) {
        dpkg_guest(g);
        auto [rc, out] = dpkg(g, "-i '" + debs + "/fixture_1.deb'");
        ASSERT_EQ(rc, 0) << out;
    }
    ASSERT_EQ(unify({"init", "--share", "reflink"}).status, 0);
    for (const auto& [name, root] : {std::pair{"g1", g1}, {"g2", g2}, {"g3", g3}})
        ASSERT_EQ(unify({"import", name, root, "--min-size", "1"}).status, 0) << name;
    const std::string big = "/usr/share/fixture/big", common = "/usr/share/fixture/common";
    ASSERT_EQ(who(pool, "g2:" + big).size(), 3u);
    std::string m2 = manifest(g2), m3 = manifest(g3);

    auto [rc, out] = dpkg(g1, "-i '" + debs + "/fixture_2.deb'");
    EXPECT_EQ(rc, 0) << out;
    EXPECT_EQ(problem_lines(out), "") << out;
    EXPECT_EQ(read_file(g1 + big), std::string(65536, '2'));
    EXPECT_EQ(manifest(g2), m2) << "g2 changed";
    EXPECT_EQ(manifest(g3), m3) << "g3 changed";
    // dpkg replaced g1's files by new inodes: who lists them no more.
    EXPECT_EQ(who(pool, "g2:" + big), (std::set<std::string>{"g2:" + big, "g3:" + big}));
    EXPECT_EQ(who(pool, "g2:" + common).count("g1:" + common), 0u);
    // Re-import: common (the same in v2) is shared again, big v2 is a new object.
    Json j = json_of(unify({"--json", "import", "g1", g1}));
    EXPECT_GE(j["new_objects"].get<int>(), 1) << j.dump();
    EXPECT_EQ(who(pool, "g2:" + common).count("g1:" + common), 1u);
    EXPECT_EQ(unify({"verify", "--full"}).status, 0);
    j = json_of(unify({"--json", "import", "g1", g1}));
    EXPECT_EQ(j["newly_linked"], 0) << "a second re-import did work again: " << j.dump();

    // The others upgrade too: nobody shares big v1 any more, and gc frees it.
    for (const auto& [name, root] : {std::pair{"g2", g2}, {"g3", g3}}) {
        auto [rc2, out2] = dpkg(root, "-i '" + debs + "/fixture_2.deb'");
        ASSERT_EQ(rc2, 0) << out2;
        ASSERT_EQ(unify({"import", name, root}).status, 0);
    }
    std::string m1 = manifest(g1);
    j = json_of(unify({"--json", "gc"}));
    EXPECT_GE(j["objects_removed"].get<int>(), 1) << j.dump();
    EXPECT_EQ(who(pool, "g1:" + big).size(), 3u);
    EXPECT_EQ(manifest(g1), m1);
    EXPECT_EQ(unify({"verify", "--full"}).status, 0);
}

INSTANTIATE_TEST_SUITE_P(, Reflink, testing::Values("xfs", "btrfs"),
                         [](const testing::TestParamInfo<std::string>& i) { return i.param; });

// --- init ---

// Pass 5 shares a batch's groups on worker threads (importer/share_groups.h). One dedupe that
// fails (EIO, forced) stops the import with the call, the path and the errno; every file the
// workers shared before they stopped is recorded all the same, so the next run links exactly
// the files still unshared. The failing file is the second of a 16 MiB group, so the other
// workers share the groups after it while its first member is being compared.
TEST_P(Reflink, AnImportStoppedByAFailingDedupeRecordsEveryFileItShared) {
    constexpr int kFiles = 200;
    std::string g3 = *fs_ / "g3", g4 = *fs_ / "g4";
    std::vector<std::string> names;
    for (int i = 0; i < kFiles; ++i) {
        std::string content(8192, char('a' + i % 26));
        content += std::to_string(i);
        names.push_back("f" + std::to_string(i));
        for (const std::string& g : {g3, g4})
            file(g + "/usr/lib/" + names.back(), content, 0644, 0, i);
        if (i == kFiles / 2) {  // created in this order: walked in it on XFS and btrfs
            std::string big(16 << 20, 'v');
            file(g3 + "/usr/lib/big", big, 0644, 0, 0);
            file(g4 + "/usr/lib/big", big, 0644, 0, 0);
            names.push_back("big");
        }
    }
    file(g4 + "/usr/lib/victim", std::string(16 << 20, 'v'), 0644, 0, 0);
    ASSERT_EQ(unify({"init", "--share", "reflink"}).status, 0);
    auto r = unify({"import", "g3", g3, "--min-size", "1"});
    ASSERT_EQ(r.status, 0) << r.out << r.err;
    std::string cmd = "UNIFY_FAULT_ERRNO=dedupe:EIO:victim '" UNIFY_FAULTS_BINARY "' --pool '" +
                      pool + "' import g4 '" + g4 + "' --min-size 1 > '" + *fs_ / "out" + "' 2> '" +
                      *fs_ / "err" + "'";
    EXPECT_NE(sh(cmd), 0);
    std::string err = read_file(*fs_ / "err");
    EXPECT_NE(err.find("FIDEDUPERANGE"), std::string::npos) << err;
    EXPECT_NE(err.find("g4/usr/lib/victim"), std::string::npos) << err;
    EXPECT_NE(err.find("EIO"), std::string::npos) << err;
    int unshared = !share_blocks(g3 + "/usr/lib/big", g4 + "/usr/lib/victim");
    EXPECT_EQ(unshared, 1);
    for (const std::string& name : names)
        unshared += !share_blocks(g3 + "/usr/lib/" + name, g4 + "/usr/lib/" + name);
    auto again = json_of(unify({"--json", "import", "g4", g4}));
    EXPECT_EQ(again["newly_linked"].get<int>(), unshared) << again.dump();
    EXPECT_EQ(again["already_linked"].get<int>(), kFiles + 2 - unshared) << again.dump();
}

// A file whose size and XXH3 match an object's is only a candidate for it
// (importer/known_contents.h): the kernel's compare refuses other bytes, and the file is then
// hashed in full and imported with its own id, not skipped. A guest can make XXH3 collisions;
// here the object's record is given the other file's XXH3 instead.
TEST_P(Reflink, AFileWhoseXxh3MatchesAnotherObjectIsComparedAndImportedWithItsOwnId) {
    std::string g3 = *fs_ / "g3", g4 = *fs_ / "g4";
    std::string a(100 * 1024, 'a'), b(100 * 1024, 'b');
    file(g3 + "/usr/lib/a", a, 0644, 0, 1);
    file(g4 + "/usr/lib/b", b, 0644, 0, 1);
    ASSERT_EQ(unify({"init", "--share", "reflink"}).status, 0);
    ASSERT_EQ(unify({"import", "g3", g3}).status, 0);
    {
        Fd fd(open((g4 + "/usr/lib/b").c_str(), O_RDONLY | O_CLOEXEC));
        auto hb = hash_fd(fd.get(), "b");
        ASSERT_TRUE(hb) << hb.error().message;
        uint64_t x = hb->xxh3;
        ASSERT_TRUE(edit_only_object_record(pool, [x](ObjectRecord& r) { r.xxh3 = x; }));
    }
    Json j = json_of(unify({"--json", "import", "g4", g4}));
    EXPECT_EQ(j["new_objects"], 1) << j.dump();
    EXPECT_EQ(j["newly_linked"], 1) << j.dump();  // the file the new object was made from
    EXPECT_TRUE(j["skipped"].empty()) << j.dump();
    EXPECT_EQ(read_file(g4 + "/usr/lib/b"), b);
    EXPECT_FALSE(share_blocks(g3 + "/usr/lib/a", g4 + "/usr/lib/b"));
    EXPECT_EQ(who(pool, "g4:/usr/lib/b"), std::set<std::string>{"g4:/usr/lib/b"});
}

// Content no recorded object has is read with XXH3 alone, and its object's id is the hash of
// the clone that makes it (importer/known_contents.h). Where the pool holds that object
// already without its record (a run killed before its commit), the clone finds it: the guest
// file is made to share the object's blocks, not the clone's, and the record is put back.
TEST_P(Reflink, AnObjectWithoutItsRecordIsFoundByTheCloneSharedAndRecordedAgain) {
    std::string g3 = *fs_ / "g3", g4 = *fs_ / "g4";
    std::string x(100 * 1024, 'x');
    file(g3 + "/usr/lib/x", x, 0644, 0, 1);
    file(g4 + "/usr/lib/y", x, 0600, 0, 2);
    ASSERT_EQ(unify({"init", "--share", "reflink"}).status, 0);
    ASSERT_EQ(unify({"import", "g3", g3}).status, 0);
    ObjectId lost;
    {
        auto index = Index::open(pool + "/index", false);
        ASSERT_TRUE(index) << index.error().message;
        auto txn = (*index)->write();
        ASSERT_TRUE(txn);
        std::vector<ObjectId> all;
        ASSERT_TRUE((*txn)->for_each_object([&](const ObjectId& id, const ObjectRecord&) {
            all.push_back(id);
            return true;
        }));
        ASSERT_EQ(all.size(), 1u);
        lost = all[0];
        ASSERT_TRUE((*txn)->delete_object(lost));
        ASSERT_TRUE((*txn)->commit());
    }
    Json j = json_of(unify({"--json", "import", "g4", g4}));
    EXPECT_EQ(j["new_objects"], 0) << j.dump();
    EXPECT_EQ(j["newly_linked"], 1) << j.dump();
    EXPECT_TRUE(j["skipped"].empty()) << j.dump();
    EXPECT_EQ(read_file(g4 + "/usr/lib/y"), x);
    EXPECT_TRUE(share_blocks(pool + "/objects/" + Pool::object_name(lost), g4 + "/usr/lib/y"));
    EXPECT_TRUE(share_blocks(g3 + "/usr/lib/x", g4 + "/usr/lib/y"));
    {
        auto index = Index::open(pool + "/index", false);
        ASSERT_TRUE(index) << index.error().message;
        auto txn = (*index)->read();
        ASSERT_TRUE(txn);
        auto rec = (*txn)->object(lost);
        ASSERT_TRUE(rec);
        ASSERT_TRUE(rec->has_value()) << "the object's record was not put back";
        EXPECT_EQ((*rec)->size, x.size());
    }
    EXPECT_EQ(unify({"verify", "--full"}).status, 0);
}

// New content is read with XXH3 alone before its clone is made, so the clone is checked
// against the walked file: a guest appending to it in between (and putting its mtime back)
// gets its file skipped as changed, not an object of bytes its record does not describe.
TEST_P(Reflink, AFileWrittenBeforeItsCloneIsSkippedAsChangedAndMakesNoObject) {
    std::string g3 = *fs_ / "g3";
    file(g3 + "/usr/lib/x", std::string(100 * 1024, 'x'), 0644, 0, 1);
    ASSERT_EQ(unify({"init", "--share", "reflink"}).status, 0);
    auto r = run_unify_faults({"--pool", pool, "--json", "import", "g3", g3},
                              {"UNIFY_FAULT_WRITE=reflink.clone:1:" + g3 + "/usr/lib/x"});
    Json j = json_of(r);
    EXPECT_EQ(j["new_objects"], 0) << j.dump();
    EXPECT_EQ(j["newly_linked"], 0) << j.dump();
    EXPECT_EQ(j["skipped"]["changed"], 1) << j.dump();
    EXPECT_EQ(read_file(g3 + "/usr/lib/x"), std::string(100 * 1024, 'x') + "!");
    EXPECT_EQ(json_of(unify({"--json", "status"}))["pool"]["objects"], 0);
    for (const auto& e : std::filesystem::recursive_directory_iterator(pool + "/objects"))
        EXPECT_FALSE(e.is_regular_file()) << "an object was linked: " << e.path();
}

// import --dry-run in a reflink pool counts what the import then does (new content is only
// read with XXH3 there, grouped by its stand-in id) and does nothing: no clone, no object,
// every guest file as it was.
TEST_P(Reflink, DryRunPredictsTheImportAndChangesNothing) {
    ASSERT_EQ(unify({"init", "--share", "reflink"}).status, 0);
    int objects = 0;
    for (const auto& [name, root] : {std::pair{"g1", g1}, {"g2", g2}}) {
        std::string before = identity(root);
        Json dry = json_of(unify({"--json", "import", "--dry-run", name, root}));
        EXPECT_EQ(identity(root), before) << name;
        EXPECT_EQ(json_of(unify({"--json", "status"}))["pool"]["objects"], objects) << name;
        Json real = json_of(unify({"--json", "import", name, root}));
        for (const char* k : {"newly_linked", "new_objects", "bytes_new_objects", "bytes_saved"})
            EXPECT_EQ(dry[k], real[k]) << name << " " << k << "\n"
                                       << dry.dump() << "\n"
                                       << real.dump();
        objects = json_of(unify({"--json", "status"}))["pool"]["objects"].get<int>();
    }
    EXPECT_GT(objects, 0);
    EXPECT_TRUE(share_blocks(g1 + "/usr/lib/big", g2 + "/usr/lib/big"));
}

// Content no object has, of a size no other file of its batch has, is not read before its
// clone (hash_known's skip_unique): its clone's hash is its id. Twins of such files in later
// batches of the same import (batches of 32 files under a 256-fd limit) find the object their
// clone made and share it, and the dry run still predicts every count of the import.
TEST_P(Reflink, NewContentOfAUniqueSizeIsClonedUnreadAndItsTwinsInLaterBatchesShareIt) {
    std::string g3 = *fs_ / "g3";
    constexpr int kPairs = 20, kPad = 60;
    for (int i = 0; i < kPairs; ++i) {
        std::string content = random_bytes(70 * 1024 + size_t(i) * 512, uint64_t(i) + 1);
        file(g3 + "/usr/a/twin" + std::to_string(i), content, 0644, 0, 1);
        file(g3 + "/usr/b/twin" + std::to_string(i), content, 0600, 0, 2);
    }
    // Padding, so that the twins fall into several batches: sizes of their own, all below
    // the twins'.
    for (int i = 0; i < kPad; ++i)
        for (int d = 0; d < 2; ++d)
            file(g3 + (d ? "/usr/b/pad/p" : "/usr/a/pad/p") + std::to_string(i),
                 random_bytes(66 * 1024 + size_t(i) * 8 + size_t(d) * 4, 1000u + 2u * i + d), 0644,
                 0, 3);
    const std::string before = manifest(g3);
    ASSERT_EQ(unify({"init", "--share", "reflink"}).status, 0);
    auto limited = [&](std::vector<std::string> args) {
        args.insert(args.begin(), {"-c", "ulimit -n 256 && exec \"$0\" \"$@\"",
                                   test::unify_binary(), "--pool", pool, "--json"});
        return run_program("/bin/sh", args);
    };
    Json dry = json_of(limited({"import", "--dry-run", "g3", g3}));
    Json real = json_of(limited({"import", "g3", g3}));
    for (const char* k : {"newly_linked", "new_objects", "bytes_new_objects", "bytes_saved"})
        EXPECT_EQ(dry[k], real[k]) << k << "\n" << dry.dump() << "\n" << real.dump();
    EXPECT_EQ(real["new_objects"], kPairs + 2 * kPad) << real.dump();
    EXPECT_EQ(real["newly_linked"], 2 * kPairs + 2 * kPad) << real.dump();
    EXPECT_TRUE(real["skipped"].empty()) << real.dump();
    EXPECT_EQ(manifest(g3), before);
    for (int i = 0; i < kPairs; ++i) {
        std::string a = g3 + "/usr/a/twin" + std::to_string(i);
        std::string b = g3 + "/usr/b/twin" + std::to_string(i);
        EXPECT_TRUE(share_blocks(a, b)) << i;
        EXPECT_EQ(who(pool, a), (std::set<std::string>{"g3:/usr/a/twin" + std::to_string(i),
                                                       "g3:/usr/b/twin" + std::to_string(i)}));
    }
    EXPECT_EQ(pool_objects(pool).size(), size_t(kPairs + 2 * kPad));
    auto r = unify({"verify", "--full"});
    EXPECT_EQ(r.status, 0) << r.out << r.err;
}

// A guest appends to a shared file and is imported again: its new object is a clone sharing
// the old object's blocks, so both objects start at the same block. reindex must still find
// each guest file's own object (it took the first it looked up: one of the two files lost its
// record, and gc then removed the object the other guest still shares).
TEST_P(Reflink, ReindexTellsTwoObjectsThatStartAtOneBlockApart) {
    std::string g3 = *fs_ / "g3", g4 = *fs_ / "g4";
    const std::string x = random_bytes(300 * 1024, 42);
    file(g3 + "/usr/bin/tool", x, 0755, 0, 1);
    file(g4 + "/usr/bin/tool", x, 0755, 0, 1);
    ASSERT_EQ(unify({"init", "--share", "reflink"}).status, 0);
    ASSERT_EQ(unify({"import", "g3", g3}).status, 0);
    ASSERT_EQ(unify({"import", "g4", g4}).status, 0);
    {
        std::ofstream out(g3 + "/usr/bin/tool", std::ios::app);
        out << "extra";
    }
    ASSERT_EQ(unify({"import", "g3", g3}).status, 0);
    ASSERT_EQ(pool_objects(pool).size(), 2u);
    const auto who3 = who(pool, "g3:/usr/bin/tool"), who4 = who(pool, "g4:/usr/bin/tool");
    ASSERT_EQ(who3, std::set<std::string>{"g3:/usr/bin/tool"});
    ASSERT_EQ(who4, std::set<std::string>{"g4:/usr/bin/tool"});
    const auto links = json_of(unify({"--json", "status"}))["pool"]["linked_paths"];

    ASSERT_EQ(rename((pool + "/index").c_str(), (*fs_ / "index.lost").c_str()), 0);
    auto r = unify({"reindex"});
    ASSERT_EQ(r.status, 0) << r.out << r.err;
    EXPECT_EQ(who(pool, "g3:/usr/bin/tool"), who3);
    EXPECT_EQ(who(pool, "g4:/usr/bin/tool"), who4);
    EXPECT_EQ(json_of(unify({"--json", "status"}))["pool"]["linked_paths"], links);
    Json j = json_of(unify({"--json", "gc", "--dry-run"}));
    EXPECT_EQ(j["objects_removed"], 0) << j.dump();
}

// A guest made with cp --reflink (or a snapshot) already maps its files to the blocks of the
// objects of the guest it was copied from: its import records them, frees nothing and says
// so (it counted every such file's blocks as saved: 33.6 MB against 0 by df), and skips the
// dedupe.
TEST_P(Reflink, AGuestAlreadySharingTheObjectsBlocksSavesNothing) {
    std::string g3 = *fs_ / "g3", g4 = *fs_ / "g4";
    file(g3 + "/usr/bin/tool", random_bytes(256 * 1024, 7), 0755, 0, 1);
    ASSERT_EQ(unify({"init", "--share", "reflink"}).status, 0);
    ASSERT_EQ(unify({"import", "g3", g3}).status, 0);
    ASSERT_EQ(sh("cp -a --reflink=always '" + g3 + "' '" + g4 + "'"), 0);
    ASSERT_TRUE(share_blocks(g3 + "/usr/bin/tool", g4 + "/usr/bin/tool"));
    Json dry = json_of(unify({"--json", "import", "--dry-run", "g4", g4}));
    EXPECT_EQ(dry["bytes_saved"], 0) << dry.dump();
    Json j = json_of(unify({"--json", "import", "g4", g4}));
    EXPECT_EQ(j["newly_linked"], 1) << j.dump();
    EXPECT_EQ(j["new_objects"], 0) << j.dump();
    EXPECT_EQ(j["bytes_saved"], 0) << j.dump();
    EXPECT_EQ(who(pool, "g4:/usr/bin/tool"),
              (std::set<std::string>{"g3:/usr/bin/tool", "g4:/usr/bin/tool"}));
    EXPECT_EQ(unify({"verify", "--full"}).status, 0);
}

// New content is hashed from the guest file's cached pages only under a read lease held from
// before the clone (linker/reflink.cc, hash_of_clone). A process holding the file open for
// writing makes the lease busy, and a write through it after the clone must not become the
// object's id: the clone, which holds the bytes from before the write, is hashed instead.
TEST_P(Reflink, NewContentHeldOpenForWritingIsHashedFromItsClone) {
    std::string g3 = *fs_ / "g3", x = g3 + "/usr/lib/x", done = *fs_ / "rewritten";
    std::string before = random_bytes(256 * 1024, 11);
    file(x, before, 0644, 0, 1);
    ASSERT_EQ(unify({"init", "--share", "reflink"}).status, 0);
    Fd writer(open(x.c_str(), O_RDWR | O_CLOEXEC));
    ASSERT_TRUE(writer.valid());
    auto r = run_unify_faults(
        {"--pool", pool, "--json", "import", "g3", g3},
        {"UNIFY_FAULT_REWRITE=reflink.hash:1:" + x, "UNIFY_FAULT_REWRITE_DONE=" + done});
    Json j = json_of(r);
    ASSERT_TRUE(stat_path(done).st_ino) << "the guest's write did not happen";
    EXPECT_EQ(j["new_objects"], 1) << j.dump();
    EXPECT_NE(read_file(x), before);
    auto objects = pool_objects(pool);
    ASSERT_EQ(objects.size(), 1u);
    EXPECT_TRUE(read_file(pool + "/objects/" + *objects.begin()) == before);
    EXPECT_EQ(unify({"verify", "--full"}).status, 0) << "the object's id is not its bytes'";
}

// A later guest's file is compared with a recorded sharer's file first, whose pages are
// likely cached (importer/warm_sources.h), and counts as sharing the object only if it then
// maps the object's blocks. Here the first guest rewrote its file with the same bytes (its
// blocks are its own now) and put a FIFO where another recorded file was: the second guest's
// files still end up in the objects' blocks, and the FIFO stops nothing.
TEST_P(Reflink, ARecordedSharerThatLeftTheObjectsBlocksIsNotWhatALaterGuestShares) {
    std::string g3 = *fs_ / "g3", g4 = *fs_ / "g4";
    std::string y = random_bytes(256 * 1024, 12), z = random_bytes(128 * 1024, 13);
    for (const std::string& g : {g3, g4}) {
        file(g + "/usr/lib/y", y, 0644, 0, 1);
        file(g + "/usr/lib/z", z, 0644, 0, 1);
    }
    ASSERT_EQ(unify({"init", "--share", "reflink"}).status, 0);
    ASSERT_EQ(unify({"import", "g3", g3}).status, 0);
    std::string oy = object_sharing(pool, g3 + "/usr/lib/y");
    std::string oz = object_sharing(pool, g3 + "/usr/lib/z");
    ASSERT_NE(oy, "");
    ASSERT_NE(oz, "");
    {
        Fd w(open((g3 + "/usr/lib/y").c_str(), O_WRONLY | O_CLOEXEC));
        ASSERT_TRUE(w.valid());
        ASSERT_EQ(pwrite(w.get(), y.data(), y.size(), 0), ssize_t(y.size()));
        ASSERT_EQ(fsync(w.get()), 0);
    }
    ASSERT_FALSE(share_blocks(pool + "/objects/" + oy, g3 + "/usr/lib/y"));
    ASSERT_EQ(unlink((g3 + "/usr/lib/z").c_str()), 0);
    ASSERT_EQ(mkfifo((g3 + "/usr/lib/z").c_str(), 0644), 0);
    Json j = json_of(unify({"--json", "import", "g4", g4}));
    EXPECT_EQ(j["newly_linked"], 2) << j.dump();
    EXPECT_EQ(j["new_objects"], 0) << j.dump();
    EXPECT_TRUE(share_blocks(pool + "/objects/" + oy, g4 + "/usr/lib/y"));
    EXPECT_TRUE(share_blocks(pool + "/objects/" + oz, g4 + "/usr/lib/z"));
    EXPECT_EQ(read_file(g4 + "/usr/lib/y"), y);
    EXPECT_EQ(who(pool, "g4:/usr/lib/y").count("g4:/usr/lib/y"), 1u);
    EXPECT_EQ(unify({"verify", "--full"}).status, 0);
}

// btrfs gives every part of a compressed extent the extent's start in FIEMAP, so a guest that
// compresses a file of its own (chattr +c) and clones other parts of its one extent into its
// files makes files of different bytes map "the same blocks". With two 4 KiB blocks whose
// XXH3-64 sums collide (w0 w1: a carry moved between two stripes), a file w1 w0*15 becomes an
// object, and files of bytes w0*16 are its candidates by size and XXH3. Neither the same
// import (a file that seems to be the object's blocks already) nor a later guest (compared with
// a recorded sharer the guest rewrote to w0*16, then checked by FIEMAP) may record such a file
// as sharing the object: only a byte compare, the kernel's, proves that there.
TEST(ReflinkBtrfs, PartsOfACompressedExtentProveNoBytes) {
    LoopFs fs("btrfs", 320);
    UNIFY_REQUIRE(fs.reason());
    // XXH3's first 16 bytes of secret; the sums of the two files are checked below.
    const unsigned char secret[16] = {0xb8, 0xfe, 0x6c, 0x39, 0x23, 0xa4, 0x4b, 0xbe,
                                      0x7c, 0x01, 0x81, 0x2c, 0xf7, 0x21, 0xad, 0x1c};
    uint64_t s0, s8;
    memcpy(&s0, secret, 8);
    memcpy(&s8, secret + 8, 8);
    auto block = [](uint64_t at0, uint64_t at64) {
        std::string b(4096, '\0');
        memcpy(b.data(), &at0, 8);
        memcpy(b.data() + 64, &at64, 8);
        return b;
    };
    std::string w0 = block((1ull << 32) | (s0 & 0xffffffffu), (1ull << 32) | (s8 & 0xffffffffu));
    std::string w1 = block((2ull << 32) | (s0 & 0xffffffffu), s8 & 0xffffffffu);
    std::string evil = w1, good;
    for (int i = 0; i < 15; ++i) evil += w0;
    for (int i = 0; i < 16; ++i) good += w0;
    ASSERT_EQ(XXH3_64bits(evil.data(), evil.size()), XXH3_64bits(good.data(), good.size()));
    // One compressed extent holding w0 at 0 and w1 at 4 KiB.
    std::string w = fs / "w";
    Fd wfd(open(w.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
    ASSERT_TRUE(wfd.valid());
    int flags = FS_COMPR_FL;
    ASSERT_EQ(ioctl(wfd.get(), FS_IOC_SETFLAGS, &flags), 0) << strerror(errno);
    std::string content = w0 + w1 + std::string(30 * 4096, '\0');
    ASSERT_EQ(pwrite(wfd.get(), content.data(), content.size(), 0), ssize_t(content.size()));
    ASSERT_EQ(fsync(wfd.get()), 0);
    // `to` gets W's block at `from` at each offset of `at`.
    auto clone_blocks = [&](const std::string& to, uint64_t from, std::vector<uint64_t> at) {
        Fd fd(open(to.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
        ASSERT_TRUE(fd.valid()) << to;
        for (uint64_t a : at) {
            file_clone_range r{wfd.get(), from, 4096, a};
            ASSERT_EQ(ioctl(fd.get(), FICLONERANGE, &r), 0) << to << ": " << strerror(errno);
        }
        ASSERT_EQ(fsync(fd.get()), 0);
    };
    std::vector<uint64_t> rest, all;  // blocks 1..15, and 0..15
    for (uint64_t i = 0; i < 16; ++i) {
        all.push_back(i * 4096);
        if (i) rest.push_back(i * 4096);
    }
    std::string c = fs / "c", a = fs / "a", b = fs / "b";
    for (const std::string& d : {c, a, b})
        ASSERT_TRUE(std::filesystem::create_directories(d + "/usr/lib"));
    clone_blocks(c + "/usr/lib/evil", 4096, {0});
    clone_blocks(c + "/usr/lib/evil", 0, rest);
    clone_blocks(c + "/usr/lib/good", 0, all);
    clone_blocks(a + "/usr/lib/e", 4096, {0});
    clone_blocks(a + "/usr/lib/e", 0, rest);
    ASSERT_EQ(read_file(c + "/usr/lib/evil"), evil);
    ASSERT_EQ(read_file(c + "/usr/lib/good"), good);
    ASSERT_TRUE(any_encoded(extents_of(c + "/usr/lib/good"))) << "the premise: compressed";
    ASSERT_TRUE(
        same_blocks(extents_of(c + "/usr/lib/good"), extents_of(c + "/usr/lib/evil"), good.size()))
        << "the premise: FIEMAP cannot tell them apart";
    // One pool for the same import, one for the later guest.
    std::string pool = fs / "pool", pool2 = fs / "pool2";
    auto import = [&](const std::string& p, const std::string& name, const std::string& root) {
        return run_unify({"--pool", p, "--json", "import", name, root, "--min-size", "4096"});
    };
    for (const std::string& p : {pool, pool2})
        ASSERT_EQ(run_unify({"--pool", p, "init", "--share", "reflink"}).status, 0);
    ASSERT_EQ(import(pool, "c", c).status, 0);
    EXPECT_EQ(who(pool, "c:/usr/lib/good").count("c:/usr/lib/evil"), 0u);
    EXPECT_EQ(who(pool, "c:/usr/lib/evil").count("c:/usr/lib/good"), 0u);
    ASSERT_EQ(import(pool2, "a", a).status, 0);
    // a's recorded sharer now reads w0*16; its FIEMAP is what it was.
    clone_blocks(a + "/usr/lib/e", 0, {0});
    ASSERT_EQ(read_file(a + "/usr/lib/e"), good);
    write_file(b + "/usr/lib/e", good);
    Json j = json_of(import(pool2, "b", b));
    EXPECT_EQ(who(pool2, "b:/usr/lib/e").count("a:/usr/lib/e"), 0u) << j.dump();
    EXPECT_EQ(read_file(b + "/usr/lib/e"), good);
    EXPECT_EQ(read_file(c + "/usr/lib/evil"), evil);
}

TEST(ReflinkInit, AutoChoosesWhatTheFilesystemHasAndReflinkIsRefusedClearlyElsewhere) {
    for (const char* type : {"xfs", "btrfs", "ext4"}) {
        LoopFs fs(type, 320);
        UNIFY_REQUIRE(fs.reason());
        bool cow = std::string(type) != "ext4";
        auto r = run_unify({"--pool", fs / "auto", "--json", "init", "--share", "auto"});
        ASSERT_EQ(r.status, 0) << type << r.err;
        EXPECT_EQ(Json::parse(r.out)["share"], cow ? "reflink" : "hardlink") << type;
        EXPECT_TRUE(
            contains(read_file(fs / "auto/pool.conf"), cow ? "share=reflink" : "share=hardlink"));
        r = run_unify({"--pool", fs / "r", "init", "--share", "reflink"});
        if (cow) {
            EXPECT_EQ(r.status, 0) << type << r.err;
            EXPECT_TRUE(contains(r.out, "share reflink on " + std::string(type))) << r.out;
        } else {
            EXPECT_NE(r.status, 0);
            EXPECT_TRUE(contains(r.err, "(ext4) cannot share extents")) << r.err;
            EXPECT_FALSE(stat_path(fs / "r").st_ino) << "a refused init left its directory";
        }
        r = run_unify({"--pool", fs / "p", "init", "--share", "reflink", "--protect", "immutable"});
        EXPECT_NE(r.status, 0) << type;
        EXPECT_TRUE(contains(r.err, cow ? "hardlink pools only" : "cannot share extents")) << r.err;
    }
    TempDir dir;
    TmpfsMount mnt(dir / "tmpfs");
    UNIFY_REQUIRE(mnt.error());
    auto r = run_unify({"--pool", dir / "tmpfs/pool", "init", "--share", "reflink"});
    EXPECT_NE(r.status, 0);
    EXPECT_TRUE(contains(r.err, "(tmpfs) cannot share extents")) << r.err;
}

}  // namespace
}  // namespace unify::test
