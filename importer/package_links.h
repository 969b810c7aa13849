// Which of a guest's links belong to some installed packages (unshare --package): the files
// the packages' own database entries list (importer/package_files.h), and the files their
// maintainer scripts generate that no package lists: the __pycache__ directory beside a
// listed .py file (py3compile writes NAME.cpython-3X.pyc there, py3clean removes it on
// upgrade or removal, so those must be private too or the package's scripts fail).
#pragma once

#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "importer/package_files.h"

namespace unify {

class PackageLinks {
  public:
    // Reads every package's file list; an unknown package is an error naming it.
    static Result<PackageLinks> read(int root_fd, const std::string& root_shown,
                                     const std::vector<std::string>& packages);

    const std::vector<PackageFiles>& packages() const { return packages_; }
    // The index in packages() of the first package that owns the guest path, if any.
    std::optional<size_t> owner(const std::string& path) const;

  private:
    std::vector<PackageFiles> packages_;
    std::unordered_map<std::string, size_t> files_;    // listed path -> package
    std::unordered_map<std::string, size_t> pycache_;  // ".../__pycache__" -> package
};

}  // namespace unify
