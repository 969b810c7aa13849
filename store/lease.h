// Read leases (fcntl F_SETLEASE F_RDLCK) on an fd open read-only. The kernel refuses one while
// any fd is open for writing on the inode (a writable shared mapping keeps its fd open), and
// breaks it when anyone opens the file for writing or truncates it; that opener waits in
// open() until we let go, or until fs.lease-break-time has passed. So a lease that is still
// intact after some work proves that nothing wrote the file during it. The break is told by
// SIGIO, which unify ignores (store/interrupt.cc): the lease is asked instead.
#pragma once

namespace unify {

enum class LeaseTry {
    held,
    busy,         // some fd is open for writing on the file now
    unsupported,  // no leases here (a filesystem without them, fs.leases-enable=0)
};

LeaseTry take_read_lease(int fd);

// True while nobody has asked to write since the lease was taken, and where leases are not
// supported at all (the caller's other checks are all there is).
bool lease_intact(int fd);

// True only while a lease taken on fd is held and unbroken: unlike lease_intact, false where
// leases are not supported. What skips a re-read on the lease's word asks this.
bool lease_held(int fd);

// Lets a waiting writer go before the fd is closed.
void drop_lease(int fd);

}  // namespace unify
