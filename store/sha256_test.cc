#include "store/sha256.h"

#include <gtest/gtest.h>

#include <string>

namespace unify {
namespace {

std::string hex(const Digest& d) {
    return to_hex(d.data(), d.size());
}

// FIPS 180-2's examples, and the million 'a's fed in uneven pieces.
TEST(Sha256, KnownAnswers) {
    EXPECT_EQ(hex(sha256("")), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    EXPECT_EQ(hex(sha256("abc")),
              "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    EXPECT_EQ(hex(sha256("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")),
              "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    Sha256 h;
    std::string a(1000, 'a');
    for (size_t done = 0, piece = 1; done < 1000000; done += piece, piece = piece * 7 % 997 + 1)
        h.update(a.data(), std::min(piece, 1000000 - done));
    EXPECT_EQ(hex(h.finish()), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

}  // namespace
}  // namespace unify
