// The intent record (POOL/intent): a single writer has at most one object in a vulnerable
// state at a time, either with its protection lifted for linking (window) or linked into the
// pool but not yet protected and re-hashed (adopt). The record names that object while it
// lasts, so the next writer can finish the job after a SIGKILL or a crash: protect the
// object again and, for adopt, verify it against its id (or withdraw it). It is a shared
// mapping of one page: marking costs two stores, no syscall, and survives the death of the
// process (not of the machine: that case is verify's).
#pragma once

#include <optional>
#include <string>

#include "store/result.h"

namespace unify {

enum class IntentOp { window, adopt };

struct Intent {
    IntentOp op;
    std::string object_name;  // relative to POOL/objects: "ab/<hex>[.N]"
};

class IntentLog {
public:
    IntentLog() = default;
    IntentLog(IntentLog&& o) noexcept;
    IntentLog& operator=(IntentLog&& o) noexcept;
    ~IntentLog();

    static Result<IntentLog> open(int pool_fd, const std::string& pool_path);
    // const: they write through the mapping, not into this object.
    void begin(IntentOp op, const std::string& object_name) const;
    void end() const;
    std::optional<Intent> pending() const;

private:
    char* page_ = nullptr;
};

}  // namespace unify
