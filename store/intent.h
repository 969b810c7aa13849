// The intent record (POOL/intent): objects a single writer holds in a vulnerable state,
// either with their protection lifted for linking (window) or linked into the pool but not
// yet protected and re-hashed (adopt). A slot names such an object while it lasts, so the
// next writer can finish the job after a SIGKILL or a crash: protect the object again and,
// for adopt, verify it against its id (or withdraw it). Slot 0 serves one object at a time;
// slots 1..kWorkSlots-1 let import adopt a chunk of objects and re-hash them on all cores.
// It is a shared mapping: marking costs two stores, no syscall, and survives the death of
// the process (not of the machine: that case is verify's).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "store/result.h"

namespace unify {

enum class IntentOp { window, adopt };

inline constexpr size_t kIntentSlots = 257;
// The last slots are not for work: they hold the objects a writer's recovery found changed
// after a window cut short (Pool::Recovery), until their quarantine is done, so that a writer
// killed or failing in it leaves them to the next one. Work uses slots below kWorkSlots.
inline constexpr size_t kPendingSlots = 8;
inline constexpr size_t kWorkSlots = kIntentSlots - kPendingSlots;

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
    void begin(IntentOp op, const std::string& object_name, size_t slot = 0) const;
    void end(size_t slot = 0) const;
    std::vector<Intent> pending() const;

  private:
    char* page_ = nullptr;
};

}  // namespace unify
