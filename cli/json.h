// --json output: one JSON document on stdout per command, with stable snake_case field names
// (README.md, "JSON output"). Guest paths are untrusted bytes and JSON strings must be UTF-8,
// so every path field follows one rule: "path" holds the path itself when it is valid UTF-8;
// otherwise "path" holds its printable form (cli/format.h) and "path_b64" the raw bytes in
// base64, which is what a program should decode.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "gc/gc.h"
#include "importer/import.h"
#include "linker/forget.h"
#include "linker/unshare.h"
#include "query/status.h"
#include "query/who.h"
#include "store/result.h"

namespace unify {

// Keeps fields in the order they were added, so the documents read like the text output.
using Json = nlohmann::ordered_json;

// Strict UTF-8 (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF).
bool valid_utf8(std::string_view s);
// Standard base64 with padding (OpenSSL EVP_EncodeBlock).
std::string base64(std::string_view bytes);
// j[key] = raw when it is valid UTF-8; else j[key] = printable(raw), j[key + "_b64"] = base64.
void put_path(Json& j, const std::string& key, const std::string& raw);
// A stable key for an import skip reason: "symlink", "default_rule", "changed", ...
std::string skip_key(const std::string& reason);

Json init_json(const std::string& pool, const PoolSettings& settings);
Json import_json(const ImportSummary& sum);
Json gc_json(const GcSummary& sum, bool dry_run);
Json who_json(const WhoAnswer& ans);
Json status_json(const Pool& pool, const PoolStatus& st);
Json unshare_json(const UnshareOptions& opt, const UnshareSummary& sum);
Json list_json(const std::vector<GuestRecord>& guests);
Json forget_json(const ForgetSummary& sum);
// {"command": "version", "version": "0.1.0", "revision": "b2b9bfee590a" or null}
Json version_json();
// {"error": "...", "errno": N}; errno is 0 when the error is not a system call's.
Json error_json(const Error& e);

// Prints the document and a newline on stdout; never throws. A command's document (one with
// "command") gets a last field "version".
void print_json(const Json& j);

}  // namespace unify
