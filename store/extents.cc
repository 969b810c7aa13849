#include "store/extents.h"

#include <linux/fiemap.h>
#include <linux/fs.h>
#include <linux/magic.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <memory>

#include "store/fault.h"
#include "store/fd.h"
#include "store/fresh_file.h"
#include "store/sys.h"

namespace unify {

namespace {

constexpr uint64_t kDedupeChunk = 16 << 20;  // btrfs refuses more per call
constexpr uint32_t kExtentsPerCall = 256;
// Data that is not in blocks of its own, or not yet anywhere: nothing to share.
constexpr uint32_t kUnshareable = FIEMAP_EXTENT_DATA_INLINE | FIEMAP_EXTENT_DATA_TAIL |
                                  FIEMAP_EXTENT_NOT_ALIGNED | FIEMAP_EXTENT_DELALLOC |
                                  FIEMAP_EXTENT_UNKNOWN;

// Extents clipped to [0, size), adjacent ones merged, so two files mapping the same blocks
// compare equal however each filesystem split them.
std::vector<Extent> normalised(const std::vector<Extent>& in, uint64_t size) {
    std::vector<Extent> out;
    for (Extent e : in) {
        // Preallocated and never written: it reads as zeros and holds no data, as a hole
        // does. A clone leaves the range a hole in the copy (XFS) while the guest file keeps
        // its own unwritten extent, and the two are the same bytes shared all the same.
        if (e.logical >= size || (e.flags & FIEMAP_EXTENT_UNWRITTEN)) continue;
        e.length = std::min(e.length, size - e.logical);
        e.flags = 0;
        if (!out.empty()) {
            Extent& b = out.back();
            if (b.logical + b.length == e.logical && b.physical + b.length == e.physical) {
                b.length += e.length;
                continue;
            }
        }
        out.push_back(e);
    }
    return out;
}

}  // namespace

std::string filesystem_name(int fd) {
    struct statfs s;
    if (fstatfs(fd, &s) != 0) return "unknown filesystem";
    switch (static_cast<unsigned long>(s.f_type)) {
        case EXT4_SUPER_MAGIC:  // ext2 and ext3 too
            return "ext4";
        case XFS_SUPER_MAGIC:
            return "xfs";
        case BTRFS_SUPER_MAGIC:
            return "btrfs";
        case TMPFS_MAGIC:
            return "tmpfs";
        case OVERLAYFS_SUPER_MAGIC:
            return "overlayfs";
        case NFS_SUPER_MAGIC:
            return "nfs";
        case F2FS_SUPER_MAGIC:
            return "f2fs";
        case 0xca451a4e:
            return "bcachefs";
        case 0x2fc12fc1:
            return "zfs";
    }
    char buf[48];
    snprintf(buf, sizeof buf, "filesystem type 0x%lx", static_cast<unsigned long>(s.f_type));
    return buf;
}

bool no_shared_extents(int err) {
    return err == EOPNOTSUPP || err == ENOTTY || err == EXDEV || err == EINVAL || err == ENOSYS;
}

Result<void> clone_file(int dest_fd, int src_fd, const std::string& shown) {
    if (ioctl(dest_fd, FICLONE, src_fd) != 0) return sys_fail("ioctl(FICLONE)", shown);
    return {};
}

Result<Dedupe> dedupe_file(int src_fd, int dest_fd, uint64_t len, const std::string& shown) {
    auto st = stat_fd(dest_fd, shown);
    if (!st) return std::unexpected(st.error());
    if (st->size != len) return Dedupe::differs;
    // One destination: the header and its one info entry (a flexible array member).
    alignas(file_dedupe_range) unsigned char
        buf[sizeof(file_dedupe_range) + sizeof(file_dedupe_range_info)];
    auto* range = reinterpret_cast<file_dedupe_range*>(buf);
    file_dedupe_range_info& info = range->info[0];
    for (uint64_t off = 0; off < len;) {
        std::fill(std::begin(buf), std::end(buf), 0);
        range->src_offset = off;
        range->src_length = std::min(kDedupeChunk, len - off);
        range->dest_count = 1;
        info.dest_fd = dest_fd;
        info.dest_offset = off;
        if (int e = fault_errno("dedupe", shown)) return sys_fail("ioctl(FIDEDUPERANGE)", shown, e);
        if (ioctl(src_fd, FIDEDUPERANGE, range) != 0)
            return sys_fail("ioctl(FIDEDUPERANGE)", shown);
        if (info.status == FILE_DEDUPE_RANGE_DIFFERS) return Dedupe::differs;
        if (info.status < 0) return sys_fail("ioctl(FIDEDUPERANGE)", shown, -info.status);
        // The kernel shortens a range whose end is not both files' end of file: the sizes
        // no longer agree.
        if (info.bytes_deduped == 0) return Dedupe::differs;
        off += info.bytes_deduped;
    }
    return Dedupe::same;
}

Result<std::vector<Extent>> file_extents(int fd, const std::string& shown) {
    std::vector<Extent> out;
    size_t bytes = sizeof(fiemap) + kExtentsPerCall * sizeof(fiemap_extent);
    std::unique_ptr<uint64_t[]> buf(new uint64_t[(bytes + 7) / 8]);
    auto* fm = reinterpret_cast<fiemap*>(buf.get());
    uint64_t start = 0;
    for (;;) {
        std::fill_n(buf.get(), (bytes + 7) / 8, 0);
        fm->fm_start = start;
        fm->fm_length = FIEMAP_MAX_OFFSET - start;
        fm->fm_flags = FIEMAP_FLAG_SYNC;
        fm->fm_extent_count = kExtentsPerCall;
        if (ioctl(fd, FS_IOC_FIEMAP, fm) != 0) return sys_fail("ioctl(FS_IOC_FIEMAP)", shown);
        if (fm->fm_mapped_extents == 0) return out;
        bool last = false;
        for (uint32_t i = 0; i < fm->fm_mapped_extents; ++i) {
            const fiemap_extent& e = fm->fm_extents[i];
            out.push_back({e.fe_logical, e.fe_physical, e.fe_length, e.fe_flags});
            last = last || (e.fe_flags & FIEMAP_EXTENT_LAST);
        }
        const Extent& end = out.back();
        if (last || end.logical + end.length <= start) return out;
        start = end.logical + end.length;
    }
}

bool any_shared(const std::vector<Extent>& extents) {
    return std::any_of(extents.begin(), extents.end(),
                       [](const Extent& e) { return e.flags & FIEMAP_EXTENT_SHARED; });
}

std::optional<std::vector<Span>> shared_spans(const std::vector<Extent>& extents) {
    std::vector<Span> out;
    for (const Extent& e : extents) {
        if (!(e.flags & FIEMAP_EXTENT_SHARED)) continue;
        if (e.flags & kUnshareable) return std::nullopt;
        uint64_t length = (e.flags & FIEMAP_EXTENT_ENCODED) ? 1 : e.length;
        if (length > 0) out.push_back({e.physical, e.physical + length});
    }
    return out;
}

bool shareable(const std::vector<Extent>& extents) {
    return std::none_of(extents.begin(), extents.end(),
                        [](const Extent& e) { return e.flags & kUnshareable; });
}

bool same_blocks(const std::vector<Extent>& a, const std::vector<Extent>& b, uint64_t size) {
    if (!shareable(a) || !shareable(b)) return false;
    auto na = normalised(a, size), nb = normalised(b, size);
    return std::equal(
        na.begin(), na.end(), nb.begin(), nb.end(), [](const Extent& x, const Extent& y) {
            return x.logical == y.logical && x.physical == y.physical && x.length == y.length;
        });
}

bool any_encoded(const std::vector<Extent>& extents) {
    return std::any_of(extents.begin(), extents.end(),
                       [](const Extent& e) { return e.flags & FIEMAP_EXTENT_ENCODED; });
}

bool same_bytes_by_blocks(const std::vector<Extent>& a, const std::vector<Extent>& b,
                          uint64_t size) {
    return !any_encoded(a) && !any_encoded(b) && same_blocks(a, b, size);
}

Result<void> probe_shared_extents(int dirfd, const std::string& shown) {
    auto a = create_unnamed(dirfd, shown);
    if (!a) return std::unexpected(a.error());
    auto b = create_unnamed(dirfd, shown);
    if (!b) return std::unexpected(b.error());
    std::string block(4096, 'u');
    if (auto r = write_all(a->get(), block.data(), block.size(), shown); !r) return r;
    if (ioctl(b->get(), FICLONE, a->get()) == 0) return {};
    int err = errno;
    if (!no_shared_extents(err)) return sys_fail("ioctl(FICLONE) of a scratch file in", shown, err);
    return fail("the filesystem of " + shown + " (" + filesystem_name(dirfd) +
                    ") cannot share extents: " + sys_message("ioctl(FICLONE)", shown, err),
                err);
}

}  // namespace unify
