// DirTimes puts a directory's times back after unify's own changes, but not after a change
// the guest made meanwhile.
#include "linker/dir_times.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <thread>

#include "tests/test_support.h"

namespace unify {
namespace {

struct Dir {
    test::TempDir tmp;
    std::string path = tmp / "d";
    Fd fd;
    Dir() {
        test::write_file(path + "/f", "f\n");
        test::set_mtime(path, 1600000000, 5);
        fd = Fd(open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    }
    int64_t mtime_ns() const {
        struct stat st = test::stat_path(path);
        return int64_t(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
    }
    // What unify does in a directory: a temporary name renamed over a file.
    void unify_change(DirTimes& t) {
        t.before(fd.get());
        test::write_file(path + "/.tmp", "g\n");
        ASSERT_EQ(rename((path + "/.tmp").c_str(), (path + "/f").c_str()), 0);
        t.after(fd.get());
    }
    // The guest's own change (a new name), a clock tick (or more) later.
    void guest_change() {
        std::this_thread::sleep_for(std::chrono::milliseconds(30));
        test::write_file(path + "/guest" + std::to_string(++guest_files), "mine\n");
    }
    int guest_files = 0;
};

constexpr int64_t kOld = 1600000000000000005;

TEST(DirTimes, PutsBackTheTimesAfterUnifysChanges) {
    Dir d;
    DirTimes t;
    d.unify_change(t);
    d.unify_change(t);
    ASSERT_NE(d.mtime_ns(), kOld);
    t.restore();
    EXPECT_EQ(d.mtime_ns(), kOld);
    // The destructor restores too.
    {
        DirTimes t2;
        d.unify_change(t2);
    }
    EXPECT_EQ(d.mtime_ns(), kOld);
}

TEST(DirTimes, LeavesAGuestsChangeAlone) {
    Dir d;
    {
        DirTimes t;
        d.unify_change(t);
        d.guest_change();  // after unify's last change
        int64_t guests = d.mtime_ns();
        t.restore();
        EXPECT_EQ(d.mtime_ns(), guests);
    }
    test::set_mtime(d.path, 1600000000, 5);
    {
        DirTimes t;
        d.unify_change(t);
        d.guest_change();  // between two changes of unify
        d.unify_change(t);
        int64_t last = d.mtime_ns();
        t.restore();
        EXPECT_EQ(d.mtime_ns(), last);
    }
}

}  // namespace
}  // namespace unify
