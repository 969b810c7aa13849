#include "store/guest_root.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

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

// A registered root's path was canonical when it was registered: a symlink in it now (the
// guest's directory moved and a symlink put in its place, to the pool's parent, say) is
// never followed, or forget --delete-root and unshare would work on whatever it points to.
Result<Fd> open_registered(const std::string& path, const std::string& name) {
    struct open_how how {};
    how.flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC;
    how.resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
    for (;;) {
        long fd = syscall(SYS_openat2, AT_FDCWD, path.c_str(), &how, sizeof how);
        if (fd >= 0) return Fd(int(fd));
        if (errno == EAGAIN || errno == EINTR) continue;  // a rename raced with the lookup
        if (errno == ELOOP)
            return fail(path + " (guest " + name +
                            "): openat2 RESOLVE_NO_SYMLINKS: a symlink stands in its path now "
                            "(ELOOP); it was a real directory when the guest was registered, "
                            "and unify follows no symlink there. Put the guest's directory back "
                            "at that path, or drop the guest's records with unify forget " +
                            name + " --keep-links",
                        ELOOP);
        return sys_fail("openat2", "guest root " + path);
    }
}

Result<GuestRoot> open_canonical(const Pool& pool, std::string path, const std::string* name) {
    GuestRoot g;
    g.path = std::move(path);
    auto fd = name ? open_registered(g.path, *name) : open_dir_path(g.path);
    if (!fd) return std::unexpected(context(fd.error(), "guest root"));
    g.fd = std::move(*fd);
    auto st = stat_fd(g.fd.get(), g.path);
    if (!st) return std::unexpected(st.error());
    g.st = *st;
    const std::string& pool_path = pool.real_path();
    const FileStat& ps = pool.stat();
    bool reflink = pool.settings().reflink();
    // mountinfo is read only where the mounts differ (a bind mount, or a btrfs subvolume's).
    auto same_fs = [&] {
        if (g.st.mnt_id == ps.mnt_id) return true;
        std::string fs = filesystem_of(g.st.mnt_id);
        return !fs.empty() && fs == filesystem_of(ps.mnt_id);
    };
    // A hardlink pool needs the very mount: linkat between two mounts of one filesystem (a
    // bind mount) is EXDEV as well, and would fail only at the first link, mid-import. A
    // reflink pool shares blocks anywhere on one filesystem, btrfs subvolumes included,
    // whose files have an st_dev of their own.
    if (!reflink && g.st.dev == ps.dev && g.st.mnt_id != ps.mnt_id)
        return fail("guest root " + g.path +
                        " is on the pool's filesystem but reached through "
                        "another mount (mounted at " +
                        mount_point_of(g.st.mnt_id) + "; the pool " + pool_path + " is under " +
                        mount_point_of(ps.mnt_id) +
                        "); hard links cannot cross mounts, even of one filesystem: name the "
                        "guest root by its path under " +
                        mount_point_of(ps.mnt_id),
                    EXDEV);
    if (reflink ? !same_fs() : g.st.dev != ps.dev) {
        auto dev = [](uint64_t d) {
            return std::to_string(major(d)) + ":" + std::to_string(minor(d));
        };
        return fail("guest root " + g.path + " (device " + dev(g.st.dev) + ", mounted at " +
                        mount_point_of(g.st.mnt_id) + ") is not on the pool's filesystem (" +
                        pool_path + ": device " + dev(ps.dev) + ", mounted at " +
                        mount_point_of(ps.mnt_id) + "); " +
                        (reflink ? "blocks cannot be shared across filesystems"
                                 : "hard links cannot cross filesystems") +
                        ": use a pool on the same filesystem as the guests",
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
    return open_canonical(pool, std::move(canonical), nullptr);
}

Result<GuestRoot> open_guest_root(const Pool& pool, const GuestRecord& guest) {
    return open_canonical(pool, guest.root, &guest.name);
}

}  // namespace unify
