#include "tests/sample_guests.h"

#include <filesystem>
#include <utility>

namespace unify::test {

namespace fs = std::filesystem;

ThreeGuests::ThreeGuests(const TempDir& dir)
    : pool(dir / "pool"), g1(dir / "g1"), g2(dir / "g2"), g3(dir / "g3") {}

void ThreeGuests::file(const std::string& path, const std::string& content, mode_t mode,
                       int64_t ns) {
    write_file(path, content, mode);
    set_mtime(path, kSampleMtime, ns);
}

RunResult ThreeGuests::unify(std::vector<std::string> args) const {
    args.insert(args.begin(), {"--pool", pool});
    return run_unify(args);
}

bool ThreeGuests::init_and_import() const {
    auto r = unify({"init", "--protect", "immutable"});
    EXPECT_EQ(r.status, 0) << r.err;
    if (r.status != 0) return false;
    for (const auto& [name, root] : {std::pair{"g1", g1}, {"g2", g2}, {"g3", g3}}) {
        r = unify({"import", name, root});
        EXPECT_EQ(r.status, 0) << name << ": " << r.err;
        if (r.status != 0) return false;
    }
    return true;
}

std::set<std::string> objects(const std::string& pool) {
    std::set<std::string> out;
    std::error_code ec;
    for (const auto& shard : fs::directory_iterator(pool + "/objects", ec))
        for (const auto& e : fs::directory_iterator(shard.path(), ec))
            out.insert(shard.path().filename().string() + "/" + e.path().filename().string());
    return out;
}

std::string object_of(const std::string& pool, const std::string& path) {
    struct stat want = stat_path(path);
    for (const auto& o : objects(pool)) {
        struct stat st = stat_path(pool + "/objects/" + o);
        if (st.st_ino == want.st_ino && st.st_dev == want.st_dev) return o;
    }
    return "";
}

}  // namespace unify::test
