#include "cli/format.h"

#include <gtest/gtest.h>

namespace unify {
namespace {

TEST(Format, PrintableEscapesControlAndInvalidUtf8) {
    EXPECT_EQ(printable("/usr/bin/ls"), "/usr/bin/ls");
    EXPECT_EQ(printable("a\nb\tc\\d"), "a\\nb\\tc\\\\d");
    EXPECT_EQ(printable(std::string("x\x01y\x7f", 4)), "x\\x01y\\x7f");
    EXPECT_EQ(printable("caf\xc3\xa9"), "caf\xc3\xa9");    // valid UTF-8 kept
    EXPECT_EQ(printable("bad\xff\xc3"), "bad\\xff\\xc3");  // invalid and truncated
    EXPECT_EQ(printable("\xc0\xaf"), "\\xc0\\xaf");        // overlong '/'
}

TEST(Format, Sizes) {
    EXPECT_EQ(format_count(0), "0");
    EXPECT_EQ(format_count(28343), "28,343");
    EXPECT_EQ(format_count(1000000), "1,000,000");
    EXPECT_EQ(format_bytes(999), "999 bytes");
    EXPECT_EQ(format_bytes(375600000), "375.6 MB (375,600,000 bytes)");
}

}  // namespace
}  // namespace unify
