#include "importer/known_contents.h"

#include <gtest/gtest.h>

#include "tests/test_support.h"

namespace unify {
namespace {

using test::TempDir;

ObjectId oid(uint8_t b) {
    ObjectId id;
    id.bytes.fill(b);
    return id;
}

// Two objects of one size and XXH3 make neither a candidate: which one a file would be is
// for SHA-256 to say.
TEST(KnownContents, FindsTheOneObjectOfASizeAndXxh3AndNoneWhereSeveralShareThem) {
    TempDir dir("/tmp");
    auto index = Index::open(dir / "index", true);
    ASSERT_TRUE(index) << index.error().message;
    {
        auto txn = (*index)->write();
        ASSERT_TRUE(txn);
        for (auto [b, size, xxh3] :
             {std::tuple{1, 10, 7}, {2, 10, 7}, {3, 10, 8}, {4, 11, 7}, {5, 9, 100}, {6, 12, 1}})
            ASSERT_TRUE(
                (*txn)->put_object(oid(uint8_t(b)), ObjectRecord{uint64_t(size), uint64_t(xxh3)}));
        ASSERT_TRUE((*txn)->commit());
    }
    KnownContents known;
    EXPECT_TRUE(known.empty());
    ASSERT_TRUE(known.load(**index));
    EXPECT_FALSE(known.empty());
    EXPECT_EQ(known.find(10, 7), std::nullopt);
    EXPECT_EQ(known.find(10, 8), oid(3));
    EXPECT_EQ(known.find(11, 7), oid(4));
    EXPECT_EQ(known.find(9, 100), oid(5));
    EXPECT_EQ(known.find(12, 1), oid(6));
    EXPECT_EQ(known.find(12, 2), std::nullopt);
    EXPECT_EQ(known.find(8, 7), std::nullopt);
}

// Stand-ins differ where size or XXH3 differ, so files of other contents never share a group
// by their stand-in alone.
TEST(KnownContents, ProvisionalIdsDifferByEitherSizeOrXxh3) {
    EXPECT_EQ(provisional_id(10, 7), provisional_id(10, 7));
    EXPECT_NE(provisional_id(10, 7), provisional_id(11, 7));
    EXPECT_NE(provisional_id(10, 7), provisional_id(10, 8));
    EXPECT_NE(provisional_id(7, 10), provisional_id(10, 7));
}

}  // namespace
}  // namespace unify
