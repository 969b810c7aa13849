// A guest's private copy of an object, written beside one of its links under a fresh
// temporary name, with the object's content and metadata, and checked against the object's
// recorded content: what unshare gives a guest, and what linker/scatter.h gives every guest
// of an object a writer broke into. Not yet durable and not yet renamed over the link: the
// caller makes a batch durable with one syncfs, then renames each over its link
// (rename_over, linker/replace.h), inside the object's window where it is protected.
#pragma once

#include <mutex>
#include <optional>
#include <string>
#include <unordered_set>

#include "linker/dir_times.h"
#include "store/guest_path.h"
#include "store/index.h"
#include "store/pool.h"

namespace unify {

// What the callers of prepare_copy share, also across threads: the directories whose times
// are put back, and those already swept of a killed run's copies.
struct CopyDirs {
    explicit CopyDirs(DirTimes& t) : times(t) {}
    DirTimes& times;
    std::unordered_set<std::string> swept;
    std::mutex mu;
};

// A copy's directory change is open in `times` (DirTimes::before) from prepare_copy until
// the copy is renamed into place or discarded, each of which closes it (after): a directory
// with a change left open keeps the times the copy's name gave it.
struct Prepared {
    size_t index;  // the caller's, e.g. into its list of links
    GuestPath gp;
    FileStat now;  // the link as it was when copied: the rename checks it still is
    std::string tmp;
    std::string shown;
    DirTimes* times;
};

// Removes a prepared copy that will not be renamed into place (after a rename, a no-op on
// the name), and closes its directory change.
void discard(const Prepared& p);
// Closes the directory change of a copy that was renamed into place.
void renamed_into_place(const Prepared& p);

// Writes the copy of link `l` (under root_fd, shown as `root`); nothing when the path is no
// longer the object. Stale copies of a killed run are removed by name, once per directory,
// before any copy is made there. Safe to call from several threads at once.
// `as`: the metadata the copy gets instead of the object's own (an object whose metadata a
// guest changed in a window: linker/scatter.h).
Result<std::optional<Prepared>> prepare_copy(Pool& pool, int root_fd, const std::string& root,
                                             const LinkRecord& l,
                                             const std::optional<ObjectRecord>& rec, size_t index,
                                             CopyDirs& dirs, const Metadata* as = nullptr);

}  // namespace unify
