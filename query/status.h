// unify status: what the pool holds and what sharing saves, from the index alone (no lock,
// no filesystem walk). Saving is counted honestly: an object of size s linked by k guest
// paths saves s * (k - 1); each guest is credited s * (k - 1) / k per link, so the guests'
// shares add up to the pool's total.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "store/pool.h"

namespace unify {

struct GuestStatus {
    GuestRecord guest;
    uint64_t files_linked = 0;
    uint64_t bytes_linked = 0;  // the guest's linked files, each counted in full
    uint64_t bytes_saved = 0;   // its share of the saving
};

struct PoolStatus {
    uint64_t objects = 0;
    uint64_t pool_bytes = 0;  // one copy of each object
    uint64_t links = 0;
    uint64_t logical_bytes = 0;  // what the linked guest files would take unshared
    uint64_t bytes_saved = 0;
    uint64_t guest_count = 0;  // in the pool, also when `guests` is one guest's (status NAME)
    std::vector<GuestStatus> guests;
};

// only: restrict the guest list to this guest (pool totals are always for the whole pool).
Result<PoolStatus> pool_status(Pool& pool, const std::optional<std::string>& only);

}  // namespace unify
