#include "store/guest_registry.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/test_support.h"

namespace unify {
namespace {

using test::TempDir;

std::unique_ptr<Pool> make_pool(const TempDir& dir) {
    PoolSettings settings;
    settings.protect = ProtectMode::none;
    auto created = Pool::create(dir / "pool", settings);
    EXPECT_TRUE(created) << created.error().message;
    auto pool = Pool::open(dir / "pool");
    EXPECT_TRUE(pool) << pool.error().message;
    return pool ? std::move(*pool) : nullptr;
}

bool same(const GuestRecord& a, const GuestRecord& b) {
    return a.id == b.id && a.name == b.name && a.root == b.root && a.last_import == b.last_import &&
           a.excludes == b.excludes && a.min_size == b.min_size && a.package_dbs == b.package_dbs &&
           a.config_files == b.config_files;
}

TEST(GuestRegistry, RoundTripsEveryByte) {
    TempDir dir;
    auto pool = make_pool(dir);
    ASSERT_TRUE(pool);
    auto missing = read_guest_registry(*pool);
    ASSERT_FALSE(missing);
    EXPECT_EQ(missing.error().err, ENOENT);

    GuestRecord a{7, "web1", "/vservers/web\t1\n\\x41\x01\xff=x", 1732456000, {}, 4096};
    a.excludes = {"-/usr/share/doc", "+/etc/ssl/certs/*", "-*\t*", "", "-\\"};
    a.package_dbs = "dpkg, rpm";
    a.config_files = 310;
    GuestRecord b{2, "b", "/b", 0, {}, 1};
    ASSERT_TRUE(write_guest_registry(*pool, {a, b}));
    auto back = read_guest_registry(*pool);
    ASSERT_TRUE(back) << back.error().message;
    ASSERT_EQ(back->size(), 2u);
    EXPECT_TRUE(same((*back)[0], a)) << (*back)[0].root;
    EXPECT_TRUE(same((*back)[1], b));
    EXPECT_FALSE(test::read_file(dir / "pool/guests.conf.tmp").size());

    ASSERT_TRUE(write_guest_registry(*pool, {}));
    back = read_guest_registry(*pool);
    ASSERT_TRUE(back) << back.error().message;
    EXPECT_TRUE(back->empty());
}

// A writer killed between naming its temporary and renaming it leaves it behind; the next
// writer removes it by name (and only such names).
TEST(GuestRegistry, NextWriterSweepsTemporariesAKilledWriterLeft) {
    TempDir dir;
    auto pool = make_pool(dir);
    ASSERT_TRUE(pool);
    ASSERT_TRUE(write_guest_registry(*pool, {}));
    for (const char* f :
         {"pool/.guests.conf.tmp.0123abcd", "pool/.pool.conf.tmp.89ef", "pool/tmp/renew.4567",
          "pool/tmp/trash.0a1b2c3d", "pool/tmp/keep-me", "pool/guests.conf.tmp"})
        test::write_file(dir / f, "stale");
    auto done = pool->prepare_writer();
    ASSERT_TRUE(done) << done.error().message;
    EXPECT_NE(done->log.find("removed 4 temporary file(s)"), std::string::npos) << done->log;
    EXPECT_NE(access((dir / "pool/.guests.conf.tmp.0123abcd").c_str(), F_OK), 0);
    EXPECT_NE(access((dir / "pool/.pool.conf.tmp.89ef").c_str(), F_OK), 0);
    EXPECT_NE(access((dir / "pool/tmp/renew.4567").c_str(), F_OK), 0);
    EXPECT_NE(access((dir / "pool/tmp/trash.0a1b2c3d").c_str(), F_OK), 0);
    EXPECT_EQ(access((dir / "pool/tmp/keep-me").c_str(), F_OK), 0);
    EXPECT_EQ(access((dir / "pool/guests.conf.tmp").c_str(), F_OK), 0);
    EXPECT_TRUE(read_guest_registry(*pool));
}

ino_t registry_inode(const TempDir& dir) {
    struct stat st {};
    EXPECT_EQ(::stat((dir / "pool/guests.conf").c_str(), &st), 0);
    return st.st_ino;
}

// Each rewrite is a new file renamed into place (a new inode); an import that only moved the
// guest's last import time leaves the file alone (two fsyncs saved), anything else rewrites it.
TEST(GuestRegistry, SyncRewritesTheFileOnlyWhenMoreThanImportTimesChanged) {
    TempDir dir;
    auto pool = make_pool(dir);
    ASSERT_TRUE(pool);
    auto put = [&](GuestRecord& g) {  // put_guest gives a new guest its id
        auto txn = pool->index().write();
        ASSERT_TRUE(txn) << txn.error().message;
        ASSERT_TRUE((*txn)->put_guest(g));
        ASSERT_TRUE((*txn)->commit());
        auto r = sync_guest_registry(*pool);
        ASSERT_TRUE(r) << r.error().message;
    };
    GuestRecord g{0, "web1", "/vservers/web1", 0, {"-/srv"}, 1};
    put(g);
    ASSERT_NE(g.id, 0u);
    ino_t first = registry_inode(dir);

    g.last_import = 1732456000;  // first completed import: the file must say so
    put(g);
    ino_t imported = registry_inode(dir);
    EXPECT_NE(imported, first);
    auto back = read_guest_registry(*pool);
    ASSERT_TRUE(back && back->size() == 1u);
    EXPECT_EQ((*back)[0].last_import, 1732456000);

    g.last_import = 1732459999;  // an unchanged re-import
    put(g);
    EXPECT_EQ(registry_inode(dir), imported);
    back = read_guest_registry(*pool);
    ASSERT_TRUE(back && back->size() == 1u);
    EXPECT_EQ((*back)[0].last_import, 1732456000);

    g.excludes.push_back("-/opt");  // new rules
    put(g);
    EXPECT_NE(registry_inode(dir), imported);
    back = read_guest_registry(*pool);
    ASSERT_TRUE(back && back->size() == 1u);
    EXPECT_EQ((*back)[0].excludes, g.excludes);
    EXPECT_EQ((*back)[0].last_import, 1732459999);
}

TEST(GuestRegistry, RejectsWhatItCannotRead) {
    TempDir dir;
    auto pool = make_pool(dir);
    ASSERT_TRUE(pool);
    std::string file = dir / "pool/guests.conf";
    for (const std::string text :
         {"guest\tid=1\tname=a\troot=/a\n",                          // no version
          "version\t2\n",                                            // newer format
          "version\t1\nguest\tid=1\tname=a\troot=/a\tcolour=red\n",  // unknown field
          "version\t1\nguest\tid=1\tname=a\n",                       // no root
          "version\t1\nguest\tid=1\tname=a\troot=/a\\q\n",           // bad escape
          "version\t1\nguest\tid=1\tname=a\troot=/a\nguest\tid=1\tname=b\troot=/b\n",
          "version\t1\nguest\tid=1\tname=a\troot=/a"}) {  // truncated
        test::write_file(file, text, 0600);
        auto r = read_guest_registry(*pool);
        EXPECT_FALSE(r) << text;
        if (!r) {
            EXPECT_NE(r.error().message.find(file), std::string::npos) << r.error().message;
        }
    }
}

}  // namespace
}  // namespace unify
