// Text output helpers: guest file names are untrusted bytes, so they are escaped before they
// reach a terminal; sizes are shown both readable and exact.
#pragma once

#include <cstdint>
#include <string>

namespace unify {

// Control characters, backslash and bytes that are not valid UTF-8 become \n, \t, \\ or \xNN.
std::string printable(const std::string& s);
// "375.6 MB (375,612,345 bytes)"
std::string format_bytes(uint64_t n);
// "28,343"
std::string format_count(uint64_t n);

}  // namespace unify
