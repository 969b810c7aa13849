#include "importer/guest_target.h"

#include <fcntl.h>

#include "importer/package_db.h"
#include "store/sys.h"

namespace unify {

Result<std::string> resolve_guest_target(int root_fd, const std::string& root,
                                         const std::string& path) {
    GuestResolver resolver(root_fd, root, /*refuse_escape=*/true);
    return resolver.resolve(guest_path_as_written(root, path));
}

bool is_guest_directory(int root_fd, const std::string& root, const std::string& path) {
    GuestResolver resolver(root_fd, root, /*refuse_escape=*/true);
    auto dir = resolver.resolve_dir(guest_path_as_written(root, path));
    if (!dir) return false;
    std::string rel = *dir == "/" ? "." : dir->substr(1);
    return open_beneath(root_fd, rel, O_RDONLY | O_DIRECTORY | O_PATH, join_path(root, rel))
        .has_value();
}

}  // namespace unify
