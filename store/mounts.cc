#include "store/mounts.h"

#include <fstream>
#include <sstream>

namespace unify {

namespace {

// The line of /proc/self/mountinfo for mount `mnt_id`, or "".
std::string mountinfo_line(uint64_t mnt_id) {
    std::ifstream in("/proc/self/mountinfo");
    std::string line;
    while (std::getline(in, line)) {
        std::istringstream f(line);
        uint64_t id = 0;
        if (f >> id && id == mnt_id) return line;
    }
    return "";
}

}  // namespace

std::string mount_point_of(uint64_t mnt_id) {
    std::istringstream f(mountinfo_line(mnt_id));
    uint64_t id = 0, parent = 0;
    std::string devno, root, point;
    return f >> id >> parent >> devno >> root >> point ? point : "?";
}

std::string filesystem_of(uint64_t mnt_id) {
    std::istringstream f(mountinfo_line(mnt_id));
    uint64_t id = 0, parent = 0;
    std::string devno;
    return f >> id >> parent >> devno ? devno : "";
}

bool unlink_trims(const std::string& fstype, const std::string& super_options) {
    std::istringstream opts(super_options);
    for (std::string o; std::getline(opts, o, ',');) {
        if (fstype == "btrfs" ? o == "discard=sync" || o == "discard" : o == "discard") return true;
    }
    return false;
}

bool unlink_trims(uint64_t mnt_id) {
    // "... optional fields - fstype source super-options"
    std::string line = mountinfo_line(mnt_id);
    auto dash = line.find(" - ");
    if (dash == std::string::npos) return false;
    std::istringstream tail(line.substr(dash + 3));
    std::string fstype, source, super_options;
    tail >> fstype >> source >> super_options;
    return unlink_trims(fstype, super_options);
}

}  // namespace unify
