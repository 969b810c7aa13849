// A test helper: every table of a pool's index, through the Txn interface, as sorted text
// lines, so two indexes can be compared with EXPECT_EQ (and a difference read in the diff).
#pragma once

#include <string>

namespace unify::test {

// "guest ...", "object ...", "link ..." and "byobject ..." lines, sorted; or a line starting
// with "ERROR" when the index cannot be read. Fields that legitimately differ between an
// index import wrote and one reindex rebuilt are left out (see index_dump.cc).
std::string dump_index(const std::string& pool);

}  // namespace unify::test
