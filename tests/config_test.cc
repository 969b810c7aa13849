// The configuration file (--config FILE, default /etc/unify/unify.conf): global options at the
// top, import options in [import]; the command line overrides it, $UNIFY_POOL beats its pool,
// a missing default file is fine and a missing --config FILE is an error.
#include <sys/stat.h>

#include "tests/test_support.h"

namespace unify::test {
namespace {

TEST(Config, PoolJobsAndImportExcludesComeFromTheFileAndTheCommandLineWins) {
    TempDir dir;
    UNIFY_REQUIRE(need_immutable(dir.path()));
    const std::string pool = dir / "pool", other = dir / "other", conf = dir / "unify.conf";
    write_file(conf,
               "# unify configuration\n"
               "pool = \"" +
                   pool +
                   "\"\n"
                   "jobs = 2\n"
                   "\n"
                   "[import]\n"
                   "exclude = [\"*.log\", \"/opt/private/*\"]\n");
    for (const auto& rel : {"/usr/bin/tool", "/usr/share/app.log", "/opt/private/key"})
        write_file(dir / ("g1" + std::string(rel)), std::string("content of ") + rel + "\n");

    // The pool comes from the file.
    auto r = run_unify({"--config", conf, "init", "--protect", "immutable"});
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_TRUE(contains_squeezed(r.out, "created pool " + pool)) << r.out;

    // [import] exclude applies as if --exclude had been given.
    r = run_unify({"import", "g1", dir / "g1", "--config", conf});
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_TRUE(contains_squeezed(r.out, "newly linked      1")) << r.out;
    EXPECT_TRUE(contains_squeezed(r.out, "2  excluded by --exclude")) << r.out;
    EXPECT_GT(stat_path(dir / "g1/usr/bin/tool").st_nlink, 1u);
    EXPECT_EQ(stat_path(dir / "g1/usr/share/app.log").st_nlink, 1u);
    EXPECT_EQ(stat_path(dir / "g1/opt/private/key").st_nlink, 1u);

    // An --exclude on the command line replaces the file's.
    r = run_unify({"--config", conf, "import", "--dry-run", "g1", dir / "g1", "--exclude",
                   "nothing-matches"});
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_TRUE(contains_squeezed(r.out, "newly linked      2 (dry run")) << r.out;

    // --pool on the command line overrides the file's pool.
    r = run_unify({"--config", conf, "--pool", other, "list"});
    EXPECT_EQ(r.status, 1);
    EXPECT_TRUE(contains_squeezed(r.err, "no pool at " + other)) << r.err;
    // So does $UNIFY_POOL.
    r = run_unify({"--config", conf, "list"}, {"UNIFY_POOL=" + other});
    EXPECT_EQ(r.status, 1);
    EXPECT_TRUE(contains_squeezed(r.err, "no pool at " + other)) << r.err;
    r = run_unify({"--config", conf, "list"});
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_TRUE(contains_squeezed(r.out, "g1  " + dir.path() + "/g1")) << r.out;

    // jobs reaches -j: a value -j refuses is refused from the file too.
    write_file(conf, "pool = \"" + pool + "\"\njobs = -3\n");
    r = run_unify({"--config", conf, "list"});
    EXPECT_EQ(r.status, 2);
    EXPECT_TRUE(contains_squeezed(r.err, "--jobs")) << r.err;
}

TEST(Config, MissingOrWrongFileIsAUsageError) {
    TempDir dir;
    auto r = run_unify({"--config", dir / "missing.conf", "--pool", dir / "pool", "list"});
    EXPECT_EQ(r.status, 2);
    EXPECT_TRUE(contains_squeezed(r.err, "missing.conf")) << r.err;

    write_file(dir / "typo.conf", "jbos = 4\n");
    r = run_unify({"--config", dir / "typo.conf", "--pool", dir / "pool", "list"});
    EXPECT_EQ(r.status, 2);
    EXPECT_TRUE(contains_squeezed(r.err, "jbos")) << r.err;
}

// A key unify does not know is reported with the file, its line, the key and the keys that
// are valid where it stands (CLI11 alone said "INI was not able to parse import.exclud").
TEST(Config, UnknownKeyNamesFileLineKeyAndTheValidKeys) {
    TempDir dir;
    std::string conf = dir / "unify.conf";
    write_file(conf, "# pool and threads\npool = \"/srv/.pool\"\njbos = 4\n");
    auto r = run_unify({"--config", conf, "--pool", dir / "pool", "list"});
    EXPECT_EQ(r.status, 2);
    EXPECT_TRUE(contains_squeezed(r.err, conf + ":3: unknown key 'jbos' outside any section"))
        << r.err;
    EXPECT_TRUE(
        contains_squeezed(r.err, "valid keys there: pool, wait, verbose, quiet, jobs, json"))
        << r.err;
    EXPECT_TRUE(contains_squeezed(r.err, "[import]")) << r.err;

    write_file(conf, "jobs = 2\n\n[import]\nexclude = [\"*.pyc\"]\nexclud = [\"*.pyo\"]\n");
    r = run_unify({"--config", conf, "--pool", dir / "pool", "list"});
    EXPECT_EQ(r.status, 2);
    EXPECT_TRUE(
        contains_squeezed(r.err, conf + ":5: unknown key 'exclud' in [import]; valid keys there: "))
        << r.err;
    for (const auto& k : {"dry-run", "exclude", "include", "exclude-from", "explain", "min-size"})
        EXPECT_TRUE(contains_squeezed(r.err, k)) << k << ": " << r.err;

    write_file(conf, "[imprt]\nexclude = [\"*.pyc\"]\n");
    r = run_unify({"--config", conf, "--pool", dir / "pool", "list"});
    EXPECT_EQ(r.status, 2);
    EXPECT_TRUE(contains_squeezed(
        r.err, conf + ":2: unknown section [imprt]; valid sections: [init], [import]"))
        << r.err;
}

}  // namespace
}  // namespace unify::test
