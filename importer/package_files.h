// The files one installed package owns in a guest, read offline from the guest's own package
// database with the same safe readers an import uses (importer/package_db.h), for
// `unify unshare NAME --package PKG`:
//   dpkg    var/lib/dpkg/info/PKG.list or PKG:ARCH.list, one path per line   (dpkg_db.cc)
//   rpm     the header of package PKG in rpmdb.sqlite: BASENAMES/DIRNAMES      (rpm_db.cc)
//   pacman  var/lib/pacman/local/*/files %FILES% of the entry whose desc has %NAME% PKG
//                                                                             (pacman_db.cc)
// Paths come out resolved through the guest's own symlinks (merged /usr), as the walk and
// the index see them. Directories are listed too; they simply match no link.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "importer/package_db.h"

namespace unify {

struct PackageFiles {
    std::string package;
    PackageDb db = PackageDb::dpkg;
    std::vector<std::string> files;  // canonical guest paths
};

// The first database (dpkg, rpm, pacman) that has `package`; an error naming it when none
// of the guest's databases does.
Result<PackageFiles> read_package_files(int root_fd, const std::string& root_shown,
                                        const std::string& package);

// The readers: nothing when the database or the package is not there.
Result<std::optional<std::vector<std::string>>> read_dpkg_files(int root_fd,
                                                                const std::string& root_shown,
                                                                const std::string& package);
Result<std::optional<std::vector<std::string>>> read_rpm_files(int root_fd,
                                                               const std::string& root_shown,
                                                               GuestResolver& resolver,
                                                               const std::string& package);
Result<std::optional<std::vector<std::string>>> read_pacman_files(int root_fd,
                                                                  const std::string& root_shown,
                                                                  const std::string& package);

}  // namespace unify
