// The production side of the fault seam (store/fault.h): nothing happens.
#include "store/fault.h"

namespace unify {

void fault_point(const char*) {}

int fault_errno(const char*, const std::string&) {
    return 0;
}

int64_t fault_settle_cutoff(int64_t cutoff) {
    return cutoff;
}

}  // namespace unify
