// Content hashing: SHA-256 through OpenSSL (SHA-NI where the CPU has it, store/sha256.h) for ids,
// and XXH3-64 alongside, recorded per object so a later verify can be cheap.
#pragma once

#include <cstdint>
#include <string>

#include "store/object_id.h"
#include "store/result.h"

namespace unify {

struct ContentHash {
    Digest sha256{};
    uint64_t xxh3 = 0;
    uint64_t size = 0;  // bytes actually read
};

// Reads fd from offset 0 to EOF with pread.
Result<ContentHash> hash_fd(int fd, const std::string& shown);
// The same without SHA-256 (sha256 stays zero): XXH3 and size only, several times faster.
// Only for finding a candidate that something stronger then confirms (the kernel's byte
// compare in FIDEDUPERANGE): XXH3 is not collision resistant, and a guest can make
// collisions on purpose.
Result<ContentHash> quick_hash_fd(int fd, const std::string& shown);

// Whether a and b hold the same bytes, from offset 0 to EOF (equal lengths included).
Result<bool> same_bytes_fd(int a, int b, const std::string& a_shown, const std::string& b_shown);

// Copies src (from offset 0) into the empty file dst (at the same offsets) and hashes what
// it copied, so the hash is of the bytes that were written, not of a source that may change
// under us. Holes stay holes.
Result<ContentHash> copy_and_hash(int src, int dst, const std::string& src_shown,
                                  const std::string& dst_shown);

}  // namespace unify
