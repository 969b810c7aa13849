// --explain: the same pieces an import uses (guest root checks, package databases, Rules),
// then a look at the one path: the rule's verdict first, and for a path the rules would
// unify, whether it is a file the import links (regular, not a mount point, big enough).
#include "importer/explain.h"

#include <ostream>

#include "importer/guest_target.h"
#include "importer/package_db.h"
#include "importer/rules.h"
#include "store/guest_path.h"
#include "store/guest_root.h"
#include "store/printable.h"

namespace unify {

namespace {

std::string quoted(const Rule& r) {
    return "'" + describe_rule(r.stored()) + "'";
}

std::string why(const Decision& d, const std::string& path) {
    std::string via = d.matched.empty() || d.matched == path ? "" : ", which matches " + d.matched;
    switch (d.match) {
        case RuleMatch::none:
            return "no rule matched";
        case RuleMatch::package_config:
            return "configuration file of " + std::string(to_string(d.owner->db)) + " package " +
                   d.owner->package;
        case RuleMatch::user_include:
            return "included by user rule " + std::to_string(d.index) + " " + quoted(*d.rule) + via;
        case RuleMatch::user_exclusion:
            return "excluded by user rule " + std::to_string(d.index) + " " + quoted(*d.rule) + via;
        case RuleMatch::default_include:
            return "included by the default rule " + quoted(*d.rule) + via + " (" + d.rule->note +
                   ")";
        case RuleMatch::default_exclusion:
            return "excluded by the default rule " + quoted(*d.rule) + via + " (" + d.rule->note +
                   ")";
    }
    return "?";
}

}  // namespace

std::string describe_rule(const std::string& stored) {
    Rule r = parse_stored_rule(stored);
    return std::string(r.include ? "+ " : "- ") + r.glob;
}

std::string describe_rules(const std::vector<std::string>& stored) {
    std::string s;
    for (const auto& r : stored) s += (s.empty() ? "" : ", ") + describe_rule(r);
    return s.empty() ? "none" : s;
}

std::string describe_package_dbs(const std::string& databases, uint64_t config_files) {
    if (databases.empty()) return "not recorded (imported by an older unify)";
    if (databases == "none") return "none found: only the default and user rules apply";
    return databases + " (" + std::to_string(config_files) + " configuration files kept private)";
}

Result<std::string> explain_path(Pool& pool, const ImportOptions& opt, const std::string& path,
                                 std::ostream& log) {
    if (auto r = check_guest_name(opt.name); !r) return std::unexpected(r.error());
    auto root = open_guest_root(pool, opt.root);
    if (!root) return std::unexpected(root.error());

    std::vector<std::string> rules = opt.rules.value_or(std::vector<std::string>{});
    uint64_t min_size = opt.min_size.value_or(default_min_size(pool.settings().share));
    {
        auto txn = pool.index().read();
        if (!txn) return std::unexpected(txn.error());
        auto g = (*txn)->guest(opt.name);
        if (!g) return std::unexpected(g.error());
        if (*g && (*g)->root != root->path)
            return fail("guest '" + opt.name + "' is registered with root " + (*g)->root +
                        ", not " + root->path);
        if (*g && !opt.rules) rules = (*g)->excludes;
        if (*g && !opt.min_size) min_size = (*g)->min_size;
    }
    auto packages = read_package_config(root->fd.get(), root->path);
    if (!packages) return std::unexpected(context(packages.error(), "explain"));
    for (const auto& w : packages->warnings) log << "unify: warning: " << w << "\n";
    Rules r(rules, min_size, &*packages, pool.settings().share);

    auto canon = resolve_guest_target(root->fd.get(), root->path, path);
    if (!canon) return std::unexpected(canon.error());
    std::string guest_path = guest_path_as_written(root->path, path);
    std::string head = printable(*canon);
    while (guest_path.size() > 1 && guest_path.back() == '/') guest_path.pop_back();
    if (*canon != guest_path)
        head = printable(guest_path) + " (in the guest: " + printable(*canon) + ")";

    auto st = stat_guest_path(root->fd.get(), *canon, join_path(root->path, *canon));
    if (!st) return std::unexpected(st.error());
    // The name of a mount point inside the guest: its stat is the mounted root's.
    if (*st && (*st)->is_dir() && ((*st)->mount_root || (*st)->dev != root->st.dev))
        return head +
               ": a mount point inside the guest, which unify does not cross: nothing "
               "below it is unified";
    if (*st && (*st)->is_dir()) {
        Decision d;
        bool walked = r.walk_dir(*canon, &d);
        std::string verdict = d.unifiable() ? "files below it may be unified"
                              : walked      ? "private, but walked for include rules below it"
                                            : "private, with everything below it (not walked)";
        return head + ": a directory, never linked itself; " + verdict + ": " + why(d, *canon);
    }
    Decision d = r.decide(*canon);
    std::string because = why(d, *canon);
    if (!d.unifiable()) return head + ": private: " + because;
    if (!*st) {
        auto mount = mount_point_above(root->fd.get(), *canon, root->path);
        if (!mount) return std::unexpected(mount.error());
        if (*mount)
            return head + ": not unified: below a mount point at " + printable(**mount) +
                   " inside the guest, which unify does not cross (" + because + ")";
        return head + ": would be unified if it were a regular file (" + because +
               "; not found in the guest)";
    }
    const FileStat& f = **st;
    if (f.is_lnk()) return head + ": not unified: a symlink (" + because + ")";
    if (!f.is_reg()) return head + ": not unified: a device, fifo or socket (" + because + ")";
    if (f.mount_root || f.dev != root->st.dev)
        return head + ": not unified: a mount point (" + because + ")";
    if (f.size < r.min_size())
        return head + ": not unified: " + std::to_string(f.size) +
               " bytes, smaller than --min-size " + std::to_string(r.min_size()) + " (" + because +
               ")";
    return head + ": unified (" + because + "; regular file)";
}

}  // namespace unify
