// The production side of the fault seam (store/fault.h): nothing happens.
#include "store/fault.h"

namespace unify {

void fault_point(const char*) {}

int fault_errno(const char*, const std::string&) {
    return 0;
}

}  // namespace unify
