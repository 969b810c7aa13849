// unify import NAME ROOT --explain PATH: which rule decides one guest path, and whether the
// import would unify it. Reads the guest's package databases and the rules an import would
// use (those given on the command line, else the guest's stored ones); changes nothing,
// takes no lock.
#pragma once

#include <string>

#include "importer/import.h"

namespace unify {

// One line, e.g.
//   "/etc/nginx/nginx.conf: private: configuration file of dpkg package nginx-common"
//   "/usr/bin/ls: unified (no rule matched; regular file)"
// path: a guest path ("/usr/bin/ls"), or a host path inside ROOT. `log` gets warnings.
Result<std::string> explain_path(Pool& pool, const ImportOptions& opt, const std::string& path,
                                 std::ostream& log);

// "dpkg (412 configuration files kept private)", "none found: only the default and user
// rules apply", "not recorded (imported by an older unify)": for import and status.
std::string describe_package_dbs(const std::string& databases, uint64_t config_files);

// A rule as the user writes it in an --exclude-from file: "- /usr/share/doc/*".
std::string describe_rule(const std::string& stored);
// "- /usr/share/doc/*, + /etc/ssl/certs", or "none".
std::string describe_rules(const std::vector<std::string>& stored);

}  // namespace unify
