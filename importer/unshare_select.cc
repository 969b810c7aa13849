#include "importer/unshare_select.h"

#include <ostream>
#include <set>

#include "importer/guest_target.h"
#include "importer/package_links.h"
#include "store/guest_path.h"
#include "store/printable.h"

namespace unify {

// Which links: every link of the guest, or the paths named (resolved inside the guest, so
// `dpkg -L` output works as it is, its directories skipped) and the links of the packages
// named. An unknown package or a path that leads out of the guest is an error before anything
// changes.
LinkSelector unshare_selector(const UnshareOptions& opt, std::ostream& log) {
    return [&opt, &log](Txn& txn, const GuestRecord& g, const GuestRoot& root,
                        UnshareSummary& sum) -> Result<std::vector<UnshareTarget>> {
        std::vector<UnshareTarget> out;
        std::optional<PackageLinks> packages;
        if (!opt.packages.empty()) {
            auto p = PackageLinks::read(root.fd.get(), root.path, opt.packages);
            if (!p) return std::unexpected(p.error());
            packages = std::move(*p);
            for (const auto& f : packages->packages())
                sum.packages.push_back({f.package, to_string(f.db)});
        }
        bool all = opt.paths.empty() && opt.packages.empty();
        std::set<std::string> named;
        size_t dirs = 0;
        for (const auto& p : opt.paths) {
            auto gp = resolve_guest_target(root.fd.get(), root.path, p);
            if (!gp) return std::unexpected(gp.error());
            auto l = txn.link(g.id, *gp);
            if (!l) return std::unexpected(l.error());
            if (!*l) {
                // dpkg -L lists the package's directories too; they are not worth a line each.
                if (is_guest_directory(root.fd.get(), root.path, p)) {
                    ++dirs;
                    continue;
                }
                // Said apart from "not unified", so that a typo shows; not an error, since
                // `dpkg -L` lists files a guest's dpkg.cfg.d path-exclude never installed.
                auto st = stat_guest_path(root.fd.get(), *gp, join_path(root.path, *gp));
                if (!st) return std::unexpected(st.error());
                std::optional<std::string> mount;
                if (!*st) {
                    auto m = mount_point_above(root.fd.get(), *gp, root.path);
                    if (!m) return std::unexpected(m.error());
                    mount = std::move(*m);
                }
                log << "unify: " << (*st ? "" : "warning: ") << opt.name << ":" << printable(*gp);
                if (*st)
                    log << " is not unified; nothing to do\n";
                else if (mount)
                    log << " is below a mount point at " << printable(*mount)
                        << " inside the guest, which unify does not cross; nothing to do\n";
                else
                    log << " does not exist in the guest; nothing to do\n";
                continue;
            }
            if (named.insert(*gp).second) out.push_back({**l, std::nullopt});
        }
        // Quiet beside the files of a `dpkg -L` list (it names every directory of a package),
        // but an admin who names /usr/share/doc/pkg alone must learn that it did nothing.
        if (dirs && named.empty())
            log << "unify: " << dirs << (dirs == 1 ? " directory" : " directories")
                << " named, skipped: unshare takes files, not what is below a directory (name "
                   "the files, e.g. from `dpkg -L`, or give --package PKG)\n";
        if (!all && !packages) return out;
        auto r = txn.for_each_link_of_guest(g.id, [&](const LinkRecord& l) {
            std::optional<size_t> owner = packages ? packages->owner(l.path) : std::nullopt;
            if (all || (owner && !named.count(l.path))) out.push_back({l, owner});
            return true;
        });
        if (!r) return std::unexpected(r.error());
        return out;
    };
}

}  // namespace unify
