#include "store/guest_root.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/sysmacros.h>

#include "store/mounts.h"

namespace unify {

bool path_within(const std::string& inner, const std::string& outer) {
    if (outer == "/") return true;
    return inner.compare(0, outer.size(), outer) == 0 &&
           (inner.size() == outer.size() || inner[outer.size()] == '/');
}

Result<void> check_guest_name(const std::string& name) {
    bool ok = !name.empty() && name.size() <= 64 && name[0] != '-' && name[0] != '.';
    for (char c : name)
        ok = ok && (isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-');
    if (!ok)
        return fail(
            "invalid guest name '" + name +
            "': use 1 to 64 letters, digits, '.', '_' or '-', not starting with '-' or '.'");
    return {};
}

namespace {

Result<GuestRoot> open_canonical(const Pool& pool, std::string path) {
    GuestRoot g;
    g.path = std::move(path);
    auto fd = open_dir_path(g.path);
    if (!fd) return std::unexpected(context(fd.error(), "guest root"));
    g.fd = std::move(*fd);
    auto st = stat_fd(g.fd.get(), g.path);
    if (!st) return std::unexpected(st.error());
    g.st = *st;
    const std::string& pool_path = pool.real_path();
    if (g.st.dev != pool.stat().dev) {
        auto dev = [](uint64_t d) {
            return std::to_string(major(d)) + ":" + std::to_string(minor(d));
        };
        return fail("guest root " + g.path + " (device " + dev(g.st.dev) + ", mounted at " +
                        mount_point_of(g.st.mnt_id) + ") is not on the pool's filesystem (" +
                        pool_path + ": device " + dev(pool.stat().dev) + ", mounted at " +
                        mount_point_of(pool.stat().mnt_id) +
                        "); hard links cannot cross filesystems: use a pool on the same "
                        "filesystem as the guests",
                    EXDEV);
    }
    if (path_within(pool_path, g.path))
        return fail("the pool " + pool_path + " lies inside guest root " + g.path +
                    "; a guest must not be able to reach the pool: move the pool out of it");
    if (path_within(g.path, pool_path))
        return fail("guest root " + g.path + " lies inside the pool " + pool_path);
    return g;
}

}  // namespace

Result<GuestRoot> open_guest_root(const Pool& pool, const std::string& path) {
    char* real = realpath(path.c_str(), nullptr);
    if (!real) return sys_fail("guest root: realpath", path);
    std::string canonical = real;
    free(real);
    return open_canonical(pool, std::move(canonical));
}

Result<GuestRoot> open_guest_root(const Pool& pool, const GuestRecord& guest) {
    return open_canonical(pool, guest.root);
}

}  // namespace unify
