#include "importer/rules.h"

#include <fnmatch.h>

namespace unify {

const std::vector<std::string>& default_exclusions() {
    static const std::vector<std::string> list = {"/etc",  "/var",   "/tmp",  "/dev",       "/proc",
                                                  "/sys",  "/run",   "/home", "/root",      "/mnt",
                                                  "/boot", "/media", "/srv",  "/lost+found"};
    return list;
}

RuleMatch Rules::match(const std::string& path) const {
    for (const auto& top : default_exclusions()) {
        if (path.compare(0, top.size(), top) == 0 &&
            (path.size() == top.size() || path[top.size()] == '/'))
            return RuleMatch::default_exclusion;
    }
    std::string base = path.substr(path.rfind('/') + 1);
    for (const auto& glob : excludes_) {
        bool whole = glob.find('/') != std::string::npos;
        if (fnmatch(glob.c_str(), whole ? path.c_str() : base.c_str(), FNM_PATHNAME) == 0)
            return RuleMatch::user_exclusion;
    }
    return RuleMatch::none;
}

}  // namespace unify
