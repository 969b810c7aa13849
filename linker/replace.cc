#include "linker/replace.h"

#include <fcntl.h>
#include <unistd.h>

#include "store/fault.h"
#include "store/fresh_file.h"

namespace unify {

namespace {

using Check = std::function<bool(const FileStat& now, const FileStat& expected)>;

// Renames temp over name if name still passes `check`; the temporary never outlives us.
Result<Replaced> swap_in(int dirfd, const std::string& temp_name, const std::string& name,
                         const FileStat& expected, Check check, const std::string& shown) {
    auto drop_temp = [&] { unlinkat(dirfd, temp_name.c_str(), 0); };
    fault_point("replace.check");  // a guest writing here is what the check below catches
    auto now = stat_if_exists(dirfd, name, shown);
    if (!now) {
        drop_temp();
        return std::unexpected(now.error());
    }
    if (!*now || !check(**now, expected)) {
        drop_temp();
        return Replaced::changed;
    }
    fault_point("replace.rename");
    if (renameat(dirfd, temp_name.c_str(), dirfd, name.c_str()) != 0) {
        int err = errno;
        drop_temp();
        if (err == EPERM) return Replaced::refused;
        if (err == ENOENT) return Replaced::changed;
        return sys_fail("renameat", shown, err);
    }
    return Replaced::done;
}

}  // namespace

Result<Replaced> rename_over(int dirfd, const std::string& temp_name, const std::string& name,
                             const FileStat& expected, const std::string& shown) {
    // The path is an object link: its ctime moves with the protection window, its inode not.
    return swap_in(
        dirfd, temp_name, name, expected,
        [](const FileStat& now, const FileStat& exp) { return now.same_inode(exp); }, shown);
}

Result<Replaced> link_over(int objects_fd, const std::string& object_name, int dirfd,
                           const std::string& name, const FileStat& expected,
                           const std::function<bool()>& still_unwritten,
                           const std::string& temp_prefix, const std::string& shown) {
    fault_point("replace.link");
    std::string temp_name;
    for (;;) {
        temp_name = temp_prefix + random_hex(8);
        if (linkat(objects_fd, object_name.c_str(), dirfd, temp_name.c_str(), 0) == 0) break;
        if (errno == EEXIST) continue;
        if (errno == EMLINK) return Replaced::emlink;
        return sys_fail("linkat", shown + " (temporary " + temp_name + ")");
    }
    // The guest's own file must be exactly what was hashed: same inode, size, times, owner.
    return swap_in(
        dirfd, temp_name, name, expected,
        [&](const FileStat& now, const FileStat& exp) {
            return now.unchanged(exp) && still_unwritten();
        },
        shown);
}

}  // namespace unify
