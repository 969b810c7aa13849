// unify who: which guests share a file. The answer comes from the index (byobject) and each
// path is then checked against the filesystem: a path that is no longer the object's inode
// (in a reflink pool: no longer shares all the object's blocks) is not reported. It reads
// only the links of the asked name (asked by id: its first link's) where the object's link
// count proves there is no other (query/who.cc verified_links).
#pragma once

#include <string>
#include <vector>

#include "store/pool.h"

namespace unify {

struct WhoLink {
    std::string guest;
    std::string path;
};

// A recorded path that could not be checked (EACCES, EIO, ...): neither listed nor the end of
// the answer, so that one guest's path cannot keep `who` from answering for the others.
struct WhoUnchecked {
    std::string guest;
    std::string path;
    std::string error;  // names the call, the host path and errno
};

struct WhoAnswer {
    bool unified = false;
    std::string target;   // as the user named it, normalised: "web1:/usr/bin/ls" or an id
    std::string why_not;  // when !unified
    ObjectId id;
    uint64_t size = 0;
    std::vector<WhoLink> links;  // verified
    std::vector<WhoUnchecked> unchecked;
};

// target: a host path inside a registered guest root, NAME:/path, or an id prefix of 8+ hex.
// jobs: threads for looking at the guests (0: one per core, at most a few).
Result<WhoAnswer> who(Pool& pool, const std::string& target, unsigned jobs = 0);

}  // namespace unify
