// The UTC time stamp that names what reindex and verify move aside (index.old.STAMP,
// quarantine/STAMP...).
#pragma once

#include <string>

namespace unify {

// Now, in UTC, as "YYYYMMDDTHHMMSSZ".
std::string utc_stamp();

}  // namespace unify
