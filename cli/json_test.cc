#include "cli/json.h"

#include <gtest/gtest.h>

#include "cli/progress.h"

namespace unify {
namespace {

TEST(Json, ValidUtf8IsStrict) {
    EXPECT_TRUE(valid_utf8(""));
    EXPECT_TRUE(valid_utf8("/usr/bin/ls"));
    EXPECT_TRUE(valid_utf8("a\nb"));               // control characters are JSON-escaped
    EXPECT_TRUE(valid_utf8("caf\xc3\xa9"));        // U+00E9
    EXPECT_TRUE(valid_utf8("\xe2\x82\xac"));       // U+20AC
    EXPECT_TRUE(valid_utf8("\xf0\x9f\x98\x80"));   // U+1F600
    EXPECT_FALSE(valid_utf8("bad\xff"));           // never valid
    EXPECT_FALSE(valid_utf8("\xc3"));              // truncated
    EXPECT_FALSE(valid_utf8("\xc0\xaf"));          // overlong '/'
    EXPECT_FALSE(valid_utf8("\xe0\x80\xaf"));      // overlong '/'
    EXPECT_FALSE(valid_utf8("\xed\xa0\x80"));      // surrogate U+D800
    EXPECT_FALSE(valid_utf8("\xf4\x90\x80\x80"));  // above U+10FFFF
    EXPECT_FALSE(valid_utf8("\x80"));              // lone continuation byte
}

TEST(Json, Base64) {
    EXPECT_EQ(base64(""), "");
    EXPECT_EQ(base64("f"), "Zg==");
    EXPECT_EQ(base64("fo"), "Zm8=");
    EXPECT_EQ(base64("foo"), "Zm9v");
    EXPECT_EQ(base64("foobar"), "Zm9vYmFy");
    EXPECT_EQ(base64(std::string("\n\xff\x00", 3)), "Cv8A");
}

TEST(Json, PathFieldRule) {
    Json j;
    put_path(j, "path", "/usr/bin/caf\xc3\xa9");
    EXPECT_EQ(j["path"], "/usr/bin/caf\xc3\xa9");
    EXPECT_FALSE(j.contains("path_b64"));
    Json k;
    put_path(k, "path", "/usr/bin/a\nb\xff");
    EXPECT_EQ(k["path"], "/usr/bin/a\\nb\\xff");  // printable form
    EXPECT_EQ(k["path_b64"], base64("/usr/bin/a\nb\xff"));
    // The document can always be written out.
    EXPECT_NO_THROW((void)k.dump());
}

TEST(Json, SkipKeys) {
    EXPECT_EQ(skip_key(skip::kSymlink), "symlink");
    EXPECT_EQ(skip_key(skip::kDefaultRule), "default_rule");
    EXPECT_EQ(skip_key(skip::kUserRule), "exclude");
    EXPECT_EQ(skip_key("Some new reason (not walked)"), "some_new_reason_not_walked");
}

TEST(Json, ErrorDocument) {
    Json j = error_json(Error{"open(/x\xff): No such file", 2});
    EXPECT_EQ(j.dump(), R"({"error":"open(/x\\xff): No such file","errno":2})");
}

TEST(ProgressLine, Format) {
    Progress import{.phase = "import", .unit = "files", .done = 12345, .bytes = 1500000000};
    EXPECT_EQ(ProgressLine::format(import, 0.1), "import: 12,345 files, 1.5 GB hashed");
    EXPECT_EQ(ProgressLine::format(import, 10),
              "import: 12,345 files, 1.5 GB hashed, 1,234 files/s, 150.0 MB/s");
    Progress gc{
        .phase = "gc: checking objects", .unit = "objects", .done = 5000, .part = 64, .parts = 256};
    EXPECT_EQ(ProgressLine::format(gc, 10),
              "gc: checking objects: 5,000 objects, 500 objects/s, 25%, ETA 0:30");
    Progress unshare{.phase = "unshare", .unit = "files", .done = 0, .part = 0, .parts = 10};
    EXPECT_EQ(ProgressLine::format(unshare, 0), "unshare: 0 files, 0%");
}

}  // namespace
}  // namespace unify
