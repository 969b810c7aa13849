// The two checks that keep a running guest's write out of the pool, each hit by a write that
// lands exactly in its window (UNIFY_FAULT_WRITE, store/fault.h: a byte appended and the
// mtime put back, as a hostile guest would) instead of by a race that may or may not land:
//   - between hashing and the rename: replace.cc's recheck (and, on the leased path, the
//     lease) must see it; the guest keeps its bytes and its own inode;
//   - between the link into the pool and the protection of an adopted inode: the lease held
//     across it, or where none can be taken the re-hash after protection (object_maker.cc
//     adopt_verify), must withdraw the object; so must its metadata read after the flag, for
//     a chmod (no lease stops that); killed right there, the next writer's intent recovery
//     must do the same.
// Each runs on both of import's paths (tests/test_support.h).
// And gc's last check before it removes an object: a link added after gc listed the object
// as garbage (UNIFY_FAULT_LINK at gc.check) must keep it.
#include <fcntl.h>
#include <signal.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <memory>
#include <set>
#include <string>
#include <thread>

#include "store/fd.h"
#include "store/protect.h"
#include "tests/index_dump.h"
#include "tests/sample_guests.h"
#include "tests/test_support.h"

namespace unify::test {
namespace {

using RaceHooks = BothSettlePaths;
UNIFY_ON_BOTH_SETTLE_PATHS(RaceHooks);

const std::string kContent = "a file both guests have\n";

struct TwoGuests {
    TempDir dir;
    std::string pool = dir / "pool", g1 = dir / "g1", g2 = dir / "g2";
    // `rel` with kContent in the given guests, and a second file so the import has company.
    void add(const std::string& rel, std::initializer_list<std::string> roots) {
        for (const auto& g : roots) ThreeGuests::file(g + rel, kContent, 0644, 21);
    }
    RunResult import(const std::string& name, const std::vector<std::string>& env = {}) {
        return run_unify_faults({"--pool", pool, "import", name, dir / name}, env);
    }
    // g2's own /usr/lib/own (g1 has none) and the pool made: g2's import adopts it.
    std::string own_file_in_g2() {
        add("/usr/lib/own", {g2});
        EXPECT_EQ(run_unify({"--pool", pool, "init"}).status, 0);
        return g2 + "/usr/lib/own";
    }
    // `rel` in both guests, the pool made, and g1 imported: g1's file made the object.
    RunResult object_made_by_g1(const std::string& rel) {
        add(rel, {g1, g2});
        EXPECT_EQ(run_unify({"--pool", pool, "init"}).status, 0);
        return import("g1");
    }
};

// Where a test that runs on more than one filesystem works: a temporary directory on the
// default one (fs ""), a tmpfs mounted in it, or a fresh loop image of `fs`; each must take
// the immutable flag.
struct Workspace {
    explicit Workspace(const std::string& fs) {
        if (fs == "tmpfs") {
            tmpfs = std::make_unique<TmpfsMount>(dir / "tmpfs");
            why = tmpfs->error();
            if (why.empty()) top = dir / "tmpfs";
        } else if (!fs.empty()) {
            loop = std::make_unique<LoopFs>(fs, 320);
            why = loop->reason();
            if (why.empty()) top = loop->path();
        }
        if (why.empty()) why = need_immutable(top);
    }
    // Nothing immutable is left for the loop image's or the directory's removal.
    ~Workspace() { sh("chattr -R -i '" + top + "' 2>/dev/null"); }
    const std::string& reason() const { return why; }

