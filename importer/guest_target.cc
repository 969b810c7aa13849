#include "importer/guest_target.h"

#include "importer/package_db.h"

namespace unify {

Result<std::string> resolve_guest_target(int root_fd, const std::string& root,
                                         const std::string& path) {
    GuestResolver resolver(root_fd, root, /*refuse_escape=*/true);
    return resolver.resolve(guest_path_as_written(root, path));
}

}  // namespace unify
