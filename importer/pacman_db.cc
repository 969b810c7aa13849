// pacman: the configuration files are the package's backup files. Each installed package has
// a directory var/lib/pacman/local/NAME-VERSION-REL/ whose "files" lists
//   %FILES%           every path, relative to the root
//   %BACKUP%          "etc/pacman.conf<TAB><md5>" per backup file
// and whose "desc" names the package (%NAME%).
#include <fcntl.h>

#include "importer/package_db.h"
#include "importer/package_files.h"
#include "store/sys.h"

namespace unify {

namespace {

constexpr size_t kMaxFilesBytes = 64u << 20;

// The lines of section `name` ("%BACKUP%") of a pacman db file, up to the next blank line.
std::vector<std::string> section(const std::string& text, const std::string& name) {
    std::vector<std::string> out;
    bool in = false;
    size_t i = 0;
    while (i < text.size()) {
        size_t j = text.find('\n', i);
        if (j == std::string::npos) j = text.size();
        std::string line = text.substr(i, j - i);
        i = j + 1;
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (line.size() > 2 && line.front() == '%' && line.back() == '%') {
            in = line == name;
            continue;
        }
        if (line.empty()) {
            in = false;
            continue;
        }
        if (in) out.push_back(line);
    }
    return out;
}

}  // namespace

Result<bool> read_pacman_config(int root_fd, const std::string& root_shown, GuestResolver& resolver,
                                PackageConfig& out) {
    const std::string local_rel = "var/lib/pacman/local";
    std::string local_shown = join_path(root_shown, local_rel);
    auto local = open_beneath(root_fd, local_rel, O_RDONLY | O_DIRECTORY, local_shown);
    if (!local) {
        int err = local.error().err;
        if (err == ENOENT) return false;
        // ENOTDIR is also what a symlink at "local" gives: refused, it is a database that
        // cannot be read, not a missing one.
        if (err == ENOTDIR) {
            auto parent =
                open_beneath(root_fd, "var/lib/pacman", O_PATH | O_DIRECTORY, local_shown);
            auto st = parent ? stat_if_exists(parent->get(), "local", local_shown)
                             : Result<std::optional<FileStat>>(std::optional<FileStat>());
            if (st && *st && (*st)->is_lnk())
                return fail(local_shown + " is a symlink in the guest; not followed", ELOOP);
            return false;
        }
        return std::unexpected(local.error());
    }
    auto entries = read_dir(local->get(), local_shown);
    if (!entries) return std::unexpected(entries.error());
    for (const auto& e : *entries) {
        if (e.name == "." || e.name == "..") continue;
        std::string files_rel = e.name + "/files";
        auto files = read_guest_file(local->get(), files_rel, join_path(local_shown, files_rel),
                                     kMaxFilesBytes);
        if (!files) {
            if (files.error().err == ENOTDIR) continue;  // ALPM_DB_VERSION and such
            return std::unexpected(files.error());
        }
        if (!*files) continue;
        std::string package = e.name;
        std::string desc_rel = e.name + "/desc";
        auto desc = read_guest_file(local->get(), desc_rel, join_path(local_shown, desc_rel),
                                    kMaxFilesBytes);
        if (!desc) return std::unexpected(desc.error());
        if (*desc) {
            auto name = section(**desc, "%NAME%");
            if (!name.empty()) package = name.front();
        }
        for (const std::string& line : section(**files, "%BACKUP%")) {
            std::string path = line.substr(0, line.find('\t'));
            if (path.empty()) continue;
            auto canon = resolver.resolve("/" + path);
            if (!canon) return std::unexpected(canon.error());
            out.add(*canon, PackageDb::pacman, package);
        }
    }
    return true;
}

}  // namespace unify

namespace unify {

// The local entry whose desc names `package` (%NAME%); its %FILES%, relative to the root
// ("usr/bin/x"; directories end in '/').
Result<std::optional<std::vector<std::string>>> read_pacman_files(int root_fd,
                                                                  const std::string& root_shown,
                                                                  const std::string& package) {
    using Files = std::optional<std::vector<std::string>>;
    const std::string local_rel = "var/lib/pacman/local";
    std::string local_shown = join_path(root_shown, local_rel);
    auto local = open_beneath(root_fd, local_rel, O_RDONLY | O_DIRECTORY, local_shown);
    if (!local) {
        int err = local.error().err;
        if (err == ENOENT || err == ENOTDIR) return Files();
        return std::unexpected(local.error());
    }
    auto entries = read_dir(local->get(), local_shown);
    if (!entries) return std::unexpected(entries.error());
    for (const auto& e : *entries) {
        // Entries are NAME-VERSION-REL: only those starting with "NAME-" can be it.
        if (e.name.compare(0, package.size() + 1, package + "-") != 0) continue;
        std::string desc_rel = e.name + "/desc";
        auto desc = read_guest_file(local->get(), desc_rel, join_path(local_shown, desc_rel),
                                    kMaxFilesBytes);
        if (!desc) {
            if (desc.error().err == ENOTDIR) continue;
            return std::unexpected(desc.error());
        }
        if (!*desc) continue;
        auto name = section(**desc, "%NAME%");
        if (name.empty() || name.front() != package) continue;
        std::string files_rel = e.name + "/files";
        auto files = read_guest_file(local->get(), files_rel, join_path(local_shown, files_rel),
                                     kMaxFilesBytes);
        if (!files) return std::unexpected(files.error());
        Files out(std::in_place);
        if (!*files) return out;
        for (const std::string& line : section(**files, "%FILES%"))
            if (!line.empty() && line.back() != '/') out->push_back("/" + line);
        return out;
    }
    return Files();
}

}  // namespace unify
