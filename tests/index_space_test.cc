// The index's data file on XFS: XFS allocates blocks past the end of a file that is reopened
// and grown again and again, as data.mdb is by every import, and `df` counts them for minutes
// (measured: 3.4 MB after importing g1..g4). A writer gives them back before it drops the
// pool lock (Session, Index::give_back_preallocation).
#include <sys/stat.h>

#include "tests/test_support.h"

namespace unify::test {
namespace {

TEST(IndexSpace, WritersLeaveNoBlocksPastTheEndOfTheIndexOnXfs) {
    LoopFs fs("xfs", 320);
    UNIFY_REQUIRE(fs.reason());
    std::string pool = fs / "pool";
    ASSERT_EQ(run_unify({"--pool", pool, "init", "--protect", "none"}).status, 0);
    // Three imports reopen and grow data.mdb three times: the second close is where XFS
    // starts to keep its preallocation (measured without the fix: 1.31 MB allocated for a
    // file of 0.84 MB).
    for (const char* g : {"a", "b", "c"}) {
        std::string root = fs / g;
        for (int i = 0; i < 1500; ++i)
            write_file(root + "/usr/lib/f" + std::to_string(i), std::string(g) + std::to_string(i));
        auto r = run_unify({"--pool", pool, "import", g, root});
        ASSERT_EQ(r.status, 0) << r.out << r.err;
        struct stat st;
        ASSERT_EQ(stat((pool + "/index/data.mdb").c_str(), &st), 0);
        off_t rounded = (st.st_size + st.st_blksize - 1) / st.st_blksize * st.st_blksize;
        EXPECT_LE(off_t(st.st_blocks) * 512, rounded)
            << "after importing " << g << ": " << st.st_blocks * 512 << " bytes allocated for "
            << st.st_size;
    }
}

}  // namespace
}  // namespace unify::test
