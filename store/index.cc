// The index is one LMDB environment with eight named tables (layout in index.h; "meta" holds
// the format version and the counters of guest, object and directory numbers). Records are a
// small binary format of varints and fixed fields; the format version in "meta" tells a later
// format from this one.
// Version 4 is lean: about 118 bytes per link record on the real guests (g1..g4, 25,231
// links, 10,040 objects), free pages after a re-import of every guest included; version 3
// took 160 to 170, version 2 460 to 630. Where the bytes went and what saved them:
// - A link is keyed by its directory's number and its name; an object is named by a small
//   number, and objects are stored under it, so new ones append and fill their pages.
// - Tables of many small entries (objids, dirs, byobject) keep them as fixed-size LMDB
//   duplicates under one key (a guest, or "i"): 8 bytes each on pages of bare values,
//   instead of 8 bytes of node header, a 2-byte pointer and a key each.
// - byobject keeps no counts, only which (object, directory) pairs have a link; the flush
//   settles the pairs that lost one with one look at the directory's links.
// - A directory is its parent's number and its name (dirs holds a 4-byte hash of them and
//   the number; dirpaths the rest), and its links keep their object number, inode, mtime
//   and ctime as distances from its first link's (its "bases"): one package's files share
//   an mtime, an import's ctimes lie within seconds, the pool's inodes and numbers near each
//   other; a whole link value is then about 12 bytes (27 in version 3).
// Both link tables still group one guest's entries: directories are numbered as they are
// first seen, so a new guest's links append at the end of `links`, and `byobject` and `dirs`
// are keyed by the guest. New links, directories and reverse pairs wait for the flush and
// are written in key order. Nothing is rewritten that did not change, so an import that
// finds nothing new writes nothing to these tables (LMDB would copy a page even for an
// identical value).
// Iteration keeps a cursor open only while the visitor leaves the transaction alone; a
// visitor that writes makes the scan re-seek past the last key it saw, so gc and import
// can delete what they are visiting.
#include "store/index.h"

#include <errno.h>
#include <lmdb.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <xxhash.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <optional>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "store/fault.h"
#include "store/map_guard.h"
#include "store/sha256.h"

namespace unify {
namespace {

constexpr uint8_t kRecordFormat = 1;
// Guest records: format 2 adds package_dbs and config_files, and signs every rule; format 3
// the root directory's device and inode.
constexpr uint8_t kGuestFormat2 = 2;
constexpr uint8_t kGuestFormat = 3;
// Version 2 keyed byobject by guest first (version 1 by object id first); version 3 keys
// links by directory number and name and names objects by number; version 4 keeps byobject
// and objids as fixed-size duplicates, link times shorter and directories with a ctime base
// (see above). An older index must be rebuilt.
constexpr uint32_t kIndexVersion = 4;
// LMDB keys are at most 511 bytes: a name longer than kMaxInlineName is keyed by 0x00 +
// SHA-256 of it.
// Address space, not disk: data.mdb grows only as pages are used. UNIFY_INDEX_MAP_SIZE
// (bytes) overrides it, for an index that outgrows it (MDB_MAP_FULL says so).
constexpr size_t kMapSize = size_t{64} << 30;

size_t map_size() {
    const char* v = getenv("UNIFY_INDEX_MAP_SIZE");
    if (!v || !*v) return kMapSize;
    char* end = nullptr;
    unsigned long long n = strtoull(v, &end, 10);
    return (end && *end == '\0' && n >= (1u << 20)) ? size_t(n) : kMapSize;
}
constexpr size_t kMaxKey = 511;

struct Table {
    MDB_dbi dbi = 0;
    const char* name;
    unsigned flags = 0;  // MDB_DUPSORT | MDB_DUPFIXED: one key, many fixed-size values
};

// A table of fixed-size duplicates keeps them on pages of bare values, without the 8-byte
// node header and 2-byte pointer of every other entry: 12 bytes an entry instead of 24.
constexpr unsigned kFixedDups = MDB_DUPSORT | MDB_DUPFIXED;

// Shared by the Index and every Txn, so a transaction may outlive the Index object.
struct Env {
    MDB_env* env = nullptr;
    std::string dir;
    Table guests{0, "guests"};
    Table objects{0, "objects"};            // object number (4, big endian) -> id + ObjectRecord
    Table objids{0, "objids", kFixedDups};  // "i" -> many (id's first 4 bytes + number)
    Table dirs{0, "dirs", kFixedDups};      // guest -> many (hash of parent + name, number)
    Table dirpaths{0, "dirpaths"};          // directory number -> guest, parent, bases, name
    Table links{0, "links"};                // directory number (4) + name key -> link fields
    Table byobject{0, "byobject", kFixedDups};  // guest -> many (object, directory)
    Table meta{0, "meta"};
    std::atomic<uint64_t> links_deleted{0};  // Index::links_deleted

    Env() = default;
    Env(const Env&) = delete;
    Env& operator=(const Env&) = delete;
    void* map = nullptr;  // guarded (store/map_guard.h) while open

    ~Env() {
        if (map) unguard_mapping(map);
        if (env) mdb_env_close(env);
    }
};

// What every message about a damaged index ends with.
constexpr const char* kReindexHint =
    "; the index is damaged: run `unify reindex` to rebuild it from the pool and the guest roots";

std::unexpected<Error> mdb_fail(const Env& env, const char* call, const Table* table, int rc) {
    std::string where = env.dir;
    if (table) where += std::string(", ") + table->name;
    bool damaged = rc == MDB_CORRUPTED || rc == MDB_PAGE_NOTFOUND || rc == MDB_INVALID;
    std::string hint = damaged ? kReindexHint : "";
    if (rc == MDB_MAP_FULL)
        hint = "; the index has reached its map size (" + std::to_string(map_size() >> 20) +
               " MiB): set UNIFY_INDEX_MAP_SIZE to a larger size in bytes and run the command "
               "again (what was done so far is recorded)";
    return fail(std::string(call) + "(" + where + "): " + mdb_strerror(rc) + hint, rc > 0 ? rc : 0);
}

std::unexpected<Error> corrupt(const Env& env, const Table& table) {
    return fail(std::string("corrupt record in ") + table.name + " (" + env.dir + ")" +
                kReindexHint);
}

MDB_val to_val(std::string_view s) {
    return MDB_val{s.size(), const_cast<char*>(s.data())};
}
std::string_view to_view(const MDB_val& v) {
    return {static_cast<const char*>(v.mv_data), v.mv_size};
}

std::string be32(uint32_t v) {
    return {char(v >> 24), char(v >> 16), char(v >> 8), char(v)};
}

std::string id_bytes(const ObjectId& id) {
    return std::string(reinterpret_cast<const char*>(id.bytes.data()), id.bytes.size());
}

uint32_t from_be32(std::string_view s) {
    return uint32_t(uint8_t(s[0])) << 24 | uint32_t(uint8_t(s[1])) << 16 |
           uint32_t(uint8_t(s[2])) << 8 | uint32_t(uint8_t(s[3]));
}

constexpr size_t kNumBytes = 4;                  // guest, object and directory numbers, big endian
constexpr size_t kIdPrefix = 4;                  // bytes of an object id in an objids entry
constexpr std::string_view kObjidsKey = "i";     // the one key of objids
constexpr size_t kReverseEntry = 2 * kNumBytes;  // a byobject duplicate
constexpr size_t kDirEntry = 2 * kNumBytes;      // a dirs duplicate

// Varints (LEB128) and fixed fields; failure is sticky: a truncated record reads as zeros
// and ok() tells at the end.
class Writer {
  public:
    Writer() = default;
    explicit Writer(uint8_t format) { u8(format); }
    void u8(uint8_t v) { buf_.push_back(char(v)); }
    void u32(uint32_t v) {
        for (int i = 0; i < 4; ++i) buf_.push_back(char(v >> (8 * i)));
    }
    void u64(uint64_t v) {
        for (int i = 0; i < 8; ++i) buf_.push_back(char(v >> (8 * i)));
    }
    void i64(int64_t v) { u64(uint64_t(v)); }
    void var(uint64_t v) {
        for (; v >= 0x80; v >>= 7) buf_.push_back(char(v | 0x80));
        buf_.push_back(char(v));
    }
    // Zigzag: small negative numbers stay short.
    void svar(int64_t v) { var((uint64_t(v) << 1) ^ uint64_t(v >> 63)); }
    void bytes(const uint8_t* p, size_t n) { buf_.append(reinterpret_cast<const char*>(p), n); }
    void str(std::string_view s) {
        u32(uint32_t(s.size()));
        buf_.append(s);
    }
    void vstr(std::string_view s) {
        var(s.size());
        buf_.append(s);
    }
    const std::string& data() const { return buf_; }

  private:
    std::string buf_;
};

class Reader {
  public:
    explicit Reader(std::string_view data) : data_(data) {}
    uint8_t u8() { return uint8_t(take(1) ? data_[pos_ - 1] : 0); }
    uint32_t u32() { return uint32_t(le(4)); }
    uint64_t u64() { return le(8); }
    int64_t i64() { return int64_t(le(8)); }
    uint64_t var() {
        uint64_t v = 0;
        for (int shift = 0; shift < 64; shift += 7) {
            uint8_t b = u8();
            if (!ok_) return 0;
            v |= uint64_t(b & 0x7f) << shift;
            if (!(b & 0x80)) return v;
        }
        ok_ = false;
        return 0;
    }
    int64_t svar() {
        uint64_t v = var();
        return int64_t(v >> 1) ^ -int64_t(v & 1);
    }
    void bytes(uint8_t* out, size_t n) {
        if (take(n)) std::memcpy(out, data_.data() + pos_ - n, n);
    }
    std::string str() {
        uint32_t n = u32();
        if (!take(n)) return {};
        return std::string(data_.substr(pos_ - n, n));
    }
    std::string vstr() {
        uint64_t n = var();
        if (!take(n)) return {};
        return std::string(data_.substr(pos_ - n, n));
    }
    size_t left() const { return data_.size() - pos_; }
    // Whatever is left, taken whole.
    std::string_view tail() {
        size_t n = left();
        if (!take(n)) return {};
        return data_.substr(pos_ - n);
    }
    // Trailing bytes are corruption too: a longer record would carry a new format byte.
    bool ok() const { return ok_ && pos_ == data_.size(); }
    // No read ran past the end (for a look at the front of a record).
    bool so_far() const { return ok_; }

