#include "tests/index_dump.h"

#include <algorithm>
#include <sstream>
#include <vector>

#include "store/index.h"

namespace unify::test {

// Left out, each because it cannot be rebuilt from the filesystem and nothing depends on it:
//   ObjectRecord.created   the time import made the object; the pool does not keep it
//                          (the inode's ctime moves with every link and protection window),
//                          so reindex records its own time.
//   LinkRecord.ctime_ns    import records the object's ctime as it saw it when it linked
//                          that path; every later link, rename or protection window of the
//                          object moves the ctime, so the records of one object already
//                          differ among themselves, and reindex can only record the ctime
//                          of now. (Nothing compares it: the "already linked" check of
//                          import uses inode, size and mtime.)
// Everything else is compared: the guests whole (id, name, root, last import, rules,
// min size, package databases), the objects' size, XXH3, content SHA-256 and replica count, and the
// links' guest, path, object, replica, inode, size and mtime, plus the reverse (byobject) table.
std::string dump_index(const std::string& pool) {
    auto index = Index::open(pool + "/index", false);
    if (!index) return "ERROR " + index.error().message;
    auto txn = (*index)->read();
    if (!txn) return "ERROR " + txn.error().message;
    std::vector<std::string> lines;
    auto guests = (*txn)->guests();
    if (!guests) return "ERROR " + guests.error().message;
    auto link_line = [](const char* what, const LinkRecord& l) {
        std::ostringstream s;
        s << what << " guest=" << l.guest << " path=" << l.path << " id=" << l.id.hex()
          << " replica=" << l.replica << " ino=" << l.ino << " size=" << l.size
          << " mtime_ns=" << l.mtime_ns;
        return s.str();
    };
    std::string error;
    for (const auto& g : *guests) {
        std::ostringstream s;
        s << "guest id=" << g.id << " name=" << g.name << " root=" << g.root
          << " last_import=" << g.last_import << " min_size=" << g.min_size
          << " package_dbs=" << g.package_dbs << " config_files=" << g.config_files << " rules=[";
        for (const auto& e : g.excludes) s << e << ";";
        s << "]";
        lines.push_back(s.str());
        auto r = (*txn)->for_each_link_of_guest(g.id, [&](const LinkRecord& l) {
            lines.push_back(link_line("link", l));
            return true;
        });
        if (!r) return "ERROR " + r.error().message;
    }
    auto r = (*txn)->for_each_object([&](const ObjectId& id, const ObjectRecord& o) {
        std::ostringstream s;
        s << "object " << id.hex() << " size=" << o.size << " xxh3=" << o.xxh3
          << " content=" << to_hex(o.content.data(), o.content.size())
          << " replicas=" << o.replicas;
        lines.push_back(s.str());
        auto l = (*txn)->for_each_link_of_object(id, [&](const LinkRecord& link) {
            lines.push_back(link_line("byobject", link));
            return true;
        });
        if (!l) error = l.error().message;
        return bool(l);
    });
    if (!r) return "ERROR " + r.error().message;
    if (!error.empty()) return "ERROR " + error;
    std::sort(lines.begin(), lines.end());
    std::string out;
    for (const auto& l : lines) out += l + "\n";
    return out;
}

}  // namespace unify::test
