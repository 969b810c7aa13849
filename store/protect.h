// Protection: what stops a guest from changing an inode that other guests share.
//   iunlink    Linux-VServer: IMMUTABLE + IXUNLINK. Nobody can write it, but guests may
//              unlink, rename over and link it, so package upgrades just work.
//   immutable  stock FS_IMMUTABLE_FL. The kernel then also refuses link(), unlink() and
//              rename() of the inode under any name, so every pool operation that adds or
//              drops a link runs inside a window: clear, act, set, then check that nothing
//              wrote to the object while it was open.
//   none       nothing: a guest writing a shared file in place changes it for everyone.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "store/result.h"
#include "store/sys.h"

namespace unify {

enum class ProtectMode { none, immutable, iunlink };

// What a window must leave as it found it. The lease stops writers, not chmod, chown,
// utimensat or setxattr: a guest can run those through its own name of the object while the
// flag is lifted, and every other guest linking it would see the result (a capability on a
// shared binary).
struct Metadata {
    FileStat st;
    Xattrs xattrs;
    // Mode, owner, mtime, size and xattrs equal (what an id covers, and the size).
    bool same_as(const Metadata& o) const {
        return st.size == o.st.size && st.mtime_ns == o.st.mtime_ns && st.mode == o.st.mode &&
               st.uid == o.st.uid && st.gid == o.st.gid && xattrs == o.xattrs;
    }
};
Result<Metadata> metadata_of(int fd, const std::string& shown);

// A window's answer to what it cannot take back by itself: `restore` is null when a writer
// got in (the bytes are still intact), else the metadata the object had before the window,
// which every copy and the fresh object must get (linker/scatter.h).
using ScatterFn = std::function<Result<void>(const Metadata* restore)>;

std::string to_string(ProtectMode m);
std::optional<ProtectMode> parse_protect_mode(const std::string& s);

// Whether an fd opened for writing before the immutable flag was set still writes after it
// (DESIGN.md, facts of the kernel, measured on 6.18): XFS, btrfs and tmpfs let it, only
// ext2/3/4 refuse. There a file held open for writing must never become an object or be
// linked over (import leases it first), and a writer that slipped into a protection window
// keeps writing the object for ever. By fstatfs magic; anything not known to refuse counts
// as sparing.
bool flag_spares_earlier_writers(int fd);

// /proc/virtual, or the vserver syscall answering anything but ENOSYS.
bool is_vserver_kernel();

// --protect auto: iunlink on a VServer kernel, else immutable where the filesystem of
// dirfd takes the flag and we hold CAP_LINUX_IMMUTABLE (tried on a scratch file), else an
// error that names --protect none.
Result<ProtectMode> choose_protect_mode(int scratch_dirfd, const std::string& shown);
// Fails clearly where `mode` cannot work here (iunlink without VServer, immutable without
// the capability or filesystem support).
Result<void> check_protect_mode(ProtectMode mode, int scratch_dirfd, const std::string& shown);

// Inode flags a guest can set on an object through its own name where the immutable flag
// does not stop it (XFS, btrfs, tmpfs; ext4 refuses): secure deletion, undelete, synchronous
// writes, nodump, noatime. Every guest linking the object then has them (nodump hides the
// file from their dump backups). verify reports them; --quarantine clears them, and so does
// every protection of the object (Protection::protect: each window an import opens on it).
unsigned guest_flags(unsigned flags);
// "nodump, noatime" for those bits.
std::string describe_guest_flags(unsigned flags);

class Protection {
  public:
    explicit Protection(ProtectMode mode) : mode_(mode) {}
    ProtectMode mode() const { return mode_; }

    Result<void> protect(int fd, const std::string& shown) const;
    Result<void> unprotect(int fd, const std::string& shown) const;
    Result<bool> is_protected(int fd, const std::string& shown) const;

    // The body of Pool::with_links_allowed, which is the only caller (it adds the intent
    // record): runs `act` with the object's protection lifted if the kernel requires that
    // for link, unlink and rename (stock immutable), and restores it whatever `act` returned.
    // A read lease on object_fd, taken while the flag is still set, is held across the
    // window: anyone opening the object for writing meanwhile waits in the kernel until the
    // flag is back (on ext4 its writes then fail). A lease that cannot be had because the
    // object is open for writing already refuses the window. After it, a lease broken (a
    // writer waited) or unavailable means the bytes are confirmed by `intact` (a re-hash);
    // and the object's size, mtime, mode and owner must be what they were before. Where the
    // flag spares earlier fds (XFS, btrfs, tmpfs), that writer would hold a writable fd on
    // the shared inode for ever: `scatter` is then run while the lease still holds it in
    // open() and the bytes are intact, and must move every name of the inode onto other
    // inodes (linker/scatter.h); without `scatter` the window is reported as an error
    // naming the object (docs/threat-model.md).
    // An object open for writing is refused before anything is lifted, with EAGAIN (a
    // guest's writable mapping of a file adopted on ext4, say).
    // Metadata changed meanwhile is answered by `scatter` with the metadata from before;
    // without one it is an error (EUCLEAN), and `tampered`, if given, gets that metadata so
    // that the caller can scatter later, where it has the index.
    Result<void> run_lifted(int object_fd, const std::string& shown,
                            const std::function<Result<void>()>& act,
                            const std::function<Result<bool>()>& intact = {},
                            const ScatterFn& scatter = {}, Metadata* tampered = nullptr) const;

  private:
    ProtectMode mode_;
};

}  // namespace unify
