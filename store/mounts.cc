#include "store/mounts.h"

#include <fstream>
#include <sstream>

namespace unify {

std::string mount_point_of(uint64_t mnt_id) {
    std::ifstream in("/proc/self/mountinfo");
    std::string line;
    while (std::getline(in, line)) {
        std::istringstream f(line);
        uint64_t id = 0, parent = 0;
        std::string devno, root, point;
        if (f >> id >> parent >> devno >> root >> point && id == mnt_id) return point;
    }
    return "?";
}

}  // namespace unify
