#include "cli/status.h"

#include <unordered_map>

namespace unify {

Result<PoolStatus> pool_status(Pool& pool, const std::optional<std::string>& only) {
    PoolStatus ps;
    auto txn_r = pool.index().read();
    if (!txn_r) return std::unexpected(txn_r.error());
    Txn& txn = **txn_r;
    auto guests = txn.guests();
    if (!guests) return std::unexpected(guests.error());
    if (only && std::none_of(guests->begin(), guests->end(),
                             [&](const GuestRecord& g) { return g.name == *only; }))
        return fail("status: no guest named '" + *only + "' (see unify list)");
    std::unordered_map<uint32_t, size_t> slot;
    for (const auto& g : *guests) {
        slot[g.id] = ps.guests.size();
        ps.guests.push_back(GuestStatus{g});
    }
    Result<void> err;
    auto r = txn.for_each_object([&](const ObjectId& id, const ObjectRecord& rec) {
        ++ps.objects;
        ps.pool_bytes += rec.size * rec.replicas;
        std::vector<uint32_t> linkers;
        auto l = txn.for_each_link_of_object(id, [&](const LinkRecord& link) {
            linkers.push_back(link.guest);
            return true;
        });
        if (!l) {
            err = l;
            return false;
        }
        uint64_t k = linkers.size();
        ps.links += k;
        ps.logical_bytes += rec.size * k;
        if (k > 1) ps.bytes_saved += rec.size * (k - 1);
        for (uint32_t g : linkers) {
            auto it = slot.find(g);
            if (it == slot.end()) continue;
            GuestStatus& gs = ps.guests[it->second];
            ++gs.files_linked;
            gs.bytes_linked += rec.size;
            gs.bytes_saved += rec.size * (k - 1) / k;
        }
        return true;
    });
    if (!r) return std::unexpected(r.error());
    if (!err) return std::unexpected(err.error());
    if (only) std::erase_if(ps.guests, [&](const GuestStatus& g) { return g.guest.name != *only; });
    return ps;
}

}  // namespace unify
