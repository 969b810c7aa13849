#include "store/guest_registry.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>

#include "store/fresh_file.h"

namespace unify {

namespace {

constexpr const char* kFile = "guests.conf";
constexpr size_t kMaxSize = size_t{64} << 20;  // far beyond any real guest list

void put_field(std::string& out, const std::string& s) {
    static const char digits[] = "0123456789abcdef";
    for (unsigned char c : s) {
        if (c == '\\') {
            out += "\\\\";
        } else if (c == '\t') {
            out += "\\t";
        } else if (c == '\n') {
            out += "\\n";
        } else if (c < 0x20 || c == 0x7f) {
            out += "\\x";
            out.push_back(digits[c >> 4]);
            out.push_back(digits[c & 15]);
        } else {
            out.push_back(char(c));
        }
    }
}

int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

std::optional<std::string> get_field(std::string_view s) {
    std::string out;
    for (size_t i = 0; i < s.size(); ++i) {
        if (s[i] != '\\') {
            out.push_back(s[i]);
            continue;
        }
        if (++i == s.size()) return std::nullopt;
        if (s[i] == '\\') {
            out.push_back('\\');
        } else if (s[i] == 't') {
            out.push_back('\t');
        } else if (s[i] == 'n') {
            out.push_back('\n');
        } else if (s[i] == 'x' && i + 2 < s.size() && hex_digit(s[i + 1]) >= 0 &&
                   hex_digit(s[i + 2]) >= 0) {
            out.push_back(char(hex_digit(s[i + 1]) << 4 | hex_digit(s[i + 2])));
            i += 2;
        } else {
            return std::nullopt;
        }
    }
    return out;
}

template <class T>
std::optional<T> get_number(std::string_view s) {
    T v{};
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || end != s.data() + s.size() || s.empty()) return std::nullopt;
    return v;
}

std::vector<std::string_view> split_tabs(std::string_view line) {
    std::vector<std::string_view> out;
    for (size_t pos = 0;;) {
        size_t tab = line.find('\t', pos);
        if (tab == std::string_view::npos) {
            out.push_back(line.substr(pos));
            return out;
        }
        out.push_back(line.substr(pos, tab - pos));
        pos = tab + 1;
    }
}

// "guest" then key=value fields; "rule" repeats, in order. An unknown key is an error: a
// field this unify would drop could be a guest's setting that reindex must not lose.
std::optional<GuestRecord> parse_guest(const std::vector<std::string_view>& f, std::string& why) {
    GuestRecord g;
    bool have_id = false, have_name = false, have_root = false;
    for (size_t i = 1; i < f.size(); ++i) {
        size_t eq = f[i].find('=');
        if (eq == std::string_view::npos) {
            why = "field without '='";
            return std::nullopt;
        }
        std::string_view key = f[i].substr(0, eq);
        auto value = get_field(f[i].substr(eq + 1));
        if (!value) {
            why = "bad escape in " + std::string(key);
            return std::nullopt;
        }
        bool ok = true;
        if (key == "id") {
            auto v = get_number<uint32_t>(*value);
            ok = v && *v;
            if (ok) g.id = *v;
            have_id = true;
        } else if (key == "name") {
            g.name = *value;
            ok = !value->empty();
            have_name = true;
        } else if (key == "root") {
            g.root = *value;
            ok = value->starts_with('/');
            have_root = true;
        } else if (key == "last_import") {
            auto v = get_number<int64_t>(*value);
            ok = v.has_value();
            if (ok) g.last_import = *v;
        } else if (key == "min_size") {
            auto v = get_number<uint64_t>(*value);
            ok = v.has_value();
            if (ok) g.min_size = *v;
        } else if (key == "rule") {
            g.excludes.push_back(*value);
        } else if (key == "package_dbs") {
            g.package_dbs = *value;
        } else if (key == "config_files") {
            auto v = get_number<uint64_t>(*value);
            ok = v.has_value();
            if (ok) g.config_files = *v;
        } else if (key == "root_dev" || key == "root_ino") {
            auto v = get_number<uint64_t>(*value);
            ok = v.has_value();
            if (ok) (key == "root_dev" ? g.root_dev : g.root_ino) = *v;
        } else {
            why = "unknown field '" + std::string(key) + "' (written by a newer unify?)";
            return std::nullopt;
        }
        if (!ok) {
            why = "bad value of " + std::string(key);
            return std::nullopt;
        }
    }
    if (!have_id || !have_name || !have_root) {
        why = "id, name or root missing";
        return std::nullopt;
    }
    return g;
}

}  // namespace

