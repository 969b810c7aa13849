// Every way unify opens something by a guest path refuses to leave the guest (DESIGN.md
// invariant 4): open_beneath, the walker, the package database readers and the guest path
// lookups of who, gc and unshare. Each is handed a final-component symlink, an absolute
// symlink, a ".." escape and a mount point inside the guest, with a file outside the guest
// that a followed path would reach. The tests look at the outcome and the errno, never at a
// message.
#include <dirent.h>
#include <fcntl.h>
#include <linux/limits.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <functional>
#include <memory>
#include <set>

#include "importer/package_db.h"
#include "importer/rules.h"
#include "importer/walker.h"
#include "store/guest_path.h"
#include "store/sys.h"
#include "tests/test_support.h"

namespace unify {
namespace {

using test::TempDir;
using test::TmpfsMount;

// DIR/outside holds what an escape would reach; DIR/root is the guest:
//   dir/file           a plain file (the control)
//   file_link          -> dir/file                  a final-component symlink
//   abs                -> DIR/outside               an absolute symlink
//   up                 -> ../outside                a ".." escape through a symlink
//   usr/mnt/           a tmpfs mounted inside the guest, holding usr/mnt/file
// (not /mnt: the default rules do not walk it at all)
struct Guest {
    TempDir dir;
    std::string root = dir / "root", outside = dir / "outside";
    std::unique_ptr<TmpfsMount> mnt;
    Fd root_fd;

