// An object id names content *and* identity: SHA-256 over a versioned, length-prefixed
// encoding of the content's SHA-256, the file type and full mode, uid, gid, mtime in
// nanoseconds (0 in a pool made with --ignore-mtime) and every xattr, sorted by name.
// Two files get the same id only if linking them changes nothing a guest can observe.
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <cstring>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "store/sys.h"

namespace unify {

using Digest = std::array<uint8_t, 32>;

struct ObjectId {
    Digest bytes{};

    std::string hex() const;
    static std::optional<ObjectId> from_hex(std::string_view hex);
    auto operator<=>(const ObjectId&) const = default;
};

// What must be equal, besides content, for two files to share an inode.
struct Identity {
    uint32_t mode = 0;  // st_mode with type bits
    uint32_t uid = 0;
    uint32_t gid = 0;
    int64_t mtime_ns = 0;
    Xattrs xattrs;  // sorted by name

    static Identity of(const FileStat& st, Xattrs xattrs);
    bool operator==(const Identity&) const = default;
};

ObjectId make_object_id(const Digest& content, const Identity& identity, bool ignore_mtime);

// What a pool's ids cover, fixed at init. A hardlink pool: content and identity (mtime left
// out with --ignore-mtime), since every path linked to an object is that inode. A reflink
// pool: content only (content_only), since each guest file keeps its own inode, owner, mode,
// times and xattrs and only its blocks are shared: files that differ in metadata alone share
// blocks too. Such an id is make_object_id of the content with the identity zeroed (a regular
// file, mode, owner, mtime 0, no xattrs).
struct IdRules {
    bool ignore_mtime = false;
    bool content_only = false;
    ObjectId id_of(const Digest& content, const Identity& identity) const;
};

std::string to_hex(const uint8_t* data, size_t len);

}  // namespace unify

template <>
struct std::hash<unify::ObjectId> {
    size_t operator()(const unify::ObjectId& id) const noexcept {
        size_t h;
        std::memcpy(&h, id.bytes.data(), sizeof h);
        return h;
    }
};
