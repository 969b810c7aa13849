#include "importer/hash_batch.h"

#include "importer/guest_file.h"
#include "store/fault.h"
#include "store/identify.h"
#include "store/lease.h"

namespace unify {

namespace {

// rules null: XXH3 and size only. candidate: an object the file may be a copy of. lease: read
// it under a read lease, kept in Hashed::lease if it holds to the end.
Hashed hash_one(const WalkEntry& e, const std::string& shown, const IdRules* rules,
                const Pool* pool = nullptr, const std::shared_ptr<const Candidate>& candidate = {},
                bool lease = false) {
    Hashed h;
    auto f = open_guest_file(e, shown);
    if (!f) {
        h.state = Hashed::failed;
        h.error = f.error();
        return h;
    }
    if (f->state != GuestFile::ok) {
        h.state = f->state == GuestFile::changed ? Hashed::changed : Hashed::unreadable;
        h.error = f->error;
        return h;
    }
    int fd = f->fd.get();
    // Taken before the first byte is read: a writer then either exists now (refused) or
    // breaks it later, so a lease held after the read proves what was read.
    // (Tests make it refused with UNIFY_FAULT_ERRNO=hash.lease:EAGAIN:PATH, as when a writer
    // had the file open then, to reach the re-read under a later lease.)
    lease = lease && !fault_errno("hash.lease", shown) && take_read_lease(fd) == LeaseTry::held;
    auto now = rules ? identify_file(fd, shown, *rules, pool, candidate.get())
                     : quick_identify_fd(fd, shown);
    if (!now) {
        h.state = is_unreadable(now.error()) ? Hashed::unreadable : Hashed::failed;
        h.error = now.error();
        return h;
    }
    // One look after reading is enough: same inode, size, times and owner as walked. An inode
    // with other names is the exception: unify's own exchange and unlink of another of its
    // names (the batch before, linked meanwhile) move its ctime, and then its link count, so
    // ctime proves nothing there; link_over looks again before such a path is linked, strictly
    // or by reading it again (its recheck), which is what catches a write.
    bool same = now->st.unchanged(e.st) || (e.st.nlink > 1 && now->st.unchanged_but_ctime(e.st));
    if (!same || now->hash.size != e.st.size) {
        h.state = Hashed::changed;
        return h;
    }
    h.state = Hashed::ok;
    h.hash = now->hash;
    h.xattrs = std::move(now->xattrs);
    h.id = now->id;
    h.quick = !rules;
    if (candidate && h.hash.sha256 == candidate->content.sha256) h.copy_of = candidate;
    if (lease && lease_held(fd)) h.lease = std::move(f->fd);
    return h;
}

std::vector<Hashed> hash_each(const std::vector<WalkEntry>& batch, const std::vector<bool>& wanted,
                              const std::string& root_shown, const IdRules* rules, unsigned jobs,
                              const Pool* pool = nullptr, const Candidates* candidates = nullptr,
                              int64_t lease_from = INT64_MAX) {
    std::vector<Hashed> out(batch.size());
    static const std::shared_ptr<const Candidate> none;
    parallel_for(batch.size(), jobs, [&](size_t i) {
        if (!wanted[i]) return;
        const auto& c = candidates && i < candidates->size() ? (*candidates)[i] : none;
        out[i] = hash_one(batch[i], join_path(root_shown, batch[i].path), rules, pool, c,
                          batch[i].st.ctime_ns >= lease_from);
    });
    return out;
}

}  // namespace

std::vector<Hashed> hash_batch(const std::vector<WalkEntry>& batch, const std::vector<bool>& wanted,
                               const std::string& root_shown, const IdRules& rules, unsigned jobs,
                               int64_t lease_from) {
    return hash_each(batch, wanted, root_shown, &rules, jobs, nullptr, nullptr, lease_from);
}

std::vector<Hashed> hash_batch(const std::vector<WalkEntry>& batch, const std::vector<bool>& wanted,
                               const std::string& root_shown, const IdRules& rules, unsigned jobs,
                               const Pool& pool, const Candidates& candidates, int64_t lease_from) {
    return hash_each(batch, wanted, root_shown, &rules, jobs, &pool, &candidates, lease_from);
}

std::vector<Hashed> quick_hash_batch(const std::vector<WalkEntry>& batch,
                                     const std::vector<bool>& wanted, const std::string& root_shown,
                                     unsigned jobs) {
    return hash_each(batch, wanted, root_shown, nullptr, jobs);
}

}  // namespace unify
