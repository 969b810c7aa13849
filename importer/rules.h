// Which guest paths may be unified. A path is decided by the first rule that matches:
//   1. the default exclusions: whole top-level trees that hold per-guest state
//      (/etc /var /tmp /dev /proc /sys /run /home /root /mnt /boot /media /srv /lost+found);
//   2. the guest's --exclude globs. A glob with a '/' is matched against the whole guest
//      path ("/usr/share/doc/*"), one without against the last component ("*.pyc"); '*'
//      does not cross '/'. A matching directory excludes everything below it.
// Anything else that is a regular file of at least --min-size bytes is eligible.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace unify {

enum class RuleMatch { none, default_exclusion, user_exclusion };

const std::vector<std::string>& default_exclusions();

class Rules {
  public:
    Rules(std::vector<std::string> excludes, uint64_t min_size)
        : excludes_(std::move(excludes)), min_size_(min_size) {}

    // path: inside the guest, starting with '/'.
    RuleMatch match(const std::string& path) const;
    uint64_t min_size() const { return min_size_; }
    const std::vector<std::string>& excludes() const { return excludes_; }

  private:
    std::vector<std::string> excludes_;
    uint64_t min_size_;
};

}  // namespace unify
