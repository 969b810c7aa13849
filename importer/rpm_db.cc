// rpm: the configuration files are those marked %config (RPMFILE_CONFIG in RPMTAG_FILEFLAGS).
// Modern rpm keeps its database in SQLite, rpmdb.sqlite in usr/lib/sysimage/rpm (Fedora,
// where var/lib/rpm is a symlink to it) or var/lib/rpm; table Packages(hnum, blob) holds one
// rpm header per installed package. The host's rpm binary is not needed: the header format
// is read here.
//
// SQLite opens files by path, creates -shm and lock files beside them and may write to
// them, so it never sees the guest's files: rpmdb.sqlite and its -wal are copied through
// open_beneath fds into a private 0700 temporary directory, and SQLite opens that copy
// (defensive mode, no triggers or views, untrusted schema).
//
// A header blob, as rpmdb stores it: be32 il (index entries), be32 dl (data bytes), il
// entries of be32 {tag, type, offset, count}, then dl bytes of data; offsets are relative to
// the data. Tags read: NAME 1000 (string), FILEFLAGS 1037 (int32[]), BASENAMES 1117,
// DIRNAMES 1118 (string[]), DIRINDEXES 1116 (int32[]); or OLDFILENAMES 1027 (string[]) in
// headers that predate compressed file names. Every offset and count is bounds-checked.
#include <dirent.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <unistd.h>

#include <functional>
#include <map>
#include <set>

#include "importer/package_db.h"
#include "importer/package_files.h"
#include "store/sys.h"

namespace unify {

namespace {

constexpr uint32_t kTagName = 1000, kTagOldFilenames = 1027, kTagFileFlags = 1037,
                   kTagDirIndexes = 1116, kTagBasenames = 1117, kTagDirNames = 1118;
constexpr uint32_t kTypeInt32 = 4, kTypeString = 6, kTypeStringArray = 8;
constexpr uint32_t kFileConfig = 1;                  // RPMFILE_CONFIG
constexpr uint64_t kMaxDbBytes = uint64_t(1) << 30;  // a larger rpmdb is not believed

uint32_t be32(const uint8_t* p) {
    return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | uint32_t(p[3]);
}

struct Entry {
    uint32_t type, offset, count;
};

class Header {
  public:
    Header(const uint8_t* data, size_t dl, std::map<uint32_t, Entry> entries)
        : data_(data), dl_(dl), entries_(std::move(entries)) {}

    const Entry* find(uint32_t tag) const {
        auto it = entries_.find(tag);
        return it == entries_.end() ? nullptr : &it->second;
    }

    Result<std::vector<std::string>> strings(uint32_t tag, uint32_t type) const {
        const Entry* e = find(tag);
        if (!e) return std::vector<std::string>();
        if (e->type != type) return bad(tag, "has type " + std::to_string(e->type));
        std::vector<std::string> out;
        size_t pos = e->offset;
        uint32_t count = type == kTypeString ? 1 : e->count;
        if (count > dl_) return bad(tag, "has more strings than the header has bytes");
        out.reserve(count);
        for (uint32_t k = 0; k < count; ++k) {
            if (pos >= dl_) return bad(tag, "runs past the end of the header");
            const void* nul = memchr(data_ + pos, 0, dl_ - pos);
            if (!nul) return bad(tag, "has a string without its terminating NUL");
            size_t len = static_cast<const uint8_t*>(nul) - (data_ + pos);
            out.emplace_back(reinterpret_cast<const char*>(data_ + pos), len);
            pos += len + 1;
        }
        return out;
    }

    Result<std::vector<uint32_t>> ints(uint32_t tag) const {
        const Entry* e = find(tag);
        if (!e) return std::vector<uint32_t>();
        if (e->type != kTypeInt32) return bad(tag, "has type " + std::to_string(e->type));
        if (uint64_t(e->offset) + uint64_t(e->count) * 4 > dl_)
            return bad(tag, "runs past the end of the header");
        std::vector<uint32_t> out(e->count);
        for (uint32_t k = 0; k < e->count; ++k) out[k] = be32(data_ + e->offset + 4 * size_t(k));
        return out;
    }

