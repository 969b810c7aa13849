#include "importer/known_contents.h"

#include <algorithm>
#include <cstring>
#include <unordered_map>

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

ObjectId provisional_id(uint64_t size, uint64_t xxh3) {
    ObjectId id;
    id.bytes.fill(0xa5);
    std::memcpy(id.bytes.data(), &size, sizeof size);
    std::memcpy(id.bytes.data() + sizeof size, &xxh3, sizeof xxh3);
    return id;
}

std::vector<Hashed> hash_known(const std::vector<WalkEntry>& batch, const std::vector<bool>& wanted,
                               const std::string& root_shown, unsigned jobs,
                               const KnownContents& known, bool skip_unique) {
    std::vector<bool> read = wanted;
    if (skip_unique) {
        std::unordered_map<uint64_t, size_t> of_size;
        for (size_t i = 0; i < batch.size(); ++i)
            if (wanted[i]) ++of_size[batch[i].st.size];
        for (size_t i = 0; i < batch.size(); ++i) {
            uint64_t size = batch[i].st.size;
            if (wanted[i] && of_size[size] == 1 && !known.has_size(size)) read[i] = false;
        }
    }
    std::vector<Hashed> out = quick_hash_batch(batch, read, root_shown, jobs);
    for (size_t i = 0; i < batch.size(); ++i) {
        Hashed& h = out[i];
        if (wanted[i] && !read[i]) {
            h.state = Hashed::ok;
            h.quick = true;
            h.hash.size = batch[i].st.size;
            h.id = provisional_id(h.hash.size, 0);
            h.provisional = true;
            continue;
        }
        if (h.state != Hashed::ok) continue;
        if (auto id = known.find(h.hash.size, h.hash.xxh3)) {
            h.id = *id;
        } else {
            h.id = provisional_id(h.hash.size, h.hash.xxh3);
            h.provisional = true;
        }
    }
    return out;
}

}  // namespace unify
