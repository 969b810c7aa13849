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

constexpr size_t kPage = 4096;

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

void IntentLog::begin(IntentOp op, const std::string& object_name) const {
    if (!page_) return;
    // The name goes in first and the tag last, so a reader never sees a tag with half a name.
    size_t n = std::min(object_name.size(), kPage - 3);
    std::memcpy(page_ + 2, object_name.data(), n);
    page_[2 + n] = '\0';
    page_[1] = ' ';
    __atomic_store_n(&page_[0], op == IntentOp::window ? 'W' : 'A', __ATOMIC_RELEASE);
}

void IntentLog::end() const {
    if (page_) __atomic_store_n(&page_[0], '\0', __ATOMIC_RELEASE);
}

std::optional<Intent> IntentLog::pending() const {
    if (!page_ || (page_[0] != 'W' && page_[0] != 'A')) return std::nullopt;
    return Intent{page_[0] == 'W' ? IntentOp::window : IntentOp::adopt,
                  std::string(page_ + 2, strnlen(page_ + 2, kPage - 2))};
}

}  // namespace unify