    static std::unexpected<Error> bad(uint32_t tag, const std::string& what) {
        return fail("rpm header: tag " + std::to_string(tag) + " " + what);
    }

  private:
    const uint8_t* data_;
    size_t dl_;
    std::map<uint32_t, Entry> entries_;
};

// A private directory for the copy of an rpmdb; removed with everything in it.
class ScratchDir {
  public:
    ~ScratchDir() {
        if (path_.empty()) return;
        if (DIR* d = opendir(path_.c_str())) {
            while (dirent* e = readdir(d)) {
                std::string n = e->d_name;
                if (n != "." && n != "..") unlinkat(dirfd(d), n.c_str(), 0);
            }
            closedir(d);
        }
        rmdir(path_.c_str());
    }
    Result<void> make() {
        const char* tmp = getenv("TMPDIR");
        std::string tmpl = std::string(tmp && *tmp == '/' ? tmp : "/tmp") + "/unify-rpmdb-XXXXXX";
        if (!mkdtemp(tmpl.data())) return sys_fail("mkdtemp", tmpl);
        path_ = tmpl;
        return {};
    }
    const std::string& path() const { return path_; }

  private:
    std::string path_;
};

// Copies guest file `name` (in dir_fd) to dest; false if it does not exist.
Result<bool> copy_out(int dir_fd, const std::string& name, const std::string& shown,
                      const std::string& dest) {
    // Never open()s a FIFO or device planted here (store/sys.h).
    auto in = open_beneath_regular(dir_fd, name, shown);
    if (!in) {
        if (in.error().err == ENOENT) return false;
        if (in.error().err == ENXIO) return fail(shown + " is not a regular file");
        return std::unexpected(in.error());
    }
    auto st = stat_fd(in->get(), shown);
    if (!st) return std::unexpected(st.error());
    if (!st->is_reg()) return fail(shown + " is not a regular file");
    int out_fd = open(dest.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (out_fd < 0) return sys_fail("open", dest);
    Fd out(out_fd);
    uint64_t total = 0;
    char buf[1 << 16];
    for (;;) {
        ssize_t n = read(in->get(), buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR) continue;
            return sys_fail("read", shown);
        }
        if (n == 0) break;
        total += uint64_t(n);
        if (total > kMaxDbBytes)
            return fail(shown + " is larger than " + std::to_string(kMaxDbBytes) +
                        " bytes; not read as an rpm database");
        if (auto w = write_all(out.get(), buf, size_t(n), dest); !w)
            return std::unexpected(w.error());
    }
    return true;
}

struct Sqlite {
    sqlite3* db = nullptr;
    sqlite3_stmt* stmt = nullptr;
    ~Sqlite() {
        sqlite3_finalize(stmt);
        sqlite3_close(db);
    }
};

// Calls visit with every package header of rpmdb.sqlite in the guest directory dir_fd, until
// it returns false.
using HeaderVisitor = std::function<Result<bool>(const RpmHeaderConfig&)>;
Result<void> read_sqlite(int dir_fd, const std::string& dir_shown, const HeaderVisitor& visit) {
    std::string shown = join_path(dir_shown, "rpmdb.sqlite");
    ScratchDir scratch;
    if (auto r = scratch.make(); !r) return r;
    std::string copy = scratch.path() + "/rpmdb.sqlite";
    auto main_db = copy_out(dir_fd, "rpmdb.sqlite", shown, copy);
    if (!main_db) return std::unexpected(main_db.error());
    if (!*main_db) return fail(shown + " vanished while it was read");
    // Committed transactions not yet checkpointed live in the -wal file.
    auto wal = copy_out(dir_fd, "rpmdb.sqlite-wal", shown + "-wal", copy + "-wal");
    if (!wal) return std::unexpected(wal.error());

    Sqlite s;
    auto sql_fail = [&](const std::string& what) {
        return fail("sqlite " + what + " (" + shown +
                    "): " + (s.db ? sqlite3_errmsg(s.db) : "out of memory"));
    };
    if (sqlite3_open_v2(copy.c_str(), &s.db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
                        nullptr) != SQLITE_OK)
        return sql_fail("open");
    sqlite3_db_config(s.db, SQLITE_DBCONFIG_DEFENSIVE, 1, nullptr);
    sqlite3_db_config(s.db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, nullptr);
    sqlite3_db_config(s.db, SQLITE_DBCONFIG_ENABLE_TRIGGER, 0, nullptr);
    sqlite3_db_config(s.db, SQLITE_DBCONFIG_ENABLE_VIEW, 0, nullptr);
    if (sqlite3_prepare_v2(s.db, "SELECT hnum, blob FROM Packages", -1, &s.stmt, nullptr) !=
        SQLITE_OK)
        return sql_fail("SELECT FROM Packages");
    for (;;) {
        int rc = sqlite3_step(s.stmt);
        if (rc == SQLITE_DONE) break;
        if (rc != SQLITE_ROW) return sql_fail("reading Packages");
        int64_t hnum = sqlite3_column_int64(s.stmt, 0);
        const void* blob = sqlite3_column_blob(s.stmt, 1);
        int size = sqlite3_column_bytes(s.stmt, 1);
        auto h = parse_rpm_header(static_cast<const uint8_t*>(blob), size_t(size < 0 ? 0 : size));
        if (!h)
            return std::unexpected(
                context(h.error(), shown + ": package record " + std::to_string(hnum)));
        auto more = visit(*h);
        if (!more) return std::unexpected(more.error());
        if (!*more) break;
    }
    return {};
}

// Reads every rpmdb.sqlite of the guest (usr/lib/sysimage/rpm, var/lib/rpm: often one
// through a symlink) with visit; false when there is none. Databases found but not read go
// to `warnings`.
Result<bool> for_each_rpm_header(int root_fd, const std::string& root_shown,
                                 GuestResolver& resolver, std::vector<std::string>& warnings,
                                 const HeaderVisitor& visit) {
    bool found = false;
    std::set<std::string> seen;
    for (const char* where : {"/usr/lib/sysimage/rpm", "/var/lib/rpm"}) {
        auto dir = resolver.resolve_dir(where);
        if (!dir) return std::unexpected(dir.error());
        if (*dir == "/" || !seen.insert(*dir).second) continue;
        std::string rel = dir->substr(1), shown = join_path(root_shown, rel);
        auto fd = open_beneath(root_fd, rel, O_RDONLY | O_DIRECTORY, shown);
        if (!fd) {
            int err = fd.error().err;
            if (err == ENOENT || err == ENOTDIR) continue;
            if (err == ELOOP) {
                warnings.push_back("rpm database directory " + shown +
                                   " is reached through too many symlinks; not read");
                continue;
            }
            return std::unexpected(fd.error());
        }
        auto has = [&](const char* name) -> Result<bool> {
            auto st = stat_if_exists(fd->get(), name, join_path(shown, name));
            if (!st) return std::unexpected(st.error());
            return st->has_value();
        };
        auto sqlite = has("rpmdb.sqlite");
        if (!sqlite) return std::unexpected(sqlite.error());
        if (*sqlite) {
            if (auto r = read_sqlite(fd->get(), shown, visit); !r)
                return std::unexpected(r.error());
            found = true;
            continue;
        }
        auto ndb = has("Packages.db");
        if (!ndb) return std::unexpected(ndb.error());
        auto bdb = has("Packages");
        if (!bdb) return std::unexpected(bdb.error());
        if (*ndb || *bdb)
            warnings.push_back(
                std::string(*ndb ? "rpm ndb database" : "rpm Berkeley DB") + " not supported (" +
                join_path(shown, *ndb ? "Packages.db" : "Packages") +
                "): this guest's %config files are not known, so only the default and user "
                "rules keep them private; rebuilding the database as SQLite (rpm 4.16 or "
                "later) lets unify read it");
    }
    return found;
}

}  // namespace

Result<RpmHeaderConfig> parse_rpm_header(const uint8_t* blob, size_t size) {
    if (!blob || size < 8) return fail("rpm header: shorter than its 8-byte preamble");
    uint32_t il = be32(blob), dl = be32(blob + 4);
    uint64_t need = 8 + uint64_t(il) * 16 + dl;
    if (il == 0 || need > size)
        return fail("rpm header: " + std::to_string(il) + " entries and " + std::to_string(dl) +
                    " data bytes do not fit in " + std::to_string(size) + " bytes");
    const uint8_t* data = blob + 8 + size_t(il) * 16;
    std::map<uint32_t, Entry> entries;
    for (uint32_t k = 0; k < il; ++k) {
        const uint8_t* p = blob + 8 + size_t(k) * 16;
        Entry e{be32(p + 4), be32(p + 8), be32(p + 12)};
        if (e.offset > dl) return Header::bad(be32(p), "has an offset past the data");
        entries[be32(p)] = e;  // a later entry for a tag replaces an earlier one, as in rpm
    }
    Header h(data, dl, std::move(entries));
    RpmHeaderConfig out;
    auto name = h.strings(kTagName, kTypeString);
    if (!name) return std::unexpected(name.error());
    if (!name->empty()) out.name = name->front();
    auto flags = h.ints(kTagFileFlags);
    if (!flags) return std::unexpected(flags.error());
    std::vector<std::string> paths;
    if (h.find(kTagBasenames)) {
        auto base = h.strings(kTagBasenames, kTypeStringArray);
        if (!base) return std::unexpected(base.error());
        auto dirs = h.strings(kTagDirNames, kTypeStringArray);
        if (!dirs) return std::unexpected(dirs.error());
        auto idx = h.ints(kTagDirIndexes);
        if (!idx) return std::unexpected(idx.error());
        if (idx->size() != base->size())
            return Header::bad(kTagDirIndexes, "does not have one entry per file");
        for (size_t k = 0; k < base->size(); ++k) {
            if ((*idx)[k] >= dirs->size()) return Header::bad(kTagDirIndexes, "is out of range");
            paths.push_back((*dirs)[(*idx)[k]] + (*base)[k]);
        }
    } else {
        auto old = h.strings(kTagOldFilenames, kTypeStringArray);
        if (!old) return std::unexpected(old.error());
        paths = std::move(*old);
    }
    if (paths.empty()) return out;
    if (flags->size() != paths.size())
        return Header::bad(kTagFileFlags, "does not have one entry per file");
    for (size_t k = 0; k < paths.size(); ++k)
        if ((*flags)[k] & kFileConfig) out.config_files.push_back(paths[k]);
    out.files = std::move(paths);
    return out;
}

Result<bool> read_rpm_config(int root_fd, const std::string& root_shown, GuestResolver& resolver,
                             PackageConfig& out) {
    return for_each_rpm_header(root_fd, root_shown, resolver, out.warnings,
                               [&](const RpmHeaderConfig& h) -> Result<bool> {
                                   for (const auto& path : h.config_files) {
                                       if (path.empty() || path[0] != '/') continue;
                                       auto canon = resolver.resolve(path);
                                       if (!canon) return std::unexpected(canon.error());
                                       out.add(*canon, PackageDb::rpm, h.name);
                                   }
                                   return true;
                               });
}

Result<std::optional<std::vector<std::string>>> read_rpm_files(int root_fd,
                                                               const std::string& root_shown,
                                                               GuestResolver& resolver,
                                                               const std::string& package) {
    std::optional<std::vector<std::string>> out;
    std::vector<std::string> warnings;
    auto r = for_each_rpm_header(root_fd, root_shown, resolver, warnings,
                                 [&](const RpmHeaderConfig& h) -> Result<bool> {
                                     if (h.name != package) return true;
                                     if (!out) out.emplace();
                                     out->insert(out->end(), h.files.begin(), h.files.end());
                                     return true;
                                 });
    if (!r) return std::unexpected(r.error());
    if (!out && !warnings.empty()) return fail(warnings.front());
    return out;
}

}  // namespace unify
