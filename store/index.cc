// The index is one LMDB environment with five named tables (layout in index.h; "meta" holds
// the format version and the next guest id). Records are a small little-endian binary
// format behind a leading format byte, so a later format can be told from this one. Both
// link tables put the 4-byte big-endian guest id first, so one guest's entries are one
// contiguous range: a new guest's import appends at the end of each tree instead of
// dirtying leaf pages all over a byobject table that holds every guest's links (which made
// import time grow with the number of guests). The links of one object are then one range
// per guest; for_each_link_of_object hops between them with cursor seeks.
// Iteration keeps a cursor open only while the visitor leaves the transaction alone; a
// visitor that writes makes the scan re-seek past the last key it saw, so gc and import
// can delete what they are visiting.
#include "store/index.h"

#include <errno.h>
#include <lmdb.h>
#include <openssl/evp.h>
#include <sys/stat.h>

#include <cstdlib>
#include <cstring>
#include <string_view>
#include <utility>

#include "store/fault.h"

namespace unify {
namespace {

constexpr uint8_t kRecordFormat = 1;
// Guest records: format 2 adds package_dbs and config_files, and signs every rule.
constexpr uint8_t kGuestFormat = 2;
// Version 2: byobject keys start with the guest id (version 1 started them with the object
// id). The records are unchanged, but a version 1 index must be rebuilt.
constexpr uint32_t kIndexVersion = 2;
// LMDB keys are at most 511 bytes; a byobject key is 4 + 32 + path.
constexpr size_t kMaxInlinePath = 440;
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
};

// Shared by the Index and every Txn, so a transaction may outlive the Index object.
struct Env {
    MDB_env* env = nullptr;
    std::string dir;
    Table guests{0, "guests"};
    Table objects{0, "objects"};
    Table links{0, "links"};
    Table byobject{0, "byobject"};
    Table meta{0, "meta"};

