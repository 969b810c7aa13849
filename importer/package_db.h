// A guest's package databases, read offline from its root: which of its files are
// configuration files that must stay private to the guest, wherever they lie.
//   dpkg    var/lib/dpkg/status (the Conffiles: field of every package not purged) and
//           var/lib/dpkg/info/*.conffiles                                  (dpkg_db.cc)
//   rpm     rpmdb.sqlite in usr/lib/sysimage/rpm or var/lib/rpm: each Packages row is an rpm
//           header; files whose RPMTAG_FILEFLAGS has RPMFILE_CONFIG are %config (rpm_db.cc).
//           Berkeley DB (Packages) and ndb (Packages.db) are reported, not read.
//   pacman  var/lib/pacman/local/*/files, the %BACKUP% section              (pacman_db.cc)
// Nothing of the guest is executed and no guest symlink is followed by the kernel: files are
// opened with open_beneath (openat2 RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS), and the symlinks
// a package path goes through inside the guest (merged /usr: /lib -> usr/lib; Fedora's
// var/lib/rpm -> ../../usr/lib/sysimage/rpm) are resolved here, component by component with
// readlinkat, inside the guest root, so paths come out as the walk sees them.
// A database that is missing is no error; one that cannot be read or parsed is, so that an
// import never unifies a configuration file because its list went unread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "store/result.h"

namespace unify {

enum class PackageDb { dpkg, rpm, pacman };
const char* to_string(PackageDb db);

struct ConfigOwner {
    PackageDb db;
    std::string package;
};

struct PackageConfig {
    // Guest path as the walk sees it ("/usr/lib/foo/bar.conf") -> the package it belongs to.
    std::unordered_map<std::string, ConfigOwner> files;
    std::vector<std::string> found;     // "dpkg", "rpm", "pacman": databases read
    std::vector<std::string> warnings;  // databases found but not read, and why

    const ConfigOwner* find(const std::string& path) const;
    // Adds `path` (any guest path, made canonical by the caller) unless it is known already.
    void add(std::string path, PackageDb db, const std::string& package);
    // "dpkg", "dpkg, rpm", or "none"; what status prints and the guest record keeps.
    std::string databases() const;
};

Result<PackageConfig> read_package_config(int root_fd, const std::string& root_shown);

// --- shared by the readers (and tests) ---

// Resolves the symlinks in the directory part of `path` inside the guest, as the guest
// would see them with its root as "/": absolute targets restart at the root, ".." stops at
// it. The last component is kept as it is. Components that do not exist, or that cannot be
// looked at (a mount point, more than 40 symlinks), end the resolution: the rest is joined
// as written. Returns a normalised absolute guest path ("/usr/lib/x").
// With refuse_escape, a symlink whose relative target climbs above the root ("../../x" at
// the root) is an error (EXDEV) instead of stopping at the root: for paths an admin names,
// where such a link is an escape attempt, not a guest quirk (importer/guest_target.h).
class GuestResolver {
  public:
    GuestResolver(int root_fd, std::string root_shown, bool refuse_escape = false)
        : root_fd_(root_fd), root_shown_(std::move(root_shown)), refuse_escape_(refuse_escape) {}
    Result<std::string> resolve(const std::string& path);
    // The directory `path` names, resolved (the last component too).
    Result<std::string> resolve_dir(const std::string& path);

  private:
    Result<std::string> resolve_components(std::vector<std::string> pending);
    int root_fd_;
    std::string root_shown_;
    bool refuse_escape_;
    std::map<std::string, std::string> dirs_;  // cache: directory as written -> resolved
};

// The whole content of a guest file `rel` (relative to root_fd, no symlinks), or nothing if
// it does not exist. Larger than max_bytes is an error.
Result<std::optional<std::string>> read_guest_file(int root_fd, const std::string& rel,
                                                   const std::string& shown, size_t max_bytes);

// The readers. Each returns false when its database is not there.
Result<bool> read_dpkg_config(int root_fd, const std::string& root_shown, GuestResolver& resolver,
                              PackageConfig& out);
Result<bool> read_rpm_config(int root_fd, const std::string& root_shown, GuestResolver& resolver,
                             PackageConfig& out);
Result<bool> read_pacman_config(int root_fd, const std::string& root_shown, GuestResolver& resolver,
                                PackageConfig& out);

// The %config files of one rpm header blob as stored in rpmdb (il, dl, index, data):
// package name and full paths. A malformed blob is an error, never a crash.
struct RpmHeaderConfig {
    std::string name;
    std::vector<std::string> config_files;
    std::vector<std::string> files;  // every path of the package (unshare --package)
};
Result<RpmHeaderConfig> parse_rpm_header(const uint8_t* blob, size_t size);

// dpkg's status file: every (package, conffile) of a package that is not purged.
Result<std::vector<std::pair<std::string, std::string>>> parse_dpkg_status(
    const std::string& text, const std::string& shown);

}  // namespace unify
