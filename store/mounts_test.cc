#include "store/mounts.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include "store/sys.h"
#include "tests/test_support.h"

namespace unify {
namespace {

TEST(Mounts, UnlinkTrimsOnlyWithSynchronousDiscard) {
    EXPECT_TRUE(unlink_trims("ext4", "rw,discard,resv_strict"));
    EXPECT_TRUE(unlink_trims("xfs", "rw,attr2,discard,inode64"));
    EXPECT_TRUE(unlink_trims("btrfs", "rw,ssd,discard=sync,space_cache=v2"));
    EXPECT_FALSE(unlink_trims("btrfs", "rw,ssd,discard=async,space_cache=v2"));
    EXPECT_FALSE(unlink_trims("ext4", "rw,nodiscard"));
    EXPECT_FALSE(unlink_trims("ext4", "rw,relatime"));
    EXPECT_FALSE(unlink_trims("tmpfs", "rw,size=1g"));
}

TEST(Mounts, UnlinkTrimsReadsTheMountOfARealLoopImage) {
    for (bool discard : {false, true}) {
        test::LoopFs fs("ext4", 64, "", discard ? "discard" : "");
        UNIFY_REQUIRE(fs.reason());
        auto st = stat_at(AT_FDCWD, fs.path(), fs.path());
        ASSERT_TRUE(st) << st.error().message;
        EXPECT_EQ(unlink_trims(st->mnt_id), discard) << mount_point_of(st->mnt_id);
    }
    EXPECT_FALSE(unlink_trims(~uint64_t(0)));
}

}  // namespace
}  // namespace unify
