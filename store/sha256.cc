// OpenSSL's one-algorithm SHA-256 functions, not EVP. EVP looks its digest up through
// OpenSSL 3's providers, and linking that (unify links libcrypto statically, see
// CMakeLists.txt) brings in every provider's algorithm tables: 22,000 relative relocations
// and 394 KB of .data.rel.ro that every run of unify relocated at start, `who` included
// (bench P5). Both compute with the same assembly (SHA-NI where the CPU has it). These
// functions are deprecated since OpenSSL 3.0, not removed.
#define OPENSSL_SUPPRESS_DEPRECATED
#include "store/sha256.h"

#include <openssl/sha.h>

namespace unify {

static_assert(sizeof(SHA256_CTX) <= 112 && alignof(SHA256_CTX) <= 8);

Sha256::Sha256() {
    SHA256_Init(reinterpret_cast<SHA256_CTX*>(state_));
}

void Sha256::update(const void* p, size_t n) {
    SHA256_Update(reinterpret_cast<SHA256_CTX*>(state_), p, n);
}

Digest Sha256::finish() {
    Digest d;
    SHA256_Final(d.data(), reinterpret_cast<SHA256_CTX*>(state_));
    return d;
}

Digest sha256(std::string_view bytes) {
    Sha256 h;
    h.update(bytes.data(), bytes.size());
    return h.finish();
}

}  // namespace unify