  private:
    bool take(size_t n) {
        if (!ok_ || n > data_.size() - pos_) {
            ok_ = false;
            return false;
        }
        pos_ += n;
        return true;
    }
    uint64_t le(size_t n) {
        if (!take(n)) return 0;
        uint64_t v = 0;
        for (size_t i = 0; i < n; ++i) v |= uint64_t(uint8_t(data_[pos_ - n + i])) << (8 * i);
        return v;
    }

    std::string_view data_;
    size_t pos_ = 0;
    bool ok_ = true;
};

std::string encode(const GuestRecord& g) {
    Writer w(kGuestFormat);
    w.u32(g.id);
    w.str(g.name);
    w.str(g.root);
    w.i64(g.last_import);
    w.u64(g.min_size);
    w.u32(uint32_t(g.excludes.size()));
    for (const auto& e : g.excludes) w.str(e);
    w.str(g.package_dbs);
    w.u64(g.config_files);
    w.u64(g.root_dev);
    w.u64(g.root_ino);
    return w.data();
}

std::optional<GuestRecord> decode_guest(std::string_view data) {
    Reader r(data);
    uint8_t format = r.u8();
    if (format != kRecordFormat && format != kGuestFormat2 && format != kGuestFormat)
        return std::nullopt;
    GuestRecord g;
    g.id = r.u32();
    g.name = r.str();
    g.root = r.str();
    g.last_import = r.i64();
    g.min_size = r.u64();
    uint32_t n = r.u32();
    // Each exclude takes at least its 4-byte length: a huge count is corruption, not a
    // reason to reserve gigabytes.
    if (n > r.left() / 4) return std::nullopt;
    for (uint32_t i = 0; i < n; ++i)
        g.excludes.push_back(format == kRecordFormat ? "-" + r.str() : r.str());
    if (format != kRecordFormat) {
        g.package_dbs = r.str();
        g.config_files = r.u64();
    }
    if (format == kGuestFormat) {
        g.root_dev = r.u64();
        g.root_ino = r.u64();
    }
    if (!r.ok()) return std::nullopt;
    return g;
}

// An entry of `objects`: the id, then the record if the object is recorded. An entry
// without a record keeps the number of an object that link records still name (one that
// delete_object removed, or that was never put): its number is not handed out again, so
// those records keep resolving to its id, and a later put_object revives it.
struct ObjectEntry {
    ObjectId id;
    std::optional<ObjectRecord> rec;
};

// The first varint is 0 for an entry without a record, else replicas * 2 + 1.
std::string encode(const ObjectEntry& e) {
    Writer w;
    w.var(e.rec ? uint64_t(e.rec->replicas) << 1 | 1 : 0);
    w.bytes(e.id.bytes.data(), e.id.bytes.size());
    if (!e.rec) return w.data();
    w.var(e.rec->size);
    w.u64(e.rec->xxh3);
    w.bytes(e.rec->content.data(), e.rec->content.size());
    w.svar(e.rec->created);
    return w.data();
}

std::optional<ObjectEntry> decode_object(std::string_view data) {
    Reader r(data);
    uint64_t head = r.var();
    if (head >> 1 > UINT32_MAX || head == 2) return std::nullopt;
    ObjectEntry e;
    r.bytes(e.id.bytes.data(), e.id.bytes.size());
    if (head & 1) {
        ObjectRecord o;
        o.replicas = uint32_t(head >> 1);
        o.size = r.var();
        o.xxh3 = r.u64();
        r.bytes(o.content.data(), o.content.size());
        o.created = r.svar();
        e.rec = o;
    } else if (head != 0) {
        return std::nullopt;
    }
    if (!r.ok()) return std::nullopt;
    return e;
}

// The fields of a link record in `links`; the guest and path come from its key (and its
// directory), the id from its object's number. A name too long to be a key is kept here.
// Encoded: a varint of replica * 4 + (mtime has nanoseconds) * 2 + (name kept); the object
// number and inode as distances from the directory's (see Bases); the size; the mtime's
// seconds as a distance from the directory's and, unless 0, its nanoseconds (package files
// have none); the ctime as a distance from the directory's. On real guests that is about
// 12 bytes where plain varints of each field took 27.
struct LinkFields {
    uint32_t object = 0;
    uint32_t replica = 0;
    uint64_t ino = 0;
    uint64_t size = 0;
    int64_t mtime_ns = 0;
    int64_t ctime_ns = 0;
    std::optional<std::string> name;  // only when the key holds its hash
};

constexpr int64_t kNsPerSec = 1000000000;

// Floor division, so that the nanoseconds are never negative; sec * 10^9 + ns wraps back to
// the time (mod 2^64) even where the product itself would not fit.
std::pair<int64_t, int64_t> split_ns(int64_t t) {
    int64_t sec = t / kNsPerSec, ns = t % kNsPerSec;
    if (ns < 0) {
        sec -= 1;
        ns += kNsPerSec;
    }
    return {sec, ns};
}

// What a directory's links keep their times, inode and object number as distances from: the
// first link's (a package's files in a directory share an mtime, an import makes them close
// in ctime, the pool makes their objects' inodes and numbers close to each other).
struct Bases {
    int64_t ctime = 0;
    uint64_t ino = 0;
    uint32_t object = 0;
    int64_t mtime_sec = 0;
};

std::string encode(const LinkFields& f, const Bases& base) {
    auto [sec, ns] = split_ns(f.mtime_ns);
    Writer w;
    w.var(uint64_t(f.replica) << 2 | (ns ? 2 : 0) | (f.name ? 1 : 0));
    w.svar(int64_t(f.object) - int64_t(base.object));
    w.svar(int64_t(f.ino - base.ino));
    w.var(f.size);
    w.svar(int64_t(uint64_t(sec) - uint64_t(base.mtime_sec)));
    if (ns) w.var(uint64_t(ns));
    w.svar(int64_t(uint64_t(f.ctime_ns) - uint64_t(base.ctime)));
    if (f.name) w.vstr(*f.name);
    return w.data();
}

// base: the directory's.
// The object number alone, from the front of a link value: for_each_link_of_object tells a
// directory's links to the object from the others without decoding the rest of each.
std::optional<uint32_t> decode_link_object(std::string_view data, const Bases& base) {
    Reader r(data);
    r.var();
    int64_t object = int64_t(base.object) + r.svar();
    if (!r.so_far() || object < 0 || object > int64_t(UINT32_MAX)) return std::nullopt;
    return uint32_t(object);
}

std::optional<LinkFields> decode_fields(std::string_view data, const Bases& base) {
    Reader r(data);
    uint64_t head = r.var();
    int64_t object = int64_t(base.object) + r.svar();
    if (head >> 2 > UINT32_MAX || object < 0 || object > int64_t(UINT32_MAX)) return std::nullopt;
    LinkFields f;
    f.object = uint32_t(object);
    f.replica = uint32_t(head >> 2);
    f.ino = base.ino + uint64_t(r.svar());
    f.size = r.var();
    uint64_t sec = uint64_t(base.mtime_sec) + uint64_t(r.svar()), ns = head & 2 ? r.var() : 0;
    if (head & 2 && (ns == 0 || ns >= uint64_t(kNsPerSec))) return std::nullopt;
    f.mtime_ns = int64_t(sec * uint64_t(kNsPerSec) + ns);
    f.ctime_ns = int64_t(uint64_t(base.ctime) + uint64_t(r.svar()));
    if (head & 1) f.name = r.vstr();
    if (!r.ok()) return std::nullopt;
    return f;
}

std::string encode_u64(uint64_t v) {
    std::string s;
    for (int i = 0; i < 8; ++i) s.push_back(char(v >> (8 * i)));
    return s;
}

std::optional<uint64_t> decode_u64(std::string_view s) {
    if (s.size() != 8) return std::nullopt;
    uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v |= uint64_t(uint8_t(s[i])) << (8 * i);
    return v;
}

// A directory path or a name as a key: itself, or 0x00 + its SHA-256 when it is too long.
// Paths and names never hold a NUL, so the marker cannot collide with a short one.
std::string short_key(std::string_view s, size_t max) {
    if (s.size() <= max) return std::string(s);
    Digest md = sha256(s);
    std::string key(1, '\0');
    key.append(reinterpret_cast<const char*>(md.data()), md.size());
    return key;
}

// A link's path is its directory (everything before the last '/', "" for /x) and its name;
// joined again with '/', any path that starts with '/' comes back byte for byte.
std::pair<std::string_view, std::string_view> split_path(std::string_view path) {
    size_t slash = path.rfind('/');
    return {path.substr(0, slash), path.substr(slash + 1)};
}

constexpr size_t kMaxInlineName = 400;
// A file name is its own key, never a hash of it: for_each_link_of_object_named relies on it.
static_assert(kMaxInlineName >= NAME_MAX);

int nibble(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

class LmdbTxn : public Txn {
  public:
    LmdbTxn(std::shared_ptr<Env> env, MDB_txn* txn, bool write)
        : env_(std::move(env)), txn_(txn), write_(write) {}
    LmdbTxn(const LmdbTxn&) = delete;
    LmdbTxn& operator=(const LmdbTxn&) = delete;
    ~LmdbTxn() override {
        if (txn_) mdb_txn_abort(txn_);
    }

    Result<std::optional<GuestRecord>> guest(const std::string& name) override {
        if (auto r = live("guest"); !r) return std::unexpected(r.error());
        // "#..." keys map ids to names; no guest can have such a name.
        if (name.empty() || name[0] == '#' || name.size() > kMaxKey) return std::nullopt;
        return guest_by_name(name);
    }

    Result<std::optional<GuestRecord>> guest(uint32_t id) override {
        if (auto r = live("guest"); !r) return std::unexpected(r.error());
        auto name = get(env_->guests, id_key(id));
        if (!name) return std::unexpected(name.error());
        if (!*name) return std::nullopt;
        auto g = guest_by_name(**name);
        if (!g) return g;
        if (!*g || (*g)->id != id) return corrupt(*env_, env_->guests);
        return g;
    }

    Result<std::vector<GuestRecord>> guests() override {
        if (auto r = live("guests"); !r) return std::unexpected(r.error());
        std::vector<GuestRecord> out;
        auto r = scan(env_->guests, "", "", [&](std::string_view key, std::string_view val) {
            if (key.starts_with('#')) return Result<bool>(true);
            auto g = decode_guest(val);
            if (!g || g->name != key) return Result<bool>(corrupt(*env_, env_->guests));
            out.push_back(std::move(*g));
            return Result<bool>(true);
        });
        if (!r) return std::unexpected(r.error());
        return out;
    }

    Result<std::optional<ObjectRecord>> object(const ObjectId& id) override {
        if (auto r = live("object"); !r) return std::unexpected(r.error());
        auto num = object_number(id, false);
        if (!num) return std::unexpected(num.error());
        if (!*num) return std::nullopt;
        auto e = object_entry(**num);
        if (!e) return std::unexpected(e.error());
        return e->rec;
    }

    Result<std::vector<ObjectId>> objects_with_prefix(const std::string& hex_prefix) override {
        if (auto r = live("objects_with_prefix"); !r) return std::unexpected(r.error());
        std::string whole;  // the bytes of the even-length part
        for (size_t i = 0; i < hex_prefix.size(); ++i) {
            if (nibble(hex_prefix[i]) < 0)
                return fail("objects_with_prefix(" + env_->dir + "): '" + hex_prefix +
                            "' is not a lower-case hex prefix");
            if (i % 2 == 1)
                whole.push_back(char(nibble(hex_prefix[i - 1]) << 4 | nibble(hex_prefix[i])));
        }
        std::vector<ObjectId> out;
        if (hex_prefix.size() > 64) return out;
        // objids entries hold the first 4 bytes of each id: scan those that match the prefix
        // as far as it goes, then check each candidate's whole id.
        std::string scan_prefix = whole.substr(0, kIdPrefix);
        int odd = hex_prefix.size() % 2 ? nibble(hex_prefix.back()) : -1;
        std::string start = scan_prefix;
        if (odd >= 0 && whole.size() < kIdPrefix) start.push_back(char(odd << 4));
        std::vector<uint32_t> nums;
        auto r = scan_dups(env_->objids, kObjidsKey, scan_prefix, start, [&](std::string_view dup) {
            if (dup.size() != kIdPrefix + kNumBytes)
                return Result<bool>(corrupt(*env_, env_->objids));
            if (odd >= 0 && whole.size() < kIdPrefix && (uint8_t(dup[whole.size()]) >> 4) != odd)
                return Result<bool>(false);
            nums.push_back(from_be32(dup.substr(kIdPrefix)));
            return Result<bool>(true);
        });
        if (!r) return std::unexpected(r.error());
        for (uint32_t num : nums) {
            auto e = object_entry(num);
            if (!e) return std::unexpected(e.error());
            if (!e->rec || !e->id.hex().starts_with(hex_prefix)) continue;
            out.push_back(e->id);
        }
        std::sort(out.begin(), out.end());
        return out;
    }

    Result<void> for_each_object(const ObjectVisitor& visit) override {
        if (auto r = live("for_each_object"); !r) return r;
        return scan(env_->objects, "", "", [&](std::string_view key, std::string_view val) {
            auto e = decode_object(val);
            if (key.size() != kNumBytes || !e) return Result<bool>(corrupt(*env_, env_->objects));
            if (!e->rec) return Result<bool>(true);
            return Result<bool>(visit(e->id, *e->rec));
        });
    }

    Result<std::optional<LinkRecord>> link(uint32_t guest, const std::string& path) override {
        return link_as<LinkRecord>(guest, path, "link");
    }

    Result<std::optional<LinkStamp>> link_stamp(uint32_t guest, const std::string& path) override {
        return link_as<LinkStamp>(guest, path, "link_stamp");
    }

    Result<void> for_each_link_of_guest(uint32_t guest, const LinkVisitor& visit) override {
        return for_each_of_guest_as<LinkRecord>(guest, visit, "for_each_link_of_guest");
    }

    Result<void> for_each_link_stamp_of_guest(
        uint32_t guest, const std::function<bool(const LinkStamp&)>& visit) override {
        return for_each_of_guest_as<LinkStamp>(guest, visit, "for_each_link_stamp_of_guest");
    }

    Result<uint64_t> count_links_of_guest(uint32_t guest) override {
        uint64_t n = 0;
        auto r = scan_links_of_guest(guest, "count_links_of_guest",
                                     [&](std::string_view, std::string_view) -> Result<bool> {
                                         ++n;
                                         return true;
                                     });
        if (!r) return std::unexpected(r.error());
        return n;
    }

    Result<void> for_each_link_of_object(const ObjectId& id, const LinkVisitor& visit,
                                         uint32_t max_guests = UINT32_MAX) override {
        auto r = links_of_object(id, nullptr, visit, max_guests, "for_each_link_of_object");
        if (!r) return std::unexpected(r.error());
        return {};
    }

    Result<bool> for_each_link_of_object_named(const ObjectId& id, std::string_view name,
                                               const LinkVisitor& visit, uint32_t part,
                                               uint32_t parts) override {
        return links_of_object(id, &name, visit, UINT32_MAX, "for_each_link_of_object_named", part,
                               std::max<uint32_t>(parts, 1));
    }

    // name: only the links of that name, looked up in each directory; else all, scanned.
    // True when every directory with a link of the object had one of that name.
    Result<bool> links_of_object(const ObjectId& id, const std::string_view* name,
                                 const LinkVisitor& visit, uint32_t max_guests, const char* what,
                                 uint32_t part = 0, uint32_t parts = 1) {
        if (auto r = live(what); !r) return std::unexpected(r.error());
        if (auto r = flush(); !r) return std::unexpected(r.error());
        auto num = object_number(id, false);
        if (!num) return std::unexpected(num.error());
        if (!*num) return true;
        std::string nkey;
        if (name) nkey = short_key(*name, kMaxInlineName);
        bool every_dir_named = true;
        const Table& t = env_->byobject;
        const std::string numb = be32(**num);
        // The object's entries among guest's duplicates, one per directory that holds links
        // to it, found by one seek; false when the visitor stopped. Each is collected before
        // its links are visited, so a visitor may write.
        auto in_guest = [&](uint32_t guest, const std::string& gkey) -> Result<bool> {
            std::vector<std::string> dirs;
            auto r = scan_dups(t, gkey, numb, numb, [&](std::string_view dup) {
                if (dup.size() != kReverseEntry) return Result<bool>(corrupt(*env_, t));
                dirs.emplace_back(dup.substr(kNumBytes, kNumBytes));
                return Result<bool>(true);
            });
            if (!r) return std::unexpected(r.error());
            for (const std::string& dir : dirs) {
                // Key and, in a read transaction (which no visitor can change, and whose
                // pages stay put until it ends), the value itself: `who` reads each link once.
                std::vector<std::pair<std::string, std::string_view>> lkeys;
                auto found =
                    name ? link_named(dir, nkey, **num, lkeys) : links_in_dir(dir, **num, lkeys);
                if (!found) return std::unexpected(found.error());
                if (!*found) {
                    every_dir_named = false;
                    continue;
                }
                for (const auto& [lk, scanned] : lkeys) {
                    std::optional<std::string_view> val = scanned;
                    if (write_) {
                        auto now = get(env_->links, lk);
                        if (!now) return std::unexpected(now.error());
                        val = *now;
                    }
                    if (!val) continue;  // the visitor deleted it
                    // The id is the one asked for: no lookup of it per link.
                    auto d = decode_entry(lk, *val);
                    if (!d) return std::unexpected(d.error());
                    if (d->guest != guest) return corrupt(*env_, t);
                    if (d->object != **num) continue;  // the visitor relinked it
                    LinkStamp& s = d->stamp;
                    LinkRecord l{guest,  std::move(s.path), id,        d->replica, s.ino,
                                 s.size, s.mtime_ns,        s.ctime_ns};
                    bool more = visit(l);
                    if (!txn_)
                        return fail(std::string(what) + "(" + env_->dir +
                                    "): the transaction ended during the iteration");
                    if (!more) return false;
                }
            }
            return true;
        };
        // Guest by guest, from guest 0 up, without reading the guests table, which a damaged
        // index may not match. The numbers below next_guest_id are sought directly, each by
        // the one seek of in_guest: a seek to a guest's key alone reads its first duplicates'
        // pages too, pages for nothing where the guest does not hold the object (100 guests:
        // a third of the pages a `who` reads), and a number no guest has costs no page.
        // max_guests counts guests with keys, so a bounded look seeks key by key.
        // Part `part` of `parts` takes its share of those numbers, cut in order.
        // A number whose guest was forgotten still costs its seek (a descent of the table's
        // cached top pages, no page of its own): on a host that made thousands of guests
        // and keeps a few, a look here costs that much more than a seek key by key would.
        uint64_t from = 0;
        if (max_guests == UINT32_MAX) {
            auto bound = next_guest_id();
            if (!bound) return std::unexpected(bound.error());
            from = *bound * part / parts;
            uint64_t to = *bound * (part + 1) / parts;
            for (; from < to; ++from) {
                auto more = in_guest(uint32_t(from), be32(uint32_t(from)));
                if (!more) return std::unexpected(more.error());
                if (!*more) return every_dir_named;
            }
            if (part + 1 < parts) return every_dir_named;
        }
        // Keys from there up (only a damaged index, or one written without guest records,
        // has any), found key by key: the last part's.
        for (uint64_t seen = 0; from <= UINT32_MAX && seen < max_guests; ++seen) {
            auto gkey = key_from(t, be32(uint32_t(from)));
            if (!gkey) return std::unexpected(gkey.error());
            if (!*gkey) break;
            if ((*gkey)->size() != kNumBytes) return corrupt(*env_, t);
            uint32_t guest = from_be32(**gkey);
            from = uint64_t(guest) + 1;
            auto more = in_guest(guest, **gkey);
            if (!more) return std::unexpected(more.error());
            if (!*more) return every_dir_named;
        }
        return every_dir_named;
    }

    // One past the highest number a guest was given (1 before the first), from meta.
    Result<uint64_t> next_guest_id() {
        auto val = get(env_->meta, "next_guest_id");
        if (!val) return std::unexpected(val.error());
        if (!*val) return 1;
        auto v = decode_u64(**val);
        if (!v) return corrupt(*env_, env_->meta);
        return *v;
    }

    using LinkKeys = std::vector<std::pair<std::string, std::string_view>>;

    // The links in directory `dir` (its number's key) that name object `num`, by a scan of all
    // of the directory's links. A reverse entry without any link breaks the invariant put_link
    // and delete_link keep inside one transaction: the index is damaged. Always true.
    Result<bool> links_in_dir(const std::string& dir, uint32_t num, LinkKeys& out) {
        std::optional<DirPath> d;  // looked up once the directory has a link
        auto found = scan(env_->links, dir, dir,
                          [&](std::string_view lk, std::string_view val) -> Result<bool> {
                              if (!d) {
                                  auto p = dir_path(from_be32(dir));
                                  if (!p) return std::unexpected(p.error());
                                  d = std::move(*p);
                              }
                              auto object = decode_link_object(val, d->bases);
                              if (!object) return corrupt(*env_, env_->links);
                              if (*object == num)
                                  out.emplace_back(lk, write_ ? std::string_view() : val);
                              return true;
                          });
        if (!found) return std::unexpected(found.error());
        if (!out.empty()) return true;
        // A damaged link record may be why none names the object: say which table is damaged
        // (only the front of each record was read).
        auto whole = scan(env_->links, dir, dir,
                          [&](std::string_view, std::string_view val) -> Result<bool> {
                              if (!decode_fields(val, d->bases)) return corrupt(*env_, env_->links);
                              return true;
                          });
        if (!whole) return std::unexpected(whole.error());
        return corrupt(*env_, env_->byobject);
    }

    // The link of name key `nkey` in directory `dir`, if it names object `num`: one lookup.
    // False when there is none.
    Result<bool> link_named(const std::string& dir, const std::string& nkey, uint32_t num,
                            LinkKeys& out) {
        std::string lk = dir + nkey;
        auto val = get(env_->links, lk);
        if (!val) return std::unexpected(val.error());
        if (!*val) return false;
        auto d = dir_path(from_be32(dir));
        if (!d) return std::unexpected(d.error());
        auto object = decode_link_object(**val, d->bases);
        if (!object) return corrupt(*env_, env_->links);
        if (*object != num) return false;
        out.emplace_back(std::move(lk), write_ ? std::string_view() : **val);
        return true;
    }

    Result<void> put_guest(GuestRecord& g) override {
        if (auto r = writable("put_guest"); !r) return r;
        if (g.name.empty() || g.name[0] == '#')
            return fail("put_guest(" + env_->dir + "): invalid guest name '" + g.name +
                        "': must not be empty or start with '#'");
        auto same_name = guest_by_name(g.name);
        if (!same_name) return std::unexpected(same_name.error());
        if (*same_name && (*same_name)->id != g.id)
            return fail("put_guest(" + env_->dir + "): guest " + g.name +
                        " already exists with id " + std::to_string((*same_name)->id));

        auto next_id = next_guest_id();
        if (!next_id) return std::unexpected(next_id.error());
        uint64_t next = *next_id;

        uint32_t id = g.id;
        if (id == 0) {
            if (next > UINT32_MAX) return fail("put_guest(" + env_->dir + "): no guest id left");
            id = uint32_t(next);
        } else {
            // An existing id under another name is a rename: the links are keyed by id.
            auto old_name = get(env_->guests, id_key(id));
            if (!old_name) return std::unexpected(old_name.error());
            if (*old_name && **old_name != g.name) {
                std::string old(**old_name);
                if (auto r = del(env_->guests, old); !r) return std::unexpected(r.error());
            }
        }
        // An explicit id (a rebuilt index) must never be handed out again.
        if (id >= next) {
            if (auto r = put(env_->meta, "next_guest_id", encode_u64(uint64_t(id) + 1)); !r)
                return r;
        }

        GuestRecord rec = g;
        rec.id = id;
        if (auto r = put_changed(env_->guests, g.name, encode(rec)); !r) return r;
        if (auto r = put_changed(env_->guests, id_key(id), g.name); !r) return r;
        g.id = id;
        return {};
    }

    Result<void> delete_guest(uint32_t id) override {
        if (auto r = writable("delete_guest"); !r) return r;
        if (auto r = flush(); !r) return r;
        // Collect first: deleting under an open cursor is where LMDB wrappers go wrong.
        std::string prefix = be32(id);
        auto dirs = dirs_of(id);
        if (!dirs) return std::unexpected(dirs.error());
        std::vector<std::string> doomed;  // link keys
        for (uint32_t num : *dirs) {
            std::string dir = be32(num);
            auto r = scan(env_->links, dir, dir, [&](std::string_view lkey, std::string_view) {
                doomed.emplace_back(lkey);
                return Result<bool>(true);
            });
            if (!r) return r;
        }
        for (const auto& key : doomed)
            if (auto r = del(env_->links, key); !r) return std::unexpected(r.error());
        // The guest's key and all its reverse entries.
        if (auto r = del(env_->byobject, prefix); !r) return std::unexpected(r.error());
        if (auto r = del(env_->dirs, prefix); !r) return std::unexpected(r.error());
        for (uint32_t num : *dirs)
            if (auto r = del(env_->dirpaths, be32(num)); !r) return std::unexpected(r.error());
        dir_numbers_.clear();
        dir_paths_.clear();

        auto name = get(env_->guests, id_key(id));
        if (!name) return std::unexpected(name.error());
        if (*name) {
            std::string n(**name);
            auto g = guest_by_name(n);
            if (!g) return std::unexpected(g.error());
            if (*g && (*g)->id == id) {
                if (auto r = del(env_->guests, n); !r) return std::unexpected(r.error());
            }
        }
        if (auto r = del(env_->guests, id_key(id)); !r) return std::unexpected(r.error());
        return {};
    }

    Result<void> put_object(const ObjectId& id, const ObjectRecord& rec) override {
        if (auto r = writable("put_object"); !r) return r;
        auto num = object_number(id, true);
        if (!num) return std::unexpected(num.error());
        return put_changed(env_->objects, be32(**num), encode(ObjectEntry{id, rec}));
    }

    Result<void> delete_object(const ObjectId& id) override {
        if (auto r = writable("delete_object"); !r) return r;
        auto num = object_number(id, false);
        if (!num) return std::unexpected(num.error());
        if (!*num) return {};
        // The entry stays without its record: link records may still name the number.
        return put_changed(env_->objects, be32(**num), encode(ObjectEntry{id, std::nullopt}));
    }

    Result<void> put_link(const LinkRecord& link) override {
        if (auto r = writable("put_link"); !r) return r;
        if (!link.path.starts_with('/'))
            return fail("put_link(" + env_->dir + "): path '" + link.path +
                        "' does not start with '/'");
        auto num = object_number(link.id, true);
        if (!num) return std::unexpected(num.error());
        Bases first{link.ctime_ns, link.ino, **num, split_ns(link.mtime_ns).first};
        auto key = link_key(link.guest, link.path, true, first);
        if (!key) return std::unexpected(key.error());
        auto dir = dir_path(from_be32(*key));
        if (!dir) return std::unexpected(dir.error());
        LinkFields f{**num, link.replica, link.ino, link.size, link.mtime_ns, link.ctime_ns, {}};
        std::string_view name = split_path(link.path).second;
        if (name.size() > kMaxInlineName) f.name = std::string(name);
        std::string val = encode(f, dir->bases);
        if (auto p = pending_links_.find(*key); p != pending_links_.end()) {
            auto old = decode_fields(p->second, dir->bases);
            relinked(link.guest, old->object, f.object, *key);
            p->second = std::move(val);
            return {};
        }
        auto old_val = get(env_->links, *key);
        if (!old_val) return std::unexpected(old_val.error());
        if (!*old_val) {
            // A new link waits for the flush (at commit, or before links are read).
            count_link(link.guest, f.object, *key, +1);
            pending_links_.emplace(std::move(*key), std::move(val));
            return {};
        }
        // Unchanged: no write at all, so an import that finds nothing new copies no page.
        if (**old_val == val) return {};
        auto old = decode_fields(**old_val, dir->bases);
        if (!old) return corrupt(*env_, env_->links);
        relinked(link.guest, old->object, f.object, *key);
        return put(env_->links, *key, val);
    }

    Result<void> delete_link(uint32_t guest, const std::string& path) override {
        if (auto r = writable("delete_link"); !r) return r;
        auto key = link_key(guest, path, false);
        if (!key) return std::unexpected(key.error());
        if (key->empty()) return {};
        auto dir = dir_path(from_be32(*key));
        if (!dir) return std::unexpected(dir.error());
        // Not flushed first: deletes wait in step with puts, so that a run of them costs one
        // look at each directory's links (see flush).
        if (auto p = pending_links_.find(*key); p != pending_links_.end()) {
            auto f = decode_fields(p->second, dir->bases);
            count_link(guest, f->object, *key, -1);
            pending_links_.erase(p);
            ++env_->links_deleted;
            return {};
        }
        auto val = get(env_->links, *key);
        if (!val) return std::unexpected(val.error());
        if (!*val) return {};
        auto f = decode_fields(**val, dir->bases);
        if (!f) return corrupt(*env_, env_->links);
        if (auto r = del(env_->links, *key); !r) return std::unexpected(r.error());
        count_link(guest, f->object, *key, -1);
        ++env_->links_deleted;
        return {};
    }

    Result<void> commit() override {
        if (auto r = live("commit"); !r) return r;
        if (write_)
            if (auto r = flush(); !r) return r;
        return end();
    }

    // New link records and directories, and the reverse entries of new links, stay held
    // back across the renewal: they are written in one ordered run at the end, as if the
    // transaction had not been cut (cut runs interleave in the same directories and split
    // their pages in half). What a crash then loses is link records, which the next import
    // finds again (invariant 5). When a link was deleted or replaced, everything is written
    // first: no committed state may keep a reverse entry without its link.
    Result<void> renew() override {
        if (auto r = writable("renew"); !r) return r;
        if (std::ranges::any_of(pending_reverse_,
                                [](const auto& p) { return p.second & kRemoved; }))
            if (auto r = flush(); !r) return r;
        if (auto r = end(); !r) return r;
        MDB_txn* txn = nullptr;
        if (int rc = mdb_txn_begin(env_->env, nullptr, 0, &txn); rc != 0)
            return mdb_fail(*env_, "mdb_txn_begin", nullptr, rc);
        txn_ = txn;
        return {};
    }

  private:
    // Only write transactions free their cursors when they end.
    struct Cursor {
        const LmdbTxn& txn;
        MDB_cursor* c = nullptr;
        ~Cursor() { reset(); }
        void reset() {
            if (c && (txn.txn_ || !txn.write_)) mdb_cursor_close(c);
            c = nullptr;
        }
    };

    // A directory's guest, whole path and ctime base, as dir_path puts it together.
    struct DirPath {
        uint32_t guest = 0;
        std::string path;
        Bases bases;
    };

    // Reopens `cur` on `t` and positions it on the first key after `last`; the MDB result.
    Result<int> reseek_past(Cursor& cur, const Table& t, const std::string& last, MDB_val& k,
                            MDB_val& v) const {
        cur.reset();
        if (int rc = mdb_cursor_open(txn_, t.dbi, &cur.c); rc != 0)
            return mdb_fail(*env_, "mdb_cursor_open", &t, rc);
        k = to_val(last);
        int rc = mdb_cursor_get(cur.c, &k, &v, MDB_SET_RANGE);
        if (rc == 0 && to_view(k) == last) rc = mdb_cursor_get(cur.c, &k, &v, MDB_NEXT);
        return rc;
    }

    // Commits a write transaction, ends a read one.
    Result<void> end() {
        ++generation_;
        // LMDB frees the txn even when commit fails: let go of it first.
        MDB_txn* txn = std::exchange(txn_, nullptr);
        if (!write_) {
            mdb_txn_abort(txn);
            return {};
        }
        fault_point("index.commit");
        if (int rc = mdb_txn_commit(txn); rc != 0)
            return mdb_fail(*env_, "mdb_txn_commit", nullptr, rc);
        return {};
    }

    Result<void> live(const char* op) const {
        if (!txn_) return fail(std::string(op) + "(" + env_->dir + "): transaction already ended");
        return {};
    }

    Result<void> writable(const char* op) const {
        if (auto r = live(op); !r) return r;
        if (!write_)
            return fail(std::string(op) + "(" + env_->dir + "): write on a read-only transaction");
        return {};
    }

    static std::string id_key(uint32_t id) { return "#" + be32(id); }

    // The view points into the map: valid until the next write in this transaction.
    Result<std::optional<std::string_view>> get(const Table& t, std::string_view key) {
        MDB_val k = to_val(key), v{};
        int rc = mdb_get(txn_, t.dbi, &k, &v);
        if (rc == MDB_NOTFOUND) return std::nullopt;
        if (rc != 0) return mdb_fail(*env_, "mdb_get", &t, rc);
        return to_view(v);
    }

    // flags: MDB_APPEND for a key known to be past the end of the table (a new number), so a
    // full page is left full instead of split in half; LMDB checks that it is.
    Result<void> put(const Table& t, std::string_view key, std::string_view val,
                     unsigned flags = 0) {
        ++generation_;
        MDB_val k = to_val(key), v = to_val(val);
        if (int rc = mdb_put(txn_, t.dbi, &k, &v, flags); rc != 0)
            return mdb_fail(*env_, "mdb_put", &t, rc);
        return {};
    }

    // A put that leaves an identical value alone: LMDB copies the page even then.
    Result<void> put_changed(const Table& t, std::string_view key, std::string_view val) {
        auto old = get(t, key);
        if (!old) return std::unexpected(old.error());
        if (*old && **old == val) return {};
        return put(t, key, val);
    }

    // False when there was nothing to delete.
    Result<bool> del(const Table& t, std::string_view key) {
        ++generation_;
        MDB_val k = to_val(key);
        int rc = mdb_del(txn_, t.dbi, &k, nullptr);
        if (rc == MDB_NOTFOUND) return false;
        if (rc != 0) return mdb_fail(*env_, "mdb_del", &t, rc);
        return true;
    }

    Result<std::optional<GuestRecord>> guest_by_name(std::string_view name) {
        auto val = get(env_->guests, name);
        if (!val) return std::unexpected(val.error());
        if (!*val) return std::nullopt;
        auto g = decode_guest(**val);
        if (!g || g->name != name) return corrupt(*env_, env_->guests);
        return g;
    }

    // byobject holds, per guest, each (object, directory) where a link of the directory
    // names the object. A link put or deleted marks its pair, for the flush to settle.
    void count_link(uint32_t guest, uint32_t object, std::string_view lkey, int delta) {
        pending_reverse_[be32(guest) + be32(object) + std::string(lkey.substr(0, kNumBytes))] |=
            delta > 0 ? kAdded : kRemoved;
    }
    static constexpr uint8_t kAdded = 1, kRemoved = 2;
    // Link `lkey` named `from` and now names `to`: a new stat alone changes no pair (and
    // costs the flush no look at the directory).
    void relinked(uint32_t guest, uint32_t from, uint32_t to, std::string_view lkey) {
        if (from == to) return;
        count_link(guest, from, lkey, -1);
        count_link(guest, to, lkey, +1);
    }

    // A put of a key (with MDB_APPENDDUP, a duplicate of its key) that is usually past the
    // end of its table: appended, it leaves the page before it full instead of splitting it
    // in half.
    Result<void> put_maybe_last(const Table& t, std::string_view key, std::string_view val,
                                unsigned append = MDB_APPEND) {
        ++generation_;
        MDB_val k = to_val(key), v = to_val(val);
        int rc = mdb_put(txn_, t.dbi, &k, &v, append);
        if (rc == MDB_KEYEXIST) rc = mdb_put(txn_, t.dbi, &k, &v, 0);
        if (rc != 0) return mdb_fail(*env_, "mdb_put", &t, rc);
        return {};
    }

    // Writes the new links and settles the reverse entries that put_link and delete_link
    // held back, in key order. An import's batch of new links is then one run of appends at the end
    // of `links` (its directories are new) and fills its pages; put one by one, in the
    // walk's order, they filled them to about 60 %.
    // New directories are written the same way, before their links.
    Result<void> flush() {
        std::vector<std::pair<std::string, std::string>> dirs;  // guest, (hash, number)
        for (const auto& [key, num] : pending_dirs_) {
            std::string_view k = key;
            dirs.emplace_back(
                k.substr(0, kNumBytes),
                dir_hash(k.substr(kNumBytes, kNumBytes), k.substr(2 * kNumBytes)) + be32(num));
        }
        std::sort(dirs.begin(), dirs.end());
        for (const auto& [guest, entry] : dirs)
            if (auto r = put_maybe_last(env_->dirs, guest, entry, MDB_APPENDDUP); !r) return r;
        pending_dirs_.clear();
        for (const auto& [num, dir] : pending_dirpaths_)
            if (auto r = put_maybe_last(env_->dirpaths, be32(num), encode_dir(dir)); !r) return r;
        pending_dirpaths_.clear();
        for (const auto& [key, val] : pending_links_)
            if (auto r = put_maybe_last(env_->links, key, val); !r) return r;
        pending_links_.clear();
        // Directory number -> the objects its links name, for pairs that lost a link.
        std::unordered_map<std::string, std::unordered_set<uint32_t>> named;
        for (const auto& [key, marks] : pending_reverse_) {
            std::string_view guest = std::string_view(key).substr(0, kNumBytes);
            std::string_view pair = std::string_view(key).substr(kNumBytes);
            bool linked = true;
            if (marks & kRemoved) {
                std::string dir(pair.substr(kNumBytes));
                auto it = named.find(dir);
                if (it == named.end()) {
                    auto objects = objects_named_in(dir);
                    if (!objects) return std::unexpected(objects.error());
                    it = named.emplace(dir, std::move(*objects)).first;
                }
                linked = it->second.contains(from_be32(pair));
            }
            auto r = set_reverse(guest, pair, linked);
            if (!r) return r;
        }
        pending_reverse_.clear();
        return {};
    }

    // The object numbers that links of directory `dir` (its 4 key bytes) name.
    Result<std::unordered_set<uint32_t>> objects_named_in(const std::string& dir) {
        std::unordered_set<uint32_t> out;
        auto d = dir_path(from_be32(dir));
        if (!d) return std::unexpected(d.error());
        auto r = scan(env_->links, dir, dir, [&](std::string_view, std::string_view val) {
            auto f = decode_fields(val, d->bases);
            if (!f) return Result<bool>(corrupt(*env_, env_->links));
            out.insert(f->object);
            return Result<bool>(true);
        });
        if (!r) return std::unexpected(r.error());
        return out;
    }

    // Makes byobject hold the pair (object, directory) under `guest`, or not.
    Result<void> set_reverse(std::string_view guest, std::string_view pair, bool linked) {
        const Table& t = env_->byobject;
        MDB_val k = to_val(guest), v = to_val(pair);
        {
            Cursor cur{*this};
            if (int rc = mdb_cursor_open(txn_, t.dbi, &cur.c); rc != 0)
                return mdb_fail(*env_, "mdb_cursor_open", &t, rc);
            int rc = mdb_cursor_get(cur.c, &k, &v, MDB_GET_BOTH);
            if (rc != 0 && rc != MDB_NOTFOUND) return mdb_fail(*env_, "mdb_cursor_get", &t, rc);
            if ((rc == 0) == linked) return {};
        }
        if (!linked) {
            ++generation_;
            k = to_val(guest);
            v = to_val(pair);
            if (int rc = mdb_del(txn_, t.dbi, &k, &v); rc != 0)
                return mdb_fail(*env_, "mdb_del", &t, rc);
            return {};
        }
        return put_maybe_last(t, guest, pair, MDB_APPENDDUP);
    }

    // Calls f(value) for each duplicate of `key` >= start that begins with prefix, until f
    // returns false or an error. f must not write.
    template <class F>
    Result<void> scan_dups(const Table& t, std::string_view key, std::string_view prefix,
                           std::string_view start, F&& f) {
        Cursor cur{*this};
        if (int rc = mdb_cursor_open(txn_, t.dbi, &cur.c); rc != 0)
            return mdb_fail(*env_, "mdb_cursor_open", &t, rc);
        MDB_val k = to_val(key), v = to_val(start);
        int rc = mdb_cursor_get(cur.c, &k, &v, start.empty() ? MDB_SET_KEY : MDB_GET_BOTH_RANGE);
        for (; rc == 0; rc = mdb_cursor_get(cur.c, &k, &v, MDB_NEXT_DUP)) {
            std::string_view dup = to_view(v);
            if (!dup.starts_with(prefix)) return {};
            auto more = f(dup);
            if (!more) return std::unexpected(more.error());
            if (!*more) return {};
        }
        if (rc == MDB_NOTFOUND) return {};
        return mdb_fail(*env_, "mdb_cursor_get", &t, rc);
    }

    // The first key of t at or after `from`, if any.
    Result<std::optional<std::string>> key_from(const Table& t, std::string_view from) {
        Cursor cur{*this};
        if (int rc = mdb_cursor_open(txn_, t.dbi, &cur.c); rc != 0)
            return mdb_fail(*env_, "mdb_cursor_open", &t, rc);
        MDB_val k = to_val(from), v{};
        int rc = mdb_cursor_get(cur.c, &k, &v, MDB_SET_RANGE);
        if (rc == MDB_NOTFOUND) return std::nullopt;
        if (rc != 0) return mdb_fail(*env_, "mdb_cursor_get", &t, rc);
        return std::string(to_view(k));
    }

    // The caches below serve repeated lookups (a directory's links, an object's links in a
    // batch); a scan of a whole guest would fill them with what it never asks again, so
    // each is emptied when it reaches kCacheEntries: memory stays flat (bench P6).
    static constexpr size_t kCacheEntries = 4096;
    template <class Map, class K, class V>
    static typename Map::mapped_type& remember(Map& m, K&& key, V&& val) {
        if (m.size() >= kCacheEntries) m.clear();
        return m.insert_or_assign(std::forward<K>(key), std::forward<V>(val)).first->second;
    }

    // The next number from the counter `name` in meta (starting at 1).
    Result<uint32_t> allocate(const char* name) {
        auto val = get(env_->meta, name);
        if (!val) return std::unexpected(val.error());
        uint64_t next = 1;
        if (*val) {
            auto v = decode_u64(**val);
            if (!v || *v == 0) return corrupt(*env_, env_->meta);
            next = *v;
        }
        if (next > UINT32_MAX)
            return fail(std::string("allocate(") + env_->dir + "): no " + name + " number left");
        if (auto r = put(env_->meta, name, encode_u64(next + 1)); !r)
            return std::unexpected(r.error());
        return uint32_t(next);
    }

    Result<ObjectEntry> object_entry(uint32_t num) {
        auto val = get(env_->objects, be32(num));
        if (!val) return std::unexpected(val.error());
        if (!*val) return corrupt(*env_, env_->objects);  // a number that something names
        auto e = decode_object(**val);
        if (!e) return corrupt(*env_, env_->objects);
        remember(ids_, num, e->id);
        return *e;
    }

    // The number of object `id`; with create, one is given to an object the index does not
    // know yet (an entry without a record). objids entries hold 4 bytes of the id, so two ids
    // may share one: each candidate's whole id is compared.
    Result<std::optional<uint32_t>> object_number(const ObjectId& id, bool create) {
        if (auto it = numbers_.find(id); it != numbers_.end()) return it->second;
        std::string prefix = id_bytes(id).substr(0, kIdPrefix);
        std::vector<uint32_t> candidates;
        auto r = scan_dups(env_->objids, kObjidsKey, prefix, prefix, [&](std::string_view dup) {
            if (dup.size() != kIdPrefix + kNumBytes)
                return Result<bool>(corrupt(*env_, env_->objids));
            candidates.push_back(from_be32(dup.substr(kIdPrefix)));
            return Result<bool>(true);
        });
        if (!r) return std::unexpected(r.error());
        for (uint32_t num : candidates) {
            auto e = object_entry(num);
            if (!e) return std::unexpected(e.error());
            if (e->id == id) {
                remember(numbers_, id, num);
                return num;
            }
        }
        if (!create) return std::nullopt;
        auto num = allocate("next_object");
        if (!num) return std::unexpected(num.error());
        if (auto p =
                put(env_->objects, be32(*num), encode(ObjectEntry{id, std::nullopt}), MDB_APPEND);
            !p)
            return std::unexpected(p.error());
        if (auto p = put(env_->objids, kObjidsKey, prefix + be32(*num)); !p)
            return std::unexpected(p.error());
        remember(numbers_, id, *num);
        remember(ids_, *num, id);
        return *num;
    }

    Result<ObjectId> object_id(uint32_t num) {
        if (auto it = ids_.find(num); it != ids_.end()) return it->second;
        auto e = object_entry(num);
        if (!e) return std::unexpected(e.error());
        return e->id;
    }

    // The number of guest's directory `dir` ("" for its root, else "/a/b"); 0 when it has
    // none and create is false. Each directory is keyed by its parent's number and its name,
    // so that long paths are not kept whole for every directory: the root's parent is 0, and
    // a new directory's missing ancestors are made too. A new directory's links keep their
    // fields as distances from `bases`.
    Result<uint32_t> dir_number(uint32_t guest, std::string_view dir, bool create,
                                const Bases& bases = {}) {
        std::string whole = be32(guest) + std::string(dir);
        if (auto it = dir_numbers_.find(whole); it != dir_numbers_.end()) return it->second;
        auto num = child_dir(guest, 0, "", create, bases);
        // Component by component: "/a//b" is "a", "", "b" under the root.
        for (size_t pos = 0; num && *num && pos < dir.size();) {
            size_t end = dir.find('/', pos + 1);
            if (end == std::string_view::npos) end = dir.size();
            num = child_dir(guest, *num, dir.substr(pos + 1, end - pos - 1), create, bases);
            pos = end;
        }
        if (!num) return num;
        if (*num) remember(dir_numbers_, std::move(whole), *num);
        return *num;
    }

    // The directory `name` in directory `parent` (0: the root, named ""). dirs holds, per
    // guest, 4 bytes of a hash of (parent, name) and the number: 8 bytes a directory, its
    // name only in dirpaths; a hash shared by two directories is told apart there. New
    // entries wait for the flush, as new links do.
    Result<uint32_t> child_dir(uint32_t guest, uint32_t parent, std::string_view name, bool create,
                               const Bases& bases) {
        std::string key = be32(guest) + be32(parent);
        key += name;
        if (auto it = pending_dirs_.find(key); it != pending_dirs_.end()) return it->second;
        std::string hash = dir_hash(be32(parent), name);
        std::vector<uint32_t> candidates;
        auto r = scan_dups(env_->dirs, be32(guest), hash, hash, [&](std::string_view dup) {
            if (dup.size() != kDirEntry) return Result<bool>(corrupt(*env_, env_->dirs));
            candidates.push_back(from_be32(dup.substr(kNumBytes)));
            return Result<bool>(true);
        });
        if (!r) return std::unexpected(r.error());
        for (uint32_t num : candidates) {
            auto e = dir_entry(num);
            if (!e) return std::unexpected(e.error());
            if (e->guest == guest && e->parent == parent && e->name == name) return num;
        }
        if (!create) return 0;
        auto num = allocate("next_dir");
        if (!num) return std::unexpected(num.error());
        pending_dirs_.emplace(std::move(key), *num);
        pending_dirpaths_.emplace(*num, DirEntry{guest, parent, bases, std::string(name)});
        return *num;
    }

    static std::string dir_hash(std::string_view parent, std::string_view name) {
        std::string both = std::string(parent) + std::string(name);
        return be32(uint32_t(XXH3_64bits(both.data(), both.size()) >> 32));
    }

    // The numbers of the guest's directories, ascending (the order they were made in).
    Result<std::vector<uint32_t>> dirs_of(uint32_t guest) {
        std::vector<uint32_t> out;
        auto r = scan_dups(env_->dirs, be32(guest), "", "", [&](std::string_view dup) {
            if (dup.size() != kDirEntry) return Result<bool>(corrupt(*env_, env_->dirs));
            out.push_back(from_be32(dup.substr(kNumBytes)));
            return Result<bool>(true);
        });
        if (!r) return std::unexpected(r.error());
        std::sort(out.begin(), out.end());
        return out;
    }

    // A directory as dirpaths keeps it: guest, parent number, ctime base (varints), name.
    struct DirEntry {
        uint32_t guest = 0;
        uint32_t parent = 0;
        Bases bases;
        std::string name;
    };

    static std::string encode_dir(const DirEntry& d) {
        Writer w;
        w.var(d.guest);
        w.var(d.parent);
        w.svar(d.bases.ctime);
        w.var(d.bases.ino);
        w.var(d.bases.object);
        w.svar(d.bases.mtime_sec);
        return w.data() + d.name;
    }

    Result<DirEntry> dir_entry(uint32_t num) {
        if (auto it = pending_dirpaths_.find(num); it != pending_dirpaths_.end()) return it->second;
        auto val = get(env_->dirpaths, be32(num));
        if (!val) return std::unexpected(val.error());
        if (!*val) return corrupt(*env_, env_->dirpaths);
        Reader r(**val);
        uint64_t guest = r.var(), parent = r.var();
        Bases bases;
        bases.ctime = r.svar();
        bases.ino = r.var();
        uint64_t object = r.var();
        bases.object = uint32_t(object);
        bases.mtime_sec = r.svar();
        std::string name(r.tail());
        // A parent is made before its children: its number is smaller, so a walk up ends.
        if (!r.ok() || guest > UINT32_MAX || object > UINT32_MAX || parent >= num)
            return corrupt(*env_, env_->dirpaths);
        return DirEntry{uint32_t(guest), uint32_t(parent), bases, std::move(name)};
    }

    // A copy: the cache may be emptied by the next lookup. Walks up to the root (or to a
    // directory in the cache), then builds the path down.
    Result<DirPath> dir_path(uint32_t num) {
        auto d = cached_dir_path(num);
        if (!d) return std::unexpected(d.error());
        return **d;
    }

    // The same, not copied (a path string per link decoded): valid until the next call, which
    // may clear the cache.
    Result<const DirPath*> cached_dir_path(uint32_t num) {
        std::vector<DirEntry> chain;  // num, its parent, ...
        std::string path;
        for (uint32_t n = num;;) {
            if (auto it = dir_paths_.find(n); it != dir_paths_.end()) {
                if (chain.empty()) return &it->second;
                if (it->second.guest != chain.back().guest) return corrupt(*env_, env_->dirpaths);
                path = it->second.path;
                break;
            }
            auto e = dir_entry(n);
            if (!e) return std::unexpected(e.error());
            if (!chain.empty() && e->guest != chain.back().guest)
                return corrupt(*env_, env_->dirpaths);
            chain.push_back(std::move(*e));
            if (chain.back().parent == 0) {
                if (!chain.back().name.empty()) return corrupt(*env_, env_->dirpaths);
                break;  // the root: path ""
            }
            n = chain.back().parent;
        }
        for (auto it = chain.rbegin(); it != chain.rend(); ++it)
            if (it->parent != 0) (path += '/') += it->name;
        return &remember(dir_paths_, num,
                         DirPath{chain.front().guest, std::move(path), chain.front().bases});
    }

    // The links key of (guest, path): directory number + name key. Without create, "" when
    // the guest has no link in that directory; with it, a new directory's ctime base is
    // `ctime_ns`.
    Result<std::string> link_key(uint32_t guest, std::string_view path, bool create,
                                 const Bases& bases = {}) {
        auto [dir, name] = split_path(path);
        auto num = dir_number(guest, dir, create, bases);
        if (!num) return std::unexpected(num.error());
        if (*num == 0) return std::string();
        return be32(*num) + short_key(name, kMaxInlineName);
    }

    // A links entry as a stamp, with what a LinkRecord adds (guest, object number, replica).
    struct Decoded {
        uint32_t guest = 0, object = 0, replica = 0;
        LinkStamp stamp;
    };
    Result<Decoded> decode_entry(std::string_view key, std::string_view val) {
        if (key.size() < kNumBytes) return corrupt(*env_, env_->links);
        auto found = cached_dir_path(from_be32(key));
        if (!found) return std::unexpected(found.error());
        const DirPath* dir = *found;
        auto f = decode_fields(val, dir->bases);
        if (!f) return corrupt(*env_, env_->links);
        Decoded d{dir->guest, f->object, f->replica, {}};
        d.stamp.path.reserve(dir->path.size() + 1 + (f->name ? f->name->size() : key.size()));
        d.stamp.path = dir->path;
        d.stamp.path += '/';
        if (f->name)
            d.stamp.path += *f->name;
        else
            d.stamp.path += key.substr(kNumBytes);
        d.stamp.ino = f->ino;
        d.stamp.size = f->size;
        d.stamp.mtime_ns = f->mtime_ns;
        d.stamp.ctime_ns = f->ctime_ns;
        return d;
    }

    // T: LinkRecord (the object's id looked up too) or LinkStamp.
    template <class T>
    Result<T> decode_as(std::string_view key, std::string_view val, uint32_t* guest) {
        auto d = decode_entry(key, val);
        if (!d) return std::unexpected(d.error());
        *guest = d->guest;
        if constexpr (std::is_same_v<T, LinkStamp>) {
            return std::move(d->stamp);
        } else {
            auto id = object_id(d->object);
            if (!id) return std::unexpected(id.error());
            LinkStamp& s = d->stamp;
            return LinkRecord{d->guest, std::move(s.path), *id,       d->replica, s.ino,
                              s.size,   s.mtime_ns,        s.ctime_ns};
        }
    }

    Result<LinkRecord> decode_link(std::string_view key, std::string_view val) {
        uint32_t guest = 0;
        return decode_as<LinkRecord>(key, val, &guest);
    }

    template <class T>
    Result<std::optional<T>> link_as(uint32_t guest, const std::string& path, const char* what) {
        if (auto r = live(what); !r) return std::unexpected(r.error());
        if (auto r = flush(); !r) return std::unexpected(r.error());
        auto key = link_key(guest, path, false);
        if (!key) return std::unexpected(key.error());
        if (key->empty()) return std::nullopt;  // no link in that directory
        auto val = get(env_->links, *key);
        if (!val) return std::unexpected(val.error());
        if (!*val) return std::nullopt;
        uint32_t owner = 0;
        auto l = decode_as<T>(*key, **val, &owner);
        if (!l) return std::unexpected(l.error());
        if (owner != guest || l->path != path) return corrupt(*env_, env_->links);
        return std::move(*l);
    }

    template <class T>
    Result<void> for_each_of_guest_as(uint32_t guest, const std::function<bool(const T&)>& visit,
                                      const char* what) {
        return scan_links_of_guest(guest, what,
                                   [&](std::string_view key, std::string_view val) -> Result<bool> {
                                       uint32_t owner = 0;
                                       auto l = decode_as<T>(key, val, &owner);
                                       if (!l) return std::unexpected(l.error());
                                       if (owner != guest) return corrupt(*env_, env_->links);
                                       return visit(*l);
                                   });
    }

    // Calls f(key, value) for each link record of the guest, directory by directory (in the
    // order they were made), each directory's links by name, until f returns false or an error.
    template <class F>
    Result<void> scan_links_of_guest(uint32_t guest, const char* what, F&& f) {
        if (auto r = live(what); !r) return r;
        if (auto r = flush(); !r) return r;
        auto dirs = dirs_of(guest);
        if (!dirs) return std::unexpected(dirs.error());
        for (uint32_t dir : *dirs) {
            std::string prefix = be32(dir);
            bool more = true;
            auto r = scan(env_->links, prefix, prefix,
                          [&](std::string_view key, std::string_view val) -> Result<bool> {
                              auto m = f(key, val);
                              if (m) more = *m;
                              return m;
                          });
            if (!r) return r;
            if (!more) return {};
        }
        return {};
    }

    // Calls f(key, value) for each key >= start that begins with prefix, until f returns
    // false or an error.
    template <class F>
    Result<void> scan(const Table& t, std::string_view prefix, std::string_view start, F&& f) {
        Cursor cur{*this};
        if (int rc = mdb_cursor_open(txn_, t.dbi, &cur.c); rc != 0)
            return mdb_fail(*env_, "mdb_cursor_open", &t, rc);
        MDB_val k = to_val(start), v{};
        int rc = mdb_cursor_get(cur.c, &k, &v, start.empty() ? MDB_FIRST : MDB_SET_RANGE);
        std::string last;
        for (;;) {
            if (rc == MDB_NOTFOUND) return {};
            if (rc != 0) return mdb_fail(*env_, "mdb_cursor_get", &t, rc);
            std::string_view key = to_view(k);
            if (!key.starts_with(prefix)) return {};
            uint64_t generation = generation_;
            last.assign(key);
            auto more = f(key, to_view(v));
            if (!txn_)
                return fail("scan(" + env_->dir + ", " + t.name +
                            "): the transaction ended during the iteration");
            if (!more) return std::unexpected(more.error());
            if (!*more) return {};
            if (generation == generation_) {
                rc = mdb_cursor_get(cur.c, &k, &v, MDB_NEXT);
                continue;
            }
            // The visitor wrote: start from a fresh cursor rather than trust one whose
            // pages may have moved under it.
            auto again = reseek_past(cur, t, last, k, v);
            if (!again) return std::unexpected(again.error());
            rc = *again;
        }
    }

    std::shared_ptr<Env> env_;
    MDB_txn* txn_;
    bool write_;
    uint64_t generation_ = 0;  // bumped by every write and by the end of the txn
    // What this transaction has looked up: numbers are never reused, so they stay true
    // until the transaction ends (delete_guest clears the directories it removes).
    std::unordered_map<ObjectId, uint32_t> numbers_;
    std::unordered_map<uint32_t, ObjectId> ids_;
    std::unordered_map<std::string, uint32_t> dir_numbers_;
    std::unordered_map<uint32_t, DirPath> dir_paths_;
    // Held back until the next flush (write transactions only): links whose key was new,
    // the reverse pairs that gained or lost a link, new directories.
    std::map<std::string, std::string> pending_links_;
    std::map<std::string, uint8_t> pending_reverse_;  // guest, object, directory -> marks
    std::map<std::string, uint32_t> pending_dirs_;    // guest + parent + name -> number
    std::map<uint32_t, DirEntry> pending_dirpaths_;
};

class LmdbIndex : public Index {
  public:
    explicit LmdbIndex(std::shared_ptr<Env> env) : env_(std::move(env)) {}

    Result<std::unique_ptr<Txn>> read() override { return begin(true); }
    Result<std::unique_ptr<Txn>> write() override { return begin(false); }
    uint64_t links_deleted() const override { return env_->links_deleted; }

    // XFS keeps several MB allocated past the end of a file that is reopened and grown run
    // after run, as data.mdb is, and `df` counts them until its background scan, minutes
    // later. A truncate to the same size frees them. Inside a write transaction, because a
    // writer growing the file between our fstat and our ftruncate would lose its pages.
    Result<void> give_back_preallocation() override {
        MDB_txn* txn = nullptr;
        if (int rc = mdb_txn_begin(env_->env, nullptr, 0, &txn); rc != 0)
            return mdb_fail(*env_, "mdb_txn_begin", nullptr, rc);
        Result<void> out;
        int fd = -1;
        struct stat st;
        std::string data = env_->dir + "/data.mdb";
        if (int rc = mdb_env_get_fd(env_->env, &fd); rc != 0)
            out = mdb_fail(*env_, "mdb_env_get_fd", nullptr, rc);
        else if (fstat(fd, &st) != 0)
            out = sys_fail("fstat", data);
        else if (st.st_blocks * 512 >
                     (st.st_size + st.st_blksize - 1) / st.st_blksize * st.st_blksize &&
                 ftruncate(fd, st.st_size) != 0)
            out = sys_fail("ftruncate", data);
        mdb_txn_abort(txn);
        return out;
    }

  private:
    Result<std::unique_ptr<Txn>> begin(bool rdonly) {
        MDB_txn* txn = nullptr;
        if (int rc = mdb_txn_begin(env_->env, nullptr, rdonly ? MDB_RDONLY : 0, &txn); rc != 0)
            return mdb_fail(*env_, "mdb_txn_begin", nullptr, rc);
        return std::make_unique<LmdbTxn>(env_, txn, !rdonly);
    }

    std::shared_ptr<Env> env_;
};

// Opens the tables and checks (or, on create, writes) the version. Read-only unless
// creating, so `who` does not wait for a running import's write lock.
Result<void> open_tables(Env& env, bool create) {
    MDB_txn* txn = nullptr;
    if (int rc = mdb_txn_begin(env.env, nullptr, create ? 0 : MDB_RDONLY, &txn); rc != 0)
        return mdb_fail(env, "mdb_txn_begin", nullptr, rc);
    auto abort = [&](std::unexpected<Error> e) {
        mdb_txn_abort(txn);
        return e;
    };
    auto open_table = [&](Table& t) -> Result<void> {
        if (int rc = mdb_dbi_open(txn, t.name, t.flags | (create ? MDB_CREATE : 0), &t.dbi);
            rc != 0)
            return abort(mdb_fail(env, "mdb_dbi_open", &t, rc));
        return {};
    };
    // The version first: an older index may hold a table with other flags, which LMDB
    // would refuse to open before the version could say why.
    if (auto r = open_table(env.meta); !r) return r;
    MDB_val k = to_val("version"), v{};
    int rc = mdb_get(txn, env.meta.dbi, &k, &v);
    if (rc == MDB_NOTFOUND && create) {
        std::string val = encode_u64(kIndexVersion);
        v = to_val(val);
        if (rc = mdb_put(txn, env.meta.dbi, &k, &v, 0); rc != 0)
            return abort(mdb_fail(env, "mdb_put", &env.meta, rc));
    } else if (rc == MDB_NOTFOUND) {
        return abort(fail("open(" + env.dir + "): the index has no version"));
    } else if (rc != 0) {
        return abort(mdb_fail(env, "mdb_get", &env.meta, rc));
    } else {
        auto version = decode_u64(to_view(v));
        if (!version) return abort(corrupt(env, env.meta));
        if (*version != kIndexVersion)
            return abort(fail("open(" + env.dir + "): index version " + std::to_string(*version) +
                              ", this unify knows version " + std::to_string(kIndexVersion) +
                              "; run `unify reindex` to rebuild it"));
    }
    for (Table* t : {&env.guests, &env.objects, &env.objids, &env.dirs, &env.dirpaths, &env.links,
                     &env.byobject})
        if (auto r = open_table(*t); !r) return r;
    // Commit even a read txn: aborting it would close the table handles it opened.
    if (rc = mdb_txn_commit(txn); rc != 0) return mdb_fail(env, "mdb_txn_commit", nullptr, rc);
    return {};
}

// Where this process maps the file with inode `ino`: from /proc/self/maps, whose lines read
// "start-end perms offset dev inode path".
std::optional<std::pair<void*, size_t>> mapping_of(dev_t dev, ino_t ino) {
    FILE* f = fopen("/proc/self/maps", "re");
    if (!f) return std::nullopt;
    std::optional<std::pair<void*, size_t>> found;
    char line[4096];
    while (!found && fgets(line, sizeof line, f)) {
        unsigned long start = 0, end = 0, offset = 0, inode = 0;
        unsigned maj = 0, min = 0;
        char perms[8];
        if (sscanf(line, "%lx-%lx %7s %lx %x:%x %lu", &start, &end, perms, &offset, &maj, &min,
                   &inode) == 7 &&
            inode == ino && maj == major(dev) && min == minor(dev) && offset == 0)
            found = std::pair{reinterpret_cast<void*>(start), size_t(end - start)};
    }
    fclose(f);
    return found;
}

// LMDB reads its pages through a shared mapping and trusts the file to hold every page the
// last commit names: reading one past a truncated end is SIGBUS, not an error code. So the
// file's size is checked against the last page once here, and the mapping is guarded for
// what slips past (a damaged page pointing beyond the end).
Result<void> check_file_size(Env& env) {
    MDB_envinfo info{};
    MDB_stat stat{};
    if (int rc = mdb_env_info(env.env, &info); rc != 0)
        return mdb_fail(env, "mdb_env_info", nullptr, rc);
    if (int rc = mdb_env_stat(env.env, &stat); rc != 0)
        return mdb_fail(env, "mdb_env_stat", nullptr, rc);
    int fd = -1;
    if (int rc = mdb_env_get_fd(env.env, &fd); rc != 0)
        return mdb_fail(env, "mdb_env_get_fd", nullptr, rc);
    std::string data = env.dir + "/data.mdb";
    struct stat st;
    if (fstat(fd, &st) != 0) return sys_fail("fstat", data);
    uint64_t needed = (uint64_t(info.me_last_pgno) + 1) * stat.ms_psize;
    if (uint64_t(st.st_size) < needed)
        return fail("open(" + data + "): the file has " + std::to_string(st.st_size) +
                    " bytes, its last page ends at " + std::to_string(needed) + kReindexHint);
    // LMDB does not say where it mapped the file (me_mapaddr is only set with MDB_FIXEDMAP).
    auto map = mapping_of(st.st_dev, st.st_ino);
    if (!map) return {};
    env.map = map->first;
    guard_mapping(map->first, map->second,
                  "reading " + data + " faulted (a page past the end of the file, or a disk " +
                      "error)" + kReindexHint);
    return {};
}

}  // namespace

Result<std::unique_ptr<Index>> Index::open(const std::string& dir, bool create) {
    if (create) {
        if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) return sys_fail("mkdir", dir);
    } else {
        // LMDB would silently create an empty environment.
        std::string data = dir + "/data.mdb";
        struct stat st;
        if (::stat(data.c_str(), &st) != 0) {
            if (errno == ENOENT || errno == ENOTDIR)
                return fail("index missing: " + data + " does not exist", errno);
            return sys_fail("stat", data);
        }
    }

