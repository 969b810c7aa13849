// dpkg: the configuration files are the conffiles. dpkg keeps them in two places, and both
// are read, so a package half-way through an upgrade is covered by either list:
//   var/lib/dpkg/status          one paragraph per package; "Conffiles:" continuation lines
//                                " /etc/foo.conf <md5> [obsolete] [remove-on-upgrade]"
//   var/lib/dpkg/info/P.conffiles  one path per line (P is "name" or "name:arch"), possibly
//                                prefixed by "remove-on-upgrade "
// Packages whose Status says not-installed are skipped; a removed package whose conffiles
// are still on disk ("deinstall ok config-files") keeps them private.
#include <fcntl.h>

#include "importer/package_db.h"
#include "importer/package_files.h"
#include "store/sys.h"

namespace unify {

namespace {

constexpr size_t kMaxStatusBytes = 256u << 20;
constexpr size_t kMaxListBytes = 16u << 20;

std::string trim(const std::string& s) {
    size_t b = s.find_first_not_of(" \t\r");
    if (b == std::string::npos) return "";
    size_t e = s.find_last_not_of(" \t\r");
    return s.substr(b, e - b + 1);
}

// " /etc/a b.conf 0123abcd obsolete" -> "/etc/a b.conf": the hash and flags are the last
// space-separated words; a path may itself hold spaces.
std::string conffile_path(const std::string& line) {
    std::string s = trim(line);
    for (;;) {
        size_t sp = s.rfind(' ');
        if (sp == std::string::npos) return s;
        std::string word = s.substr(sp + 1);
        if (word == "obsolete" || word == "remove-on-upgrade") {
            s = trim(s.substr(0, sp));
            continue;
        }
        return trim(s.substr(0, sp));  // drop the hash
    }
}

}  // namespace

Result<std::vector<std::pair<std::string, std::string>>> parse_dpkg_status(
    const std::string& text, const std::string& shown) {
    std::vector<std::pair<std::string, std::string>> out;
    std::string package, status;
    std::vector<std::string> conffiles;
    bool in_conffiles = false;
    size_t line_no = 0;
    auto flush = [&]() {
        bool purged = status.find("not-installed") != std::string::npos;
        if (!package.empty() && !purged)
            for (auto& c : conffiles) out.emplace_back(package, std::move(c));
        package.clear();
        status.clear();
        conffiles.clear();
        in_conffiles = false;
    };
    size_t i = 0;
    while (i < text.size()) {
        size_t j = text.find('\n', i);
        if (j == std::string::npos) j = text.size();
        std::string line = text.substr(i, j - i);
        i = j + 1;
        ++line_no;
        if (trim(line).empty()) {
            flush();
            continue;
        }
        if (line[0] == ' ' || line[0] == '\t') {  // continuation of the last field
            if (in_conffiles) {
                std::string p = conffile_path(line);
                if (p.empty() || p[0] != '/')
                    return fail(shown + ":" + std::to_string(line_no) +
                                ": a Conffiles line that does not start with a path");
                conffiles.push_back(p);
            }
            continue;
        }
        size_t colon = line.find(':');
        if (colon == std::string::npos)
            return fail(shown + ":" + std::to_string(line_no) + ": not a \"Field: value\" line");
        std::string field = line.substr(0, colon), value = trim(line.substr(colon + 1));
        in_conffiles = false;
        if (field == "Package")
            package = value;
        else if (field == "Status")
            status = value;
        else if (field == "Conffiles")
            in_conffiles = true;
    }
    flush();
    return out;
}

Result<bool> read_dpkg_config(int root_fd, const std::string& root_shown, GuestResolver& resolver,
                              PackageConfig& out) {
    const std::string status_rel = "var/lib/dpkg/status";
    auto status =
        read_guest_file(root_fd, status_rel, join_path(root_shown, status_rel), kMaxStatusBytes);
    if (!status) return std::unexpected(status.error());
    if (!*status) return false;
    auto pairs = parse_dpkg_status(**status, join_path(root_shown, status_rel));
    if (!pairs) return std::unexpected(pairs.error());
    for (const auto& [pkg, path] : *pairs) {
        auto canon = resolver.resolve(path);
        if (!canon) return std::unexpected(canon.error());
        out.add(*canon, PackageDb::dpkg, pkg);
    }

    const std::string info_rel = "var/lib/dpkg/info";
    std::string info_shown = join_path(root_shown, info_rel);
    auto info = open_beneath(root_fd, info_rel, O_RDONLY | O_DIRECTORY, info_shown);
    if (!info) {
        if (info.error().err == ENOENT) return true;
        return std::unexpected(info.error());
    }
    auto entries = read_dir(info->get(), info_shown);
    if (!entries) return std::unexpected(entries.error());
    const std::string suffix = ".conffiles";
    for (const auto& e : *entries) {
        if (e.name.size() <= suffix.size() ||
            e.name.compare(e.name.size() - suffix.size(), suffix.size(), suffix) != 0)
            continue;
        std::string pkg = e.name.substr(0, e.name.size() - suffix.size());
        pkg = pkg.substr(0, pkg.find(':'));
        std::string shown = join_path(info_shown, e.name);
        auto text = read_guest_file(info->get(), e.name, shown, kMaxListBytes);
        if (!text) return std::unexpected(text.error());
        if (!*text) continue;  // removed since the listing
        size_t i = 0;
        while (i < (*text)->size()) {
            size_t j = (*text)->find('\n', i);
            if (j == std::string::npos) j = (*text)->size();
            std::string line = trim((*text)->substr(i, j - i));
            i = j + 1;
            const std::string flag = "remove-on-upgrade ";
            if (line.compare(0, flag.size(), flag) == 0) line = trim(line.substr(flag.size()));
            if (line.empty() || line[0] != '/') continue;
            auto canon = resolver.resolve(line);
            if (!canon) return std::unexpected(canon.error());
            out.add(*canon, PackageDb::dpkg, pkg);
        }
    }
    return true;
}

}  // namespace unify

