#include "tests/test_support.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <signal.h>
#include <spawn.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "store/hasher.h"
#include "store/object_id.h"
#include "store/sys.h"

extern char** environ;

namespace unify::test {

namespace {

// The filesystem of UNIFY_TEST_FS, made on first use and kept for the life of the process.
struct TestFilesystem {
    std::unique_ptr<LoopFs> loop;
    std::unique_ptr<TempDir> dir;  // tmpfs: its mount point lives here
    std::string path = "/var/tmp";

    TestFilesystem() {
        const char* type = getenv("UNIFY_TEST_FS");
        if (!type || !*type) return;
        std::string t = type;
        if (t == "tmpfs") {
            dir = std::make_unique<TempDir>("/var/tmp");
            path = *dir / "tmpfs";
            mkdir(path.c_str(), 0755);
            if (mount("unify-test-fs", path.c_str(), "tmpfs", 0, "size=1g,mode=0755") != 0) {
                fprintf(stderr, "UNIFY_TEST_FS=tmpfs: mount: %s\n", strerror(errno));
                abort();
            }
            return;
        }
        // ext4 mounted with discard, so that imports there unlink the displaced files on
        // threads (store/trash.h); XFS and btrfs here unlink them in place.
        loop = std::make_unique<LoopFs>(t, 1024, "", t == "ext4" ? "discard" : "");
        if (!loop->ok()) {
            fprintf(stderr, "UNIFY_TEST_FS=%s: %s\n", type, loop->reason().c_str());
            abort();
        }
        path = loop->path();
    }
    ~TestFilesystem() {
        if (!dir) return;
        sh("chattr -R -i '" + path + "' >/dev/null 2>&1");
        if (umount2(path.c_str(), 0) != 0) umount2(path.c_str(), MNT_DETACH);
    }
};

}  // namespace

const std::string& test_filesystem() {
    static TestFilesystem fs;
    return fs.path;
}

bool filesystem_repeat() {
    const char* type = getenv("UNIFY_TEST_FS");
    return type && *type;
}

TempDir::TempDir(const std::string& base_in) {
    std::string base = base_in.empty() ? test_filesystem() : base_in;
    std::string tmpl = base + "/unify-test.XXXXXX";
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    if (!mkdtemp(buf.data())) ADD_FAILURE() << "mkdtemp(" << tmpl << "): " << strerror(errno);
    path_ = buf.data();
}

TempDir::~TempDir() {
    remove_tree(path_);
}

void remove_tree(const std::string& path) {
    if (path.empty() || path == "/") return;
    std::string q = "'" + path + "'";
    (void)!system(("chattr -R -i " + q + " >/dev/null 2>&1; rm -rf " + q).c_str());
}

bool require_all() {
    const char* v = getenv("UNIFY_TEST_REQUIRE_ALL");
    return v && std::string(v) == "1";
}

std::string need_root() {
    return geteuid() == 0 ? "" : "needs root";
}

std::string need_immutable(const std::string& dir) {
    if (geteuid() != 0) return "needs root for the immutable flag";
    std::string f = dir + "/.immutable-probe";
    int fd = open(f.c_str(), O_CREAT | O_RDONLY | O_CLOEXEC, 0600);
    if (fd < 0) return "cannot create " + f;
    int flags = 0;
    std::string reason;
    if (ioctl(fd, FS_IOC_GETFLAGS, &flags) != 0) {
        reason = "filesystem of " + dir + " has no inode flags";
    } else {
        int on = flags | FS_IMMUTABLE_FL;
        if (ioctl(fd, FS_IOC_SETFLAGS, &on) != 0)
            reason = "cannot set the immutable flag (CAP_LINUX_IMMUTABLE missing?)";
        else
            ioctl(fd, FS_IOC_SETFLAGS, &flags);
    }
    close(fd);
    unlink(f.c_str());
    return reason;
}

std::string need_tool(const std::string& tool) {
    return sh("command -v " + tool + " >/dev/null 2>&1") == 0 ? "" : tool + " is not installed";
}

void write_file(const std::string& path, const std::string& content, mode_t mode) {
    std::string dir = path.substr(0, path.rfind('/'));
    sh("mkdir -p '" + dir + "'");
    int fd = open(path.c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, mode);
    if (fd < 0) {
        ADD_FAILURE() << "open(" << path << "): " << strerror(errno);
        return;
    }
    if (write(fd, content.data(), content.size()) != ssize_t(content.size()))
        ADD_FAILURE() << "write(" << path << "): " << strerror(errno);
    fchmod(fd, mode);
    close(fd);
}

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

struct stat stat_path(const std::string& path) {
    struct stat st {};
    if (lstat(path.c_str(), &st) != 0) st = {};
    return st;
}

void set_mtime(const std::string& path, int64_t sec, int64_t nsec) {
    struct timespec t[2] = {{sec, nsec}, {sec, nsec}};
    if (utimensat(AT_FDCWD, path.c_str(), t, AT_SYMLINK_NOFOLLOW) != 0)
        ADD_FAILURE() << "utimensat(" << path << "): " << strerror(errno);
}

bool is_immutable(const std::string& path) {
    int fd = open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return false;
    int flags = 0;
    bool on = ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0 && (flags & FS_IMMUTABLE_FL);
    close(fd);
    return on;
}

int sh(const std::string& command) {
    int st = system(command.c_str());
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

namespace {

std::string slurp_fd(int fd) {
    std::string s;
    char buf[65536];
    for (ssize_t n; (n = read(fd, buf, sizeof buf)) > 0;) s.append(buf, size_t(n));
    return s;
}

}  // namespace

namespace {
SettlePath current_settle_path = SettlePath::fresh;
}  // namespace

void use_settle_path(SettlePath path) {
    // In the environment, so that every unify-faults a test starts in its own way sees it too.
    if (path == SettlePath::settled)
        setenv("UNIFY_FAULT_SETTLE", "settled", 1);
    else
        unsetenv("UNIFY_FAULT_SETTLE");
    // Every guest path has a '/': no hash-pass lease anywhere. Only unset where it was set
    // here, so a test's own UNIFY_FAULT_ERRNO is left alone.
    if (path == SettlePath::reread)
        setenv("UNIFY_FAULT_ERRNO", "hash.lease:EAGAIN:/", 1);
    else if (current_settle_path == SettlePath::reread)
        unsetenv("UNIFY_FAULT_ERRNO");
    current_settle_path = path;
}

SettlePath settle_path() {
    return current_settle_path;
}

const char* unify_binary() {
    return current_settle_path == SettlePath::fresh ? UNIFY_BINARY : UNIFY_FAULTS_BINARY;
}

std::string settle_path_name(const testing::TestParamInfo<SettlePath>& info) {
    switch (info.param) {
        case SettlePath::settled:
            return "settled";
        case SettlePath::reread:
            return "reread";
        case SettlePath::fresh:
            break;
    }
    return "fresh";
}

RunResult run_unify(const std::vector<std::string>& args, const std::vector<std::string>& env,
                    const RunLimits& limits) {
    return run_program(unify_binary(), args, env, limits);
}

RunResult run_unify_faults(const std::vector<std::string>& args,
                           const std::vector<std::string>& env) {
    return run_program(UNIFY_FAULTS_BINARY, args, env);
}

std::set<size_t> intent_adopt_slots(const std::string& pool) {
    std::string page = read_file(pool + "/intent");
    std::set<size_t> out;
    for (size_t s = 0; s * 128 < page.size(); ++s)
        if (page[s * 128] == 'A') out.insert(s);
    return out;
}

long fd_table_size(pid_t pid) {
    std::string status = read_file("/proc/" + std::to_string(pid) + "/status");
    auto at = status.find("\nFDSize:");
    return at == std::string::npos ? -1 : std::stol(status.substr(at + 8));
}

bool wait_until_blocked_in_flock(pid_t pid) {
    const std::string waiter = "-> FLOCK", me = " " + std::to_string(pid) + " ";
    for (int i = 0; i < 1000; ++i) {
        std::string locks = read_file("/proc/locks");
        for (size_t at = 0; (at = locks.find(waiter, at)) != std::string::npos; ++at) {
            size_t eol = locks.find('\n', at);
            if (locks.substr(at, eol - at).find(me) != std::string::npos) return true;
        }
        usleep(10000);
    }
    return false;
}

namespace {

// `init` without --share gets --share hardlink (test_support.h, run_unify).
std::vector<std::string> hardlink_unless_told(const std::vector<std::string>& args) {
    std::vector<std::string> out = args;
    size_t i = 0;
    while (i < args.size() && args[i].starts_with("-"))
        i +=
            (args[i] == "--pool" || args[i] == "--config" || args[i] == "-j" || args[i] == "--jobs")
                ? 2
                : 1;
    if (i >= args.size() || args[i] != "init") return out;
    for (const auto& a : args)
        if (a == "--share" || a.starts_with("--share=")) return out;
    out.insert(out.begin() + i + 1, {"--share", "hardlink"});
    return out;
}

}  // namespace

RunResult run_program(const char* binary, const std::vector<std::string>& args_in,
                      const std::vector<std::string>& env, const RunLimits& limits) {
    std::vector<std::string> args = hardlink_unless_told(args_in);
    RunResult r;
    std::string out_path = "/tmp/unify-run.XXXXXX", err_path = "/tmp/unify-run.XXXXXX";
    int out_fd = mkstemp(out_path.data()), err_fd = mkstemp(err_path.data());
    unlink(out_path.c_str());
    unlink(err_path.c_str());
    std::vector<std::string> argv_s = {binary};
    argv_s.insert(argv_s.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : argv_s) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::vector<std::string> env_s;
    for (char** e = environ; *e; ++e) {
        std::string kv = *e;
        if (kv.rfind("UNIFY_POOL=", 0) == 0) continue;  // tests say which pool they mean
        env_s.push_back(kv);
    }
    env_s.insert(env_s.end(), env.begin(), env.end());
    std::vector<char*> envp;
    for (auto& e : env_s) envp.push_back(e.data());
    envp.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, out_fd, 1);
    posix_spawn_file_actions_adddup2(&fa, err_fd, 2);
    pid_t pid;
    auto t0 = std::chrono::steady_clock::now();
    auto elapsed = [&] {
        return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    };
    int spawned = posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&fa);
    if (spawned != 0) {
        ADD_FAILURE() << "posix_spawn(" << argv[0] << "): " << strerror(spawned);
        return r;
    }
    if (limits.on_start) limits.on_start(pid);
    int st = 0;
    if (limits.deadline_s <= 0) waitpid(pid, &st, 0);
    while (limits.deadline_s > 0 && waitpid(pid, &st, WNOHANG) != pid) {
        if (elapsed() > limits.deadline_s && !r.killed) {
            r.killed = true;
            kill(pid, SIGKILL);
        }
        usleep(10000);
    }
    r.seconds = elapsed();
    r.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    lseek(out_fd, 0, SEEK_SET);
    lseek(err_fd, 0, SEEK_SET);
    r.out = slurp_fd(out_fd);
    r.err = slurp_fd(err_fd);
    close(out_fd);
    close(err_fd);
    return r;
}

