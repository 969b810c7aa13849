#include "store/intent.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <utility>

#include "store/fd.h"

namespace unify {

namespace {

// A slot holds a tag, a blank and a NUL-terminated "xx/<64 hex>[.N]"; slot 0 sits where the
// one-slot format of an older unify had its record, so its pending record is still found.
constexpr size_t kSlot = 128;
constexpr size_t kPage = kSlot * kIntentSlots;

}  // namespace

IntentLog::IntentLog(IntentLog&& o) noexcept : page_(std::exchange(o.page_, nullptr)) {}

IntentLog& IntentLog::operator=(IntentLog&& o) noexcept {
    if (this != &o) {
        if (page_) munmap(page_, kPage);
        page_ = std::exchange(o.page_, nullptr);
    }
    return *this;
}

IntentLog::~IntentLog() {
    if (page_) munmap(page_, kPage);
}

Result<IntentLog> IntentLog::open(int pool_fd, const std::string& pool_path) {
    std::string shown = pool_path + "/intent";
    int fd = openat(pool_fd, "intent", O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) return sys_fail("open", shown);
    Fd f(fd);
    struct stat st;
    if (fstat(fd, &st) != 0) return sys_fail("fstat", shown);
    if (st.st_size < off_t(kPage) && ftruncate(fd, kPage) != 0) return sys_fail("ftruncate", shown);
    void* p = mmap(nullptr, kPage, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) return sys_fail("mmap", shown);
    IntentLog log;
    log.page_ = static_cast<char*>(p);
    return log;
}

void IntentLog::begin(IntentOp op, const std::string& object_name, size_t slot) const {
    if (!page_ || slot >= kIntentSlots) return;
    char* p = page_ + slot * kSlot;
    // The name goes in first and the tag last, so a reader never sees a tag with half a name.
    size_t n = std::min(object_name.size(), kSlot - 3);
    std::memcpy(p + 2, object_name.data(), n);
    p[2 + n] = '\0';
    p[1] = ' ';
    __atomic_store_n(&p[0], op == IntentOp::window ? 'W' : 'A', __ATOMIC_RELEASE);
}

void IntentLog::end(size_t slot) const {
    if (page_ && slot < kIntentSlots)
        __atomic_store_n(&page_[slot * kSlot], '\0', __ATOMIC_RELEASE);
}

std::vector<Intent> IntentLog::pending() const {
    std::vector<Intent> out;
    for (size_t slot = 0; page_ && slot < kIntentSlots; ++slot) {
        const char* p = page_ + slot * kSlot;
        if (p[0] != 'W' && p[0] != 'A') continue;
        out.push_back(Intent{p[0] == 'W' ? IntentOp::window : IntentOp::adopt,
                             std::string(p + 2, strnlen(p + 2, kSlot - 2))});
    }
    return out;
}

}  // namespace unify
