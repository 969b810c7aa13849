// --json through the real binary: every command prints one JSON document that parses and
// carries the fields README.md documents; a guest path that is not UTF-8 round-trips through
// path_b64; an error is a JSON document on stdout and a plain message on stderr, exit 1.
#include <openssl/evp.h>
#include <sys/stat.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include "tests/test_support.h"

namespace unify::test {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr int64_t kMtime = 1700000000;
// A file name with a newline and a byte that is never UTF-8.
const std::string kOdd = "odd\nname\xff";

// Two guests below `dir`: libc and the odd file shared, one own file each, /etc excluded.
struct Pair {
    explicit Pair(const TempDir& dir) : pool(dir / "pool"), g1(dir / "g1"), g2(dir / "g2") {
        for (const auto& g : {g1, g2}) {
            file(g + "/usr/lib/libc.so", "libc\n" + std::string(995, 'l'));
            file(g + "/usr/bin/" + kOdd, "odd\n");
            file(g + "/etc/conf", "conf\n");
        }
        file(g1 + "/usr/local/bin/own1", "own1\n");
        file(g2 + "/usr/local/bin/own2", "own2 is longer\n");
    }
    static void file(const std::string& path, const std::string& content) {
        write_file(path, content, 0644);
        set_mtime(path, kMtime, 7);
    }
    RunResult unify(std::vector<std::string> args) const {
        args.insert(args.begin(), {"--pool", pool});
        return run_unify(args);
    }
    std::string pool, g1, g2;
};

// The whole of stdout as one JSON document; a null document (and a test failure) if it is
// not one.
json parse(const RunResult& r) {
    json j = json::parse(r.out, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << "not one JSON document:\n" << r.out << r.err;
    return j.is_discarded() ? json() : j;
}

std::string unbase64(const std::string& b64) {
    std::string out(b64.size() / 4 * 3, '\0');
    int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                            reinterpret_cast<const unsigned char*>(b64.data()), int(b64.size()));
    if (n < 0) return "<bad base64>";
    size_t pad = b64.size() - b64.find_last_not_of('=') - 1;
    out.resize(size_t(n) - pad);
    return out;
}

// The raw bytes of a path field: path_b64 decoded when present, else the string.
std::string raw_path(const json& j, const std::string& key) {
    if (j.contains(key + "_b64")) return unbase64(j[key + "_b64"].get<std::string>());
    return j[key].get<std::string>();
}

void expect_fields(const json& j, const std::vector<std::string>& fields) {
    for (const auto& f : fields) EXPECT_TRUE(j.contains(f)) << "no field " << f << " in " << j;
}

TEST(JsonOutput, EveryCommandPrintsOneDocumentWithTheDocumentedFields) {
    TempDir dir;
    UNIFY_REQUIRE(need_immutable(dir.path()));
    Pair p(dir);

    auto r = p.unify({"init", "--protect", "immutable", "--json"});
    ASSERT_EQ(r.status, 0) << r.err;
    json j = parse(r);
    EXPECT_EQ(j["command"], "init");
    EXPECT_EQ(j["pool"], p.pool);
    EXPECT_EQ(j["protect"], "immutable");
    EXPECT_EQ(j["ignore_mtime"], false);

    for (const auto& [name, root] : {std::pair{"g1", p.g1}, {"g2", p.g2}}) {
        // --json before the subcommand for g1, after it for g2.
        r = name == std::string("g1") ? p.unify({"--json", "import", name, root})
                                      : p.unify({"import", name, root, "--json"});
        ASSERT_EQ(r.status, 0) << r.err;
        j = parse(r);
        expect_fields(j, {"command", "name", "root", "dry_run", "files_seen", "already_linked",
                          "newly_linked", "new_objects", "bytes_new_objects", "bytes_saved",
                          "temps_swept", "records_dropped", "skipped"});
        EXPECT_EQ(j["command"], "import");
        EXPECT_EQ(j["name"], name);
        EXPECT_EQ(j["root"], root);
        EXPECT_EQ(j["dry_run"], false);
        EXPECT_EQ(j["files_seen"], 4);
        EXPECT_EQ(j["newly_linked"], 3);
        EXPECT_EQ(j["skipped"]["default_rule"], 1);  // /etc/conf
    }
    // g2 linked libc and the odd file to g1's objects and made one of its own.
    EXPECT_EQ(j["new_objects"], 1);
    // Saved is the blocks freed (README): libc (1000 bytes) and the odd file (4) one each.
    EXPECT_EQ(j["bytes_saved"], 2 * stat_path(dir.path()).st_blksize);

    r = p.unify({"--json", "import", "g2", p.g2, "--explain", "/etc/conf"});
    ASSERT_EQ(r.status, 0) << r.err;
    j = parse(r);
    expect_fields(j, {"command", "name", "explain", "answer"});
    EXPECT_EQ(j["explain"], "/etc/conf");
    EXPECT_TRUE(contains(j["answer"].get<std::string>(), "/etc/conf: private")) << j.dump();

    r = p.unify({"status", "--json"});
    ASSERT_EQ(r.status, 0) << r.err;
    j = parse(r);
    EXPECT_EQ(j["command"], "status");
    expect_fields(j["pool"], {"path", "protect", "ignore_mtime", "objects", "bytes_in_pool",
                              "linked_paths", "bytes_unshared", "bytes_saved"});
    EXPECT_EQ(j["pool"]["objects"], 4);
    EXPECT_EQ(j["pool"]["linked_paths"], 6);
    EXPECT_EQ(j["pool"]["bytes_saved"], 1004);
    ASSERT_EQ(j["guests"].size(), 2u);
    for (const auto& g : j["guests"]) {
        expect_fields(
            g, {"name", "root", "files_linked", "bytes_linked", "bytes_saved", "last_import"});
        EXPECT_EQ(g["files_linked"], 3);
        EXPECT_EQ(g["bytes_saved"], 502);
        EXPECT_TRUE(g["last_import"].is_number_integer());
    }

    r = p.unify({"list", "--json"});
    ASSERT_EQ(r.status, 0) << r.err;
    j = parse(r);
    EXPECT_EQ(j["command"], "list");
    ASSERT_EQ(j["guests"].size(), 2u);
    EXPECT_EQ(j["guests"][0]["name"], "g1");
    EXPECT_EQ(j["guests"][0]["root"], p.g1);
    EXPECT_TRUE(j["guests"][0]["last_import"].is_number_integer());

    r = p.unify({"who", "--json", "g1:/usr/lib/libc.so"});
    ASSERT_EQ(r.status, 0) << r.err;
    j = parse(r);
    EXPECT_EQ(j["command"], "who");
    EXPECT_EQ(j["target"], "g1:/usr/lib/libc.so");
    EXPECT_EQ(j["unified"], true);
    EXPECT_EQ(j["size"], 1000);
    ASSERT_TRUE(j["id"].is_string());
    EXPECT_EQ(j["id"].get<std::string>().size(), 64u);
    std::set<std::string> sharers;
    for (const auto& l : j["links"])
        sharers.insert(l["guest"].get<std::string>() + ":" + l["path"].get<std::string>());
    EXPECT_EQ(sharers, (std::set<std::string>{"g1:/usr/lib/libc.so", "g2:/usr/lib/libc.so"}));
    // The same answer by id prefix.
    std::string id = j["id"];
    r = p.unify({"who", "--json", id.substr(0, 12)});
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(parse(r)["links"].size(), 2u);

    r = p.unify({"who", "--json", p.g1 + "/etc/conf"});
    ASSERT_EQ(r.status, 0) << r.err;
    j = parse(r);
    EXPECT_EQ(j["unified"], false);
    EXPECT_TRUE(j["reason"].is_string());
    EXPECT_FALSE(j.contains("links"));

    r = p.unify({"unshare", "--json", "--dry-run", "g2"});
    ASSERT_EQ(r.status, 0) << r.err;
    j = parse(r);
    expect_fields(j, {"command", "name", "dry_run", "unshared", "bytes_copied", "records_dropped"});
    EXPECT_EQ(j["command"], "unshare");
    EXPECT_EQ(j["dry_run"], true);
    EXPECT_EQ(j["unshared"], 3);

    r = p.unify({"unshare", "--json", "g2", "/usr/lib/libc.so"});
    ASSERT_EQ(r.status, 0) << r.err;
    j = parse(r);
    EXPECT_EQ(j["unshared"], 1);
    EXPECT_EQ(j["bytes_copied"], 1000);

    r = p.unify({"forget", "--json", "g2"});
    ASSERT_EQ(r.status, 0) << r.err;
    j = parse(r);
    expect_fields(j, {"command", "name", "root", "keep_links", "dry_run", "unshared",
                      "bytes_copied", "records_dropped"});
    EXPECT_EQ(j["command"], "forget");
    EXPECT_EQ(j["root"], p.g2);
    EXPECT_EQ(j["keep_links"], false);
    EXPECT_EQ(j["unshared"], 2);  // the odd file and own2

    r = p.unify({"gc", "--json"});
    ASSERT_EQ(r.status, 0) << r.err;
    j = parse(r);
    expect_fields(j, {"command", "dry_run", "objects_seen", "objects_removed", "bytes_reclaimed",
                      "links_dropped"});
    EXPECT_EQ(j["command"], "gc");
    EXPECT_EQ(j["objects_seen"], 4);
    EXPECT_EQ(j["objects_removed"], 1);  // own2's
    EXPECT_EQ(j["bytes_reclaimed"], 15);
    EXPECT_EQ(j["links_dropped"], 0);

    // --quiet does not silence the document.
    r = p.unify({"--quiet", "--json", "list"});
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(parse(r)["guests"].size(), 1u);
}

TEST(JsonOutput, PathThatIsNotUtf8RoundTripsThroughPathB64) {
    TempDir dir;
    UNIFY_REQUIRE(need_immutable(dir.path()));
    Pair p(dir);
    ASSERT_EQ(p.unify({"init", "--protect", "immutable"}).status, 0);
    ASSERT_EQ(p.unify({"import", "g1", p.g1}).status, 0);
    ASSERT_EQ(p.unify({"import", "g2", p.g2}).status, 0);

    const std::string guest_path = "/usr/bin/" + kOdd;
    auto r = p.unify({"who", "--json", "g2:" + guest_path});
    ASSERT_EQ(r.status, 0) << r.err;
    json j = parse(r);
    ASSERT_EQ(j["unified"], true) << r.out;
    EXPECT_EQ(raw_path(j, "target"), "g2:" + guest_path);
    ASSERT_EQ(j["links"].size(), 2u);
    for (const auto& l : j["links"]) {
        ASSERT_TRUE(l.contains("path_b64")) << l;
        EXPECT_EQ(raw_path(l, "path"), guest_path);
        EXPECT_EQ(l["path"], "/usr/bin/odd\\nname\\xff");  // the printable form
    }
    // A host path inside the guest works the same.
    r = p.unify({"who", "--json", p.g1 + guest_path});
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(parse(r)["links"].size(), 2u);
}

// status --json carries what the text shows per guest: the package database the last
// import read and the guest's stored user rules.
TEST(JsonOutput, StatusHasThePackageDatabaseAndTheUserRules) {
    TempDir dir;
    std::string pool = dir / "pool";
    write_file(dir / "deb/usr/bin/tool", "tool\n");
    write_file(dir / "deb/var/lib/dpkg/status",
               "Package: foo\nStatus: install ok installed\nVersion: 1\nConffiles:\n"
               " /etc/foo.conf 0123456789abcdef0123456789abcdef\n /etc/foo.d/a "
               "0123456789abcdef0123456789abcdef\n\n");
    write_file(dir / "plain/usr/bin/tool", "tool\n");
    ASSERT_EQ(run_unify({"--pool", pool, "init", "--protect", "none"}).status, 0);
    ASSERT_EQ(run_unify({"--pool", pool, "import", "deb", dir / "deb"}).status, 0);
    auto r = run_unify({"--pool", pool, "import", "plain", dir / "plain", "--exclude",
                        "/usr/share/doc", "--include", "*.so"});
    ASSERT_EQ(r.status, 0) << r.err;
    r = run_unify({"--pool", pool, "status", "--json"});
    ASSERT_EQ(r.status, 0) << r.err;
    json j = parse(r);
    ASSERT_EQ(j["guests"].size(), 2u);
    EXPECT_EQ(j["guests"][0]["name"], "deb");
    EXPECT_EQ(j["guests"][0]["package_dbs"], "dpkg");
    EXPECT_EQ(j["guests"][0]["config_files"], 2);
    EXPECT_EQ(j["guests"][0]["rules"], json::array());
    EXPECT_EQ(j["guests"][1]["package_dbs"], "none");
    EXPECT_EQ(j["guests"][1]["config_files"], 0);
    EXPECT_EQ(j["guests"][1]["rules"], json({"- /usr/share/doc", "+ *.so"}));
}

TEST(JsonOutput, ErrorIsADocumentOnStdoutAndAMessageOnStderr) {
    TempDir dir;
    auto r = run_unify({"--pool", dir / "nopool", "status", "--json"});
    EXPECT_EQ(r.status, 1);
    json j = parse(r);
    ASSERT_TRUE(j["error"].is_string()) << r.out;
    EXPECT_NE(j["error"].get<std::string>().find("no pool at"), std::string::npos) << r.out;
    EXPECT_EQ(j["errno"], ENOENT);
    EXPECT_EQ(j.size(), 2u);
    EXPECT_NE(r.err.find("unify: error: no pool at"), std::string::npos) << r.err;

    // Without --json the error stays on stderr alone.
    r = run_unify({"--pool", dir / "nopool", "status"});
    EXPECT_EQ(r.status, 1);
    EXPECT_EQ(r.out, "");

    // A guest that does not exist: errno 0 (not a system error).
    ASSERT_EQ(run_unify({"--pool", dir / "pool", "init", "--protect", "none"}).status, 0);
    r = run_unify({"--pool", dir / "pool", "--json", "forget", "nobody"});
    EXPECT_EQ(r.status, 1);
    j = parse(r);
    EXPECT_EQ(j["errno"], 0);
    EXPECT_NE(j["error"].get<std::string>().find("no guest named 'nobody'"), std::string::npos);
}

}  // namespace
}  // namespace unify::test
