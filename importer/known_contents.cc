#include "importer/known_contents.h"

#include <algorithm>

namespace unify {

Result<void> KnownContents::load(Index& index) {
    auto txn = index.read();
    if (!txn) return std::unexpected(txn.error());
    auto r = (*txn)->for_each_object([&](const ObjectId& id, const ObjectRecord& rec) {
        sorted_.push_back({rec.size, rec.xxh3, id});
        return true;
    });
    if (!r) return std::unexpected(r.error());
    std::sort(sorted_.begin(), sorted_.end());
    return (*txn)->commit();
}

std::optional<ObjectId> KnownContents::find(uint64_t size, uint64_t xxh3) const {
    auto it = std::lower_bound(sorted_.begin(), sorted_.end(), Entry{size, xxh3, {}});
    if (it == sorted_.end() || it->size != size || it->xxh3 != xxh3) return std::nullopt;
    auto next = std::next(it);
    if (next != sorted_.end() && next->size == size && next->xxh3 == xxh3) return std::nullopt;
    return it->id;
}

bool KnownContents::has_size(uint64_t size) const {
    auto it = std::lower_bound(sorted_.begin(), sorted_.end(), Entry{size, 0, {}});
    return it != sorted_.end() && it->size == size;
}

std::vector<Hashed> hash_known(const std::vector<WalkEntry>& batch, const std::vector<bool>& wanted,
                               const std::string& root_shown, const IdRules& rules, unsigned jobs,
                               const KnownContents& known) {
    std::vector<bool> quick(batch.size(), false), full(batch.size(), false);
    for (size_t i = 0; i < batch.size(); ++i)
        if (wanted[i]) (known.has_size(batch[i].st.size) ? quick : full)[i] = true;
    std::vector<Hashed> out = quick_hash_batch(batch, quick, root_shown, jobs);
    for (size_t i = 0; i < out.size(); ++i) {
        if (!quick[i] || out[i].state != Hashed::ok) continue;
        if (auto id = known.find(out[i].hash.size, out[i].hash.xxh3))
            out[i].id = *id;
        else
            full[i] = true;
    }
    std::vector<Hashed> hashed = hash_batch(batch, full, root_shown, rules, jobs);
    for (size_t i = 0; i < out.size(); ++i)
        if (full[i]) out[i] = std::move(hashed[i]);
    return out;
}

}  // namespace unify