Result<void> write_guest_registry(const Pool& pool, const std::vector<GuestRecord>& guests) {
    std::string text =
        "# unify guest registry: the guests of this pool, for `unify reindex`.\n"
        "# Written by unify on every change; do not edit.\n"
        "version\t1\n";
    auto field = [&](const char* key, const std::string& value) {
        text += std::string("\t") + key + "=";
        put_field(text, value);
    };
    for (const auto& g : guests) {
        text += "guest";
        field("id", std::to_string(g.id));
        field("name", g.name);
        field("root", g.root);
        field("last_import", std::to_string(g.last_import));
        field("min_size", std::to_string(g.min_size));
        field("package_dbs", g.package_dbs);
        field("config_files", std::to_string(g.config_files));
        field("root_dev", std::to_string(g.root_dev));
        field("root_ino", std::to_string(g.root_ino));
        for (const auto& r : g.excludes) field("rule", r);
        text += "\n";
    }
    std::string shown = join_path(pool.path(), kFile);
    return replace_small_file(pool.fd(), kFile, text, shown);
}

Result<std::vector<GuestRecord>> read_guest_registry(const Pool& pool) {
    std::string shown = join_path(pool.path(), kFile);
    int fd = openat(pool.fd(), kFile, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return sys_fail("open", shown);
    Fd f(fd);
    std::string text;
    char buf[65536];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return sys_fail("read", shown);
        if (n == 0) break;
        text.append(buf, size_t(n));
        if (text.size() > kMaxSize) return fail(shown + ": unexpectedly large");
    }
    std::vector<GuestRecord> out;
    bool have_version = false;
    size_t line_no = 0;
    for (size_t pos = 0; pos < text.size();) {
        size_t nl = text.find('\n', pos);
        if (nl == std::string::npos) return fail(shown + ": truncated (no newline at the end)");
        std::string_view line(text.data() + pos, nl - pos);
        pos = nl + 1;
        ++line_no;
        if (line.empty() || line[0] == '#') continue;
        auto fields = split_tabs(line);
        std::string where = shown + ":" + std::to_string(line_no);
        if (fields[0] == "version") {
            if (fields.size() != 2 || fields[1] != "1")
                return fail(where + ": guest registry version " +
                            std::string(fields.size() > 1 ? fields[1] : "?") +
                            " is not supported (expected 1)");
            have_version = true;
            continue;
        }
        if (fields[0] != "guest")
            return fail(where + ": unknown record '" + std::string(fields[0]) + "'");
        std::string why;
        auto g = parse_guest(fields, why);
        if (!g) return fail(where + ": malformed guest line: " + why);
        for (const auto& other : out)
            if (other.id == g->id || other.name == g->name)
                return fail(where + ": guest '" + g->name + "' (id " + std::to_string(g->id) +
                            ") is listed twice");
        out.push_back(std::move(*g));
    }
    if (!have_version) return fail(shown + ": no version line");
    return out;
}

Error no_guest_named(const Pool& pool, const std::string& command, const std::string& name) {
    std::string head = command + ": no guest named '" + name + "'";
    auto listed = read_guest_registry(pool);
    if (listed && std::any_of(listed->begin(), listed->end(),
                              [&](const GuestRecord& g) { return g.name == name; }))
        return Error{head + " in the index, though " + pool.path() +
                         "/guests.conf lists it: the index is older than the registry (restored "
                         "from a backup?); run unify reindex",
                     0};
    return Error{head + " (see unify list)", 0};
}

namespace {

// What reindex needs of a guest (its name, root and rules, and whether it was ever imported)
// is the same in both lists; the times of the last imports may differ.
bool same_but_import_times(const std::vector<GuestRecord>& a, const std::vector<GuestRecord>& b) {
    return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](GuestRecord x, GuestRecord y) {
        if ((x.last_import == 0) != (y.last_import == 0)) return false;
        x.last_import = y.last_import = 0;
        return x == y;
    });
}

}  // namespace

Result<void> sync_guest_registry(Pool& pool) {
    auto txn = pool.index().read();
    if (!txn) return std::unexpected(txn.error());
    auto guests = (*txn)->guests();
    if (!guests) return std::unexpected(guests.error());
    (void)(*txn)->commit();
    // An import that changed nothing else leaves the file as it is: a rewrite is two fsyncs,
    // on a loop image 5 to 10 ms, a quarter of an unchanged re-import of a real guest.
    if (auto now = read_guest_registry(pool); now && same_but_import_times(*now, *guests))
        return {};
    if (auto r = write_guest_registry(pool, *guests); !r)
        return std::unexpected(context(r.error(), "writing the guest registry"));
    return {};
}

}  // namespace unify
