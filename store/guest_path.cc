#include "store/guest_path.h"

#include <fcntl.h>

namespace unify {

Result<std::optional<GuestPath>> open_guest_parent(int root_fd, const std::string& path,
                                                   const std::string& shown) {
    auto slash = path.rfind('/');
    if (path.empty() || path[0] != '/' || slash == std::string::npos || slash + 1 == path.size())
        return fail("not a guest path: '" + path + "'");
    std::string parent = path.substr(1, slash == 0 ? 0 : slash - 1);
    auto dir = open_beneath(root_fd, parent, O_RDONLY | O_DIRECTORY, shown);
    if (!dir) {
        int err = dir.error().err;
        if (err == ENOENT || err == ENOTDIR || err == ELOOP || err == EXDEV)
            return std::optional<GuestPath>();
        return std::unexpected(dir.error());
    }
    return std::optional<GuestPath>(GuestPath{std::move(*dir), path.substr(slash + 1)});
}

Result<std::optional<std::string>> mount_point_above(int root_fd, const std::string& path,
                                                     const std::string& root_shown) {
    using None = std::optional<std::string>;
    // One component at a time, each beneath the one before, so that the refusal names it.
    Fd dir;
    int at = root_fd;
    std::string done;
    for (size_t start = 1, slash; (slash = path.find('/', start)) != std::string::npos;
         start = slash + 1) {
        std::string name = path.substr(start, slash - start);
        if (name.empty()) continue;
        done += "/" + name;
        auto next = open_beneath(at, name, O_PATH | O_DIRECTORY, join_path(root_shown, done));
        if (!next && next.error().err == EXDEV) return None(done);
        if (!next && (next.error().err == ENOENT || next.error().err == ENOTDIR ||
                      next.error().err == ELOOP))
            return None();
        if (!next) return std::unexpected(next.error());
        dir = std::move(*next);
        at = dir.get();
    }
    return None();
}

Result<std::optional<FileStat>> stat_guest_path(int root_fd, const std::string& path,
                                                const std::string& shown) {
    auto gp = open_guest_parent(root_fd, path, shown);
    if (!gp) return std::unexpected(gp.error());
    if (!*gp) return std::optional<FileStat>();
    return stat_if_exists((*gp)->dir.get(), (*gp)->name, shown);
}

std::string guest_path_as_written(const std::string& root, const std::string& path) {
    // A host path inside the root is taken as the guest path it is.
    std::string guest_path = path;
    if (guest_path.compare(0, root.size() + 1, root + "/") == 0)
        guest_path = guest_path.substr(root.size());
    if (guest_path.empty() || guest_path[0] != '/') guest_path = "/" + guest_path;
    return guest_path;
}

Result<std::optional<OpenedGuestFile>> open_recorded_file(int root_fd, const std::string& path,
                                                          uint64_t ino, const std::string& shown) {
    using None = std::optional<OpenedGuestFile>;
    auto gp = open_guest_parent(root_fd, path, shown);
    if (!gp) return std::unexpected(gp.error());
    if (!*gp) return None();
    FileStat st;
    auto fd = open_guest_read((*gp)->dir.get(), (*gp)->name, shown, &st);
    if (!fd && (fd.error().err == ENOENT || fd.error().err == ELOOP || fd.error().err == ENXIO))
        return None();
    if (!fd) return std::unexpected(fd.error());
    if (!st.is_reg() || st.ino != ino) return None();
    return OpenedGuestFile{std::move(*fd), st};
}

}  // namespace unify
