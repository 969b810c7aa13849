// SHA-256, the hash of object ids (store/object_id.h) and of long index keys.
#pragma once

#include <cstddef>
#include <string_view>

#include "store/object_id.h"

namespace unify {

class Sha256 {
  public:
    Sha256();
    void update(const void* p, size_t n);
    Digest finish();

  private:
    // OpenSSL's SHA256_CTX, kept opaque so that its deprecated header stays in sha256.cc.
    alignas(8) unsigned char state_[112];
};

Digest sha256(std::string_view bytes);

}  // namespace unify