namespace unify {

// info/PKG.list, else info/PKG:ARCH.list (a Multi-Arch: same package has one per arch).
Result<std::optional<std::vector<std::string>>> read_dpkg_files(int root_fd,
                                                                const std::string& root_shown,
                                                                const std::string& package) {
    using Files = std::optional<std::vector<std::string>>;
    if (package.empty() || package.find('/') != std::string::npos || package[0] == '.')
        return Files();
    const std::string info_rel = "var/lib/dpkg/info";
    std::string info_shown = join_path(root_shown, info_rel);
    auto info = open_beneath(root_fd, info_rel, O_RDONLY | O_DIRECTORY, info_shown);
    if (!info) {
        if (info.error().err == ENOENT || info.error().err == ENOTDIR) return Files();
        return std::unexpected(info.error());
    }
    auto entries = read_dir(info->get(), info_shown);
    if (!entries) return std::unexpected(entries.error());
    Files out;
    for (const auto& e : *entries) {
        bool plain = e.name == package + ".list";
        bool with_arch = e.name.size() > package.size() + 6 &&
                         e.name.compare(0, package.size() + 1, package + ":") == 0 &&
                         e.name.ends_with(".list");
        if (!plain && !with_arch) continue;
        auto text =
            read_guest_file(info->get(), e.name, join_path(info_shown, e.name), kMaxListBytes);
        if (!text) return std::unexpected(text.error());
        if (!*text) continue;
        if (!out) out.emplace();
        size_t i = 0;
        while (i < (*text)->size()) {
            size_t j = (*text)->find('\n', i);
            if (j == std::string::npos) j = (*text)->size();
            std::string line = (*text)->substr(i, j - i);
            i = j + 1;
            if (!line.empty() && line[0] == '/' && line != "/.") out->push_back(line);
        }
    }
    return out;
}

}  // namespace unify
