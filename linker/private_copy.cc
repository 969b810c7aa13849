#include "linker/private_copy.h"

#include <fcntl.h>
#include <unistd.h>

#include "linker/copy.h"
#include "store/fault.h"
#include "store/fresh_file.h"

namespace unify {

namespace {

// Removes, by name, the copies a killed unshare named but never renamed into place
// (".unify-<token>.copy.<random>"), once per directory per run.
void sweep_copies(const Pool& pool, int dirfd, const std::string& dir,
                  std::unordered_set<std::string>& swept) {
    if (!swept.insert(dir).second) return;
    auto entries = read_dir(dirfd, dir);
    if (!entries) return;  // the unshare itself reports what is wrong with the directory
    const std::string prefix = pool.temp_prefix() + "copy.";
    for (const auto& e : *entries)
        if (e.name.compare(0, prefix.size(), prefix) == 0) unlinkat(dirfd, e.name.c_str(), 0);
}

}  // namespace

void discard(const Prepared& p) {
    unlinkat(p.gp.dir.get(), p.tmp.c_str(), 0);
    renamed_into_place(p);
}

void renamed_into_place(const Prepared& p) {
    p.times->after(p.gp.dir.get());
}

// Writes the copy of one link; nothing when the path is no longer the object.
Result<std::optional<Prepared>> prepare_copy(Pool& pool, int root_fd, const std::string& root,
                                             const LinkRecord& l,
                                             const std::optional<ObjectRecord>& rec, size_t index,
                                             CopyDirs& dirs, const Metadata* as) {
    using None = std::optional<Prepared>;
    std::string shown = join_path(root, l.path);
    auto gp = open_guest_parent(root_fd, l.path, shown);
    if (!gp) return std::unexpected(gp.error());
    if (!*gp) return None();
    auto obj = pool.open_object(l.id, l.replica);
    if (!obj) {
        if (obj.error().err == ENOENT) return None();
        return std::unexpected(obj.error());
    }
    std::string obj_shown = pool.object_shown(l.id, l.replica);
    auto obj_st = stat_fd(obj->get(), obj_shown);
    if (!obj_st) return std::unexpected(obj_st.error());
    auto now = stat_if_exists((*gp)->dir.get(), (*gp)->name, shown);
    if (!now) return std::unexpected(now.error());
    if (!*now || !(*now)->same_inode(*obj_st)) return None();

    auto xattrs = read_xattrs(obj->get(), obj_shown);
    if (!xattrs) return std::unexpected(xattrs.error());
    int dirfd = (*gp)->dir.get();
    {
        // Held across the sweep: another thread's copy in this directory waits for it, or
        // the sweep would remove that copy.
        std::lock_guard<std::mutex> lock(dirs.mu);
        sweep_copies(pool, dirfd, l.path.substr(0, l.path.rfind('/') + 1), dirs.swept);
        dirs.times.before(dirfd);
    }
    // The copy is made unnamed in the guest's directory and named only when complete, at a
    // random name (store/fresh_file.h): nothing the guest planted is ever opened or written.
    // A run killed after the link leaves a "copy." temporary that import sweeps by name.
    // A copy that fails before it is named leaves the directory as it was: its change closes.
    auto failed = [&](const Error& e) {
        dirs.times.after(dirfd);
        return std::unexpected(e);
    };
    fault_point("unshare.create");
    auto t = create_unnamed(dirfd, shown + " (copy)");
    if (!t) return failed(t.error());
    int tfd = t->get();
    auto h = copy_with_metadata(obj->get(), as ? as->st : *obj_st, as ? as->xattrs : *xattrs, tfd,
                                obj_shown, shown);
    if (h && rec && h->sha256 != rec->content)
        h = fail("object " + obj_shown + " does not match its recorded content; run unify verify");
    if (!h) return failed(h.error());
    // Durable later, with the whole batch (one syncfs), before any copy replaces its link.
    auto named = link_unnamed_fresh(tfd, dirfd, pool.temp_prefix() + "copy.", shown);
    if (!named) return failed(named.error());
    return Prepared{index, std::move(**gp), **now, *named, shown, &dirs.times};
}

}  // namespace unify