std::string show(const RunResult& r) {
    return "exit " + std::to_string(r.status) + "\n--- stdout\n" + r.out + "--- stderr\n" + r.err;
}

testing::AssertionResult succeeded(const RunResult& r) {
    if (r.status == 0) return testing::AssertionSuccess();
    return testing::AssertionFailure() << show(r);
}

bool contains(const std::string& haystack, const std::string& needle) {
    return haystack.find(needle) != std::string::npos;
}

std::string capture(const std::string& command) {
    std::string out;
    FILE* p = popen(command.c_str(), "r");
    if (!p) {
        ADD_FAILURE() << "popen(" << command << "): " << strerror(errno);
        return out;
    }
    char buf[4096];
    for (size_t n; (n = fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
    pclose(p);
    return out;
}

std::set<std::string> entries(const std::string& dir) {
    std::set<std::string> out;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(dir, ec))
        out.insert(e.path().filename().string());
    return out;
}

ino_t ino(const std::string& path) {
    return stat_path(path).st_ino;
}

bool contains_squeezed(const std::string& text, const std::string& needle) {
    auto squeeze = [](const std::string& s) {
        std::string out;
        for (char c : s)
            if (c != ' ' || out.empty() || out.back() != ' ') out += c;
        return out;
    };
    return squeeze(text).find(squeeze(needle)) != std::string::npos;
}

std::string manifest(const std::string& root, bool dir_mtimes) {
    // find gives the walk; everything else is read here, without following symlinks.
    std::string list = "/tmp/unify-manifest.XXXXXX";
    int fd = mkstemp(list.data());
    close(fd);
    sh("cd '" + root + "' && find . -mindepth 1 -print0 | sort -z > '" + list + "'");
    std::string names = read_file(list);
    unlink(list.c_str());
    std::ostringstream out;
    if (dir_mtimes) names = std::string("./", 3) + names;  // the root itself: "."
    for (size_t pos = 0; pos < names.size();) {
        std::string rel = names.c_str() + pos;
        pos += rel.size() + 1;
        std::string full = rel == "./" ? root : root + "/" + rel.substr(2);
        auto st = stat_at(AT_FDCWD, full, full);
        if (!st) {
            out << rel << " MISSING\n";
            continue;
        }
        out << rel << " mode=" << std::oct << st->mode << std::dec << " uid=" << st->uid
            << " gid=" << st->gid;
        if (st->is_reg()) {
            out << " size=" << st->size << " mtime=" << st->mtime_ns;
            int f = open(full.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
            if (f >= 0) {
                auto h = hash_fd(f, full);
                auto x = read_xattrs(f, full);
                if (h) out << " sha256=" << to_hex(h->sha256.data(), 32);
                if (x)
                    for (const auto& [k, v] : *x)
                        out << " xattr:" << k << "="
                            << to_hex(reinterpret_cast<const uint8_t*>(v.data()), v.size());
                close(f);
            }
        } else if (st->is_dir() && dir_mtimes) {
            out << " mtime=" << st->mtime_ns;
        } else if (st->is_lnk()) {
            std::array<char, 4096> buf{};
            ssize_t n = readlink(full.c_str(), buf.data(), buf.size() - 1);
            out << " -> " << std::string(buf.data(), n > 0 ? size_t(n) : 0);
        }
        out << "\n";
    }
    return out.str();
}

std::map<ino_t, std::string> objects_by_inode(const std::string& pool) {
    namespace fs = std::filesystem;
    std::map<ino_t, std::string> out;
    if (!fs::exists(pool + "/objects")) return out;
    for (const auto& e : fs::recursive_directory_iterator(pool + "/objects"))
        if (e.is_regular_file()) out[stat_path(e.path()).st_ino] = e.path().filename();
    return out;
}

std::vector<std::string> objects_not_matching_their_id(const std::string& pool) {
    namespace fs = std::filesystem;
    std::vector<std::string> bad;
    if (!fs::exists(pool + "/objects")) return bad;
    for (const auto& e : fs::recursive_directory_iterator(pool + "/objects")) {
        if (!e.is_regular_file()) continue;
        std::string path = e.path(), name = e.path().filename();
        int fd = open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        auto h = hash_fd(fd, path);
        auto x = read_xattrs(fd, path);
        auto st = stat_fd(fd, path);
        if (fd >= 0) close(fd);
        if (!h || !x || !st) {
            bad.push_back(name + " (unreadable)");
            continue;
        }
        ObjectId id = make_object_id(h->sha256, Identity::of(*st, *x), false);
        if (id.hex() != name.substr(0, 64)) bad.push_back(name);
    }
    return bad;
}

LoopFs::LoopFs(const std::string& type, size_t megabytes, const std::string& mkfs_options,
               const std::string& mount_options) {
    image_ = dir_ / "image";
    mount_ = dir_ / "mnt";
    if (geteuid() != 0) {
        reason_ = "loop mounts need root";
        return;
    }
    if (!need_tool("mkfs." + type).empty()) {
        reason_ = "mkfs." + type + " is not installed";
        return;
    }
    std::string q = "'" + image_ + "'";
    if (sh("truncate -s " + std::to_string(megabytes) + "M " + q) != 0 ||
        sh("mkfs." + type + " -q " + (type == "ext4" ? "-F " : "-f ") + mkfs_options + " " + q +
           " >/dev/null 2>&1") != 0) {
        reason_ = "mkfs." + type + " failed";
        return;
    }
    sh("mkdir -p '" + mount_ + "'");
    std::string opts = mount_options.empty() ? "loop" : "loop," + mount_options;
    if (sh("mount -o " + opts + " " + q + " '" + mount_ + "' 2>/dev/null") != 0) {
        reason_ = "mount -o loop failed (no loop devices?)";
        return;
    }
    mounted_ = true;
}

LoopFs::~LoopFs() {
    if (!mounted_) return;
    sh("chattr -R -i '" + mount_ + "' >/dev/null 2>&1");
    // A process of the test may still be leaving; retry briefly rather than leak a mount.
    for (int i = 0; i < 20 && sh("umount '" + mount_ + "' 2>/dev/null") != 0; ++i) usleep(100000);
}

TmpfsMount::TmpfsMount(const std::string& dir) : dir_(dir) {
    sh("mkdir -p '" + dir + "'");
    if (mount("unify-test", dir.c_str(), "tmpfs", 0, "size=16m,mode=0755") != 0)
        error_ = "mount -t tmpfs " + dir + ": " + strerror(errno);
}

TmpfsMount::~TmpfsMount() {
    if (!error_.empty()) return;
    sh("chattr -R -i '" + dir_ + "' >/dev/null 2>&1");
    if (umount2(dir_.c_str(), 0) != 0) umount2(dir_.c_str(), MNT_DETACH);
}

std::set<std::string> who_paths(const std::string& pool, const std::string& target) {
    auto r = run_unify({"--pool", pool, "--json", "who", target});
    EXPECT_EQ(r.status, 0) << target << ": " << r.out << r.err;
    std::set<std::string> out;
    auto j = nlohmann::json::parse(r.out, nullptr, false);
    if (j.is_discarded() || !j.contains("links")) return out;
    for (const auto& l : j["links"])
        out.insert(l["guest"].get<std::string>() + ":" + l["path"].get<std::string>());
    return out;
}

NameWatcher::NameWatcher(const std::string& dir, uint32_t mask,
                         std::function<void(const std::string&)> on_name)
    : on_name_(std::move(on_name)) {
    fd_ = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    inotify_add_watch(fd_, dir.c_str(), mask);
    thread_ = std::thread([this] {
        alignas(struct inotify_event) char buf[65536];
        while (!stop_) {
            ssize_t n = read(fd_, buf, sizeof buf);
            if (n <= 0) {
                usleep(200);
                continue;
            }
            for (char* p = buf; p < buf + n;) {
                auto* ev = reinterpret_cast<struct inotify_event*>(p);
                p += sizeof *ev + ev->len;
                if (ev->len) on_name_(ev->name);
            }
        }
    });
}

NameWatcher::~NameWatcher() {
    stop_ = true;
    thread_.join();
    close(fd_);
}

BindMount::BindMount(const std::string& from, const std::string& at) : at_(at) {
    sh("mkdir -p '" + at + "'");
    if (mount(from.c_str(), at.c_str(), nullptr, MS_BIND, nullptr) != 0)
        error_ = "mount --bind " + from + " " + at + ": " + strerror(errno);
}

BindMount::~BindMount() {
    if (!error_.empty()) return;
    if (umount2(at_.c_str(), 0) != 0) umount2(at_.c_str(), MNT_DETACH);
}

bool write_many(const std::string& dir, const std::string& prefix, size_t count,
                const std::string& content) {
    sh("mkdir -p '" + dir + "'");
    int d = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (d < 0) return false;
    struct timespec t[2] = {{1700000000, 7}, {1700000000, 7}};
    bool ok = true;
    for (size_t i = 0; i < count && ok; ++i) {
        std::string name = prefix + std::to_string(i);
        int fd = openat(d, name.c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644);
        ok = fd >= 0 && write(fd, content.data(), content.size()) == ssize_t(content.size()) &&
             futimens(fd, t) == 0;
        if (fd >= 0) close(fd);
    }
    close(d);
    return ok;
}

testing::AssertionResult edit_only_object_record(const std::string& pool,
                                                 const std::function<void(ObjectRecord&)>& edit) {
    auto index = Index::open(pool + "/index", false);
    if (!index) return testing::AssertionFailure() << index.error().message;
    auto txn = (*index)->write();
    if (!txn) return testing::AssertionFailure() << txn.error().message;
    std::vector<std::pair<ObjectId, ObjectRecord>> all;
    auto r = (*txn)->for_each_object([&](const ObjectId& id, const ObjectRecord& rec) {
        all.emplace_back(id, rec);
        return true;
    });
    if (!r) return testing::AssertionFailure() << r.error().message;
    if (all.size() != 1) return testing::AssertionFailure() << all.size() << " objects, not 1";
    edit(all[0].second);
    if (auto p = (*txn)->put_object(all[0].first, all[0].second); !p)
        return testing::AssertionFailure() << p.error().message;
    if (auto c = (*txn)->commit(); !c) return testing::AssertionFailure() << c.error().message;
    return testing::AssertionSuccess();
}

}  // namespace unify::test
