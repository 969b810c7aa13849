// Splitting a guest path into its components, shared by the rules (importer/rules.cc) and
// the package database resolver (importer/package_db.cc).
#pragma once

#include <string>
#include <vector>

namespace unify {

// The non-empty components of `path`, in order: "/usr//lib/" gives {"usr", "lib"}.
std::vector<std::string> split_path(const std::string& path);

}  // namespace unify
