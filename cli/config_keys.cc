#include "cli/config_keys.h"

#include <sstream>

namespace unify {

namespace {

// The long names ("pool", "dry-run") an app takes from a configuration file.
std::vector<std::string> keys_of(const CLI::App& app) {
    std::vector<std::string> keys;
    for (const CLI::Option* o : app.get_options()) {
        if (!o->get_configurable() || o == app.get_help_ptr() || o == app.get_config_ptr())
            continue;
        for (const auto& n : o->get_lnames()) keys.push_back(n);
    }
    return keys;
}

std::string join(const std::vector<std::string>& v, const std::string& sep) {
    std::string s;
    for (const auto& x : v) s += (s.empty() ? "" : sep) + x;
    return s;
}

std::string trim(const std::string& s) {
    size_t b = s.find_first_not_of(" \t\r"), e = s.find_last_not_of(" \t\r");
    return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

// The 1-based line that sets `key` in `section` ("" before any section; a dotted key
// "import.exclude" outside sections counts too), or 0 if none is found.
size_t line_of(const std::string& text, const std::string& section, const std::string& key) {
    std::istringstream in(text);
    std::string current;
    size_t n = 0;
    for (std::string l; std::getline(in, l);) {
        ++n;
        std::string t = trim(l);
        if (t.empty() || t[0] == '#' || t[0] == ';') continue;
        if (t[0] == '[') {
            current =
                trim(t.substr(t.find_first_not_of('['), t.find(']') - t.find_first_not_of('[')));
            continue;
        }
        size_t eq = t.find_first_of("=:");
        if (eq == std::string::npos) continue;
        std::string k = trim(t.substr(0, eq));
        if (k.size() >= 2 && (k.front() == '"' || k.front() == '\'')) k = k.substr(1, k.size() - 2);
        std::string full = current.empty() ? k : current + "." + k;
        if (full == (section.empty() ? key : section + "." + key)) return n;
    }
    return 0;
}

}  // namespace

void check_config_keys(const CLI::App& app, const std::vector<CLI::ConfigItem>& items,
                       const std::string& file, const std::string& text) {
    std::vector<std::string> sections;
    for (const CLI::App* sub : app.get_subcommands({})) sections.push_back(sub->get_name());
    for (const CLI::ConfigItem& item : items) {
        if (item.name == "++" || item.name == "--") continue;  // CLI11's section markers
        std::string section = join(item.parents, ".");
        const CLI::App* where = &app;
        if (!item.parents.empty()) {
            where = nullptr;
            if (item.parents.size() == 1)
                for (const CLI::App* sub : app.get_subcommands({}))
                    if (sub->get_name() == item.parents[0]) where = sub;
        }
        std::string at = file + ":" + std::to_string(line_of(text, section, item.name)) + ": ";
        if (!where)
            throw CLI::ConfigError(at + "unknown section [" + section + "]; valid sections: [" +
                                   join(sections, "], [") + "]");
        auto keys = keys_of(*where);
        if (std::find(keys.begin(), keys.end(), item.name) != keys.end()) continue;
        if (section.empty())
            throw CLI::ConfigError(at + "unknown key '" + item.name +
                                   "' outside any section; valid keys there: " + join(keys, ", ") +
                                   " (options of a command go in its section: [" +
                                   join(sections, "], [") + "])");
        throw CLI::ConfigError(
            at + "unknown key '" + item.name + "' in [" + section +
            "]; valid keys there: " + (keys.empty() ? std::string("none") : join(keys, ", ")));
    }
}

}  // namespace unify
