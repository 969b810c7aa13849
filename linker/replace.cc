#include "linker/replace.h"

#include <fcntl.h>
#include <unistd.h>

namespace unify {

Result<Replaced> rename_over(int dirfd, const std::string& temp_name, const std::string& name,
                             const FileStat& expected, const std::string& shown) {
    auto drop_temp = [&] { unlinkat(dirfd, temp_name.c_str(), 0); };
    auto now = stat_if_exists(dirfd, name, shown);
    if (!now) {
        drop_temp();
        return std::unexpected(now.error());
    }
    if (!*now || !(*now)->unchanged(expected)) {
        drop_temp();
        return Replaced::changed;
    }
    if (renameat(dirfd, temp_name.c_str(), dirfd, name.c_str()) != 0) {
        int err = errno;
        drop_temp();
        if (err == EPERM) return Replaced::refused;
        if (err == ENOENT) return Replaced::changed;
        return sys_fail("renameat", shown, err);
    }
    return Replaced::done;
}

Result<Replaced> link_over(int objects_fd, const std::string& object_name, int dirfd,
                           const std::string& name, const FileStat& expected,
                           const std::string& temp_name, const std::string& shown) {
    if (linkat(objects_fd, object_name.c_str(), dirfd, temp_name.c_str(), 0) != 0) {
        if (errno == EMLINK) return Replaced::emlink;
        return sys_fail("linkat", join_path(shown, "../" + temp_name));
    }
    return rename_over(dirfd, temp_name, name, expected, shown);
}

}  // namespace unify
