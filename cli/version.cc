#include "cli/version.h"

// Written at build time into the build tree (packaging/cmake/version.cmake).
#include "unify_version.h"

namespace unify {

std::string version() {
    return UNIFY_VERSION;
}

std::string revision() {
    return UNIFY_REVISION;
}

std::string version_line() {
    std::string rev = revision();
    return "unify " + version() + (rev.empty() ? "" : " (git " + rev + ")");
}

}  // namespace unify
