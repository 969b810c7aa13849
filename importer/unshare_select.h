// The links `unify unshare` gives private copies of: every link of the guest, or the paths
// named, resolved inside the guest as it sees them (importer/guest_target.h, so `dpkg -L`
// output works as it is), and the links of the installed packages named, read from the
// guest's own package database (importer/package_links.h). It lives here, above linker/,
// because it reads the guest; linker/unshare.h does the copying.
#pragma once

#include <iosfwd>

#include "linker/unshare.h"

namespace unify {

LinkSelector unshare_selector(const UnshareOptions& opt, std::ostream& log);

}  // namespace unify
