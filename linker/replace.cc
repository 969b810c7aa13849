#include "linker/replace.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>  // renameat2
#include <unistd.h>

#include <optional>

#include "store/fault.h"
#include "store/fresh_file.h"

namespace unify {

namespace {

// `exchanged`: `now` was looked at after our own exchange moved it, so its ctime moved too.
using Check = std::function<bool(const FileStat& now, const FileStat& expected, bool exchanged)>;

// Moves the guest's file at temp_name to a ".kept" name, which no sweep removes, and returns
// where it is. The guest sees temp_name (inotify) and may have planted temp_name + ".kept"
// already: the name then gets a random part. Left at temp_name only on another error.
std::string keep_aside(int dirfd, const std::string& temp_name) {
    std::string kept = temp_name + ".kept";
    for (int tries = 0; tries < 16; ++tries) {
        if (renameat2(dirfd, temp_name.c_str(), dirfd, kept.c_str(), RENAME_NOREPLACE) == 0)
            return kept;
        if (errno != EEXIST) break;
        kept = temp_name + "." + random_hex(4) + ".kept";
    }
    return temp_name;
}

// Puts temp in name's place if name still passes `check`; the temporary never outlives us (what
// it holds after the swap is unlinked, or handed to `trash`).
// The swap is a RENAME_EXCHANGE and the check is made again on what it displaced: a plain
// rename after the check would destroy whatever the guest (dpkg installing an upgrade) renamed
// over `name` between the two. What was displaced by mistake is exchanged back.
// `ours` names the inode unify put at temp_name; it is asked only when something has to be
// put back (not per file: import's link loop runs this for every linked file).
Result<Replaced> swap_in(int dirfd, const std::string& temp_name, const std::string& name,
                         const FileStat& expected, Check check,
                         const std::function<std::optional<FileStat>()>& ours, Trash* trash,
                         const std::string& shown, const char* exchanged_point) {
    auto drop_temp = [&] { unlinkat(dirfd, temp_name.c_str(), 0); };
    fault_point("replace.check");  // a guest writing here is what the check below catches
    auto now = stat_if_exists(dirfd, name, shown);
    if (!now) {
        drop_temp();
        return std::unexpected(now.error());
    }
    if (!*now || !check(**now, expected, false)) {
        drop_temp();
        return Replaced::changed;
    }
    fault_point("replace.rename");  // a package manager renaming its new file here
    if (renameat2(dirfd, temp_name.c_str(), dirfd, name.c_str(), RENAME_EXCHANGE) != 0) {
        int err = errno;
        drop_temp();
        if (err == EPERM) return Replaced::refused;
        if (err == ENOENT) return Replaced::changed;
        return sys_fail("renameat2 RENAME_EXCHANGE", shown, err);
    }
    // Killed here, what was at name stays at temp_name: the next import of the guest knows
    // it by its content (Importer::classify_temp).
    if (exchanged_point) fault_point(exchanged_point);
    auto displaced = stat_if_exists(dirfd, temp_name, shown);
    if (displaced && *displaced && check(**displaced, expected, true)) {
        std::string was = shown + " (its replaced file, now " + temp_name + ")";
        // Only a last name frees blocks (the slow part). The inode's other names must still pass
        // their own check: a rename moves its ctime alone, which FileStat::unchanged refuses;
        // an unlink moves nlink too, which it allows.
        if (trash && (*displaced)->nlink == 1) {
            if (auto r = trash->take(dirfd, temp_name, **displaced, was); !r)
                return std::unexpected(r.error());
        } else if (unlinkat(dirfd, temp_name.c_str(), 0) != 0) {
            return sys_fail("unlinkat", was);
        }
        return Replaced::done;
    }
    // Another file took name's place after the check: it goes back where the guest put it.
    if (renameat2(dirfd, temp_name.c_str(), dirfd, name.c_str(), RENAME_EXCHANGE) != 0)
        return sys_fail("renameat2 RENAME_EXCHANGE",
                        shown + " (putting back the guest's file, now " + temp_name + ")");
    auto back = stat_if_exists(dirfd, temp_name, shown);
    auto mine = ours();
    if (back && *back && mine && (*back)->same_inode(*mine)) {
        drop_temp();
        return Replaced::changed;
    }
    // The guest moved name a second time within the two exchanges: what is at temp_name now
    // is its file, never ours to remove. It may even be a copy of the object (the guest put
    // back what it had), which at temp_name the next sweep would take for an original the
    // exchange displaced: ".kept" names are never swept.
    std::string kept = keep_aside(dirfd, temp_name);
    return fail("replace " + shown + ": the guest changed it twice while unify replaced it; " +
                "its file is kept as " + kept);
}

}  // namespace

Result<Replaced> rename_over(int dirfd, const std::string& temp_name, const std::string& name,
                             const FileStat& expected, const std::string& shown) {
    // The copy is only reachable by its temporary name until the swap: look at it now.
    auto copy = stat_if_exists(dirfd, temp_name, shown + " (temporary " + temp_name + ")");
    if (!copy || !*copy) {
        unlinkat(dirfd, temp_name.c_str(), 0);
        return copy ? sys_fail("fstatat", shown + " (temporary " + temp_name + ")", ENOENT)
                    : std::unexpected(copy.error());
    }
    // The path is an object link: its ctime moves with the protection window, its inode not.
    return swap_in(
        dirfd, temp_name, name, expected,
        [](const FileStat& now, const FileStat& exp, bool) { return now.same_inode(exp); },
        // Killed after the exchange, the object's link stays at the copy's name: unshare's
        // re-run removes it (linker/unshare.cc), and so does the guest's next import.
        [&] { return *copy; }, nullptr, shown, "unshare.exchanged");
}

Result<Replaced> link_over(int objects_fd, const std::string& object_name, int dirfd,
                           const std::string& name, const FileStat& expected,
                           const std::function<bool()>& still_unwritten,
                           const std::function<bool(const FileStat& now)>& recheck,
                           const std::string& temp_prefix, Trash* trash, const std::string& shown) {
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
        [&](const FileStat& now, const FileStat& exp, bool exchanged) {
            if (exchanged) return now.unchanged_but_ctime(exp) && still_unwritten();
            if (now.unchanged(exp)) return still_unwritten();
            return now.only_links_moved(exp) && recheck(now) && still_unwritten();
        },
        // The temporary is a link of the pool's object, which keeps its name meanwhile.
        [&]() -> std::optional<FileStat> {
            auto obj = stat_if_exists(objects_fd, object_name, object_name);
            return obj ? *obj : std::nullopt;
        },
        trash, shown, "replace.exchanged");
}

}  // namespace unify
