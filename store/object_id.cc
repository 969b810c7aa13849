// The id encoding is versioned ("unify-object-v1") and every variable-length field is
// length-prefixed, so no two different identities can produce the same byte stream.
#include "store/object_id.h"

#include "store/sha256.h"

namespace unify {

namespace {

void put_u64(std::string& out, uint64_t v) {
    for (int i = 0; i < 8; ++i) out.push_back(char((v >> (8 * i)) & 0xff));
}

void put_bytes(std::string& out, const std::string& s) {
    put_u64(out, s.size());
    out += s;
}

int nibble(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

}  // namespace

std::string to_hex(const uint8_t* data, size_t len) {
    static const char digits[] = "0123456789abcdef";
    std::string s(len * 2, '0');
    for (size_t i = 0; i < len; ++i) {
        s[2 * i] = digits[data[i] >> 4];
        s[2 * i + 1] = digits[data[i] & 15];
    }
    return s;
}

std::string ObjectId::hex() const {
    return to_hex(bytes.data(), bytes.size());
}

std::optional<ObjectId> ObjectId::from_hex(std::string_view hex) {
    if (hex.size() != 64) return std::nullopt;
    ObjectId id;
    for (size_t i = 0; i < 32; ++i) {
        int hi = nibble(hex[2 * i]), lo = nibble(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) return std::nullopt;
        id.bytes[i] = uint8_t(hi << 4 | lo);
    }
    return id;
}

Identity Identity::of(const FileStat& st, Xattrs xattrs) {
    return Identity{st.mode, st.uid, st.gid, st.mtime_ns, std::move(xattrs)};
}

ObjectId make_object_id(const Digest& content, const Identity& identity, bool ignore_mtime) {
    std::string enc = "unify-object-v1";
    enc.push_back('\0');
    enc.append(reinterpret_cast<const char*>(content.data()), content.size());
    put_u64(enc, identity.mode);
    put_u64(enc, identity.uid);
    put_u64(enc, identity.gid);
    put_u64(enc, ignore_mtime ? 0 : uint64_t(identity.mtime_ns));
    put_u64(enc, identity.xattrs.size());
    for (const auto& [name, value] : identity.xattrs) {
        put_bytes(enc, name);
        put_bytes(enc, value);
    }
    ObjectId id;
    id.bytes = sha256(enc);
    return id;
}

ObjectId IdRules::id_of(const Digest& content, const Identity& identity) const {
    if (content_only) return make_object_id(content, Identity{S_IFREG, 0, 0, 0, {}}, true);
    return make_object_id(content, identity, ignore_mtime);
}

}  // namespace unify
