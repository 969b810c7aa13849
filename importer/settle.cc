#include "importer/settle.h"

#include <fcntl.h>
#include <time.h>

#include <fstream>

#include "importer/guest_file.h"
#include "store/fault.h"
#include "store/identify.h"

namespace unify {

namespace {

int64_t read_centisecs(const char* path, int64_t fallback) {
    std::ifstream in(path);
    int64_t v = 0;
    return (in >> v) && v > 0 ? v : fallback;
}

}  // namespace

int64_t settle_cutoff_ns() {
    int64_t cs = read_centisecs("/proc/sys/vm/dirty_expire_centisecs", 3000) +
                 read_centisecs("/proc/sys/vm/dirty_writeback_centisecs", 500) + 1000;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return fault_settle_cutoff(int64_t(now.tv_sec) * 1000000000 + now.tv_nsec - cs * 10000000);
}

Result<Recheck> lease_unwritten(const WalkEntry& e, Fd& lease, const std::string& shown) {
    auto f = open_guest_file(e, shown);
    if (!f) return std::unexpected(f.error());
    if (f->state == GuestFile::unreadable) return std::unexpected(f->error);
    if (f->state != GuestFile::ok) return Recheck::changed;
    lease = std::move(f->fd);
    // Without leases on this filesystem, what the caller re-reads is all there is.
    return take_read_lease(lease.get()) == LeaseTry::busy ? Recheck::busy : Recheck::same;
}

Recheck lease_since_read(Fd& hashed, Fd& lease) {
    lease = std::move(hashed);
    return lease_held(lease.get()) ? Recheck::same : Recheck::busy;
}

Result<Recheck> lease_and_recheck(const WalkEntry& e, const ObjectId& expected,
                                  const IdRules& rules, Fd& lease, const std::string& shown,
                                  const Pool* pool, const Candidate* copy_of) {
    auto leased = lease_unwritten(e, lease, shown);
    if (!leased || *leased != Recheck::same) return leased;
    // The bytes and metadata read now are checked against the id, so the walk's ctime is not
    // needed: it may have moved with the link count (unify swept a temporary name of this
    // inode, or replaced another of its names). What must hold is that nothing changed while
    // they were read, and that it is still the file the walk saw.
    auto before = stat_fd(lease.get(), shown);
    if (!before) return std::unexpected(before.error());
    auto now = identify_file(lease.get(), shown, rules, pool, copy_of);
    if (!now) return std::unexpected(now.error());
    if (!now->st.unchanged(*before) || !before->unchanged_but_ctime(e.st)) return Recheck::changed;
    return now->id == expected ? Recheck::same : Recheck::changed;
}

}  // namespace unify