    TempDir dir;
    std::unique_ptr<LoopFs> loop;
    std::unique_ptr<TmpfsMount> tmpfs;
    std::string top = dir.path();
    std::string why;
};

// Each guest's /usr/lib/f has the mode, xattrs and bytes it had before a guest changed the
// object's metadata in a window (UNIFY_FAULT_TAMPER), and the pool is clean.
void expect_untampered(const std::string& pool, const std::vector<std::string>& guests) {
    for (const auto& g : guests) {
        std::string f = g + "/usr/lib/f";
        EXPECT_EQ(stat_path(f).st_mode & 07777, 0644u) << f;
        EXPECT_LT(getxattr(f.c_str(), "user.unify-tamper", nullptr, 0), 0) << f;
        EXPECT_EQ(read_file(f), kContent) << f;
    }
    EXPECT_EQ(objects_not_matching_their_id(pool), std::vector<std::string>{});
    auto r = run_unify({"--pool", pool, "verify", "--full"});
    EXPECT_EQ(r.status, 0) << show(r);
}

// The fault that moves `victim` twice within the swap: an upgrade renamed over it before the
// first exchange, then a copy of what the guest had (the object's content and metadata)
// right after it.
std::string double_move(const TwoGuests& s, const std::string& victim) {
    std::string upgrade = s.dir / "f.dpkg-new", again = s.dir / "f.again";
    ThreeGuests::file(upgrade, "version 2\n", 0644, 22);
    ThreeGuests::file(again, kContent, 0644, 21);
    return "UNIFY_FAULT_RENAME=replace.rename:1:" + upgrade + ":" + victim +
           ";replace.exchanged:1:" + again + ":" + victim;
}

// Whether import adopts a file that `holder` keeps open for writing (no lease can be had):
// a settled one where the flag stops that fd (ext4); otherwise it is skipped as busy.
bool adopted_though_held_open(int holder) {
    return settle_path() == SettlePath::settled && !flag_spares_earlier_writers(holder);
}

// Nothing of the guest's write was lost, and the guest's inode was not published.
void expect_guest_kept_its_write(const TwoGuests& s, const std::string& path, bool written) {
    EXPECT_EQ(read_file(path), written ? kContent + "!" : kContent) << path;
    EXPECT_EQ(stat_path(path).st_mtim.tv_sec, kSampleMtime) << path;
    EXPECT_EQ(stat_path(path).st_nlink, 1u) << path << " is linked from the pool";
    EXPECT_FALSE(is_immutable(path)) << path;
    EXPECT_EQ(object_of(s.pool, path), "") << path;
    EXPECT_EQ(objects_not_matching_their_id(s.pool), std::vector<std::string>{});
}

// g1 makes the object; g2's identical file is written to right before the rename over it.
TEST_P(RaceHooks, WriteBetweenHashAndRenameIsCaughtByTheRecheck) {
    TwoGuests s;
    UNIFY_REQUIRE(need_immutable(s.dir.path()));
    auto r = s.object_made_by_g1("/usr/lib/f");
    ASSERT_EQ(r.status, 0) << show(r);
    std::string victim = s.g2 + "/usr/lib/f";
    r = s.import("g2", {"UNIFY_FAULT_WRITE=replace.check:1:" + victim});
    ASSERT_EQ(r.status, 0) << show(r);
    // Fresh: the file is leased, so the write only breaks the lease (the writer waits for
    // it), and that is what the import must notice. Settled: the write lands.
    bool written = settle_path() == SettlePath::settled;
    expect_guest_kept_its_write(s, victim, written);
    EXPECT_NE(stat_path(victim).st_ino, stat_path(s.g1 + "/usr/lib/f").st_ino);
    // Left alone, not lost: the next run links it (as its own object if it changed).
    r = s.import("g2");
    ASSERT_EQ(r.status, 0) << show(r);
    EXPECT_TRUE(is_immutable(victim));
    EXPECT_EQ(read_file(victim), written ? kContent + "!" : kContent);
}

// A package manager installs a new version of g2's file (renames it over the path) right
// between the import's check and its swap: the new version stays, in the guest's own inode,
// and the old one, which the import hashed, is what goes.
TEST_P(RaceHooks, UpgradeRenamedOverThePathBeforeTheSwapIsKept) {
    TwoGuests s;
    UNIFY_REQUIRE(need_immutable(s.dir.path()));
    auto r = s.object_made_by_g1("/usr/lib/f");
    ASSERT_EQ(r.status, 0) << show(r);
    // Outside the guest's root (same filesystem), so the import does not link it first.
    std::string victim = s.g2 + "/usr/lib/f", upgrade = s.dir / "f.dpkg-new";
    ThreeGuests::file(upgrade, "version 2\n", 0644, 22);
    ino_t new_ino = stat_path(upgrade).st_ino;
    r = s.import("g2", {"UNIFY_FAULT_RENAME=replace.rename:1:" + upgrade + ":" + victim});
    ASSERT_EQ(r.status, 0) << show(r);
    EXPECT_EQ(read_file(victim), "version 2\n");
    EXPECT_EQ(stat_path(victim).st_ino, new_ino);
    EXPECT_FALSE(is_immutable(victim));
    EXPECT_EQ(stat_path(upgrade).st_mode, 0u) << upgrade << " is still there";
    EXPECT_EQ(entries(s.g2 + "/usr/lib"), std::set<std::string>{"f"});
    EXPECT_EQ(objects_not_matching_their_id(s.pool), std::vector<std::string>{});
    r = s.import("g2");
    ASSERT_EQ(r.status, 0) << show(r);
    EXPECT_EQ(read_file(victim), "version 2\n");
    EXPECT_TRUE(is_immutable(victim));
}

// A guest moves the path twice within the import's two exchanges: an upgrade lands before the
// first, then a copy of what the guest had (the object's very content and metadata) right
// after it. The import stops, naming where the guest's copy is kept; the upgrade stays at the
// path; and the next import leaves the kept copy alone, although at a plain temporary name a
// copy of the object is what the sweep takes for an original the exchange displaced.
TEST_P(RaceHooks, PathMovedTwiceWithinTheSwapKeepsBothFiles) {
    TwoGuests s;
    UNIFY_REQUIRE(need_immutable(s.dir.path()));
    auto r = s.object_made_by_g1("/usr/lib/f");
    ASSERT_EQ(r.status, 0) << show(r);
    std::string dir = s.g2 + "/usr/lib", victim = dir + "/f";
    r = s.import("g2", {double_move(s, victim)});
    EXPECT_NE(r.status, 0) << show(r);
    EXPECT_NE(r.err.find("changed it twice"), std::string::npos) << show(r);
    EXPECT_EQ(read_file(victim), "version 2\n");
    auto names = entries(dir);
    ASSERT_EQ(names.size(), 2u);
    std::string kept =
        *std::find_if(names.begin(), names.end(), [](const std::string& n) { return n != "f"; });
    EXPECT_TRUE(kept.ends_with(".kept")) << kept;
    EXPECT_NE(r.err.find(kept), std::string::npos) << show(r);
    EXPECT_EQ(read_file(dir + "/" + kept), kContent);

    r = s.import("g2");
    ASSERT_EQ(r.status, 0) << show(r);
    EXPECT_EQ(read_file(victim), "version 2\n");
    EXPECT_EQ(read_file(dir + "/" + kept), kContent) << "the guest's copy was swept";
    EXPECT_NE(r.err.find("left alone"), std::string::npos) << show(r);
    EXPECT_EQ(objects_not_matching_their_id(s.pool), std::vector<std::string>{});
}

// Plants NAME.kept at every temporary name unify creates in one directory, as a guest
// that saw the name with inotify can.
class KeptNamePlanter {
  public:
    explicit KeptNamePlanter(std::string dir)
        : dir_(std::move(dir)), watcher_(dir_, IN_CREATE, [this](const std::string& name) {
              if (name.rfind(".unify-", 0) != 0 || name.ends_with(".kept")) return;
              ThreeGuests::file(dir_ + "/" + name + ".kept", "planted\n", 0644, 21);
              ++planted_;
          }) {}
    size_t planted() const { return planted_; }

