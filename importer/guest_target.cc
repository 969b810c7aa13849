#include "importer/guest_target.h"

#include "importer/package_db.h"

namespace unify {

std::string guest_path_as_written(const std::string& root, const std::string& path) {
    // A host path inside the root is taken as the guest path it is.
    std::string guest_path = path;
    if (guest_path.compare(0, root.size() + 1, root + "/") == 0)
        guest_path = guest_path.substr(root.size());
    if (guest_path.empty() || guest_path[0] != '/') guest_path = "/" + guest_path;
    return guest_path;
}

Result<std::string> resolve_guest_target(int root_fd, const std::string& root,
                                         const std::string& path) {
    GuestResolver resolver(root_fd, root, /*refuse_escape=*/true);
    return resolver.resolve(guest_path_as_written(root, path));
}

}  // namespace unify
