#include "importer/walker.h"

#include <dirent.h>
#include <fcntl.h>

#include <algorithm>

#include "store/fault.h"
#include "store/parallel.h"
#include "store/tree_walk.h"

namespace unify {

Walker::Walker(Fd root, std::string root_shown, const Rules& rules, const FileStat& pool_dir,
               std::string temp_prefix, unsigned jobs)
    : root_shown_(std::move(root_shown)),
      rules_(rules),
      pool_dir_(pool_dir),
      temp_prefix_(std::move(temp_prefix)),
      jobs_(jobs),
      root_(std::make_shared<Fd>(std::move(root))) {}

Result<void> Walker::push_dir(SharedFd fd, std::string path) {
    auto entries = read_dir(fd->get(), join_path(root_shown_, path));
    if (!entries) return std::unexpected(entries.error());
    stack_.push_back(Frame{std::move(fd), std::move(path), std::move(*entries), 0, {}});
    if (stack_.size() > kOpenDirLevels + 1) {  // the root's frame is never closed
        Frame& far = stack_[stack_.size() - 1 - kOpenDirLevels];
        auto st = stat_fd(far.fd->get(), join_path(root_shown_, far.path));
        if (!st) return std::unexpected(st.error());
        far.st = *st;
        far.fd.reset();  // batches in flight may still hold it
    }
    return {};
}

Result<void> Walker::pop_dir() {
    Frame done = std::move(stack_.back());
    stack_.pop_back();
    if (stack_.empty() || stack_.back().fd) return {};
    Frame& up = stack_.back();
    auto fd = reopen_parent(done.fd->get(), join_path(root_shown_, done.path), up.st,
                            join_path(root_shown_, up.path));
    if (!fd) return std::unexpected(fd.error());
    up.fd = std::make_shared<Fd>(std::move(*fd));
    return {};
}

Result<bool> Walker::next_batch(std::vector<WalkEntry>& out, size_t max) {
    if (!started_) {
        started_ = true;
        auto st = stat_fd(root_->get(), root_shown_);
        if (!st) return std::unexpected(st.error());
        root_st_ = *st;
        if (auto r = push_dir(root_, ""); !r) return std::unexpected(r.error());
    }
    const size_t first = out.size();
    // On an error none of this batch's files, not yet stat'ed, is left in `out`.
    auto failed = [&](const Error& e) {
        out.resize(first);
        stat_err_.clear();
        return std::unexpected(e);
    };
    while (!stack_.empty() && out.size() < max) {
        Frame& f = stack_.back();
        if (f.next == f.entries.size()) {
            if (auto r = pop_dir(); !r) return failed(r.error());
            continue;
        }
        DirEntry e = std::move(f.entries[f.next++]);
        // visit() may push a frame, which invalidates `f`.
        if (auto r = visit(f, e, out); !r) return failed(r.error());
    }
    if (auto r = stat_files(out, first); !r) return failed(r.error());
    return !stack_.empty();
}

Result<void> Walker::visit(Frame& f, const DirEntry& e, std::vector<WalkEntry>& out) {
    std::string path = f.path + "/" + e.name;
    SharedFd parent = f.fd;
    if (e.type == DT_LNK) {
        ++files_seen_;
        ++skipped_[skip::kSymlink];
        return {};
    }
    if (e.type == DT_DIR) {
        std::string shown = join_path(root_shown_, path);
        // The pool inside a guest root: d_ino is enough, as no mount is crossed below.
        if (e.ino == pool_dir_.ino && pool_dir_.dev == root_st_.dev) {
            ++skipped_[skip::kPool];
            return {};
        }
        Decision why;
        if (!rules_.walk_dir(path, &why)) {  // a whole excluded tree: not even walked
            ++skipped_[why.match == RuleMatch::default_exclusion ? skip::kDefaultTree
                                                                 : skip::kUserTree];
            return {};
        }
        auto dir = open_beneath(parent->get(), e.name, O_RDONLY | O_DIRECTORY, shown);
        if (!dir) {
            int err = dir.error().err;
            if (err == EXDEV)
                ++skipped_[skip::kMount];
            else if (err == ELOOP || err == ENOTDIR)
                ++skipped_[skip::kSymlink];  // swapped
            else if (err == ENOENT)
                ++skipped_[skip::kVanished];
            else
                return std::unexpected(dir.error());
            return {};
        }
        // No statx: openat2's RESOLVE_NO_XDEV already refused a mount point (EXDEV above).
        return push_dir(std::make_shared<Fd>(std::move(*dir)), path);
    }
    WalkEntry w{parent, e.name, std::move(path), {}, false};
    int err = kNotStated;
    if (e.type == DT_UNKNOWN) {  // a filesystem without d_type: statx tells, following nothing
        err = stat_at_errno(parent->get(), e.name.c_str(), w.st);
        if (!err && w.st.is_dir()) return visit(f, DirEntry{e.name, DT_DIR, w.st.ino}, out);
    }
    out.push_back(std::move(w));
    stat_err_.push_back(err);
    return {};
}

// statx, without following anything, of every file the batch appended to `out` from `first`
// on. The threads do nothing else (no allocation); what each answer means is decided here
// after, in walk order, and the entries not kept are dropped.
Result<void> Walker::stat_files(std::vector<WalkEntry>& out, size_t first) {
    constexpr size_t kPerThread = 256;  // fewer are not worth starting a thread for
    const size_t n = out.size() - first;
    unsigned jobs = unsigned(std::min<size_t>(jobs_, n / kPerThread + 1));
    fault_point("walk.stat");  // tests: the guest swaps a listed file for a symlink here
    parallel_for(n, jobs, [&](size_t i) {
        WalkEntry& e = out[first + i];
        if (stat_err_[i] == kNotStated)
            stat_err_[i] = stat_at_errno(e.dir->get(), e.name.c_str(), e.st);
    });
    size_t kept = first;
    for (size_t i = 0; i < n; ++i) {
        auto k = keep(out[first + i], stat_err_[i]);
        if (!k) return std::unexpected(k.error());  // next_batch drops the batch's files
        if (!*k) continue;
        if (kept != first + i) out[kept] = std::move(out[first + i]);
        ++kept;
    }
    out.resize(kept);
    stat_err_.clear();
    return {};
}

// Whether a stat'ed file goes into the batch; counts it as seen or skipped.
Result<bool> Walker::keep(WalkEntry& e, int err) {
    // A directory now where the walk listed a file: the file is gone; the directory came
    // after the walk read its parent, as a file created then would have.
    if (err == ENOENT || err == ENOTDIR || (!err && e.st.is_dir())) {
        ++skipped_[skip::kVanished];
        return false;
    }
    if (err) return sys_fail("statx", join_path(root_shown_, e.path), err);
    const FileStat& st = e.st;
    ++files_seen_;
    if (e.name.compare(0, temp_prefix_.size(), temp_prefix_) == 0 && st.is_reg()) {
        e.temp = true;
        return true;
    }
    Decision rule = rules_.decide(e.path);
    if (rule.match == RuleMatch::package_config)
        ++skipped_[skip::config_reason(rule.owner->db)];
    else if (rule.match == RuleMatch::default_exclusion)
        ++skipped_[skip::kDefaultRule];
    else if (rule.match == RuleMatch::user_exclusion)
        ++skipped_[skip::kUserRule];
    else if (st.is_lnk())
        ++skipped_[skip::kSymlink];
    else if (!st.is_reg())
        ++skipped_[skip::kSpecial];
    else if (st.mount_root || st.dev != root_st_.dev)
        ++skipped_[skip::kMount];
    else if (st.size < rules_.min_size())
        ++skipped_[skip::kSmall];
    else
        return true;
    return false;
}

}  // namespace unify
