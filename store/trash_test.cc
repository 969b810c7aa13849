#include "store/trash.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/sys.h"
#include "tests/test_support.h"

namespace unify {
namespace {

struct Dirs {
    test::TempDir dir;
    Fd guest, tmp;
    Dirs() {
        mkdir((dir / "guest").c_str(), 0755);
        mkdir((dir / "tmp").c_str(), 0700);
        guest = std::move(*open_dir_path(dir / "guest"));
        tmp = std::move(*open_dir_path(dir / "tmp"));
    }
};

FileStat seen(const Dirs& d, const std::string& name) {
    auto st = stat_at(d.guest.get(), name, name);
    EXPECT_TRUE(st) << name;
    return st ? *st : FileStat{};
}

TEST(Trash, TakenFilesLeaveTheirDirectoryAtOnceAndAreUnlinkedByTheDrain) {
    Dirs d;
    Trash trash(d.tmp.get(), d.dir / "tmp", 3);
    std::vector<Fd> held;  // the inodes, to see their last link go
    for (int i = 0; i < 20; ++i) {
        std::string name = "f" + std::to_string(i);
        test::write_file(d.dir / ("guest/" + name), "data " + name);
        held.push_back(Fd(open((d.dir / ("guest/" + name)).c_str(), O_RDONLY)));
        auto r = trash.take(d.guest.get(), name, seen(d, name), d.dir / ("guest/" + name));
        ASSERT_TRUE(r) << r.error().message;
        EXPECT_NE(access((d.dir / ("guest/" + name)).c_str(), F_OK), 0) << name;
    }
    auto r = trash.drain();
    ASSERT_TRUE(r) << r.error().message;
    for (const Fd& fd : held) {
        struct stat st {};
        ASSERT_EQ(fstat(fd.get(), &st), 0);
        EXPECT_EQ(st.st_nlink, 0u);
    }
    EXPECT_TRUE(test::entries(d.dir / "tmp").empty());
    EXPECT_TRUE(test::entries(d.dir / "guest").empty());
}

// A file that can be neither moved nor unlinked (the guest flagged it immutable): the error
// names the call and the guest path.
TEST(Trash, WhatCanBeNeitherMovedNorUnlinkedIsAnErrorNamingTheFile) {
    Dirs d;
    UNIFY_REQUIRE(test::need_immutable(d.dir.path()));
    Trash trash(d.tmp.get(), d.dir / "tmp", 2);
    test::write_file(d.dir / "guest/f", "flagged");
    ASSERT_EQ(test::sh("chattr +i '" + d.dir / "guest/f" + "'"), 0);
    auto r = trash.take(d.guest.get(), "f", seen(d, "f"), d.dir / "guest/f");
    test::sh("chattr -i '" + d.dir / "guest/f" + "'");
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("unlinkat(" + d.dir / "guest/f"), std::string::npos)
        << r.error().message;
    EXPECT_TRUE(trash.drain());
    EXPECT_TRUE(test::entries(d.dir / "tmp").empty());
}

TEST(Trash, WhatCannotBeMovedIsUnlinkedInPlace) {
    Dirs d;
    // A tmp fd that is not a directory: the rename fails (ENOTDIR), the unlink is done here.
    test::write_file(d.dir / "not-a-dir", "");
    Fd bad(open((d.dir / "not-a-dir").c_str(), O_RDONLY));
    Trash trash(bad.get(), d.dir / "not-a-dir", 1);
    test::write_file(d.dir / "guest/f", "x");
    auto r = trash.take(d.guest.get(), "f", seen(d, "f"), d.dir / "guest/f");
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_NE(access((d.dir / "guest/f").c_str(), F_OK), 0);
    EXPECT_TRUE(trash.drain());
}

// A guest renames something else over the name between unify's look and the move (it sees
// unify's temporary names): a directory, or another file. Neither is removed, neither is left
// in POOL/tmp (whose trash.* the next writer removes by name, and a directory would stop it).
TEST(Trash, WhatAGuestPutAtTheNameAfterTheLookGoesBackUnharmed) {
    Dirs d;
    Trash trash(d.tmp.get(), d.dir / "tmp", 2);
    test::write_file(d.dir / "guest/t", "unify's");
    FileStat looked = seen(d, "t");
    // Kept alive under another name, so the directory cannot get its inode number.
    ASSERT_EQ(rename((d.dir / "guest/t").c_str(), (d.dir / "guest/t-kept").c_str()), 0);
    test::write_file(d.dir / "guest/t/inside", "the guest's directory");
    // A directory must not even pass through POOL/tmp: a process in it would reach the pool
    // and the host through ".." meanwhile. inotify sees every entry that arrives there.
    int watch = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    ASSERT_GE(inotify_add_watch(watch, (d.dir / "tmp").c_str(), IN_MOVED_TO), 0);
    ASSERT_TRUE(trash.take(d.guest.get(), "t", looked, d.dir / "guest/t"));
    EXPECT_EQ(test::read_file(d.dir / "guest/t/inside"), "the guest's directory");
    alignas(struct inotify_event) char buf[4096];
    ssize_t n = read(watch, buf, sizeof buf);
    for (char* p = buf; n > 0 && p < buf + n;) {
        auto* ev = reinterpret_cast<struct inotify_event*>(p);
        EXPECT_FALSE(ev->mask & IN_ISDIR) << "the guest's directory was moved into tmp";
        p += sizeof *ev + ev->len;
    }
    close(watch);

    test::write_file(d.dir / "guest/u", "unify's");
    looked = seen(d, "u");
    test::write_file(d.dir / "guest/other", "the guest's file");
    ASSERT_EQ(rename((d.dir / "guest/other").c_str(), (d.dir / "guest/u").c_str()), 0);
    ASSERT_TRUE(trash.take(d.guest.get(), "u", looked, d.dir / "guest/u"));
    EXPECT_TRUE(trash.drain());
    EXPECT_EQ(test::read_file(d.dir / "guest/u"), "the guest's file");
    EXPECT_TRUE(test::entries(d.dir / "tmp").empty());
}

}  // namespace
}  // namespace unify
