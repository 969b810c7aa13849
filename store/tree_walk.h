// Depth first below a guest directory, for the commands that must see every name in a
// guest's tree (forget's look for unrecorded links, forget --delete-root). Iterative: a
// guest can make its tree 100,000 directories deep with mkdirat, and a recursion of that
// depth ended in SIGSEGV. At most kOpenDirLevels directory fds are open, however deep the
// tree (RLIMIT_NOFILE is no bound on a guest's depth); each directory is opened beneath its
// parent's fd (open_beneath: no symlink, no mount crossed). A name that vanishes meanwhile is
// passed over; one swapped for a symlink or another mount goes to `changed`.
#pragma once

#include <functional>
#include <string>

#include "store/fd.h"
#include "store/result.h"
#include "store/sys.h"

namespace unify {

// Directory fds a depth-first walk keeps open at once (this one and importer/walker.h): a
// deeper level closes the fd of the level this many above it, and the walk gets it back
// with reopen_parent when it returns there.
inline constexpr size_t kOpenDirLevels = 128;

// A directory's fd again, closed while the walk was deeper: ".." of its child, which must be
// the very directory (`parent`, its stat taken while it was open) the walk went down from. A
// guest that moved the child elsewhere meanwhile would otherwise lead the walk into another
// tree, so that is an error naming both.
Result<Fd> reopen_parent(int child_fd, const std::string& child_shown, const FileStat& parent,
                         const std::string& parent_shown);

struct TreeItem {
    int dirfd;                // the directory that holds it
    const std::string& name;  // in dirfd
    std::string path;         // below the walk's top: "/usr/bin/ls"
    std::string shown;        // its host path, for messages
    FileStat st;
};

// What to do with an entry after its look: walk into it (a directory), or only `leave` it,
// or neither.
enum class TreeStep { into, leave, skip };

struct TreeVisitor {
    // Every entry but "." and "..". `into` is taken as `leave` for anything not a directory.
    std::function<Result<TreeStep>(const TreeItem&)> enter;
    // After `enter` (and, for a directory walked into, after all of its entries): each
    // entry once, with its parent's fd still open. May be empty.
    std::function<Result<void>(const TreeItem&)> leave;
    // A directory that could not be opened because it changed after its look (ELOOP,
    // EXDEV, ENOTDIR); it gets no `leave`. May be empty.
    std::function<Result<void>(const TreeItem&, int err)> changed;
};

Result<void> walk_tree(int top_fd, const std::string& top_shown, const TreeVisitor& v);

// The regular files below top_fd with another name somewhere (link count 2 or more), on the
// filesystem `dev`, mounts not crossed: where names of pool objects that no record names can
// be (forget, the quarantine of a cut-short window).
Result<void> for_each_linked_file(int top_fd, const std::string& top_shown, uint64_t dev,
                                  const std::function<Result<void>(const TreeItem&)>& visit);

}  // namespace unify
