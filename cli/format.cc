#include "cli/format.h"

#include <algorithm>
#include <cstdio>

namespace unify {

std::string format_count(uint64_t n) {
    std::string digits = std::to_string(n), out;
    for (size_t i = 0; i < digits.size(); ++i) {
        if (i && (digits.size() - i) % 3 == 0) out += ',';
        out += digits[i];
    }
    return out;
}

std::string format_bytes(uint64_t n) {
    const char* units[] = {"bytes", "kB", "MB", "GB", "TB"};
    double v = double(n);
    int u = 0;
    while (v >= 1000 && u < 4) {
        v /= 1000;
        ++u;
    }
    char buf[64];
    if (u == 0) return format_count(n) + " bytes";
    snprintf(buf, sizeof buf, "%.1f %s", v, units[u]);
    return std::string(buf) + " (" + format_count(n) + " bytes)";
}

namespace {

// Characters, not bytes: UTF-8 continuation bytes take no column.
size_t width(const std::string& s) {
    size_t n = 0;
    for (char c : s) n += (static_cast<unsigned char>(c) & 0xc0) != 0x80;
    return n;
}

}  // namespace

std::string aligned_columns(const std::vector<std::vector<std::string>>& rows, size_t indent) {
    std::vector<size_t> widths;
    for (const auto& row : rows)
        for (size_t c = 0; c < row.size(); ++c) {
            if (widths.size() <= c) widths.push_back(0);
            widths[c] = std::max(widths[c], width(row[c]));
        }
    std::string out;
    for (const auto& row : rows) {
        std::string line(indent, ' ');
        for (size_t c = 0; c < row.size(); ++c) {
            line += row[c];
            if (c + 1 < row.size()) line += std::string(widths[c] - width(row[c]) + 2, ' ');
        }
        out += line + "\n";
    }
    return out;
}

std::string aligned_fields(const std::vector<std::pair<std::string, std::string>>& fields,
                           size_t indent) {
    std::vector<std::vector<std::string>> rows;
    for (const auto& [label, value] : fields) rows.push_back({label, value});
    return aligned_columns(rows, indent);
}

}  // namespace unify
