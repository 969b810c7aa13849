// Text output helpers: guest file names are untrusted bytes, so they are escaped before they
// reach a terminal; sizes are shown both readable and exact.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "store/printable.h"

namespace unify {

// "375.6 MB (375,612,345 bytes)"
std::string format_bytes(uint64_t n);
// "28,343"
std::string format_count(uint64_t n);

// Rows of cells as lines, each column padded to its widest cell (in characters), columns two
// spaces apart, the last one not padded; every line starts with `indent` spaces.
std::string aligned_columns(const std::vector<std::vector<std::string>>& rows, size_t indent = 0);
// "  label    value" lines, the values in one column.
std::string aligned_fields(const std::vector<std::pair<std::string, std::string>>& fields,
                           size_t indent = 2);

}  // namespace unify
