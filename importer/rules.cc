// The rules as one ordered list: package configuration files first (a set lookup), then the
// user's rules, then the defaults; each glob is compiled once into "whole path or one
// component" and "literal or fnmatch". With FNM_PATHNAME no wildcard matches '/', so a
// whole-path glob of k components can only match the path's k-component prefix: one
// fnmatch per rule and path, however deep the path.
#include "importer/rules.h"

#include <fcntl.h>
#include <fnmatch.h>
#include <unistd.h>

#include <string_view>

#include "importer/path_split.h"
#include "store/fd.h"

namespace unify {

namespace {

std::string trim(const std::string& s) {
    size_t b = s.find_first_not_of(" \t\r");
    if (b == std::string::npos) return "";
    size_t e = s.find_last_not_of(" \t\r");
    return s.substr(b, e - b + 1);
}

bool has_wildcard(const std::string& s) {
    return s.find_first_of("*?[\\") != std::string::npos;
}

}  // namespace

Rule parse_stored_rule(const std::string& s) {
    if (!s.empty() && (s[0] == '+' || s[0] == '-')) return Rule{s[0] == '+', s.substr(1), ""};
    return Rule{false, s, ""};
}

Result<std::vector<std::string>> parse_rule_file(const std::string& text,
                                                 const std::string& shown) {
    std::vector<std::string> out;
    size_t i = 0, line_no = 0;
    while (i < text.size()) {
        size_t j = text.find('\n', i);
        if (j == std::string::npos) j = text.size();
        std::string line = trim(text.substr(i, j - i));
        i = j + 1;
        ++line_no;
        if (line.empty() || line[0] == '#') continue;
        std::string glob = trim(line.substr(1));
        if ((line[0] != '+' && line[0] != '-') || glob.empty())
            return fail(shown + ":" + std::to_string(line_no) +
                        ": expected \"+ GLOB\", \"- GLOB\" or \"# comment\", got \"" + line + "\"");
        out.push_back(line.substr(0, 1) + glob);
    }
    return out;
}

Result<std::vector<std::string>> read_rule_file(const std::string& path) {
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return sys_fail("--exclude-from: open", path);
    Fd f(fd);
    std::string text;
    char buf[65536];
    for (;;) {
        ssize_t n = read(f.get(), buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR) continue;
            return sys_fail("--exclude-from: read", path);
        }
        if (n == 0) break;
        text.append(buf, size_t(n));
    }
    return parse_rule_file(text, path);
}

// A reflink pool shares blocks, never an inode: a guest that rewrites a file, in place or
// by rename, gets private blocks and nothing to undo. So public package data that package
// managers rewrite, and a hardlink pool must keep private, can share there: the same bytes
// in every guest on one mirror and release. They come before "- /var", which wins below.
// Nothing here is a secret of the guest; /var/cache/debconf (passwords) stays private.
static const std::vector<Rule> kReflinkOnly = {
    {true, "/var/lib/apt/lists", "reflink pools: apt's copies of the mirrors' indices"},
    {true, "/var/cache/apt/archives", "reflink pools: packages apt downloaded"},
    {true, "/var/lib/dpkg/info", "reflink pools: dpkg's file lists, checksums and scripts"},
    {true, "/var/lib/pacman/sync", "reflink pools: pacman's copies of the mirrors' databases"},
    {true, "/var/cache/pacman/pkg", "reflink pools: packages pacman downloaded"},
};

const std::vector<Rule>& default_rules(ShareMode share) {
    static const std::vector<Rule> list = {
        {false, "/dev", "device nodes"},
        {false, "/proc", "kernel interfaces"},
        {false, "/sys", "kernel interfaces"},
        {false, "/run", "runtime state"},
        {false, "/tmp", "temporary files"},
        {false, "/var", "variable state: logs, spools, caches, package databases"},
        {false, "/home", "users' files"},
        {false, "/root", "root's files"},
        {false, "/mnt", "mount points"},
        {false, "/media", "mount points"},
        {false, "/srv", "served data"},
        {false, "/boot", "boot loader and kernels"},
        {false, "/lost+found", "fsck's findings"},
        {false, "/selinux", "kernel interfaces (old SELinux mount point)"},
        {false, "/.rpmdb", "Debian's rpm keeps its database here"},
        {true, "/etc/termcap", "a safe part of /etc: terminal descriptions, as vunify-exclude"},
        {true, "/etc/gconf/schemas",
         "a safe part of /etc: schemas packages install, as vunify-exclude"},
        {false, "/etc", "host-specific configuration"},
        {false, "ls-R", "TeX's file name database, rewritten in place"},
    };
    static const std::vector<Rule> reflink = [] {
        std::vector<Rule> all = kReflinkOnly;
        all.insert(all.end(), list.begin(), list.end());
        return all;
    }();
    return share == ShareMode::reflink ? reflink : list;
}

