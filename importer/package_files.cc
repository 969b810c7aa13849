// Asks each database in turn; the readers return the paths as the package lists them, and
// they are made canonical here, with one resolver (and its cache) for the whole list.
#include "importer/package_files.h"

namespace unify {

Result<PackageFiles> read_package_files(int root_fd, const std::string& root_shown,
                                        const std::string& package) {
    GuestResolver resolver(root_fd, root_shown);
    PackageFiles out{package};
    std::optional<std::vector<std::string>> listed;
    for (PackageDb db : {PackageDb::dpkg, PackageDb::rpm, PackageDb::pacman}) {
        Result<std::optional<std::vector<std::string>>> r =
            db == PackageDb::dpkg  ? read_dpkg_files(root_fd, root_shown, package)
            : db == PackageDb::rpm ? read_rpm_files(root_fd, root_shown, resolver, package)
                                   : read_pacman_files(root_fd, root_shown, package);
        if (!r)
            return std::unexpected(context(r.error(), std::string(to_string(db)) + " database"));
        if (*r) {
            listed = std::move(*r);
            out.db = db;
            break;
        }
    }
    if (!listed)
        return fail("package '" + package + "' is not installed in " + root_shown +
                    " (no dpkg, rpm or pacman database there lists it)");
    for (const auto& p : *listed) {
        if (p.empty() || p[0] != '/') continue;
        auto canon = resolver.resolve(p);
        if (!canon) return std::unexpected(canon.error());
        out.files.push_back(*canon);
    }
    return out;
}

}  // namespace unify
