// Whether a guest file's stat is proof that it did not change since it was hashed.
//
// write() moves mtime and ctime, but only to the filesystem's coarse clock tick; a store
// through a shared writable mapping moves them only when it dirties a clean page, and a
// dirty page stays dirty until writeback (vm.dirty_expire_centisecs after it was dirtied,
// checked every vm.dirty_writeback_centisecs). So a file whose ctime is older than
// expire + writeback (+ a margin) before the import started is "settled": nothing can change
// it without moving its ctime, and the stat comparison before the rename is sound.
//
// An unsettled file, changed in the last minute or so, is read under a read lease
// (F_SETLEASE F_RDLCK, refused while anyone has it open for writing, broken when anyone opens
// it for writing or truncates it), taken before the hash pass reads its first byte and held
// until it is replaced, then asked once more right before the rename: an unbroken lease
// proves the bytes hashed are the bytes there. Where the hash pass could not take it, or it
// broke during the read, it is taken just before the file is replaced and the file hashed
// again under it (lease_and_recheck). Real guests have few such files; in just-made copies
// of a guest every file is one, and reading each a second time was a sixth of their import
// (g1..g4: 2,304 → 1,921 ms).
#pragma once

#include <cstdint>

#include "importer/walker.h"
#include "store/fd.h"
#include "store/identify.h"
#include "store/lease.h"
#include "store/object_id.h"

namespace unify {

// Files with a ctime at or after this are unsettled.
int64_t settle_cutoff_ns();

enum class Recheck { same, busy, changed };

// Leases the file (the lease lives as long as `lease`), re-reads it and compares its id.
// copy_of: the object whose bytes it had when it was hashed (Hashed::copy_of), compared with
// again instead of SHA-256 (pool: where it is).
Result<Recheck> lease_and_recheck(const WalkEntry& e, const ObjectId& expected,
                                  const IdRules& rules, Fd& lease, const std::string& shown,
                                  const Pool* pool = nullptr, const Candidate* copy_of = nullptr);

// A lease the hash pass took before it read the file (Hashed::lease), moved to `lease`:
// same while it is unbroken, busy once a writer waits for it.
Recheck lease_since_read(Fd& hashed, Fd& lease);

// The read lease alone (no re-read): busy while any process holds the walked file open for
// writing, changed if the name is no longer that file. The lease lives as long as `lease`.
Result<Recheck> lease_unwritten(const WalkEntry& e, Fd& lease, const std::string& shown);

}  // namespace unify