Rules::Compiled Rules::compile(const Rule& r) {
    Compiled c{&r, r.glob.find('/') != std::string::npos, !has_wildcard(r.glob), {}, {}};
    if (c.whole) {
        std::vector<std::string> parts = split_path(r.glob);
        c.glob.clear();
        for (const auto& p : parts) c.glob += "/" + p;  // "usr/x/" -> "/usr/x"
        if (c.glob.empty()) c.glob = "/";
        c.parts = std::move(parts);
    } else {
        c.glob = r.glob;
    }
    return c;
}

Rules::Rules(const std::vector<std::string>& user_rules, uint64_t min_size,
             const PackageConfig* config, ShareMode share)
    : min_size_(min_size), config_(config) {
    for (const auto& s : user_rules) {
        Rule r = parse_stored_rule(s);
        if (!r.glob.empty()) user_.push_back(std::move(r));
    }
    for (const Rule& r : user_) compiled_.push_back(compile(r));
    for (const Rule& r : default_rules(share)) compiled_.push_back(compile(r));
}

bool Rules::matches(const Compiled& c, const std::string& path, const std::vector<size_t>& ends,
                    std::string* matched) {
    // Every file of a walk goes through every rule: a literal one (all the defaults) is a
    // compare of views, with no string made; a glob needs its text NUL-terminated.
    auto hit = [&c](std::string_view text) {
        if (c.literal) return text == c.glob;
        return fnmatch(c.glob.c_str(), std::string(text).c_str(), FNM_PATHNAME) == 0;
    };
    const std::string_view all(path);
    if (c.whole) {
        size_t k = c.parts.size();
        if (k == 0 || ends.size() < k) return false;
        std::string_view prefix = all.substr(0, ends[k - 1]);
        if (!hit(prefix)) return false;
        *matched = prefix;
        return true;
    }
    size_t start = 1;
    for (size_t end : ends) {
        if (hit(all.substr(start, end - start))) {
            *matched = all.substr(0, end);
            return true;
        }
        start = end + 1;
    }
    return false;
}

bool Rules::could_match_below(const Compiled& c, const std::vector<std::string>& comps) {
    if (!c.whole) return true;  // a name glob may match any name below
    if (c.parts.size() <= comps.size()) return false;
    for (size_t i = 0; i < comps.size(); ++i) {
        bool hit = c.literal ? c.parts[i] == comps[i]
                             : fnmatch(c.parts[i].c_str(), comps[i].c_str(), 0) == 0;
        if (!hit) return false;
    }
    return true;
}

Decision Rules::decide_rules(const std::string& path) const {
    // ends[i]: where the (i+1)-component prefix of path ends ("/usr/bin/ls": 4, 8, 11).
    std::vector<size_t> ends;
    for (size_t i = 1; i <= path.size(); ++i)
        if (i == path.size() || path[i] == '/')
            if (path[i - 1] != '/') ends.push_back(i);
    Decision d;
    for (size_t i = 0; i < compiled_.size(); ++i) {
        const Compiled& c = compiled_[i];
        if (!matches(c, path, ends, &d.matched)) continue;
        bool user = i < user_.size();
        d.rule = c.rule;
        d.index = user ? i + 1 : i - user_.size() + 1;
        if (user)
            d.match = c.rule->include ? RuleMatch::user_include : RuleMatch::user_exclusion;
        else
            d.match = c.rule->include ? RuleMatch::default_include : RuleMatch::default_exclusion;
        return d;
    }
    return d;
}

Decision Rules::decide(const std::string& path) const {
    if (config_) {
        if (const ConfigOwner* o = config_->find(path)) {
            Decision d;
            d.match = RuleMatch::package_config;
            d.owner = o;
            d.matched = path;
            return d;
        }
    }
    return decide_rules(path);
}

bool Rules::walk_dir(const std::string& path, Decision* why) const {
    Decision d = decide_rules(path);
    bool walk = d.unifiable();
    if (!walk) {
        // Only an include rule before the deciding one can win for a path below.
        size_t pos =
            d.match == RuleMatch::user_exclusion ? d.index - 1 : user_.size() + d.index - 1;
        std::vector<std::string> comps = split_path(path);
        for (size_t i = 0; i < pos && !walk; ++i)
            walk = compiled_[i].rule->include && could_match_below(compiled_[i], comps);
    }
    if (why) *why = std::move(d);
    return walk;
}

}  // namespace unify
