// unify's version: CMake's project version, and the git revision it was built from (empty
// when built from a source tarball). `unify --version` prints them, every --json document
// carries the version, and the man page's footer names it.
#pragma once

#include <string>

namespace unify {

std::string version();   // "0.1.0"
std::string revision();  // "b2b9bfee590a", "b2b9bfee590a-dirty", or ""
// "unify 0.1.0 (git b2b9bfee590a)", or "unify 0.1.0" without a revision.
std::string version_line();

}  // namespace unify
