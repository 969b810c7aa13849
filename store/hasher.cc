// Streaming hash with one 1 MiB buffer per thread; both hashes are fed from the same read,
// so XXH3 costs no extra I/O.
#include "store/hasher.h"

#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <mutex>
#include <vector>

#include "store/fault.h"
#include "store/interrupt.h"
#include "store/sha256.h"
#include "store/sys.h"

namespace unify {

namespace {

constexpr size_t kBuffer = 1 << 20;

struct Hashers {
    Sha256 sha;
    XXH3_state_t* xxh = XXH3_createState();
    bool with_sha = true;
    ~Hashers() { XXH3_freeState(xxh); }
    void start(bool with) {
        with_sha = with;
        if (with_sha) sha = Sha256();
        XXH3_64bits_reset(xxh);
    }
    void update(const char* p, size_t n) {
        if (with_sha) sha.update(p, n);
        XXH3_64bits_update(xxh, p, n);
    }
    void finish(ContentHash& out) {
        if (with_sha) out.sha256 = sha.finish();
        out.xxh3 = XXH3_64bits_digest(xxh);
    }
};

// Threads come and go with each parallel loop (store/parallel.h). A fresh 1 MiB buffer per
// thread was zeroed and faulted in page by page (7 % of the samples of a reflink import of
// g1, a quarter of its page faults). A buffer goes back to a process-wide list when its
// thread ends, and the next thread takes it as it is.
class SpareBuffers {
  public:
    std::unique_ptr<char[]> take() {
        std::lock_guard lock(mu_);
        if (spare_.empty()) return std::make_unique_for_overwrite<char[]>(kBuffer);
        auto b = std::move(spare_.back());
        spare_.pop_back();
        return b;
    }
    void give_back(std::unique_ptr<char[]> b) {
        std::lock_guard lock(mu_);
        spare_.push_back(std::move(b));
    }

