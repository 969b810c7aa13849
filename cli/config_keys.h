// The keys of a configuration file, checked before CLI11 applies them: CLI11 says only "INI
// was not able to parse import.exclud" for a key it does not know. This names the file, the
// line, the key and the keys that are valid where it stands.
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

namespace unify {

// Throws CLI::ConfigError ("FILE:LINE: unknown key 'exclud' in [import]; valid keys there:
// ...") for the first item that is no configurable option of `app` (keys outside any section)
// or of the subcommand its section names. `text` is the file's content, for the line number.
void check_config_keys(const CLI::App& app, const std::vector<CLI::ConfigItem>& items,
                       const std::string& file, const std::string& text);

}  // namespace unify
