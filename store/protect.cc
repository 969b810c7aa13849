#include "store/protect.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <linux/magic.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "store/fault.h"
#include "store/interrupt.h"
#include "store/lease.h"

namespace unify {

namespace {

// Patched VServer kernels expose IATTR_IXUNLINK through FS_IOC_SETFLAGS as this bit. On a
// stock kernel ext4 gives it another meaning, so it is only ever set after the kernel was
// detected as VServer (check_protect_mode refuses iunlink otherwise).
constexpr unsigned kIxunlinkFlag = 0x08000000;

unsigned mode_bits(ProtectMode m) {
    switch (m) {
        case ProtectMode::none:
            return 0;
        case ProtectMode::immutable:
            return FS_IMMUTABLE_FL;
        case ProtectMode::iunlink:
            return FS_IMMUTABLE_FL | kIxunlinkFlag;
    }
    return 0;
}

Result<void> try_immutable(int dirfd, const std::string& shown) {
    std::string name = unique_temp_name(".unify-probe.", "x");
    int fd = openat(dirfd, name.c_str(), O_CREAT | O_EXCL | O_RDONLY | O_CLOEXEC, 0600);
    if (fd < 0) return sys_fail("openat", join_path(shown, name));
    Fd f(fd);
    auto flags = get_inode_flags(fd, join_path(shown, name));
    Result<void> r;
    if (!flags) {
        r = std::unexpected(flags.error());
    } else if (auto s = set_inode_flags(fd, *flags | FS_IMMUTABLE_FL, join_path(shown, name)); !s) {
        r = std::unexpected(s.error());
    } else {
        (void)set_inode_flags(fd, *flags, join_path(shown, name));
    }
    unlinkat(dirfd, name.c_str(), 0);
    return r;
}

}  // namespace

std::string to_string(ProtectMode m) {
    switch (m) {
        case ProtectMode::none:
            return "none";
        case ProtectMode::immutable:
            return "immutable";
        case ProtectMode::iunlink:
            return "iunlink";
    }
    return "?";
}

std::optional<ProtectMode> parse_protect_mode(const std::string& s) {
    if (s == "none") return ProtectMode::none;
    if (s == "immutable") return ProtectMode::immutable;
    if (s == "iunlink") return ProtectMode::iunlink;
    return std::nullopt;
}

bool is_vserver_kernel() {
    if (access("/proc/virtual", F_OK) == 0) return true;
#ifdef __x86_64__
    // vserver(VCMD_get_version = 0, 0, NULL); stock kernels answer ENOSYS.
    long r = syscall(236, 0, 0, nullptr);
    return !(r < 0 && errno == ENOSYS);
#else
    return false;
#endif
}

Result<void> check_protect_mode(ProtectMode mode, int scratch_dirfd, const std::string& shown) {
    switch (mode) {
        case ProtectMode::none:
            return {};
        case ProtectMode::iunlink:
            if (!is_vserver_kernel())
                return fail(
                    "--protect iunlink needs a Linux-VServer kernel (no /proc/virtual, and the "
                    "vserver syscall answers ENOSYS); use --protect immutable on a stock kernel");
            return {};
        case ProtectMode::immutable:
            if (auto r = try_immutable(scratch_dirfd, shown); !r) {
                if (r.error().err == EPERM)
                    return fail("--protect immutable: setting the immutable flag under " + shown +
                                    " was refused (EPERM): the process lacks "
                                    "CAP_LINUX_IMMUTABLE; run as root with that capability, "
                                    "or choose --protect none",
                                EPERM);
                if (r.error().err == ENOTTY || r.error().err == EOPNOTSUPP)
                    return fail("--protect immutable: the filesystem of " + shown +
                                    " does not support the immutable flag; choose --protect none",
                                r.error().err);
                return std::unexpected(context(r.error(), "--protect immutable"));
            }
            return {};
    }
    return {};
}

Result<ProtectMode> choose_protect_mode(int scratch_dirfd, const std::string& shown) {
    if (is_vserver_kernel()) return ProtectMode::iunlink;
    if (auto r = check_protect_mode(ProtectMode::immutable, scratch_dirfd, shown); !r)
        return fail("--protect auto: no protection works here: " + r.error().message +
                        ". With --protect none a guest that writes a shared file in place "
                        "changes it for every guest.",
                    r.error().err);
    return ProtectMode::immutable;
}

Result<void> Protection::protect(int fd, const std::string& shown) const {
    unsigned bits = mode_bits(mode_);
    if (!bits) return {};
    auto flags = get_inode_flags(fd, shown);
    if (!flags) return std::unexpected(flags.error());
    // Flags a guest set through its name (guest_flags) go in the same call: an object carries
    // none of one guest's wishes (nodump would hide it from every sharer's backups).
    if ((*flags & bits) == bits && !guest_flags(*flags)) return {};
    return set_inode_flags(fd, (*flags | bits) & ~guest_flags(*flags), shown);
}

Result<void> Protection::unprotect(int fd, const std::string& shown) const {
    unsigned bits = mode_bits(mode_);
    if (mode_ == ProtectMode::none) bits = FS_IMMUTABLE_FL;  // whatever we find, lift it
    auto flags = get_inode_flags(fd, shown);
    if (!flags) return std::unexpected(flags.error());
    if ((*flags & bits) == 0) return {};
    return set_inode_flags(fd, *flags & ~bits, shown);
}

Result<bool> Protection::is_protected(int fd, const std::string& shown) const {
    unsigned bits = mode_bits(mode_);
    if (!bits) return true;
    auto flags = get_inode_flags(fd, shown);
    if (!flags) return std::unexpected(flags.error());
    return (*flags & bits) == bits;
}

unsigned guest_flags(unsigned flags) {
    return flags & (FS_SECRM_FL | FS_UNRM_FL | FS_SYNC_FL | FS_NODUMP_FL | FS_NOATIME_FL);
}

std::string describe_guest_flags(unsigned flags) {
    std::string out;
    for (auto [bit, name] : {std::pair{FS_SECRM_FL, "secure deletion"},
                             {FS_UNRM_FL, "undelete"},
                             {FS_SYNC_FL, "sync"},
                             {FS_NODUMP_FL, "nodump"},
                             {FS_NOATIME_FL, "noatime"}})
        if (flags & unsigned(bit)) out += (out.empty() ? "" : ", ") + std::string(name);
    return out;
}

Result<Metadata> metadata_of(int fd, const std::string& shown) {
    auto st = stat_fd(fd, shown);
    if (!st) return std::unexpected(st.error());
    auto x = read_xattrs(fd, shown);
    if (!x) return std::unexpected(x.error());
    return Metadata{*st, std::move(*x)};
}

Result<void> Protection::run_lifted(int object_fd, const std::string& shown,
                                    const std::function<Result<void>()>& act,
                                    const std::function<Result<bool>()>& intact,
                                    const ScatterFn& scatter, Metadata* tampered) const {
    if (mode_ != ProtectMode::immutable) return act();
    auto before = metadata_of(object_fd, shown);
    if (!before) return std::unexpected(before.error());
    // The lease is taken while the flag is still set, so no writable fd can appear before it.
    // A writable fd that exists now (on ext4 a harmless one, left by a writer that waited
    // through an earlier window) would write while the flag is off: wait up to ~2 s for it
    // to close, then refuse.
    LeaseTry lease = take_read_lease(object_fd);
    for (int wait_us = 1000; lease == LeaseTry::busy && wait_us <= 512000 && !interrupted();
         wait_us *= 2) {
        usleep(useconds_t(wait_us));
        lease = take_read_lease(object_fd);
    }
    bool leased = lease == LeaseTry::held;
    // EAGAIN: nothing was lifted, and the caller may skip what wanted the window.
    if (lease == LeaseTry::busy)
        return fail("object " + shown +
                        " is open for writing by some process although it is protected; its "
                        "protection is not lifted for linking. Find the process (fuser), then "
                        "run unify verify --full",
                    EAGAIN);
    fault_point("window.unprotect");
    if (auto r = unprotect(object_fd, shown); !r) {
        if (leased) drop_lease(object_fd);
        return r;
    }
    Result<void> acted = act();
    fault_point("window.protect");
    Result<void> restored = protect(object_fd, shown);
    // F_UNLCK here: someone opened the object for writing and waits for us to let go.
    bool broken = leased && !lease_intact(object_fd);
    // With the flag back nothing can change the metadata any more: what differs now was
    // done through a guest's name of the object in the window.
    auto after = metadata_of(object_fd, shown);
    bool changed = restored && after && !after->same_as(*before);
    // Where the flag spares earlier fds, that writer will write the shared inode once we let
    // go. It is still held in open(), so the bytes are intact: every name moves off the
    // inode first, whatever act() did, and the writer is left with an inode nobody shares.
    // Changed metadata is answered the same way, the copies and the fresh object getting
    // the metadata from before the window.
    bool scattered = scatter && (changed || (broken && flag_spares_earlier_writers(object_fd)));
    Result<void> moved = scattered ? scatter(changed ? &*before : nullptr) : Result<void>();
    if (leased) drop_lease(object_fd);
    if (!moved) return moved;
    if (!acted) return acted;
    if (scattered) return restored;
    if (!restored) return restored;
    if (!after) return std::unexpected(after.error());
    const std::string lifted = " while its immutable flag was lifted for linking";
    if (changed) {
        if (tampered) *tampered = *before;
        return fail("object " + shown + " was changed" + lifted +
                        " (size, mtime, mode, owner or xattrs); it no longer matches its id: run "
                        "unify verify --full",
                    EUCLEAN);
    }
    if (broken && flag_spares_earlier_writers(object_fd))
        return fail("object " + shown + " was opened for writing" + lifted +
                        ", on a filesystem where the flag does not stop an fd opened before it: "
                        "that process can change it for every guest that links it. Run unify "
                        "verify --full, and unify unshare for the guests that link it",
                    EBUSY);
    if ((broken || !leased) && intact) {
        auto ok = intact();
        if (!ok) return std::unexpected(ok.error());
        if (!*ok)
            return fail("object " + shown + " was written" + lifted +
                        "; it no longer matches its id: run unify verify --full");
    }
    return {};
}

bool flag_spares_earlier_writers(int fd) {
    struct statfs sfs;
    if (fstatfs(fd, &sfs) != 0) return true;
    return sfs.f_type != EXT4_SUPER_MAGIC;  // ext2, ext3 and ext4 share the magic
}

}  // namespace unify
