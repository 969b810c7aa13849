// The reflink side of the share seam (docs/DESIGN.md, "The share seam"): in a reflink pool a
// guest file is never replaced, renamed or linked; it keeps its inode, path, owner, mode,
// xattrs and times, and only its blocks change owner.
//   clone_object   a new object: an unnamed file in POOL/tmp made with FICLONE from the
//                  guest file (a guest writing its own file after the clone gives itself
//                  private blocks and cannot reach the object), hashed from what was cloned
//                  (the guest file's cached pages under a read lease held from before the
//                  clone, else the clone), then linked at its name. The guest file already
//                  shares its blocks. Where the guest file was read with XXH3 alone, that
//                  hash is the id.
//   share_object   a further guest file: FIDEDUPERANGE against a recorded sharer's file, kept
//                  only if the guest file then maps the object's blocks, else against the
//                  object; the kernel compares the bytes under lock, so a file that changed
//                  since it was hashed is left as it is (`changed`).
//   unshare_blocks private blocks for a guest file, same inode: a plain (not reflinked) copy
//                  of its bytes in POOL/tmp, then FIDEDUPERANGE of the copy over the file, so
//                  a guest write in between makes the kernel refuse rather than lose it; the
//                  copy is unnamed and goes when closed, leaving the file the only owner.
// None of them needs the pool's protection or a window: the object is reachable from the
// pool only.
#pragma once

#include <optional>
#include <string>

#include "linker/object_maker.h"
#include "store/pool.h"

namespace unify {

// guest_fd: open for reading on the guest file hashed as `expected`; none where it was not
// hashed (Hashed::provisional): the clone's hash is the id, whatever it is, and the file must
// still be as `walked` once cloned (outcome `changed` otherwise), so that what is recorded of
// it is what was cloned.
Result<MadeObject> clone_object(const Pool& pool, const std::optional<ObjectId>& expected,
                                int guest_fd, const FileStat& walked, const std::string& shown);

// refused: EPERM (immutable, append-only). already (share_object): every byte of the file
// mapped to the object's blocks before it was asked (a cp --reflink copy of another guest's
// file, a snapshot): nothing to do, and nothing freed.
enum class Shared { shared, changed, refused, already };
// Whether the guest file already maps every byte of its `size` to the object's blocks (a
// cp --reflink copy of another guest's file, a snapshot), where that proves its bytes are the
// object's: never where an extent is compressed (same_bytes_by_blocks), which the kernel's
// compare must then decide.
Result<bool> already_shares(const Pool& pool, const ObjectId& id, uint32_t replica, int guest_fd,
                            uint64_t size, const std::string& shown);
// guest_fd: open (read-only is enough as root) on a guest file of `size` bytes. warm_fd (or
// -1): a file believed to map the object's blocks, with its pages likely cached
// (importer/warm_sources.h): the guest file is deduplicated against it first, and counts as
// sharing the object only if it then maps the object's blocks; otherwise, or if that compare
// refused, against the object itself, whose answer is the one that counts.
Result<Shared> share_object(const Pool& pool, const ObjectId& id, uint32_t replica, int guest_fd,
                            uint64_t size, const std::string& shown, int warm_fd = -1);

Result<Shared> unshare_blocks(const Pool& pool, int guest_fd, uint64_t size,
                              const std::string& shown);

}  // namespace unify