    auto env = std::make_shared<Env>();
    env->dir = dir;
    if (int rc = mdb_env_create(&env->env); rc != 0) {
        env->env = nullptr;
        return mdb_fail(*env, "mdb_env_create", nullptr, rc);
    }
    if (int rc = mdb_env_set_maxdbs(env->env, 10); rc != 0)
        return mdb_fail(*env, "mdb_env_set_maxdbs", nullptr, rc);
    if (int rc = mdb_env_set_mapsize(env->env, map_size()); rc != 0)
        return mdb_fail(*env, "mdb_env_set_mapsize", nullptr, rc);
    // Read transactions are handed between threads and several may be open in one.
    if (int rc = mdb_env_open(env->env, dir.c_str(), MDB_NOTLS, 0600); rc != 0)
        return mdb_fail(*env, "mdb_env_open", nullptr, rc);
    if (auto r = check_file_size(*env); !r) return std::unexpected(r.error());
    // Reader slots of crashed processes would pin old pages forever.
    int dead = 0;
    if (int rc = mdb_reader_check(env->env, &dead); rc != 0)
        return mdb_fail(*env, "mdb_reader_check", nullptr, rc);
    if (auto r = open_tables(*env, create); !r) return std::unexpected(r.error());
    return std::make_unique<LmdbIndex>(std::move(env));
}

}  // namespace unify
