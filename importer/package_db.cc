// Reading every package database a guest has, and the pieces the per-format readers share:
// resolving a guest path through the guest's own symlinks without letting the kernel follow
// one, and reading a whole guest file beneath the root.
#include "importer/package_db.h"

#include <fcntl.h>
#include <unistd.h>

#include <deque>

#include "importer/path_split.h"
#include "store/sys.h"

namespace unify {

const char* to_string(PackageDb db) {
    switch (db) {
        case PackageDb::dpkg:
            return "dpkg";
        case PackageDb::rpm:
            return "rpm";
        case PackageDb::pacman:
            return "pacman";
    }
    return "?";
}

const ConfigOwner* PackageConfig::find(const std::string& path) const {
    auto it = files.find(path);
    return it == files.end() ? nullptr : &it->second;
}

void PackageConfig::add(std::string path, PackageDb db, const std::string& package) {
    files.try_emplace(std::move(path), ConfigOwner{db, package});
}

std::string PackageConfig::databases() const {
    std::string s;
    for (const auto& f : found) s += (s.empty() ? "" : ", ") + f;
    return s.empty() ? "none" : s;
}

namespace {

constexpr int kMaxSymlinks = 40;  // as the kernel's MAXSYMLINKS

std::string join_components(const std::vector<std::string>& parts) {
    std::string s;
    for (const auto& p : parts) s += "/" + p;
    return s.empty() ? "/" : s;
}

// Whether a relative symlink target, read at `depth` components below the root, climbs
// above it with "..".
bool climbs_above_root(size_t depth, const std::vector<std::string>& target) {
    long d = long(depth);
    for (const auto& p : target) {
        if (p == "..") {
            if (--d < 0) return true;
        } else if (p != "." && !p.empty()) {
            ++d;
        }
    }
    return false;
}

}  // namespace

Result<std::string> GuestResolver::resolve_components(std::vector<std::string> input) {
    std::deque<std::string> pending(input.begin(), input.end());
    std::vector<std::string> done;
    int hops = 0;
    auto rest_as_written = [&]() {
        for (const auto& c : pending) {
            if (c == "." || c.empty()) continue;
            if (c == "..") {
                if (!done.empty()) done.pop_back();
            } else {
                done.push_back(c);
            }
        }
        return join_components(done);
    };
    while (!pending.empty()) {
        std::string c = std::move(pending.front());
        pending.pop_front();
        if (c.empty() || c == ".") continue;
        if (c == "..") {
            if (!done.empty()) done.pop_back();
            continue;
        }
        std::string parent = join_components(done);
        std::string rel = parent == "/" ? "." : parent.substr(1);
        auto dir = open_beneath(root_fd_, rel, O_RDONLY | O_DIRECTORY | O_PATH,
                                join_path(root_shown_, rel));
        if (!dir) {
            int err = dir.error().err;
            if (err == ENOENT || err == ENOTDIR || err == ELOOP || err == EXDEV || err == EACCES) {
                pending.push_front(c);
                return rest_as_written();
            }
            return std::unexpected(dir.error());
        }
        char buf[4096];
        ssize_t n = readlinkat(dir->get(), c.c_str(), buf, sizeof buf);
        if (n < 0) {
            if (errno == EINVAL || errno == ENOENT || errno == ENOTDIR) {  // not a symlink
                done.push_back(c);
                continue;
            }
            return sys_fail("readlinkat",
                            join_path(root_shown_, (rel == "." ? "" : rel) + "/" + c));
        }
        if (++hops > kMaxSymlinks || size_t(n) == sizeof buf) {
            pending.push_front(c);
            return rest_as_written();
        }
        std::string target(buf, size_t(n));
        if (!target.empty() && target[0] == '/') done.clear();
        std::vector<std::string> parts = split_path(target);
        if (refuse_escape_ && climbs_above_root(done.size(), parts))
            return fail(join_path(root_shown_, (rel == "." ? "" : rel + "/") + c) +
                            " is a symlink to '" + target +
                            "', which leads out of the guest root; not followed",
                        EXDEV);
        pending.insert(pending.begin(), parts.begin(), parts.end());
    }
    return join_components(done);
}

Result<std::string> GuestResolver::resolve_dir(const std::string& path) {
    auto it = dirs_.find(path);
    if (it != dirs_.end()) return it->second;
    auto r = resolve_components(split_path(path));
    if (!r) return r;
    dirs_.emplace(path, *r);
    return r;
}

Result<std::string> GuestResolver::resolve(const std::string& path) {
    std::vector<std::string> parts = split_path(path);
    if (parts.empty()) return std::string("/");
    std::string last = parts.back();
    parts.pop_back();
    std::string dir = join_components(parts);
    if (last == "." || last == "..") return resolve_dir(path);
    auto d = resolve_dir(dir);
    if (!d) return d;
    return (*d == "/" ? "" : *d) + "/" + last;
}

Result<std::optional<std::string>> read_guest_file(int root_fd, const std::string& rel,
                                                   const std::string& shown, size_t max_bytes) {
    // O_NONBLOCK: a FIFO planted here must not block the open (importer/guest_file.h).
    auto fd = open_beneath_regular(root_fd, rel, shown);
    if (!fd) {
        int err = fd.error().err;
        if (err == ENOENT) return std::optional<std::string>();
        if (err == ENXIO) return fail(shown + " is not a regular file");
        if (err == ELOOP)
            return fail(shown + " is reached through a symlink in the guest; not followed", ELOOP);
        return std::unexpected(fd.error());
    }
    auto st = stat_fd(fd->get(), shown);
    if (!st) return std::unexpected(st.error());
    if (!st->is_reg()) return fail(shown + " is not a regular file");
    if (st->size > max_bytes)
        return fail(shown + " is larger than " + std::to_string(max_bytes) +
                    " bytes; not read as a package database");
    std::string data;
    data.reserve(st->size);
    char buf[65536];
    for (;;) {
        ssize_t n = read(fd->get(), buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR) continue;
            return sys_fail("read", shown);
        }
        if (n == 0) break;
        data.append(buf, size_t(n));
        if (data.size() > max_bytes)
            return fail(shown + " grew past " + std::to_string(max_bytes) + " bytes while read");
    }
    return std::optional<std::string>(std::move(data));
}

Result<PackageConfig> read_package_config(int root_fd, const std::string& root_shown) {
    PackageConfig out;
    GuestResolver resolver(root_fd, root_shown);
    auto dpkg = read_dpkg_config(root_fd, root_shown, resolver, out);
    if (!dpkg) return std::unexpected(context(dpkg.error(), "dpkg database"));
    if (*dpkg) out.found.push_back("dpkg");
    auto rpm = read_rpm_config(root_fd, root_shown, resolver, out);
    if (!rpm) return std::unexpected(context(rpm.error(), "rpm database"));
    if (*rpm) out.found.push_back("rpm");
    auto pacman = read_pacman_config(root_fd, root_shown, resolver, out);
    if (!pacman) return std::unexpected(context(pacman.error(), "pacman database"));
    if (*pacman) out.found.push_back("pacman");
    return out;
}

}  // namespace unify
