// Mount points by mount id (statx STATX_MNT_ID), for messages that name both filesystems.
#pragma once

#include <cstdint>
#include <string>

namespace unify {

// The mount point of mount `mnt_id` from /proc/self/mountinfo, or "?" if not found.
std::string mount_point_of(uint64_t mnt_id);

// The device number of the filesystem behind mount `mnt_id` ("major:minor", mountinfo's third
// field), or "" if not found. It names the superblock: btrfs gives each subvolume's files an
// st_dev of their own, and a bind mount has an id of its own, but both show the same here.
std::string filesystem_of(uint64_t mnt_id);

// Whether an unlink on mount `mnt_id` waits for the device to trim the blocks it frees: ext4
// and XFS mounted with `discard`, btrfs with `discard=sync` (its `discard=async` does not).
// False when the mount is not found.
bool unlink_trims(uint64_t mnt_id);
// The same from a filesystem type and its super options (mountinfo's last two fields).
bool unlink_trims(const std::string& fstype, const std::string& super_options);

}  // namespace unify
