#include "repair/stamp.h"

#include <ctime>

namespace unify {

std::string utc_stamp() {
    char buf[32];
    time_t t = time(nullptr);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
    return buf;
}

}  // namespace unify
