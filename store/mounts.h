// Mount points by mount id (statx STATX_MNT_ID), for messages that name both filesystems.
#pragma once

#include <cstdint>
#include <string>

namespace unify {

// The mount point of mount `mnt_id` from /proc/self/mountinfo, or "?" if not found.
std::string mount_point_of(uint64_t mnt_id);

}  // namespace unify
