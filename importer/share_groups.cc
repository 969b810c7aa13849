#include "importer/share_groups.h"

#include <atomic>

#include "importer/guest_file.h"
#include "linker/reflink.h"
#include "store/guest_path.h"
#include "store/interrupt.h"
#include "store/parallel.h"
#include "store/sys.h"

namespace unify {

namespace {

ShareOutcome::Kind kind_of(MadeObject::Outcome o) {
    switch (o) {
        case MadeObject::made:
            return ShareOutcome::made;
        case MadeObject::changed:
            return ShareOutcome::changed;
        case MadeObject::refused:
            return ShareOutcome::flagged;
        case MadeObject::unshareable:
            return ShareOutcome::unshareable;
    }
    return ShareOutcome::changed;
}

ShareOutcome::Kind kind_of(Shared s) {
    return s == Shared::shared || s == Shared::already ? ShareOutcome::shared
           : s == Shared::changed                      ? ShareOutcome::changed
                                                       : ShareOutcome::flagged;
}

bool failed(ShareOutcome& out, Error e) {
    out.kind = ShareOutcome::failed;
    out.error = std::move(e);
    return false;
}

// The group's warm source opened, once; an invalid Fd where it is gone or another file now.
Fd open_warm(const ShareGroup& g, uint64_t size) {
    if (!g.warm) return Fd();
    auto f = open_recorded_file(g.warm->root_fd, g.warm->path, g.warm->ino, g.warm->shown);
    if (!f || !*f || (*f)->st.size != size) return Fd();
    return std::move((*f)->fd);
}

// One member: the first that yields the object makes it (a clone), every later one shares
// it (a dedupe), comparing with `warm` first (opened at the first that needs it; the file of
// the member that made the object). False: the import stops, `out` says why.
bool share_member(const Pool& pool, ShareGroup& g, const WalkEntry& e, const std::string& shown,
                  ShareOutcome& out, std::optional<Fd>& warm) {
    auto f = open_guest_file(e, shown);
    if (!f) {
        return failed(out, f.error());
    }
    if (f->state != GuestFile::ok) {
        out.kind =
            f->state == GuestFile::changed ? ShareOutcome::changed : ShareOutcome::unreadable;
        out.error = f->error;
        return true;
    }
    if (!g.has_object) {
        auto expected = g.provisional ? std::nullopt : std::optional(g.id);
        auto made = clone_object(pool, expected, f->fd.get(), e.st, shown);
        if (!made) {
            return failed(out, made.error());
        }
        out.kind = kind_of(made->outcome);
        out.object = *made;
        if (out.kind != ShareOutcome::made) return true;
        g.id = made->id;
        g.provisional = false;
        g.has_object = true;
        g.replica = 0;
        if (!made->existed) {
            warm = std::move(f->fd);
            return true;
        }
        // The clone was of content the pool already had: its blocks go when it is closed, and
        // the guest file is made to share the object's like any later member.
    }
    if (!warm) warm = open_warm(g, e.st.size);
    auto r = share_object(pool, g.id, g.replica, f->fd.get(), e.st.size, shown, warm->get());
    if (!r) {
        return failed(out, r.error());
    }
    out.kind = kind_of(*r);
    out.already = *r == Shared::already;
    return true;
}

}  // namespace

void share_groups(const Pool& pool, std::vector<ShareGroup>& groups,
                  const std::vector<WalkEntry>& batch, const std::string& root, unsigned threads) {
    std::atomic<bool> stop{false};
    parallel_for(groups.size(), threads, [&](size_t i) {
        ShareGroup& g = groups[i];
        g.outcomes.assign(g.members.size(), {});
        std::optional<Fd> warm;
        for (size_t k = 0; k < g.members.size(); ++k) {
            if (stop.load(std::memory_order_relaxed) || interrupted()) return;
            const WalkEntry& e = batch[g.members[k]];
            if (!share_member(pool, g, e, join_path(root, e.path), g.outcomes[k], warm)) {
                stop = true;
                return;
            }
        }
    });
}

}  // namespace unify