  private:
    std::string dir_;
    std::atomic<size_t> planted_{0};
    NameWatcher watcher_;  // last: stops first
};

// The same double move, with the ".kept" name taken by the guest beforehand: the guest's
// copy goes to another ".kept" name, not left at the temporary one, where the next import's
// sweep would take a copy of the object for an original the exchange displaced.
TEST_P(RaceHooks, PathMovedTwiceWithAPlantedKeptNameKeepsEveryFile) {
    TwoGuests s;
    UNIFY_REQUIRE(need_immutable(s.dir.path()));
    auto r = s.object_made_by_g1("/usr/lib/f");
    ASSERT_EQ(r.status, 0) << show(r);
    std::string dir = s.g2 + "/usr/lib", victim = dir + "/f";
    {
        KeptNamePlanter planter(dir);
        r = s.import("g2", {double_move(s, victim), "UNIFY_FAULT_PAUSE=replace.exchanged:1:300"});
        ASSERT_EQ(planter.planted(), 1u) << show(r);
    }
    EXPECT_NE(r.status, 0) << show(r);
    EXPECT_NE(r.err.find("changed it twice"), std::string::npos) << show(r);
    EXPECT_EQ(read_file(victim), "version 2\n");
    std::set<std::string> copies, planted;
    for (const auto& n : entries(dir)) {
        if (n == "f") continue;
        EXPECT_TRUE(n.ends_with(".kept")) << n << " can be taken for a temporary";
        (read_file(dir + "/" + n) == kContent ? copies : planted).insert(n);
    }
    ASSERT_EQ(copies.size(), 1u);
    ASSERT_EQ(planted.size(), 1u);
    EXPECT_NE(r.err.find(*copies.begin()), std::string::npos) << show(r);

    r = s.import("g2");
    ASSERT_EQ(r.status, 0) << show(r);
    EXPECT_EQ(read_file(dir + "/" + *copies.begin()), kContent) << "the guest's copy was swept";
    EXPECT_EQ(read_file(dir + "/" + *planted.begin()), "planted\n");
    EXPECT_EQ(objects_not_matching_their_id(s.pool), std::vector<std::string>{});
}

// While a window has the object's flag lifted, a guest changes its metadata through its own
// name of the object (the lease stops writers, not chmod or setxattr): the change must reach
// no other guest. Every linked path gets a private copy with the metadata from before and the
// pool a fresh object; the import goes on. On the default filesystem (ext4: the windows run
// side by side, without the index, and are answered after) and on XFS (one at a time).
TEST_P(RaceHooks, MetadataChangedThroughAGuestsLinkInAWindowReachesNoGuest) {
    for (const std::string fs : {"", "xfs"}) {
        SCOPED_TRACE(fs.empty() ? "default filesystem" : fs);
        Workspace w(fs);
        UNIFY_REQUIRE(w.reason());
        const std::string& top = w.top;
        std::string pool = top + "/pool", g1 = top + "/g1", g2 = top + "/g2";
        for (const auto& g : {g1, g2}) ThreeGuests::file(g + "/usr/lib/f", kContent, 0644, 21);
        ASSERT_EQ(run_unify({"--pool", pool, "init", "--share", "hardlink"}).status, 0);
        ASSERT_EQ(run_unify({"--pool", pool, "import", "g1", g1}).status, 0);
        // g2's link opens a window on the object g1's path is: g1 changes it right then.
        auto r = run_unify_faults({"--pool", pool, "import", "g2", g2},
                                  {"UNIFY_FAULT_TAMPER=window.protect:1:" + g1 + "/usr/lib/f"});
        EXPECT_EQ(r.status, 0) << show(r);
        EXPECT_NE(r.err.find("had its mode, owner, mtime or xattrs changed"), std::string::npos)
            << show(r);
        expect_untampered(pool, {g1, g2});
        // The next import shares the file again, with its own metadata.
        r = run_unify({"--pool", pool, "import", "g2", g2});
        EXPECT_EQ(r.status, 0) << show(r);
        EXPECT_EQ(stat_path(g2 + "/usr/lib/f").st_mode & 07777, 0644u);
    }
}

// A scatter deletes the records of the paths it gave private copies, which the import had
// counted as linked; its stale pass must then read every record, not trust that the guest
// has as many records as linked paths (importer/import.cc stale_records). Here g2's one
// scattered path and its one stale record (a directory moved away) would even out.
TEST(RaceHooksScatter, AReimportWhoseWindowIsScatteredStillDropsAStaleRecord) {
    TempDir dir;
    UNIFY_REQUIRE(need_immutable(dir.path()));
    std::string pool = dir / "pool", g1 = dir / "g1", g2 = dir / "g2";
    ThreeGuests::file(g1 + "/usr/lib/f", kContent, 0644, 21);
    ThreeGuests::file(g2 + "/opt/x/other", "g2 only\n", 0644, 21);
    ASSERT_EQ(run_unify({"--pool", pool, "init", "--share", "hardlink"}).status, 0);
    ASSERT_EQ(run_unify({"--pool", pool, "import", "g1", g1}).status, 0);
    ASSERT_EQ(run_unify({"--pool", pool, "import", "g2", g2}).status, 0);
    // /opt/x/other's record goes stale (its protected file cannot be removed, its directory
    // can be moved); /usr/lib/f is new in g2 and its window gets scattered.
    ASSERT_EQ(0, sh("mv '" + g2 + "/opt' '" + g2 + "/opt.old'"));
    ThreeGuests::file(g2 + "/usr/lib/f", kContent, 0644, 21);
    auto r = run_unify_faults({"--pool", pool, "import", "g2", g2},
                              {"UNIFY_FAULT_TAMPER=window.protect:1:" + g1 + "/usr/lib/f"});
    ASSERT_EQ(r.status, 0) << show(r);
    ASSERT_NE(r.err.find("had its mode, owner, mtime or xattrs changed"), std::string::npos)
        << show(r);
    EXPECT_TRUE(contains_squeezed(r.out, "records dropped 1 ")) << show(r);
    auto who = run_unify({"--pool", pool, "who", "g2:/opt.old/x/other"});
    EXPECT_TRUE(contains(who.out, "shared by 1 path")) << show(who);
    EXPECT_FALSE(contains(dump_index(pool), "/opt/x/other")) << dump_index(pool);
}

// The guest goes on changing the object's metadata (through an fd it holds, here by the
// pool's name) while the scatter that answers its first change runs: during the copies and
// their syncfs the flag is set, so that fails; during the renames over the names it is off,
// and the fresh object must still be made, with the metadata from before.
TEST_P(RaceHooks, MetadataChangedAgainWhileTheScatterRunsReachesNoGuest) {
    for (const std::string fs : {"", "xfs"}) {
        SCOPED_TRACE(fs.empty() ? "default filesystem" : fs);
        Workspace w(fs);
        UNIFY_REQUIRE(w.reason());
        const std::string& top = w.top;
        std::string pool = top + "/pool", g1 = top + "/g1", g2 = top + "/g2", g3 = top + "/g3";
        for (const auto& g : {g1, g2, g3}) ThreeGuests::file(g + "/usr/lib/f", kContent, 0644, 21);
        ASSERT_EQ(run_unify({"--pool", pool, "init", "--share", "hardlink"}).status, 0);
        for (const auto& g : {"g1", "g2"})
            ASSERT_EQ(run_unify({"--pool", pool, "import", g, top + "/" + g}).status, 0);
        std::string object = pool + "/objects/" + object_of(pool, g1 + "/usr/lib/f");
        auto r = run_unify_faults(
            {"--pool", pool, "import", "g3", g3},
            {"UNIFY_FAULT_TAMPER=window.protect:1:" + g1 + "/usr/lib/f;scatter.sync:1:" + object +
             ";scatter.rename:1:" + object + ";renew.copy:1:" + object});
        EXPECT_EQ(r.status, 0) << show(r);
        EXPECT_NE(r.err.find("had its mode, owner, mtime or xattrs changed"), std::string::npos)
            << show(r);
        expect_untampered(pool, {g1, g2, g3});
    }
}

// A writer killed inside a protection window (the OOM killer, a stop timeout) leaves the
// object's flag off until the next writer. A guest that writes the object through its name
// meanwhile reaches every guest that links it, and every guest imported later would be linked
// to the changed bytes: the next writer must hash the object again and, where it no longer
// gives its id, quarantine it (every linked path a private copy of what it has now, the
// object out of the pool). One that a guest holds open for writing, where the flag set again
// would not stop that fd (XFS, btrfs, tmpfs), stops every writer until the admin ends that
// process. On the default filesystem (ext4 here), XFS, btrfs and tmpfs.
TEST(RaceHooksWindowCutShort, WhatAGuestDidMeanwhileIsAnsweredByTheNextWriter) {
    for (const std::string fs : {"", "xfs", "btrfs", "tmpfs"}) {
        SCOPED_TRACE(fs.empty() ? "default filesystem" : fs);
        Workspace w(fs);
        UNIFY_REQUIRE(w.reason());
        const std::string& top = w.top;
        std::string pool = top + "/pool";
        auto path = [&](const std::string& g) { return top + "/" + g + "/usr/lib/f"; };
        ASSERT_EQ(run_unify({"--pool", pool, "init", "--share", "hardlink"}).status, 0);
        // g1 and g4 are unshared by the writers that get killed; g2 is the hostile guest.
        for (const std::string g : {"g1", "g2", "g3", "g4"}) {
            ThreeGuests::file(path(g), kContent, 0644, 21);
            ASSERT_EQ(run_unify({"--pool", pool, "import", g, top + "/" + g}).status, 0);
        }
        std::string object = object_of(pool, path("g2"));
        ASSERT_NE(object, "");
        auto cut_short = [&](const std::string& g) {
            auto r = run_unify_faults({"--pool", pool, "unshare", g, "/usr/lib/f"},
                                      {"UNIFY_FAULT=window.protect:1"});
            ASSERT_EQ(r.status, 128 + SIGKILL) << show(r);
            ASSERT_FALSE(is_immutable(path("g2"))) << "the premise: the flag was left off";
        };
        cut_short("g1");
        if (!fs.empty()) {
            // g2 opens its name for writing while the flag is off, and keeps the fd.
            Fd held(open(path("g2").c_str(), O_WRONLY | O_CLOEXEC));
            ASSERT_TRUE(held.valid());
            auto r = run_unify({"--pool", pool, "gc"});
            EXPECT_EQ(r.status, 1) << show(r);
            EXPECT_NE(r.err.find("is open for writing"), std::string::npos) << show(r);
            EXPECT_NE(r.err.find("fuser -v"), std::string::npos) << show(r);
            held = Fd();
            r = run_unify({"--pool", pool, "gc"});
            EXPECT_EQ(r.status, 0) << show(r);
            EXPECT_NE(r.err.find("still give its id"), std::string::npos) << show(r);
            EXPECT_TRUE(is_immutable(path("g3")));
            EXPECT_EQ(stat_path(path("g3")).st_ino, stat_path(path("g2")).st_ino);
            cut_short("g4");
        }
        // g2 writes through its name while the flag is off: g3 sees it.
        write_file(path("g2"), "EVIL");
        auto r = run_unify({"--pool", pool, "gc"});
        EXPECT_EQ(r.status, 0) << show(r);
        EXPECT_NE(r.err.find("changed (content or metadata) while a killed unify"),
                  std::string::npos)
            << show(r);
        EXPECT_NE(r.err.find("moved to"), std::string::npos) << show(r);
        for (const std::string g : {"g2", "g3"}) {
            EXPECT_EQ(stat_path(path(g)).st_nlink, 1u) << path(g) << " still shares the inode";
            EXPECT_FALSE(is_immutable(path(g))) << path(g);
            EXPECT_EQ(object_of(pool, path(g)), "") << path(g);
        }
        EXPECT_EQ(objects_not_matching_their_id(pool), std::vector<std::string>{});
        r = run_unify({"--pool", pool, "verify", "--full"});
        EXPECT_EQ(r.status, 0) << show(r);
        // A guest with the right bytes makes a fresh, correct object; g3 can take it back.
        ThreeGuests::file(path("g5"), kContent, 0644, 21);
        ASSERT_EQ(run_unify({"--pool", pool, "import", "g5", top + "/g5"}).status, 0);
        EXPECT_EQ(read_file(path("g5")), kContent);
        EXPECT_NE(object_of(pool, path("g5")), "");
    }
}

// The writer killed in the window had linked paths of its guest it never recorded (its
// index commit comes later): the quarantine must find them by inode and give them private
// copies too, or that guest keeps an immutable link of the changed inode. And a writer killed
// during the quarantine itself leaves the object to the next one, which finishes it: no guest
// imported after is linked to the changed bytes.
TEST(RaceHooksWindowCutShort, UnrecordedLinksAndAQuarantineCutShortAreAnsweredToo) {
    Workspace w("");
    UNIFY_REQUIRE(w.reason());
    const std::string& top = w.top;
    std::string pool = top + "/pool";
    auto path = [&](const std::string& g) { return top + "/" + g + "/usr/lib/f"; };
    ASSERT_EQ(run_unify({"--pool", pool, "init", "--share", "hardlink"}).status, 0);
    for (const std::string g : {"a", "b", "c"}) ThreeGuests::file(path(g), kContent, 0644, 21);
    ASSERT_EQ(run_unify({"--pool", pool, "import", "a", top + "/a"}).status, 0);
    // b's path is linked in the window, and the import killed before recording it.
    auto r = run_unify_faults({"--pool", pool, "import", "b", top + "/b"},
                              {"UNIFY_FAULT=window.protect:1"});
    ASSERT_EQ(r.status, 128 + SIGKILL) << show(r);
    ASSERT_EQ(stat_path(path("b")).st_ino, stat_path(path("a")).st_ino) << "the premise";
    write_file(path("a"), "EVIL");
    // The next writer is killed inside its quarantine; the one after finishes it.
    r = run_unify_faults({"--pool", pool, "gc"}, {"UNIFY_FAULT=unshare.sync:1"});
    ASSERT_EQ(r.status, 128 + SIGKILL) << show(r);
    r = run_unify({"--pool", pool, "gc"});
    EXPECT_EQ(r.status, 0) << show(r);
    EXPECT_NE(r.err.find("moved to"), std::string::npos) << show(r);
    for (const std::string g : {"a", "b"}) {
        EXPECT_EQ(stat_path(path(g)).st_nlink, 1u) << path(g) << " still shares the inode";
        EXPECT_FALSE(is_immutable(path(g))) << path(g);
    }
    // A guest imported now gets a fresh object of its own good bytes.
    ASSERT_EQ(run_unify({"--pool", pool, "import", "c", top + "/c"}).status, 0);
    EXPECT_EQ(read_file(path("c")), kContent);
    EXPECT_EQ(run_unify({"--pool", pool, "verify", "--full"}).status, 0);
}

// A guest keeps a settled file open for writing (a writable mapping would do the same) across
// its import on ext4, where the flag stops that fd's writes, so the file is adopted. Every
// later window on that object is refused while the fd lives: another guest's import skips its
// copy of the file as busy, with a warning, and goes on, where it used to fail as a whole.
TEST(RaceHooksExt4, AnObjectHeldOpenForWritingSkipsOnlyItsFiles) {
    LoopFs fs("ext4", 64);
    UNIFY_REQUIRE(fs.reason());
    UNIFY_REQUIRE(need_immutable(fs.path()));
    std::string pool = fs / "pool", g1 = fs / "g1", g2 = fs / "g2";
    for (const auto& g : {g1, g2}) {
        ThreeGuests::file(g + "/usr/lib/held", kContent, 0644, 21);
        ThreeGuests::file(g + "/usr/lib/other", "another shared file\n", 0644, 22);
    }
    ASSERT_EQ(run_unify({"--pool", pool, "init"}).status, 0);
    Fd held(open((g1 + "/usr/lib/held").c_str(), O_RDWR | O_CLOEXEC));
    ASSERT_TRUE(held.valid());
    auto r = run_unify_faults({"--pool", pool, "import", "g1", g1}, {"UNIFY_FAULT_SETTLE=settled"});
    ASSERT_EQ(r.status, 0) << show(r);
    ASSERT_TRUE(is_immutable(g1 + "/usr/lib/held")) << "not adopted: the premise does not hold";
    r = run_unify({"--pool", pool, "--json", "import", "g2", g2});
    EXPECT_EQ(r.status, 0) << show(r);
    EXPECT_NE(r.out.find("\"busy\": 1"), std::string::npos) << show(r);
    EXPECT_NE(r.err.find("is open for writing"), std::string::npos) << show(r);
    EXPECT_EQ(stat_path(g2 + "/usr/lib/other").st_ino, stat_path(g1 + "/usr/lib/other").st_ino);
    EXPECT_EQ(read_file(g2 + "/usr/lib/held"), kContent);
    held = Fd();
    r = run_unify({"--pool", pool, "import", "g2", g2});
    EXPECT_EQ(r.status, 0) << show(r);
    EXPECT_EQ(stat_path(g2 + "/usr/lib/held").st_ino, stat_path(g1 + "/usr/lib/held").st_ino);
}

// The same for unshare: the guest's upgrade lands between unshare's check and its swap of
// the private copy; the upgrade stays, and the object keeps its other guest.
TEST(UnshareRace, UpgradeRenamedOverThePathBeforeTheSwapIsKept) {
    TwoGuests s;
    UNIFY_REQUIRE(need_immutable(s.dir.path()));
    s.add("/usr/lib/f", {s.g1, s.g2});
    ASSERT_EQ(run_unify({"--pool", s.pool, "init"}).status, 0);
    for (const char* g : {"g1", "g2"}) {
        auto r = s.import(g);
        ASSERT_EQ(r.status, 0) << show(r);
    }
    // Outside the guest's root (same filesystem), so the import does not link it first.
    std::string victim = s.g2 + "/usr/lib/f", upgrade = s.dir / "f.dpkg-new";
    ThreeGuests::file(upgrade, "version 2\n", 0644, 22);
    ino_t new_ino = stat_path(upgrade).st_ino;
    auto r = run_unify_faults({"--pool", s.pool, "unshare", "g2", "/usr/lib/f"},
                              {"UNIFY_FAULT_RENAME=replace.rename:1:" + upgrade + ":" + victim});
    EXPECT_EQ(read_file(victim), "version 2\n") << show(r);
    EXPECT_EQ(stat_path(victim).st_ino, new_ino) << show(r);
    EXPECT_EQ(entries(s.g2 + "/usr/lib"), std::set<std::string>{"f"});
    EXPECT_TRUE(is_immutable(s.g1 + "/usr/lib/f"));
    EXPECT_EQ(read_file(s.g1 + "/usr/lib/f"), kContent);
    EXPECT_EQ(objects_not_matching_their_id(s.pool), std::vector<std::string>{});
}

// g2's own file becomes an object by adoption; it is written after the link, before the flag.
TEST_P(RaceHooks, WriteBetweenLinkAndProtectWithdrawsTheObject) {
    TwoGuests s;
    UNIFY_REQUIRE(need_immutable(s.dir.path()));
    std::string victim = s.own_file_in_g2();
    auto r = s.import("g2", {"UNIFY_FAULT_WRITE=adopt.protect:1:" + victim});
    ASSERT_EQ(r.status, 0) << show(r);
    // Settled or fresh, the file is leased across its adoption, so the writer's open only
    // breaks the lease (it would wait for it), and the broken lease withdraws the object.
    // A settled file's lease spares its re-read (AdoptRequest::lease_fd): had it been taken
    // on the lease's word without asking the lease again, the object would stay.
    expect_guest_kept_its_write(s, victim, false);
    EXPECT_TRUE(objects(s.pool).empty());
}

// The same write, with some process holding the file open for writing since before the
// import: no lease can be taken. Settled on ext4, the file is adopted all the same (the flag
// stops that fd too), and the re-read after the flag, which no lease spares now, must see
// the write. Where the flag spares earlier fds, or fresh, the busy file is not adopted.
TEST_P(RaceHooks, WriteBetweenLinkAndProtectOfAFileHeldOpenIsCaughtByTheReRead) {
    TwoGuests s;
    UNIFY_REQUIRE(need_immutable(s.dir.path()));
    std::string victim = s.own_file_in_g2();
    Fd holder(open(victim.c_str(), O_WRONLY | O_CLOEXEC));
    ASSERT_TRUE(holder.valid());
    auto r = s.import("g2", {"UNIFY_FAULT_WRITE=adopt.protect:1:" + victim});
    ASSERT_EQ(r.status, 0) << show(r);
    bool adopted = adopted_though_held_open(holder.get());
    expect_guest_kept_its_write(s, victim, adopted);
    EXPECT_TRUE(objects(s.pool).empty());
    if (!adopted) EXPECT_NE(r.out.find("open for writing"), std::string::npos) << show(r);
}

// The same write, and the writer killed right after it, before its re-hash: the next
// writer finds the adoption in the intent log (a batch slot: settled and fresh files alike
// are adopted together, fresh ones once their lease is taken and they are re-read),
// re-hashes, and withdraws the object.
TEST_P(RaceHooks, WriteBetweenLinkAndProtectThenKilledIsWithdrawnByRecovery) {
    TwoGuests s;
    UNIFY_REQUIRE(need_immutable(s.dir.path()));
    std::string victim = s.own_file_in_g2();
    auto r = s.import(
        "g2", {"UNIFY_FAULT_WRITE=adopt.protect:1:" + victim, "UNIFY_FAULT=adopt.protect:1"});
    ASSERT_EQ(r.status, 128 + SIGKILL) << show(r);
    auto slots = intent_adopt_slots(s.pool);
    ASSERT_EQ(slots.size(), 1u);
    EXPECT_GE(*slots.begin(), 1u);
    ASSERT_EQ(objects(s.pool).size(), 1u) << "the object was linked before the kill";
    // Any writer recovers; gc touches no guest file, so what it leaves is recovery's work.
    r = run_unify({"--pool", s.pool, "gc"});
    ASSERT_EQ(r.status, 0) << show(r);
    // The lease kept the write out (see above): recovery finds the object what its id says,
    // protects it and keeps it.
    EXPECT_EQ(read_file(victim), kContent);
    EXPECT_TRUE(is_immutable(victim));
    EXPECT_EQ(objects_not_matching_their_id(s.pool), std::vector<std::string>{});
    EXPECT_TRUE(intent_adopt_slots(s.pool).empty());
}

// The same kill, with the write let in: some process holds the file open for writing, so no
// lease is taken (see above). Settled on ext4 the write lands, and recovery's re-hash must
// withdraw the object.
TEST_P(RaceHooks, WriteBetweenLinkAndProtectOfAFileHeldOpenThenKilledIsWithdrawnByRecovery) {
    TwoGuests s;
    UNIFY_REQUIRE(need_immutable(s.dir.path()));
    std::string victim = s.own_file_in_g2();
    Fd holder(open(victim.c_str(), O_WRONLY | O_CLOEXEC));
    ASSERT_TRUE(holder.valid());
    auto r = s.import(
        "g2", {"UNIFY_FAULT_WRITE=adopt.protect:1:" + victim, "UNIFY_FAULT=adopt.protect:1"});
    bool adopted = adopted_though_held_open(holder.get());
    if (!adopted) {
        ASSERT_EQ(r.status, 0) << show(r);  // busy: never adopted, never killed
        expect_guest_kept_its_write(s, victim, false);
        return;
    }
    ASSERT_EQ(r.status, 128 + SIGKILL) << show(r);
    ASSERT_EQ(objects(s.pool).size(), 1u) << "the object was linked before the kill";
    r = run_unify({"--pool", s.pool, "gc"});
    ASSERT_EQ(r.status, 0) << show(r);
    expect_guest_kept_its_write(s, victim, true);
    EXPECT_TRUE(objects(s.pool).empty());
    EXPECT_TRUE(intent_adopt_slots(s.pool).empty());
}

// What no lease stops: a guest's chmod and setxattr of its file between the link and the
// flag (UNIFY_FAULT_TAMPER). The object is not read again under its lease, but its metadata
// is, and the id it gives then is not the one hashed: withdrawn. On every filesystem, since
// the lease spares the re-read on each.
TEST_P(RaceHooks, MetadataChangedBetweenLinkAndProtectWithdrawsTheObject) {
    for (const std::string fs : {"", "xfs", "btrfs", "tmpfs"}) {
        SCOPED_TRACE(fs.empty() ? "default filesystem" : fs);
        Workspace w(fs);
        UNIFY_REQUIRE(w.reason());
        std::string pool = w.top + "/pool", g2 = w.top + "/g2", victim = g2 + "/usr/lib/own";
        ThreeGuests::file(victim, kContent, 0644, 21);
        ASSERT_EQ(run_unify({"--pool", pool, "init", "--share", "hardlink"}).status, 0);
        auto r = run_unify_faults({"--pool", pool, "import", "g2", g2},
                                  {"UNIFY_FAULT_TAMPER=adopt.protect:1:" + victim});
        ASSERT_EQ(r.status, 0) << show(r);
        EXPECT_TRUE(objects(pool).empty()) << show(r);
        EXPECT_EQ(stat_path(victim).st_mode & 07777, 04777u);
        EXPECT_EQ(read_file(victim), kContent);
        EXPECT_EQ(stat_path(victim).st_nlink, 1u);
        EXPECT_FALSE(is_immutable(victim));
        EXPECT_EQ(objects_not_matching_their_id(pool), std::vector<std::string>{});
    }
}

// g1's only file is made private, so its object is linked by the pool alone: garbage at
// gc's first look. Right before gc's last check a root process outside unify gives it
// another name; gc must see that and keep the object (the link count on the filesystem is
// the truth, invariant 5), or that name would hold an inode the pool no longer has.
// The import walk keeps kOpenDirLevels directory fds open (store/tree_walk.h): going back
// up past them it reopens a directory as ".." of its child. A guest that has moved that child
// elsewhere meanwhile (UNIFY_FAULT_RENAME at walk.reopen, the first reopen: level 73 of a
// chain of 200 moves to /x/moved) would lead the walk on in /x under the old directory's
// paths; the inode check stops the import instead, naming both, and a later import, once the
// guest holds still, imports every file at its true path.
TEST(WalkRace, AChildMovedWhileTheWalkIsDeepBelowItsParentStopsTheImport) {
    TempDir dir;
    UNIFY_REQUIRE(need_immutable(dir.path()));
    std::string pool = dir / "pool", g = dir / "g1";
    ASSERT_EQ(run_unify({"--pool", pool, "init"}).status, 0);
    std::string chain = g + "/a", level73;
    for (int k = 2; k <= 200; ++k) {
        chain += "/d";
        if (k == 73) level73 = chain;
        if (k % 50 == 0) ThreeGuests::file(chain + "/f", "level " + std::to_string(k), 0644, 7);
    }
    ThreeGuests::file(g + "/x/keep", "in x\n", 0644, 7);
    ThreeGuests::file(g + "/a/top", "in a\n", 0644, 7);
    RunResult r =
        run_unify_faults({"--pool", pool, "import", "g1", g},
                         {"UNIFY_FAULT_RENAME=walk.reopen:1:" + level73 + ":" + g + "/x/moved"});
    EXPECT_NE(r.status, 0) << show(r);
    EXPECT_TRUE(contains(r.err, "was moved while its tree was walked")) << show(r);
    ASSERT_TRUE(std::filesystem::exists(g + "/x/moved/d")) << "the guest's move was not made";
    r = run_unify({"--pool", pool, "import", "g1", g});
    ASSERT_TRUE(succeeded(r));
    EXPECT_TRUE(succeeded(run_unify({"--pool", pool, "verify", "--full"})));
    // The file of level 100 is recorded where it is now, 27 levels below /x/moved.
    std::string moved100 = "/x/moved";
    for (int k = 74; k <= 100; ++k) moved100 += "/d";
    moved100 += "/f";
    ASSERT_EQ(read_file(g + moved100), "level 100");
    auto listed = run_unify({"--pool", pool, "who", "g1:" + moved100});
    EXPECT_TRUE(contains(listed.out, "shared by 1 path") && contains(listed.out, moved100))
        << show(listed);
}

// The walk lists a batch's files first and stats them together at the batch's end, on both
// cores (importer/walker.h). A guest that swaps a listed file for a symlink in between (here
// at the fault point walk.stat) gets a symlink at that stat: skipped, never followed, and
// the host file it points to is left alone.
TEST(WalkRace, AFileSwappedForASymlinkBeforeItsBatchIsStatedIsSkipped) {
    TempDir dir;
    UNIFY_REQUIRE(need_immutable(dir.path()));
    std::string pool = dir / "pool", g = dir / "g1", host = dir / "host-file";
    ThreeGuests::file(host, "the host's own\n", 0644, 7);
    const int n = 600;  // more than one thread's share of a batch
    for (int k = 0; k < n; ++k)
        ThreeGuests::file(g + "/usr/lib/many/f" + std::to_string(k),
                          "file " + std::to_string(k) + "\n", 0644, 7);
    std::filesystem::create_symlink(host, g + "/usr/lib/many/link");
    ASSERT_EQ(run_unify({"--pool", pool, "init"}).status, 0);
    std::string swapped = g + "/usr/lib/many/f300";
    RunResult r =
        run_unify_faults({"--pool", pool, "import", "g1", g},
                         {"UNIFY_FAULT_RENAME=walk.stat:1:" + g + "/usr/lib/many/link:" + swapped});
    ASSERT_TRUE(succeeded(r)) << show(r);
    ASSERT_TRUE(std::filesystem::is_symlink(swapped)) << "the guest's swap was not made";
    struct stat st {};
    ASSERT_EQ(::stat(host.c_str(), &st), 0);
    EXPECT_EQ(st.st_nlink, 1u) << "the host file was linked into the pool";
    EXPECT_EQ(read_file(host), "the host's own\n");
    EXPECT_FALSE(is_immutable(host));
    // Two: the symlink the listing met, and the file it became before its stat.
    EXPECT_TRUE(contains(r.out, "    2  symlink\n")) << show(r);
    EXPECT_FALSE(contains(r.out, "changed while being imported")) << show(r);
    // Every other file was stat'ed and linked; the swapped name is not recorded.
    auto listed = run_unify({"--pool", pool, "who", "g1:/usr/lib/many/f299"});
    EXPECT_TRUE(contains(listed.out, "shared by 1 path")) << show(listed);
    listed = run_unify({"--pool", pool, "who", "g1:/usr/lib/many/f300"});
    EXPECT_FALSE(contains(listed.out, "shared by")) << show(listed);
    EXPECT_TRUE(succeeded(run_unify({"--pool", pool, "verify", "--full"})));
}

TEST(GcRace, LinkAddedBeforeTheLastCheckKeepsTheObject) {
    TwoGuests s;
    UNIFY_REQUIRE(need_immutable(s.dir.path()));
    s.add("/usr/lib/f", {s.g1});
    ASSERT_EQ(run_unify({"--pool", s.pool, "init"}).status, 0);
    auto r = s.import("g1");
    ASSERT_EQ(r.status, 0) << show(r);
    std::string object = object_of(s.pool, s.g1 + "/usr/lib/f");
    ASSERT_NE(object, "");
    r = run_unify({"--pool", s.pool, "unshare", "g1"});
    ASSERT_EQ(r.status, 0) << show(r);
    std::string path = s.pool + "/objects/" + object, other = s.dir / "other-name";
    ASSERT_EQ(stat_path(path).st_nlink, 1u);

    r = run_unify_faults({"--pool", s.pool, "gc"},
                         {"UNIFY_FAULT_LINK=gc.check:1:" + path + ":" + other});
    ASSERT_EQ(r.status, 0) << show(r);
    EXPECT_EQ(stat_path(other).st_ino, stat_path(path).st_ino) << "the hook did not link";
    EXPECT_EQ(objects(s.pool), std::set<std::string>{object});
    EXPECT_EQ(stat_path(path).st_nlink, 2u);
    EXPECT_TRUE(is_immutable(path));
    EXPECT_TRUE(contains_squeezed(r.out, "objects removed 0\n")) << r.out;
    EXPECT_EQ(objects_not_matching_their_id(s.pool), std::vector<std::string>{});
}

}  // namespace
}  // namespace unify::test