    Guest() {
        test::write_file(root + "/dir/file", "inside\n");
        test::write_file(outside + "/file", "outside\n");
        EXPECT_EQ(symlink("dir/file", (root + "/file_link").c_str()), 0);
        EXPECT_EQ(symlink(outside.c_str(), (root + "/abs").c_str()), 0);
        EXPECT_EQ(symlink("../outside", (root + "/up").c_str()), 0);
        mnt = std::make_unique<TmpfsMount>(root + "/usr/mnt");
        EXPECT_EQ(mnt->error(), "");
        test::write_file(root + "/usr/mnt/file", "on another filesystem\n");
        root_fd = Fd(open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        EXPECT_TRUE(root_fd.valid());
    }
    // Links `rel` (made if missing) to `target` as a symlink, replacing what is there.
    void link(const std::string& rel, const std::string& target) {
        test::sh("rm -rf '" + root + "/" + rel + "'; mkdir -p \"$(dirname '" + root + "/" + rel +
                 "')\"");
        EXPECT_EQ(symlink(target.c_str(), (root + "/" + rel).c_str()), 0) << rel;
    }
};

// errno of an open_beneath, 0 on success.
int open_errno(const Guest& g, const std::string& rel, int flags = O_RDONLY) {
    auto fd = open_beneath(g.root_fd.get(), rel, flags, rel);
    return fd ? 0 : fd.error().err;
}

TEST(GuestOpeners, OpenBeneathRefusesEveryWayOut) {
    UNIFY_REQUIRE(test::need_root());
    Guest g;
    EXPECT_EQ(open_errno(g, "dir/file"), 0);
    EXPECT_EQ(open_errno(g, "dir", O_RDONLY | O_DIRECTORY), 0);
    EXPECT_EQ(open_errno(g, "file_link"), ELOOP);  // final component
    EXPECT_EQ(open_errno(g, "abs/file"), ELOOP);   // absolute symlink on the way
    // A final-component symlink opened as a directory: O_NOFOLLOW | O_DIRECTORY gives ENOTDIR.
    EXPECT_EQ(open_errno(g, "abs", O_RDONLY | O_DIRECTORY), ENOTDIR);
    EXPECT_EQ(open_errno(g, "up/file"), ELOOP);          // ".." through a symlink
    EXPECT_EQ(open_errno(g, "../outside/file"), EXDEV);  // ".." in the path itself
    EXPECT_EQ(open_errno(g, "dir/../../outside/file"), EXDEV);
    EXPECT_EQ(open_errno(g, "/dir/file"), EXDEV);  // an absolute path is an escape too
    EXPECT_EQ(open_errno(g, "usr/mnt", O_RDONLY | O_DIRECTORY), EXDEV);  // a mount point
    EXPECT_EQ(open_errno(g, "usr/mnt/file"), EXDEV);
    // O_PATH opens (the package resolver's) are held to the same rules.
    EXPECT_EQ(open_errno(g, "abs", O_PATH | O_DIRECTORY), ENOTDIR);
    EXPECT_EQ(open_errno(g, "abs/file", O_PATH), ELOOP);
    EXPECT_EQ(open_errno(g, "usr/mnt", O_PATH | O_DIRECTORY), EXDEV);
}

// Walks `root_fd` to the end: guest path -> file, plus the skip counts.
struct Walked {
    std::set<std::string> files;
    SkipCounts skipped;
};
// `between` runs after the first batch (of `first_batch` files) with the files so far.
Walked walk(Fd root_fd, const std::string& shown, size_t first_batch = 1000,
            const std::function<void(const std::set<std::string>&)>& between = {}) {
    Rules rules({}, 0);
    FileStat nowhere;  // no pool inside this root
    nowhere.ino = ~uint64_t(0);
    Walker walker(std::move(root_fd), shown, rules, nowhere, ".unify-");
    Walked out;
    std::vector<WalkEntry> batch;
    size_t max = first_batch;
    for (;;) {
        auto more = walker.next_batch(batch, max);
        EXPECT_TRUE(more) << more.error().message;
        for (const auto& e : batch) out.files.insert(e.path);
        batch.clear();
        if (!more || !*more) break;
        if (between && max == first_batch) between(out.files);
        max = 1000;
    }
    out.skipped = walker.skipped();
    return out;
}

// A path longer than PATH_MAX (22 directories of 200 characters) is opened in pieces, each
// beneath the last: it is reached, and a symlink exactly where two pieces meet, a symlink
// inside a piece and a ".." climbing out are refused as in a short path.
TEST(GuestOpeners, OpenBeneathOfAPathLongerThanPathMaxRefusesEveryWayOutToo) {
    UNIFY_REQUIRE(test::need_root());
    Guest g;
    std::vector<Fd> dirs;
    std::vector<std::string> names;
    std::string rel;
    int at = g.root_fd.get();
    for (int i = 0; i < 22; ++i) {
        names.push_back(std::string(200, 'D') + std::to_string(i));
        ASSERT_EQ(mkdirat(at, names.back().c_str(), 0755), 0);
        dirs.emplace_back(openat(at, names.back().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        at = dirs.back().get();
        rel += names.back() + "/";
    }
    Fd f(openat(at, "file", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
    ASSERT_TRUE(f.valid());
    ASSERT_GT(rel.size(), size_t(PATH_MAX));
    EXPECT_EQ(open_errno(g, rel + "file"), 0);
    EXPECT_EQ(open_errno(g, rel, O_RDONLY | O_DIRECTORY), 0);
    std::string up;
    for (int i = 0; i < 23; ++i) up += "../";
    EXPECT_EQ(open_errno(g, rel + up + "outside/file"), EXDEV);

    // The component the first piece ends with: its '/' is the last one within PATH_MAX.
    size_t cut = (rel + "file").rfind('/', PATH_MAX - 1);
    size_t k = size_t(std::count(rel.begin(), rel.begin() + long(cut), '/'));
    for (size_t i : {k, size_t(3)}) {  // at the cut, and inside the first piece
        int parent = i == 0 ? g.root_fd.get() : dirs[i - 1].get();
        ASSERT_EQ(renameat(parent, names[i].c_str(), parent, "moved"), 0);
        ASSERT_EQ(symlinkat("moved", parent, names[i].c_str()), 0);
        EXPECT_EQ(open_errno(g, rel + "file"), ELOOP) << "symlink at component " << i;
        ASSERT_EQ(unlinkat(parent, names[i].c_str(), 0), 0);
        ASSERT_EQ(renameat(parent, "moved", parent, names[i].c_str()), 0);
    }
    EXPECT_EQ(open_errno(g, rel + "file"), 0);
}

// A device or FIFO a guest swaps in at a file's name is never opened for reading: open()
// alone acts on some devices (a watchdog starts counting, a tape rewinds). inotify reports
// every open but O_PATH's, so no IN_OPEN may name them; a regular file still opens.
TEST(GuestOpeners, GuestFilesOpenOnlyWhenRegularNeverADevice) {
    UNIFY_REQUIRE(test::need_root());
    TempDir dir;
    std::string d = dir / "guest";
    test::sh("mkdir -p '" + d + "'");
    ASSERT_EQ(mknod((d + "/dev").c_str(), S_IFCHR | 0600, makedev(1, 3)), 0);  // /dev/null's
    ASSERT_EQ(mkfifo((d + "/fifo").c_str(), 0600), 0);
    test::write_file(d + "/file", "regular\n");
    Fd dirfd(open(d.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    int watch = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    ASSERT_GE(inotify_add_watch(watch, d.c_str(), IN_OPEN), 0);
    for (const char* name : {"dev", "fifo"}) {
        auto fd = open_guest_read(dirfd.get(), name, d + "/" + name);
        ASSERT_FALSE(fd) << name;
        EXPECT_EQ(fd.error().err, ENXIO) << name;
    }
    auto fd = open_guest_read(dirfd.get(), "file", d + "/file");
    ASSERT_TRUE(fd) << fd.error().message;
    char got[16] = {};
    EXPECT_EQ(read(fd->get(), got, sizeof got), 8);
    std::set<std::string> opened;
    alignas(struct inotify_event) char buf[4096];
    ssize_t n = read(watch, buf, sizeof buf);
    for (char* p = buf; n > 0 && p < buf + n;) {
        auto* ev = reinterpret_cast<struct inotify_event*>(p);
        if (ev->len) opened.insert(ev->name);
        p += sizeof *ev + ev->len;
    }
    close(watch);
    EXPECT_EQ(opened, std::set<std::string>{"file"});
}

// A guest file is reopened through /proc/self/fd, kept open (store/sys.cc): a forked child
// must reopen its own fds, never its parent's of the same number, which is another file.
TEST(GuestOpeners, AForkedChildReopensItsOwnFileNotItsParentsOfTheSameNumber) {
    TempDir dir;
    test::write_file(dir / "mine", "the child's\n");
    test::write_file(dir / "parents", "the parent's\n");
    Fd dirfd(open(dir.path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    ASSERT_TRUE(open_guest_read(dirfd.get(), "mine", "mine"));  // the parent reopened one
    // The parent holds "parents" at the lowest free number; the child frees that number, so
    // that its O_PATH of "mine" gets it.
    Fd parents(open((dir / "parents").c_str(), O_RDONLY | O_CLOEXEC));
    ASSERT_TRUE(parents.valid());
    pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        close(parents.get());
        auto fd = open_guest_read(dirfd.get(), "mine", "mine");
        char got[32] = {};
        _exit(fd && read(fd->get(), got, sizeof got) == 12 && std::string(got) == "the child's\n"
                  ? 0
                  : 1);
    }
    int status = 0;
    ASSERT_EQ(waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0) << "the child read another file than its own";
}

TEST(GuestOpeners, WalkerNeitherFollowsSymlinksNorCrossesMounts) {
    UNIFY_REQUIRE(test::need_root());
    Guest g;
    test::write_file(g.root + "/usr/mnt/second", "also on the tmpfs\n");
    Walked w = walk(Fd(dup(g.root_fd.get())), g.root);
    EXPECT_EQ(w.files, std::set<std::string>{"/dir/file"});
    EXPECT_EQ(w.skipped[skip::kSymlink], 3u);  // file_link, abs, up
    // The mount point itself, not the two files below it: it was never entered.
    EXPECT_EQ(w.skipped[skip::kMount], 1u);
}

// A guest swaps its directories for symlinks (absolute, relative with "..") and a mount
// between the walker's reading of a directory and its opening of the entries.
TEST(GuestOpeners, WalkerRefusesDirectoriesSwappedAfterTheyWereListed) {
    UNIFY_REQUIRE(test::need_root());
    TempDir dir;
    std::string root = dir / "root", outside = dir / "outside";
    test::write_file(outside + "/file", "outside\n");
    for (int i = 0; i < 9; ++i) test::write_file(root + "/d" + std::to_string(i) + "/f", "x\n");
    Fd root_fd(open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    ASSERT_TRUE(root_fd.valid());
    // The first batch (one file) enters one directory; every other one is swapped then: one
    // mounted over, the others made symlinks out of the guest (absolute, or with "..").
    std::unique_ptr<TmpfsMount> mounted;
    std::string entered;
    Walked w = walk(std::move(root_fd), root, 1, [&](const std::set<std::string>& so_far) {
        ASSERT_EQ(so_far.size(), 1u);
        entered = so_far.begin()->substr(0, so_far.begin()->rfind('/'));  // "/dK"
        for (int i = 0; i < 9; ++i) {
            std::string d = "/d" + std::to_string(i), path = root + d;
            if (d == entered) continue;
            if (!mounted) {
                mounted = std::make_unique<TmpfsMount>(path);
                EXPECT_EQ(mounted->error(), "");
                test::write_file(path + "/f", "on another filesystem\n");
                continue;
            }
            test::sh("rm -rf '" + path + "'");
            std::string target = i % 2 ? outside : "../outside";
            EXPECT_EQ(symlink(target.c_str(), path.c_str()), 0);
        }
    });
    EXPECT_EQ(w.files, std::set<std::string>{entered + "/f"});
    EXPECT_EQ(w.skipped[skip::kMount], 1u);
    EXPECT_EQ(w.skipped[skip::kSymlink], 7u);
}

TEST(GuestOpeners, GuestPathLookupsStayInTheGuest) {
    UNIFY_REQUIRE(test::need_root());
    Guest g;
    auto at = [&](const std::string& path) { return stat_guest_path(g.root_fd.get(), path, path); };
    auto file = at("/dir/file");
    ASSERT_TRUE(file && *file);
    EXPECT_TRUE((*file)->is_reg());
    // The last component is looked at, not followed.
    auto link = at("/file_link");
    ASSERT_TRUE(link && *link);
    EXPECT_TRUE((*link)->is_lnk());
    // Through a symlink, out of the root or across a mount: not reachable, not an error.
    for (const char* path : {"/abs/file", "/up/file", "/../outside/file", "/dir/../../outside/file",
                             "/usr/mnt/file"}) {
        auto r = at(path);
        ASSERT_TRUE(r) << path << ": " << r.error().message;
        EXPECT_FALSE(*r) << path << " was reached";
        auto parent = open_guest_parent(g.root_fd.get(), path, path);
        ASSERT_TRUE(parent) << path;
        EXPECT_FALSE(*parent) << path << ": its parent was opened";
    }
}

// read_package_config's errno for a guest, or 0 when it read it (then *config has it).
int package_errno(const Guest& g, PackageConfig* config = nullptr) {
    auto r = read_package_config(g.root_fd.get(), g.root);
    if (r && config) *config = std::move(*r);
    return r ? 0 : r.error().err;
}

TEST(GuestOpeners, DpkgDatabaseIsNotReadThroughSymlinksOrMounts) {
    UNIFY_REQUIRE(test::need_root());
    const std::string status =
        "Package: p\nStatus: install ok installed\nConffiles:\n /usr/p.conf 0123\n";
    {
        Guest g;  // the real thing, as the control
        test::write_file(g.root + "/var/lib/dpkg/status", status);
        PackageConfig c;
        ASSERT_EQ(package_errno(g, &c), 0);
        EXPECT_TRUE(c.find("/usr/p.conf"));
    }
    struct Case {
        const char* what;
        std::string rel, target;
        int err;
    };
    for (const Case& c :
         {Case{"status as a symlink", "var/lib/dpkg/status", "status.real", ELOOP},
          Case{"dpkg dir, absolute", "var/lib/dpkg", "OUTSIDE/dpkg", ELOOP},
          Case{"dpkg dir, ..", "var/lib/dpkg", "../../../outside/dpkg", ELOOP},
          // (a final-component symlink opened as a directory: O_NOFOLLOW gives ENOTDIR)
          Case{"info dir, absolute", "var/lib/dpkg/info", "OUTSIDE/dpkg/info", ENOTDIR},
          Case{"a .conffiles list", "var/lib/dpkg/info/p.conffiles",
               "../../../../../outside/dpkg/info/p.conffiles", ELOOP}}) {
        Guest g;
        test::write_file(g.outside + "/dpkg/status", status);
        test::write_file(g.outside + "/dpkg/info/p.conffiles", "/usr/p.conf\n");
        test::write_file(g.root + "/var/lib/dpkg/status", status);
        test::write_file(g.root + "/var/lib/dpkg/status.real", status);
        std::string target = c.target;
        if (target.rfind("OUTSIDE", 0) == 0) target = g.outside + target.substr(7);
        g.link(c.rel, target);
        EXPECT_EQ(package_errno(g), c.err) << c.what;
    }
    Guest g;  // info is a mount point
    test::write_file(g.root + "/var/lib/dpkg/status", status);
    TmpfsMount info(g.root + "/var/lib/dpkg/info");
    ASSERT_EQ(info.error(), "");
    test::write_file(g.root + "/var/lib/dpkg/info/p.conffiles", "/usr/p.conf\n");
    EXPECT_EQ(package_errno(g), EXDEV);
}

TEST(GuestOpeners, PacmanDatabaseIsNotReadThroughSymlinksOrMounts) {
    UNIFY_REQUIRE(test::need_root());
    const std::string files = "%FILES%\netc/p.conf\n\n%BACKUP%\netc/p.conf\t0123\n";
    struct Case {
        const char* what;
        std::string rel, target;
    };
    for (const Case& c :
         {Case{"local, absolute", "var/lib/pacman/local", "OUTSIDE/local"},
          Case{"local, ..", "var/lib/pacman/local", "../../../../outside/local"},
          Case{"a package dir", "var/lib/pacman/local/p-1", "../../../../../outside/local/p-1"},
          Case{"a files list", "var/lib/pacman/local/p-1/files", "files.real"}}) {
        Guest g;
        test::write_file(g.outside + "/local/p-1/files", files);
        test::write_file(g.root + "/var/lib/pacman/local/p-1/files", files);
        test::write_file(g.root + "/var/lib/pacman/local/p-1/files.real", files);
        std::string target = c.target;
        if (target.rfind("OUTSIDE", 0) == 0) target = g.outside + target.substr(7);
        g.link(c.rel, target);
        EXPECT_EQ(package_errno(g), ELOOP) << c.what;
    }
    Guest g;
    TmpfsMount local(g.root + "/var/lib/pacman/local");
    ASSERT_EQ(local.error(), "");
    test::write_file(g.root + "/var/lib/pacman/local/p-1/files", files);
    EXPECT_EQ(package_errno(g), EXDEV);
}

TEST(GuestOpeners, RpmDatabaseIsNotReadThroughSymlinksOrMounts) {
    UNIFY_REQUIRE(test::need_root());
    // Not a database: reading it would be an error, so a clean result proves it was not read.
    const std::string garbage = "not an sqlite database\n";
    for (const std::string& target :
         {std::string("OUTSIDE/rpm"), std::string("../../../outside/rpm")}) {
        Guest g;
        test::write_file(g.outside + "/rpm/rpmdb.sqlite", garbage);
        test::sh("mkdir -p '" + g.root + "/var/lib'");
        g.link("var/lib/rpm", target.rfind("OUTSIDE", 0) == 0 ? g.outside + "/rpm" : target);
        // The guest's own symlinks are resolved inside the guest, where nothing is there.
        PackageConfig c;
        EXPECT_EQ(package_errno(g, &c), 0) << target;
        EXPECT_EQ(c.databases(), "none") << target;
    }
    {
        Guest g;  // the database file itself a symlink
        test::write_file(g.root + "/var/lib/rpm/real.sqlite", garbage);
        g.link("var/lib/rpm/rpmdb.sqlite", "real.sqlite");
        EXPECT_EQ(package_errno(g), ELOOP);
    }
    Guest g;  // the database directory a mount point
    TmpfsMount rpm(g.root + "/var/lib/rpm");
    ASSERT_EQ(rpm.error(), "");
    test::write_file(g.root + "/var/lib/rpm/rpmdb.sqlite", garbage);
    EXPECT_EQ(package_errno(g), EXDEV);
}

}  // namespace
}  // namespace unify
