// Streaming hash with one 1 MiB buffer per thread; both hashes are fed from the same read,
// so XXH3 costs no extra I/O.
#include "store/hasher.h"

#include <openssl/evp.h>
#include <unistd.h>
#include <xxhash.h>

#include <memory>
#include <vector>

#include "store/fault.h"

namespace unify {

namespace {

constexpr size_t kBuffer = 1 << 20;

struct Hashers {
    EVP_MD_CTX* sha = EVP_MD_CTX_new();
    XXH3_state_t* xxh = XXH3_createState();
    ~Hashers() {
        EVP_MD_CTX_free(sha);
        XXH3_freeState(xxh);
    }
    void start() {
        EVP_DigestInit_ex(sha, EVP_sha256(), nullptr);
        XXH3_64bits_reset(xxh);
    }
    void update(const char* p, size_t n) {
        EVP_DigestUpdate(sha, p, n);
        XXH3_64bits_update(xxh, p, n);
    }
    void finish(ContentHash& out) {
        unsigned len = 0;
        EVP_DigestFinal_ex(sha, out.sha256.data(), &len);
        out.xxh3 = XXH3_64bits_digest(xxh);
    }
};

thread_local std::vector<char> t_buffer;
thread_local std::unique_ptr<Hashers> t_hashers;

Hashers& hashers() {
    if (!t_hashers) t_hashers = std::make_unique<Hashers>();
    if (t_buffer.empty()) t_buffer.resize(kBuffer);
    return *t_hashers;
}

// Reads src to EOF, feeding each chunk to the hashers and, if dst >= 0, writing it there.
Result<ContentHash> stream(int src, int dst, const std::string& src_shown,
                           const std::string& dst_shown) {
    Hashers& h = hashers();
    h.start();
    ContentHash out;
    off_t off = 0;
    for (;;) {
        ssize_t n = pread(src, t_buffer.data(), t_buffer.size(), off);
        if (int e = fault_errno("read", src_shown)) n = -1, errno = e;
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return sys_fail("read", src_shown);
        if (n == 0) break;
        h.update(t_buffer.data(), size_t(n));
        if (dst >= 0) {
            if (auto w = write_all(dst, t_buffer.data(), size_t(n), dst_shown); !w)
                return std::unexpected(w.error());
        }
        off += n;
    }
    out.size = uint64_t(off);
    h.finish(out);
    return out;
}

}  // namespace

Result<ContentHash> hash_fd(int fd, const std::string& shown) {
    return stream(fd, -1, shown, "");
}

Result<ContentHash> copy_and_hash(int src, int dst, const std::string& src_shown,
                                  const std::string& dst_shown) {
    return stream(src, dst, src_shown, dst_shown);
}

}  // namespace unify
