#include "query/status.h"

#include <unordered_map>

#include "store/guest_registry.h"

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
        return std::unexpected(no_guest_named(pool, "status", *only));
    for (const auto& g : *guests) ps.guests.push_back(GuestStatus{g});
    ps.guest_count = ps.guests.size();
    // Links are read guest by guest (each guest's records are contiguous), never object by
    // object: a lookup of one object's links costs a seek per guest.
    struct Counted {
        uint64_t size = 0;
        uint64_t links = 0;
        uint64_t shared_out = 0;  // links given their share of the saving so far
    };
    std::unordered_map<ObjectId, Counted> objects;
    auto r = txn.for_each_object([&](const ObjectId& id, const ObjectRecord& rec) {
        ++ps.objects;
        ps.pool_bytes += rec.size * rec.replicas;
        objects[id].size = rec.size;
        return true;
    });
    if (!r) return std::unexpected(r.error());
    auto each_link = [&](auto&& visit) -> Result<void> {
        for (GuestStatus& gs : ps.guests) {
            auto l = txn.for_each_link_of_guest(gs.guest.id, [&](const LinkRecord& link) {
                auto it = objects.find(link.id);
                if (it != objects.end()) visit(gs, it->second);
                return true;
            });
            if (!l) return l;
        }
        return {};
    };
    if (auto c = each_link([](GuestStatus&, Counted& o) { ++o.links; }); !c)
        return std::unexpected(c.error());
    for (const auto& [id, o] : objects) {
        ps.links += o.links;
        ps.logical_bytes += o.size * o.links;
        if (o.links > 1) ps.bytes_saved += o.size * (o.links - 1);
    }
    auto shares = each_link([](GuestStatus& gs, Counted& o) {
        ++gs.files_linked;
        gs.bytes_linked += o.size;
        // The saving split exactly: the remainder goes one byte each to the first links, so
        // that the guests' shares add up to the pool's figure.
        uint64_t saved = o.size * (o.links - 1);
        gs.bytes_saved += saved / o.links + (o.shared_out++ < saved % o.links ? 1 : 0);
    });
    if (!shares) return std::unexpected(shares.error());
    if (only) std::erase_if(ps.guests, [&](const GuestStatus& g) { return g.guest.name != *only; });
    return ps;
}

}  // namespace unify