  private:
    std::mutex mu_;
    std::vector<std::unique_ptr<char[]>> spare_;
};

// Never destroyed: threads may end after static destructors have run.
SpareBuffers& spare_buffers() {
    static auto* s = new SpareBuffers;
    return *s;
}

struct ThreadBuffer {
    std::unique_ptr<char[]> p;
    size_t size() const { return kBuffer; }
    char* data() { return p.get(); }
    ~ThreadBuffer() {
        if (p) spare_buffers().give_back(std::move(p));
    }
};

thread_local ThreadBuffer t_buffer;
thread_local std::unique_ptr<Hashers> t_hashers;

Hashers& hashers() {
    if (!t_hashers) t_hashers = std::make_unique<Hashers>();
    if (!t_buffer.p) t_buffer.p = spare_buffers().take();
    return *t_hashers;
}

// pread, with the test-only injected errno (store/fault.h) and EINTR retried.
ssize_t read_at(int fd, char* buf, size_t len, off_t off, const std::string& shown) {
    for (;;) {
        ssize_t n = pread(fd, buf, len, off);
        if (int e = fault_errno("read", shown)) n = -1, errno = e;
        if (n < 0 && errno == EINTR && !interrupted()) continue;
        return n;
    }
}

Result<void> write_at(int fd, const char* p, size_t len, off_t off, const std::string& shown) {
    while (len > 0) {
        ssize_t n = pwrite(fd, p, len, off);
        if (n < 0 && errno == EINTR && !interrupted()) continue;
        if (n < 0) return sys_fail("write", shown);
        p += n, off += n, len -= size_t(n);
    }
    return {};
}

// Feeds `len` zero bytes (a hole) to the hashers.
void hash_zeros(Hashers& h, uint64_t len) {
    static const std::vector<char> zeros(1 << 16, 0);
    for (; len > 0;) {
        size_t n = size_t(std::min<uint64_t>(len, zeros.size()));
        h.update(zeros.data(), n);
        len -= n;
    }
}

// Reads src [off, end) (end < 0: to EOF), feeding each chunk to the hashers and, if
// dst >= 0, writing it at the same offset. Returns where EOF was met, or end.
Result<off_t> stream_range(Hashers& h, int src, int dst, off_t off, off_t end,
                           const std::string& src_shown, const std::string& dst_shown) {
    while (end < 0 || off < end) {
        size_t want = t_buffer.size();
        if (end >= 0) want = size_t(std::min<off_t>(off_t(want), end - off));
        ssize_t n = read_at(src, t_buffer.data(), want, off, src_shown);
        if (n < 0) return sys_fail("read", src_shown);
        if (n == 0) break;
        h.update(t_buffer.data(), size_t(n));
        if (dst >= 0) {
            if (auto w = write_at(dst, t_buffer.data(), size_t(n), off, dst_shown); !w)
                return std::unexpected(w.error());
        }
        off += n;
    }
    return off;
}

// Reads src to EOF, feeding each chunk to the hashers and, if dst >= 0, writing it there.
// A copy skips src's holes (SEEK_DATA / SEEK_HOLE): they are hashed as the zeros they read
// as, and left as holes in dst, so a sparse file costs its blocks, not its size. What is
// hashed is always exactly what dst holds, even if src changes meanwhile.
Result<ContentHash> stream(int src, int dst, const std::string& src_shown,
                           const std::string& dst_shown, bool sha256 = true) {
    Hashers& h = hashers();
    h.start(sha256);
    ContentHash out;
    off_t off = 0;
    bool sparse = dst >= 0, hole_at_end = false;
    while (sparse) {
        off_t data = lseek(src, off, SEEK_DATA);
        if (data < 0 && errno == ENXIO) {  // nothing but a hole up to EOF
            off_t eof = lseek(src, 0, SEEK_END);
            if (eof < 0) return sys_fail("lseek", src_shown);
            if (eof > off) {
                hash_zeros(h, uint64_t(eof - off));
                off = eof;
                hole_at_end = true;
            }
            break;
        }
        if (data < 0) {  // no SEEK_DATA here: copy every byte from off on
            sparse = false;
            break;
        }
        if (data > off) hash_zeros(h, uint64_t(data - off));
        off = data;
        off_t hole = lseek(src, off, SEEK_HOLE);
        if (hole < 0 && errno == ENXIO) break;  // src shrank below off meanwhile: EOF
        if (hole < 0) return sys_fail("lseek", src_shown);
        auto at = stream_range(h, src, dst, off, hole, src_shown, dst_shown);
        if (!at) return std::unexpected(at.error());
        if (*at < hole) {  // EOF before the hole: src shrank meanwhile
            off = *at;
            break;
        }
        off = hole;
    }
    if (!sparse) {
        auto at = stream_range(h, src, dst, off, -1, src_shown, dst_shown);
        if (!at) return std::unexpected(at.error());
        off = *at;
    }
    // A trailing hole is written as the size; dst was empty, so otherwise its size is right.
    if (hole_at_end && ftruncate(dst, off) != 0) return sys_fail("ftruncate", dst_shown);
    out.size = uint64_t(off);
    h.finish(out);
    return out;
}

// Reads up to len bytes at off, fewer only at EOF.
Result<size_t> read_full(int fd, char* buf, size_t len, off_t off, const std::string& shown) {
    size_t got = 0;
    while (got < len) {
        ssize_t n = read_at(fd, buf + got, len - got, off + off_t(got), shown);
        if (n < 0) return sys_fail("read", shown);
        if (n == 0) break;
        got += size_t(n);
    }
    return got;
}

}  // namespace

Result<bool> same_bytes_fd(int a, int b, const std::string& a_shown, const std::string& b_shown) {
    hashers();  // the thread's buffer: half for each side
    const size_t half = t_buffer.size() / 2;
    char* pa = t_buffer.data();
    char* pb = pa + half;
    for (off_t off = 0;;) {
        auto na = read_full(a, pa, half, off, a_shown);
        if (!na) return std::unexpected(na.error());
        auto nb = read_full(b, pb, half, off, b_shown);
        if (!nb) return std::unexpected(nb.error());
        if (*na != *nb || std::memcmp(pa, pb, *na) != 0) return false;
        if (*na < half) return true;  // both at EOF
        off += off_t(*na);
    }
}

Result<ContentHash> hash_fd(int fd, const std::string& shown) {
    return stream(fd, -1, shown, "");
}

Result<ContentHash> quick_hash_fd(int fd, const std::string& shown) {
    return stream(fd, -1, shown, "", false);
}

Result<ContentHash> copy_and_hash(int src, int dst, const std::string& src_shown,
                                  const std::string& dst_shown) {
    return stream(src, dst, src_shown, dst_shown);
}

}  // namespace unify
