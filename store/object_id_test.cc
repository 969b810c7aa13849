#include "store/object_id.h"

#include <gtest/gtest.h>

namespace unify {
namespace {

Digest digest(uint8_t fill) {
    Digest d;
    d.fill(fill);
    return d;
}

Identity base() {
    return Identity{0100644, 0, 0, 1'700'000'000'123'456'789, {}};
}

TEST(ObjectId, HexRoundTrip) {
    ObjectId id = make_object_id(digest(1), base(), false);
    std::string hex = id.hex();
    ASSERT_EQ(hex.size(), 64u);
    auto back = ObjectId::from_hex(hex);
    ASSERT_TRUE(back);
    EXPECT_EQ(*back, id);
    EXPECT_FALSE(ObjectId::from_hex(hex.substr(1)));
    EXPECT_FALSE(ObjectId::from_hex(std::string(64, 'g')));
}

// The id of an object is its name in every pool: the encoding and the hash under it must
// never change (values from Python's hashlib over the documented encoding).
TEST(ObjectId, KnownIdsStayTheSame) {
    EXPECT_EQ(make_object_id(digest(1), base(), false).hex(),
              "8808559965b5a19e936320a346fcf13e45f7a32becde70cdc36d3bea82bada84");
    Identity i = base();
    i.xattrs = {{"security.selinux", "abc"}};
    EXPECT_EQ(make_object_id(digest(1), i, false).hex(),
              "8da1b17569a2ff3d960dc26614707db10e7c0d516b4897d586237c1419d90558");
}

TEST(ObjectId, EveryIdentityFieldChangesTheId) {
    ObjectId ref = make_object_id(digest(1), base(), false);
    EXPECT_EQ(ref, make_object_id(digest(1), base(), false));
    EXPECT_NE(ref, make_object_id(digest(2), base(), false));
    Identity i = base();
    i.mode = 0100600;
    EXPECT_NE(ref, make_object_id(digest(1), i, false));
    i = base();
    i.mode = 0104644;  // setuid alone
    EXPECT_NE(ref, make_object_id(digest(1), i, false));
    i = base();
    i.uid = 1;
    EXPECT_NE(ref, make_object_id(digest(1), i, false));
    i = base();
    i.gid = 1;
    EXPECT_NE(ref, make_object_id(digest(1), i, false));
    i = base();
    i.mtime_ns += 1;  // one nanosecond
    EXPECT_NE(ref, make_object_id(digest(1), i, false));
    i = base();
    i.xattrs = {{"user.a", "1"}};
    EXPECT_NE(ref, make_object_id(digest(1), i, false));
}

TEST(ObjectId, IgnoreMtimeDropsOnlyMtime) {
    Identity a = base(), b = base();
    b.mtime_ns = 5;
    EXPECT_EQ(make_object_id(digest(1), a, true), make_object_id(digest(1), b, true));
    EXPECT_NE(make_object_id(digest(1), a, true), make_object_id(digest(1), a, false));
    b.uid = 7;
    EXPECT_NE(make_object_id(digest(1), a, true), make_object_id(digest(1), b, true));
}

TEST(ObjectId, XattrEncodingIsUnambiguous) {
    // Without length prefixes these two would serialise to the same bytes.
    Identity a = base(), b = base();
    a.xattrs = {{"user.ab", "c"}};
    b.xattrs = {{"user.a", "bc"}};
    EXPECT_NE(make_object_id(digest(1), a, false), make_object_id(digest(1), b, false));
}

}  // namespace
}  // namespace unify
