#include "store/pool.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <charconv>
#include <cstdio>
#include <sstream>

#include "store/fresh_file.h"
#include "store/hasher.h"
#include "store/identify.h"

namespace unify {

namespace {

constexpr const char* kConf = "pool.conf";

Result<std::string> read_small_file(int dirfd, const char* name, const std::string& shown) {
    int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) return sys_fail("open", shown);
    Fd f(fd);
    std::string s;
    char buf[4096];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return sys_fail("read", shown);
        if (n == 0) break;
        s.append(buf, size_t(n));
        if (s.size() > 65536) return fail(shown + ": unexpectedly large");
    }
    return s;
}

Result<PoolSettings> parse_conf(const std::string& text, const std::string& shown) {
    PoolSettings s;
    bool have_protect = false, have_token = false;
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
        if (line.empty() || line[0] == '#') continue;
        auto eq = line.find('=');
        if (eq == std::string::npos) return fail(shown + ": malformed line '" + line + "'");
        std::string k = line.substr(0, eq), v = line.substr(eq + 1);
        if (k == "version" && v != "1")
            return fail(shown + ": pool format version " + v + " is not supported (expected 1)");
        if (k == "protect") {
            auto m = parse_protect_mode(v);
            if (!m) return fail(shown + ": unknown protect mode '" + v + "'");
            s.protect = *m;
            have_protect = true;
        } else if (k == "share") {
            auto m = parse_share_mode(v);
            if (!m) return fail(shown + ": unknown share mode '" + v + "'");
            s.share = *m;
        } else if (k == "ignore_mtime") {
            s.ignore_mtime = v == "1";
        } else if (k == "token") {
            s.token = v;
            have_token = !v.empty();
        }
    }
    if (!have_protect || !have_token) return fail(shown + ": missing protect= or token=");
    return s;
}

}  // namespace

