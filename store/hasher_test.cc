#include "store/hasher.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include "tests/test_support.h"

namespace unify {
namespace {

TEST(Hasher, MatchesSha256sumAndCopiesWhatItHashes) {
    test::TempDir dir;
    std::string big(3 * 1024 * 1024 + 17, '\0');
    for (size_t i = 0; i < big.size(); ++i) big[i] = char(i * 131 % 251);
    test::write_file(dir / "f", big);
    ASSERT_EQ(test::sh("sha256sum '" + dir / "f" + "' | cut -c1-64 > '" + dir / "sum" + "'"), 0);
    std::string expect = test::read_file(dir / "sum").substr(0, 64);

    int fd = open((dir / "f").c_str(), O_RDONLY);
    ASSERT_GE(fd, 0);
    auto h = hash_fd(fd, dir / "f");
    ASSERT_TRUE(h) << h.error().message;
    EXPECT_EQ(to_hex(h->sha256.data(), 32), expect);
    EXPECT_EQ(h->size, big.size());

    int out = open((dir / "copy").c_str(), O_CREAT | O_WRONLY, 0600);
    ASSERT_GE(out, 0);
    auto c = copy_and_hash(fd, out, dir / "f", dir / "copy");
    ASSERT_TRUE(c);
    EXPECT_EQ(c->sha256, h->sha256);
    EXPECT_EQ(c->xxh3, h->xxh3);
    close(out);
    close(fd);
    EXPECT_EQ(test::read_file(dir / "copy"), big);
}

TEST(Hasher, ReadErrorNamesThePath) {
    auto h = hash_fd(-1, "/nowhere/file");
    ASSERT_FALSE(h);
    EXPECT_NE(h.error().message.find("/nowhere/file"), std::string::npos);
    EXPECT_NE(h.error().message.find("EBADF"), std::string::npos);
}

}  // namespace
}  // namespace unify
