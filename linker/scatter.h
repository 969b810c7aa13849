// The answer to a writer that got into an object's window on a filesystem whose immutable
// flag does not stop fds opened before it (XFS, btrfs, tmpfs; docs/threat-model.md, "the
// window"). Such a writer waits in open() for as long as the window's read lease is held, so
// at that moment the object's bytes are still intact; once the lease is let go it would hold
// a writable fd on the inode every linking guest shares, for ever. So, before the lease
// goes, every recorded name of the inode gets a private copy of its own (checked against
// the object's content, all made durable with one syncfs, renamed over the name, its record
// dropped), and the pool's name a fresh verified object. The writer is left with an inode
// that no recorded path names; the guests lose that object's saving until their next import.
#pragma once

#include <functional>
#include <iosfwd>

#include "store/index.h"
#include "store/pool.h"

namespace unify {

// Pool::with_links_allowed, answering a broken window by scattering the object's names.
// `txn`: the caller's open write transaction (the records dropped go into it, and it sees
// the links `act` just recorded), or null: one is opened and committed for them.
Result<void> with_links_guarded(Pool& pool, Txn* txn, const ObjectId& id, uint32_t replica,
                                int object_fd, const std::function<Result<void>()>& act,
                                std::ostream& log, bool* scattered = nullptr);

// The same answer for an object whose metadata a guest changed in a window that could not
// scatter itself (import's windows side by side, without the index: Protection::run_lifted's
// `tampered`): every recorded name gets a private copy with `restore`'s metadata, the pool's
// name a fresh object.
Result<void> scatter_changed(Pool& pool, Txn& txn, const ObjectId& id, uint32_t replica,
                             const Metadata& restore, std::ostream& log);

}  // namespace unify