Result<void> Pool::create(const std::string& path, const PoolSettings& in) {
    PoolSettings settings = in;
    if (settings.token.empty()) settings.token = random_hex(8);
    if (mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) return sys_fail("mkdir", path);
    auto dir = open_dir_path(path);
    if (!dir) return std::unexpected(dir.error());
    auto entries = read_dir(dir->get(), path);
    if (!entries) return std::unexpected(entries.error());
    if (!entries->empty())
        return fail("init: " + path + " exists and is not empty; a pool needs a new directory",
                    EEXIST);
    if (fchmod(dir->get(), 0700) != 0) return sys_fail("fchmod", path);
    for (const char* sub : {"objects", "tmp"}) {
        if (mkdirat(dir->get(), sub, 0700) != 0) return sys_fail("mkdir", join_path(path, sub));
    }
    auto objects = open_beneath(dir->get(), "objects", O_RDONLY | O_DIRECTORY, path);
    if (!objects) return std::unexpected(objects.error());
    for (size_t i = 0; i < kShards; ++i) {
        std::string shard = shard_name(i);
        if (mkdirat(objects->get(), shard.c_str(), 0700) != 0)
            return sys_fail("mkdir", join_path(path, "objects/" + shard));
    }
    int lock = openat(dir->get(), "lock", O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
    if (lock < 0) return sys_fail("create", join_path(path, "lock"));
    close(lock);
    auto index = Index::open(join_path(path, "index"), true);
    if (!index) return std::unexpected(index.error());
    // pool.conf goes last and by rename: its presence is what makes the directory a pool.
    std::string conf =
        "# unify pool settings, fixed at init\nversion=1\nshare=" + to_string(settings.share) +
        "\nprotect=" + to_string(settings.protect) +
        "\nignore_mtime=" + (settings.ignore_mtime ? "1" : "0") + "\ntoken=" + settings.token +
        "\n";
    return replace_small_file(dir->get(), kConf, conf, join_path(path, kConf));
}

Result<std::unique_ptr<Pool>> Pool::open(const std::string& path, bool with_index) {
    auto p = std::make_unique<Pool>();
    p->path_ = path;
    auto dir = open_dir_path(path);
    if (!dir) {
        if (dir.error().err == ENOENT)
            return fail("no pool at " + path + " (create one with `unify init`, or choose " +
                            "another with --pool or UNIFY_POOL)",
                        ENOENT);
        return std::unexpected(dir.error());
    }
    p->dir_ = std::move(*dir);
    char* real = realpath(path.c_str(), nullptr);
    p->real_path_ = real ? real : path;
    free(real);
    auto conf = read_small_file(p->fd(), kConf, join_path(path, kConf));
    if (!conf) {
        if (conf.error().err == ENOENT)
            return fail(path + " is not a unify pool (no pool.conf); create one with `unify init`",
                        ENOENT);
        return std::unexpected(conf.error());
    }
    auto settings = parse_conf(*conf, join_path(path, kConf));
    if (!settings) return std::unexpected(settings.error());
    p->settings_ = *settings;
    p->protection_ = Protection(settings->protect);
    auto st = stat_fd(p->fd(), path);
    if (!st) return std::unexpected(st.error());
    p->stat_ = *st;
    auto objects = open_beneath(p->fd(), "objects", O_RDONLY | O_DIRECTORY, path + "/objects");
    if (!objects) return std::unexpected(objects.error());
    p->objects_ = std::move(*objects);
    auto tmp = open_beneath(p->fd(), "tmp", O_RDONLY | O_DIRECTORY, path + "/tmp");
    if (!tmp) return std::unexpected(tmp.error());
    p->tmp_ = std::move(*tmp);
    if (!with_index) return p;
    std::string index_dir = join_path(path, "index");
    auto index = Index::open(index_dir, false);
    if (!index) {
        Error e = index.error();
        if (e.err == EROFS || e.err == EACCES)
            e.message +=
                "; unify opens the index for writing even to read it (LMDB keeps its "
                "readers in POOL/index/lock.mdb): the pool must be on a writable "
                "filesystem, by a user who may write it";
        else if (e.message.find("unify reindex") == std::string::npos)
            e.message +=
                "; if it was lost or damaged, run `unify reindex` to rebuild it from "
                "the pool and the guest roots";
        e.message = "the index " + index_dir + " cannot be used: " + e.message;
        return std::unexpected(e);
    }
    p->index_ = std::move(*index);
    return p;
}

std::string Pool::object_name(const ObjectId& id, uint32_t replica) {
    std::string hex = id.hex();
    std::string name = hex.substr(0, 2) + "/" + hex;
    if (replica) name += "." + std::to_string(replica);
    return name;
}

bool Pool::gc_interrupted() const {
    return faccessat(fd(), kGcUnlinking, F_OK, AT_SYMLINK_NOFOLLOW) == 0;
}

std::string Pool::object_shown(const ObjectId& id, uint32_t replica) const {
    return object_shown(object_name(id, replica));
}

Result<std::optional<FileStat>> Pool::stat_object(const ObjectId& id, uint32_t replica) const {
    return stat_if_exists(objects_fd(), object_name(id, replica), object_shown(id, replica));
}

std::string Pool::object_shown(const std::string& name) const {
    return join_path(path_, "objects/" + name);
}

std::optional<std::pair<ObjectId, uint32_t>> Pool::parse_object_file(const std::string& file) {
    if (file.size() < 64) return std::nullopt;
    // from_hex also takes upper case, which import never writes: such a name is a stray.
    if (file.find_first_not_of("0123456789abcdef") < 64) return std::nullopt;
    auto id = ObjectId::from_hex(std::string_view(file).substr(0, 64));
    if (!id) return std::nullopt;
    if (file.size() == 64) return std::make_pair(*id, uint32_t(0));
    if (file[64] != '.' || file.size() == 65 || file[65] == '0') return std::nullopt;
    uint32_t n = 0;
    auto [end, ec] = std::from_chars(file.data() + 65, file.data() + file.size(), n);
    if (ec != std::errc() || end != file.data() + file.size()) return std::nullopt;
    return std::make_pair(*id, n);
}

std::string Pool::shard_name(size_t shard) {
    uint8_t b = uint8_t(shard);
    return to_hex(&b, 1);
}

Result<Fd> Pool::open_object(const ObjectId& id, uint32_t replica) const {
    return open_object(object_name(id, replica));
}

Result<Fd> Pool::open_object(const std::string& name) const {
    return open_read(objects_fd(), name, object_shown(name));
}

std::vector<Pool::Shard::Object> Pool::Shard::objects(std::vector<std::string>& strays) const {
    std::vector<Object> out;
    out.reserve(entries.size());
    for (const auto& e : entries) {
        auto parsed = parse_object_file(e.name);
        if (parsed && shard_name(parsed->first.bytes[0]) == name)
            out.push_back({e.name, parsed->first, parsed->second, e.ino});
        else
            strays.push_back(e.name);
    }
    return out;
}

Result<void> Pool::objects_by_inode(ByInode& out) const {
    out.clear();
    for (size_t s = 0; s < kShards; ++s) {
        auto shard = list_shard(s);
        if (!shard) {
            if (shard.error().err == ENOENT) continue;
            return std::unexpected(shard.error());
        }
        std::vector<std::string> strays;
        for (const auto& o : shard->objects(strays))
            out.emplace(o.ino, std::make_pair(o.id, o.replica));
    }
    return {};
}

Result<Pool::Shard> Pool::list_shard(size_t shard) const {
    Shard s;
    s.name = shard_name(shard);
    s.shown = object_shown(s.name);
    auto dir = open_beneath(objects_fd(), s.name, O_RDONLY | O_DIRECTORY, s.shown);
    if (!dir) return std::unexpected(dir.error());
    s.dir = std::move(*dir);
    auto entries = read_dir(s.dir.get(), s.shown);
    if (!entries) return std::unexpected(entries.error());
    s.entries = std::move(*entries);
    return s;
}

}  // namespace unify

namespace unify {

Result<void> Pool::with_links_allowed(const ObjectId& id, uint32_t replica, int object_fd,
                                      const std::function<Result<void>()>& act,
                                      const ScatterFn& scatter, size_t slot,
                                      Metadata* tampered) const {
    if (protection_.mode() != ProtectMode::immutable) return act();
    intent_.begin(IntentOp::window, object_name(id, replica), slot);
    // Where the lease cannot vouch for the window, the object is hashed again against its id.
    auto intact = [&]() -> Result<bool> {
        auto now = identify_fd(object_fd, object_shown(id, replica), settings_.id_rules());
        if (!now) return std::unexpected(now.error());
        return now->id == id;
    };
    auto r = protection_.run_lifted(object_fd, object_shown(id, replica), act, intact, scatter,
                                    tampered);
    // On failure the record stays: the next writer makes sure the flag is back.
    if (r) intent_.end(slot);
    return r;
}

}  // namespace unify
