#include "store/tree_walk.h"

#include <errno.h>
#include <fcntl.h>

#include <optional>
#include <vector>

#include "store/fault.h"
#include "store/fd.h"
#include "store/interrupt.h"

namespace unify {

namespace {

struct Frame {
    Fd own;  // invalid for the top, whose fd the caller holds
    int fd;  // the directory's fd; -1 while closed (kOpenDirLevels)
    std::string path, shown;
    std::vector<DirEntry> entries;
    size_t next = 0;
    // The entry this directory is in its parent, for `leave` once it is done.
    std::optional<std::string> name;
    FileStat st;
};

Result<Frame> open_frame(Fd own, int fd, std::string path, std::string shown) {
    auto entries = read_dir(fd, shown);
    if (!entries) return std::unexpected(entries.error());
    Frame f;
    f.own = std::move(own);
    f.fd = fd;
    f.path = std::move(path);
    f.shown = std::move(shown);
    f.entries = std::move(*entries);
    return f;
}

}  // namespace

Result<Fd> reopen_parent(int child_fd, const std::string& child_shown, const FileStat& parent,
                         const std::string& parent_shown) {
    fault_point("walk.reopen");  // tests: the guest moves the child right here
    int fd = openat(child_fd, "..", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return sys_fail("openat", child_shown + "/..");
    Fd up(fd);
    auto st = stat_fd(up.get(), parent_shown);
    if (!st) return std::unexpected(st.error());
    if (!st->same_inode(parent))
        return fail(child_shown + " was moved while its tree was walked: " + parent_shown +
                    " is no longer its parent");
    return up;
}

Result<void> walk_tree(int top_fd, const std::string& top_shown, const TreeVisitor& v) {
    std::vector<Frame> stack;
    auto top = open_frame(Fd(), top_fd, "", top_shown);
    if (!top) return std::unexpected(top.error());
    stack.push_back(std::move(*top));
    while (!stack.empty()) {
        Frame& f = stack.back();
        if (f.next == f.entries.size()) {
            Frame done = std::move(stack.back());
            stack.pop_back();
            if (!stack.empty() && stack.back().fd < 0) {
                Frame& up = stack.back();
                auto fd = reopen_parent(done.fd, done.shown, up.st, up.shown);
                if (!fd) return std::unexpected(fd.error());
                up.own = std::move(*fd);
                up.fd = up.own.get();
            }
            if (done.name && v.leave) {
                TreeItem it{stack.back().fd, *done.name, done.path, done.shown, done.st};
                if (auto r = v.leave(it); !r) return r;
            }
            continue;
        }
        const DirEntry& e = f.entries[f.next++];
        if (e.name == "." || e.name == "..") continue;
        if (interrupted()) return std::unexpected(interrupted_error());
        std::string path = f.path + "/" + e.name, shown = join_path(f.shown, e.name);
        auto st = stat_if_exists(f.fd, e.name, shown);
        if (!st) return std::unexpected(st.error());
        if (!*st) continue;  // gone since the directory was read
        TreeItem it{f.fd, e.name, path, shown, **st};
        auto step = v.enter(it);
        if (!step) return std::unexpected(step.error());
        if (*step == TreeStep::skip) continue;
        if (*step == TreeStep::leave || !(*st)->is_dir()) {
            if (v.leave)
                if (auto r = v.leave(it); !r) return r;
            continue;
        }
        auto sub = open_beneath(f.fd, e.name, O_RDONLY | O_DIRECTORY, shown);
        if (!sub) {
            int err = sub.error().err;
            if (err == ENOENT) continue;
            if (err == ELOOP || err == EXDEV || err == ENOTDIR) {
                if (v.changed)
                    if (auto r = v.changed(it, err); !r) return r;
                continue;
            }
            return std::unexpected(sub.error());
        }
        int fd = sub->get();
        auto frame = open_frame(std::move(*sub), fd, path, shown);
        if (!frame) return std::unexpected(frame.error());
        frame->name = e.name;
        frame->st = **st;
        stack.push_back(std::move(*frame));  // `f` and `e` are not used past this point
        if (stack.size() > kOpenDirLevels + 1) {
            Frame& far = stack[stack.size() - 1 - kOpenDirLevels];
            far.own = Fd();
            far.fd = -1;
        }
    }
    return {};
}

Result<void> for_each_linked_file(int top_fd, const std::string& top_shown, uint64_t dev,
                                  const std::function<Result<void>(const TreeItem&)>& visit) {
    TreeVisitor v;
    v.enter = [&](const TreeItem& it) -> Result<TreeStep> {
        if (it.st.dev != dev || it.st.mount_root) return TreeStep::skip;
        if (it.st.is_dir()) return TreeStep::into;
        if (it.st.is_reg() && it.st.nlink >= 2)
            if (auto r = visit(it); !r) return std::unexpected(r.error());
        return TreeStep::skip;
    };
    // A directory swapped meanwhile is the guest's doing: nothing of the pool is below it.
    return walk_tree(top_fd, top_shown, v);
}

}  // namespace unify