    Env() = default;
    Env(const Env&) = delete;
    Env& operator=(const Env&) = delete;
    ~Env() {
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

constexpr size_t kGuestBytes = 4;
constexpr size_t kIdBytes = 32;

// The byobject key of a link: its guest id, then the object id, then the rest of the link
// key (the path part).
std::string byobject_key(const ObjectId& id, std::string_view link_key) {
    std::string key(link_key.substr(0, kGuestBytes));
    key += id_bytes(id);
    key += link_key.substr(kGuestBytes);
    return key;
}

class Writer {
  public:
    explicit Writer(uint8_t format) { u8(format); }
    void u8(uint8_t v) { buf_.push_back(char(v)); }
    void u32(uint32_t v) {
        for (int i = 0; i < 4; ++i) buf_.push_back(char(v >> (8 * i)));
    }
    void u64(uint64_t v) {
        for (int i = 0; i < 8; ++i) buf_.push_back(char(v >> (8 * i)));
    }
    void i64(int64_t v) { u64(uint64_t(v)); }
    void bytes(const uint8_t* p, size_t n) { buf_.append(reinterpret_cast<const char*>(p), n); }
    void str(std::string_view s) {
        u32(uint32_t(s.size()));
        buf_.append(s);
    }
    const std::string& data() const { return buf_; }

  private:
    std::string buf_;
};

// Failure is sticky: a truncated record reads as zeros and ok() tells at the end.
class Reader {
  public:
    explicit Reader(std::string_view data) : data_(data) {}
    uint8_t u8() { return uint8_t(take(1) ? data_[pos_ - 1] : 0); }
    uint32_t u32() { return uint32_t(le(4)); }
    uint64_t u64() { return le(8); }
    int64_t i64() { return int64_t(le(8)); }
    void bytes(uint8_t* out, size_t n) {
        if (take(n)) std::memcpy(out, data_.data() + pos_ - n, n);
    }
    std::string str() {
        uint32_t n = u32();
        if (!take(n)) return {};
        return std::string(data_.substr(pos_ - n, n));
    }
    size_t left() const { return data_.size() - pos_; }
    // Trailing bytes are corruption too: a longer record would carry a new format byte.
    bool ok() const { return ok_ && pos_ == data_.size(); }

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
    return w.data();
}

std::optional<GuestRecord> decode_guest(std::string_view data) {
    Reader r(data);
    uint8_t format = r.u8();
    if (format != kRecordFormat && format != kGuestFormat) return std::nullopt;
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
    if (format == kGuestFormat) {
        g.package_dbs = r.str();
        g.config_files = r.u64();
    }
    if (!r.ok()) return std::nullopt;
    return g;
}

std::string encode(const ObjectRecord& o) {
    Writer w(kRecordFormat);
    w.u64(o.size);
    w.u64(o.xxh3);
    w.bytes(o.content.data(), o.content.size());
    w.i64(o.created);
    w.u32(o.replicas);
    return w.data();
}

std::optional<ObjectRecord> decode_object(std::string_view data) {
    Reader r(data);
    if (r.u8() != kRecordFormat) return std::nullopt;
    ObjectRecord o;
    o.size = r.u64();
    o.xxh3 = r.u64();
    r.bytes(o.content.data(), o.content.size());
    o.created = r.i64();
    o.replicas = r.u32();
    if (!r.ok()) return std::nullopt;
    return o;
}

std::string encode(const LinkRecord& l) {
    Writer w(kRecordFormat);
    w.u32(l.guest);
    w.str(l.path);
    w.bytes(l.id.bytes.data(), l.id.bytes.size());
    w.u32(l.replica);
    w.u64(l.ino);
    w.u64(l.size);
    w.i64(l.mtime_ns);
    w.i64(l.ctime_ns);
    return w.data();
}

std::optional<LinkRecord> decode_link(std::string_view data) {
    Reader r(data);
    if (r.u8() != kRecordFormat) return std::nullopt;
    LinkRecord l;
    l.guest = r.u32();
    l.path = r.str();
    r.bytes(l.id.bytes.data(), l.id.bytes.size());
    l.replica = r.u32();
    l.ino = r.u64();
    l.size = r.u64();
    l.mtime_ns = r.i64();
    l.ctime_ns = r.i64();
    if (!r.ok()) return std::nullopt;
    return l;
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

// Paths never hold a NUL, so the 0x00 marker cannot collide with a short path.
Result<std::string> link_key(const Env& env, uint32_t guest, const std::string& path) {
    std::string key = be32(guest);
    if (path.size() <= kMaxInlinePath) return key + path;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (EVP_Digest(path.data(), path.size(), md, &len, EVP_sha256(), nullptr) != 1 || len != 32)
        return fail("EVP_Digest(" + env.dir + "): SHA-256 of a long path failed");
    key.push_back('\0');
    key.append(reinterpret_cast<const char*>(md), len);
    return key;
}

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
        auto val = get(env_->objects, id_bytes(id));
        if (!val) return std::unexpected(val.error());
        if (!*val) return std::nullopt;
        auto o = decode_object(**val);
        if (!o) return corrupt(*env_, env_->objects);
        return o;
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
        int odd = hex_prefix.size() % 2 ? nibble(hex_prefix.back()) : -1;
        // Seeking to the odd nibble's first key skips the keys below it in the range.
        std::string start = whole;
        if (odd >= 0) start.push_back(char(odd << 4));
        auto r = scan(env_->objects, whole, start, [&](std::string_view key, std::string_view) {
            if (key.size() != 32) return Result<bool>(corrupt(*env_, env_->objects));
            if (odd >= 0 && (uint8_t(key[whole.size()]) >> 4) != odd) return Result<bool>(false);
            ObjectId id;
            std::memcpy(id.bytes.data(), key.data(), 32);
            out.push_back(id);
            return Result<bool>(true);
        });
        if (!r) return std::unexpected(r.error());
        return out;
    }

    Result<void> for_each_object(const ObjectVisitor& visit) override {
        if (auto r = live("for_each_object"); !r) return r;
        return scan(env_->objects, "", "", [&](std::string_view key, std::string_view val) {
            auto o = decode_object(val);
            if (key.size() != 32 || !o) return Result<bool>(corrupt(*env_, env_->objects));
            ObjectId id;
            std::memcpy(id.bytes.data(), key.data(), 32);
            return Result<bool>(visit(id, *o));
        });
    }

    Result<std::optional<LinkRecord>> link(uint32_t guest, const std::string& path) override {
        if (auto r = live("link"); !r) return std::unexpected(r.error());
        auto key = link_key(*env_, guest, path);
        if (!key) return std::unexpected(key.error());
        auto val = get(env_->links, *key);
        if (!val) return std::unexpected(val.error());
        if (!*val) return std::nullopt;
        auto l = decode_link(**val);
        if (!l || l->guest != guest || l->path != path) return corrupt(*env_, env_->links);
        return l;
    }

    Result<void> for_each_link_of_guest(uint32_t guest, const LinkVisitor& visit) override {
        if (auto r = live("for_each_link_of_guest"); !r) return r;
        std::string prefix = be32(guest);
        return scan(env_->links, prefix, prefix, [&](std::string_view, std::string_view val) {
            auto l = decode_link(val);
            if (!l || l->guest != guest) return Result<bool>(corrupt(*env_, env_->links));
            return Result<bool>(visit(*l));
        });
    }

    Result<void> for_each_link_of_object(const ObjectId& id, const LinkVisitor& visit) override {
        if (auto r = live("for_each_link_of_object"); !r) return r;
        const Table& t = env_->byobject;
        const std::string idb = id_bytes(id);
        Cursor cur{*this};
        if (int rc = mdb_cursor_open(txn_, t.dbi, &cur.c); rc != 0)
            return mdb_fail(*env_, "mdb_cursor_open", &t, rc);
        // The object's entries are one range per guest: seek to (guest, id) and hop past any
        // key of another object, from guest 0 up. Each seek lands strictly after the key that
        // caused it, so the walk ends; it costs about two seeks per guest, without reading
        // the guests table (which a damaged index may not match).
        std::string target = be32(0) + idb;
        MDB_val k = to_val(target), v{};
        int rc = mdb_cursor_get(cur.c, &k, &v, MDB_SET_RANGE);
        std::string last;
        for (;;) {
            if (rc == MDB_NOTFOUND) return {};
            if (rc != 0) return mdb_fail(*env_, "mdb_cursor_get", &t, rc);
            std::string_view key = to_view(k);
            // A link key has at least '/' after the guest id.
            if (key.size() <= kGuestBytes + kIdBytes) return corrupt(*env_, t);
            std::string_view key_id = key.substr(kGuestBytes, kIdBytes);
            if (key_id != idb) {
                uint32_t g = from_be32(key);
                if (key_id > idb) {
                    if (g == UINT32_MAX) return {};
                    ++g;
                }
                target = be32(g) + idb;
                k = to_val(target);
                rc = mdb_cursor_get(cur.c, &k, &v, MDB_SET_RANGE);
                continue;
            }
            std::string link_key(key.substr(0, kGuestBytes));
            link_key += key.substr(kGuestBytes + kIdBytes);
            last.assign(key);
            auto val = get(env_->links, link_key);
            if (!val) return std::unexpected(val.error());
            // A reverse entry without its link (or naming another object) breaks the
            // invariant put_link and delete_link keep inside one transaction.
            if (!*val) return corrupt(*env_, t);
            auto l = decode_link(**val);
            if (!l) return corrupt(*env_, env_->links);
            if (l->id != id) return corrupt(*env_, t);
            uint64_t generation = generation_;
            bool more = visit(*l);
            if (!txn_)
                return fail("for_each_link_of_object(" + env_->dir +
                            "): the transaction ended during the iteration");
            if (!more) return {};
            if (generation == generation_) {
                rc = mdb_cursor_get(cur.c, &k, &v, MDB_NEXT);
                continue;
            }
            // The visitor wrote: as in scan, re-seek past the last key from a fresh cursor.
            auto again = reseek_past(cur, t, last, k, v);
            if (!again) return std::unexpected(again.error());
            rc = *again;
        }
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

        auto next_val = get(env_->meta, "next_guest_id");
        if (!next_val) return std::unexpected(next_val.error());
        uint64_t next = 1;
        if (*next_val) {
            auto v = decode_u64(**next_val);
            if (!v) return corrupt(*env_, env_->meta);
            next = *v;
        }

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
        if (auto r = put(env_->guests, g.name, encode(rec)); !r) return r;
        if (auto r = put(env_->guests, id_key(id), g.name); !r) return r;
        g.id = id;
        return {};
    }

    Result<void> delete_guest(uint32_t id) override {
        if (auto r = writable("delete_guest"); !r) return r;
        // Collect first: deleting under an open cursor is where LMDB wrappers go wrong.
        std::vector<std::pair<std::string, ObjectId>> doomed;
        std::string prefix = be32(id);
        auto scanned =
            scan(env_->links, prefix, prefix, [&](std::string_view key, std::string_view val) {
                auto l = decode_link(val);
                if (!l) return Result<bool>(corrupt(*env_, env_->links));
                doomed.emplace_back(std::string(key), l->id);
                return Result<bool>(true);
            });
        if (!scanned) return scanned;
        for (const auto& [key, obj] : doomed) {
            if (auto r = del(env_->links, key); !r) return std::unexpected(r.error());
            if (auto r = del(env_->byobject, byobject_key(obj, key)); !r)
                return std::unexpected(r.error());
        }

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
        return put(env_->objects, id_bytes(id), encode(rec));
    }

    Result<void> delete_object(const ObjectId& id) override {
        if (auto r = writable("delete_object"); !r) return r;
        if (auto r = del(env_->objects, id_bytes(id)); !r) return std::unexpected(r.error());
        return {};
    }

    Result<void> put_link(const LinkRecord& link) override {
        if (auto r = writable("put_link"); !r) return r;
        if (!link.path.starts_with('/'))
            return fail("put_link(" + env_->dir + "): path '" + link.path +
                        "' does not start with '/'");
        auto key = link_key(*env_, link.guest, link.path);
        if (!key) return std::unexpected(key.error());
        auto old_val = get(env_->links, *key);
        if (!old_val) return std::unexpected(old_val.error());
        if (*old_val) {
            auto old = decode_link(**old_val);
            if (!old) return corrupt(*env_, env_->links);
            if (old->id != link.id) {
                if (auto r = del(env_->byobject, byobject_key(old->id, *key)); !r)
                    return std::unexpected(r.error());
            }
        }
        if (auto r = put(env_->links, *key, encode(link)); !r) return r;
        return put(env_->byobject, byobject_key(link.id, *key), "");
    }

    Result<void> delete_link(uint32_t guest, const std::string& path) override {
        if (auto r = writable("delete_link"); !r) return r;
        auto key = link_key(*env_, guest, path);
        if (!key) return std::unexpected(key.error());
        auto val = get(env_->links, *key);
        if (!val) return std::unexpected(val.error());
        if (!*val) return {};
        auto l = decode_link(**val);
        if (!l) return corrupt(*env_, env_->links);
        if (auto r = del(env_->links, *key); !r) return std::unexpected(r.error());
        if (auto r = del(env_->byobject, byobject_key(l->id, *key)); !r)
            return std::unexpected(r.error());
        return {};
    }

    Result<void> commit() override {
        if (auto r = live("commit"); !r) return r;
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

    Result<void> put(const Table& t, std::string_view key, std::string_view val) {
        ++generation_;
        MDB_val k = to_val(key), v = to_val(val);
        if (int rc = mdb_put(txn_, t.dbi, &k, &v, 0); rc != 0)
            return mdb_fail(*env_, "mdb_put", &t, rc);
        return {};
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
};

class LmdbIndex : public Index {
  public:
    explicit LmdbIndex(std::shared_ptr<Env> env) : env_(std::move(env)) {}

    Result<std::unique_ptr<Txn>> read() override { return begin(true); }
    Result<std::unique_ptr<Txn>> write() override { return begin(false); }

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
    for (Table* t : {&env.guests, &env.objects, &env.links, &env.byobject, &env.meta}) {
        if (int rc = mdb_dbi_open(txn, t->name, create ? MDB_CREATE : 0, &t->dbi); rc != 0)
            return abort(mdb_fail(env, "mdb_dbi_open", t, rc));
    }
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
    // Commit even a read txn: aborting it would close the table handles it opened.
    if (rc = mdb_txn_commit(txn); rc != 0) return mdb_fail(env, "mdb_txn_commit", nullptr, rc);
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
    if (int rc = mdb_env_set_maxdbs(env->env, 8); rc != 0)
        return mdb_fail(*env, "mdb_env_set_maxdbs", nullptr, rc);
    if (int rc = mdb_env_set_mapsize(env->env, map_size()); rc != 0)
        return mdb_fail(*env, "mdb_env_set_mapsize", nullptr, rc);
    // Read transactions are handed between threads and several may be open in one.
    if (int rc = mdb_env_open(env->env, dir.c_str(), MDB_NOTLS, 0600); rc != 0)
        return mdb_fail(*env, "mdb_env_open", nullptr, rc);
    // Reader slots of crashed processes would pin old pages forever.
    int dead = 0;
    if (int rc = mdb_reader_check(env->env, &dead); rc != 0)
        return mdb_fail(*env, "mdb_reader_check", nullptr, rc);
    if (auto r = open_tables(*env, create); !r) return std::unexpected(r.error());
    return std::make_unique<LmdbIndex>(std::move(env));
}

}  // namespace unify
