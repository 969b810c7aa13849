// Shared extents (XFS with reflink=1, btrfs): two inodes that share blocks, and what the
// kernel says about them. The three calls every reflink step is made of:
//   clone_file    FICLONE: an O(1) copy that shares every block of its source;
//   dedupe_file   FIDEDUPERANGE: the destination shares the source's blocks only where the
//                 kernel, holding both inodes locked, found the bytes equal; the
//                 destination keeps its inode, owner, mode, xattrs, mtime and ctime
//                 (measured on XFS and btrfs, Linux 6.18);
//   file_extents  FIEMAP: the physical extents of a file, each flagged shared or not.
// ext4 and tmpfs have none of this (EOPNOTSUPP, EXDEV, EINVAL or ENOTTY).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "store/result.h"

namespace unify {

// The filesystem of fd by fstatfs magic: "ext4", "xfs", "btrfs", "tmpfs", ..., or
// "filesystem type 0x..." for one not known here.
std::string filesystem_name(int fd);

// dest_fd (a new, empty file opened for writing) shares every block of src_fd.
Result<void> clone_file(int dest_fd, int src_fd, const std::string& shown);

// Whether an errno from clone_file or dedupe_file means "this filesystem cannot share
// extents" rather than a failure.
bool no_shared_extents(int err);

// Makes [0, len) of dest_fd share the blocks of [0, len) of src_fd, in calls of at most
// 16 MiB (btrfs's cap for one call). `differs`: the kernel found other bytes, or dest_fd is
// no longer len bytes long (a guest changed it); what was deduplicated before that stays
// shared, which is harmless: those blocks held the same bytes. dest_fd may be read-only
// (we hold CAP_SYS_ADMIN).
enum class Dedupe { same, differs };
Result<Dedupe> dedupe_file(int src_fd, int dest_fd, uint64_t len, const std::string& shown);

struct Extent {
    uint64_t logical = 0;
    uint64_t physical = 0;
    uint64_t length = 0;
    uint32_t flags = 0;  // FIEMAP_EXTENT_*
};
// Every extent of fd, after its dirty pages are written (FIEMAP_FLAG_SYNC).
Result<std::vector<Extent>> file_extents(int fd, const std::string& shown);

// Some extent of the file is shared with another inode (FIEMAP_EXTENT_SHARED). This is the
// filesystem's own answer: it also counts sharers unify does not know of (a snapshot, a
// cp --reflink), never fewer than there are.
bool any_shared(const std::vector<Extent>& extents);
// Physical bytes [start, end) on the device.
struct Span {
    uint64_t start = 0;
    uint64_t end = 0;
};
// Where the file's shared extents lie on the device, for telling which other files may hold
// the same blocks: two files share blocks only where these overlap. A compressed extent
// (FIEMAP_EXTENT_ENCODED, btrfs) is reported at the start of its on-disk extent whatever part
// of it the file uses, and its length is not on-disk bytes, so it is the one byte there: files
// sharing it report that same start. nullopt: a shared extent has no block address of its own
// (inline, delayed or unknown), so what shares it cannot be told.
std::optional<std::vector<Span>> shared_spans(const std::vector<Extent>& extents);
// The file's data lives in real blocks that another file can share: no inline or
// tail-packed data (btrfs keeps files up to 2 KiB inside its metadata), nothing still
// unallocated.
bool shareable(const std::vector<Extent>& extents);
// a and b map every byte of [0, size) to the same physical blocks (the same holes too), as
// FIEMAP tells them. Where no extent is compressed the two files share all their data, so
// they hold the same bytes there; see same_bytes_by_blocks.
bool same_blocks(const std::vector<Extent>& a, const std::vector<Extent>& b, uint64_t size);
// Some extent is compressed (FIEMAP_EXTENT_ENCODED, btrfs): FIEMAP gives it the start of its
// on-disk extent whichever part of it the file uses.
bool any_encoded(const std::vector<Extent>& extents);
// same_blocks where that proves the bytes equal: no extent of either file compressed. A
// guest on btrfs can clone other parts of one compressed extent into its files (its own
// chattr +c, FICLONERANGE), and same_blocks then holds for files of different bytes.
bool same_bytes_by_blocks(const std::vector<Extent>& a, const std::vector<Extent>& b,
                          uint64_t size);

// init's probe for real: FICLONE between two scratch files made (unnamed) in dirfd.
// Ok where the filesystem shares extents; otherwise the error names the filesystem.
Result<void> probe_shared_extents(int dirfd, const std::string& shown);

}  // namespace unify
