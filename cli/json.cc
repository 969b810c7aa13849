// Each command's summary as a JSON document. Field names are part of the interface
// (README.md, "JSON output"): add fields, never rename them.
#include "cli/json.h"

#include <openssl/evp.h>

#include <cctype>
#include <cstring>
#include <iostream>

#include "cli/format.h"
#include "cli/version.h"

namespace unify {

namespace {

// 0 for "never completed", which is null in JSON.
Json unix_time(int64_t t) {
    return t == 0 ? Json(nullptr) : Json(t);
}

// A string that is not a path (an error message): printable when it is not valid UTF-8.
std::string text(const std::string& s) {
    return valid_utf8(s) ? s : printable(s);
}

}  // namespace

bool valid_utf8(std::string_view s) {
    for (size_t i = 0; i < s.size();) {
        unsigned char c = static_cast<unsigned char>(s[i]);
        size_t n;
        unsigned lo = 0x80, hi = 0xbf;  // allowed range of the second byte
        if (c < 0x80) {
            n = 1;
        } else if (c >= 0xc2 && c <= 0xdf) {
            n = 2;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 3;
            if (c == 0xe0) lo = 0xa0;  // overlong
            if (c == 0xed) hi = 0x9f;  // surrogates
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 4;
            if (c == 0xf0) lo = 0x90;  // overlong
            if (c == 0xf4) hi = 0x8f;  // above U+10FFFF
        } else {
            return false;
        }
        if (i + n > s.size()) return false;
        for (size_t k = 1; k < n; ++k) {
            unsigned b = static_cast<unsigned char>(s[i + k]);
            if (k == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xbf)) return false;
        }
        i += n;
    }
    return true;
}

std::string base64(std::string_view bytes) {
    std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
    int n =
        EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                        reinterpret_cast<const unsigned char*>(bytes.data()), int(bytes.size()));
    out.resize(size_t(n));
    return out;
}

void put_path(Json& j, const std::string& key, const std::string& raw) {
    if (valid_utf8(raw)) {
        j[key] = raw;
        return;
    }
    j[key] = printable(raw);
    j[key + "_b64"] = base64(raw);
}

std::string skip_key(const std::string& reason) {
    static const std::pair<const char*, const char*> known[] = {
        {skip::kConfigDpkg, "package_config_dpkg"},
        {skip::kConfigRpm, "package_config_rpm"},
        {skip::kConfigPacman, "package_config_pacman"},
        {skip::kDefaultRule, "default_rule"},
        {skip::kUserRule, "exclude"},
        {skip::kDefaultTree, "default_rule_tree"},
        {skip::kUserTree, "exclude_tree"},
        {skip::kSymlink, "symlink"},
        {skip::kSpecial, "special"},
        {skip::kSmall, "min_size"},
        {skip::kMount, "mount_point"},
        {skip::kPool, "pool"},
        {skip::kVanished, "vanished"},
        {skip::kChanged, "changed"},
        {skip::kBusy, "busy"},
        {skip::kFlagged, "flagged"},
        {skip::kUnreadable, "unreadable"},
        {skip::kInline, "inline"},
        {skip::kSparse, "sparse"},
        {skip::kRefused, "refused"},
        {skip::kDamagedObject, "damaged_object"},
    };
    for (const auto& [text, key] : known)
        if (reason == text) return key;
    // A reason added later: its words in snake_case.
    std::string key;
    for (char c : reason) {
        if (isalnum(static_cast<unsigned char>(c)))
            key += char(tolower(static_cast<unsigned char>(c)));
        else if (!key.empty() && key.back() != '_')
            key += '_';
    }
    while (!key.empty() && key.back() == '_') key.pop_back();
    return key;
}

Json init_json(const std::string& pool, const PoolSettings& settings) {
    Json j;
    j["command"] = "init";
    put_path(j, "pool", pool);
    j["share"] = to_string(settings.share);
    j["protect"] = to_string(settings.protect);
    j["ignore_mtime"] = settings.ignore_mtime;
    return j;
}

Json import_json(const ImportSummary& sum) {
    Json j;
    j["command"] = "import";
    j["name"] = sum.name;
    put_path(j, "root", sum.root);
    j["dry_run"] = sum.dry_run;
    j["files_seen"] = sum.files_seen;
    j["already_linked"] = sum.already_linked;
    j["newly_linked"] = sum.newly_linked;
    j["new_objects"] = sum.new_objects;
    j["bytes_new_objects"] = sum.bytes_new_objects;
    j["bytes_saved"] = sum.bytes_saved;
    j["temps_swept"] = sum.temps_swept;
    j["records_dropped"] = sum.records_dropped;
    j["made_private"] = sum.made_private;
    j["package_dbs"] = text(sum.package_dbs);
    j["config_files"] = sum.config_files;
    Json warnings = Json::array();
    for (const auto& w : sum.warnings) warnings.push_back(text(w));
    j["warnings"] = std::move(warnings);
    Json skipped = Json::object();
    for (const auto& [reason, n] : sum.skipped) {
        Json& slot = skipped[skip_key(reason)];
        slot = (slot.is_null() ? 0 : slot.get<uint64_t>()) + n;
    }
    j["skipped"] = skipped;
    return j;
}

Json gc_json(const GcSummary& sum, bool dry_run) {
    Json j;
    j["command"] = "gc";
    j["dry_run"] = dry_run;
    j["objects_seen"] = sum.objects_seen;
    j["objects_removed"] = sum.objects_removed;
    j["bytes_reclaimed"] = sum.bytes_reclaimed;
    j["links_dropped"] = sum.links_dropped;
    if (sum.links_unchecked) j["links_unchecked"] = sum.links_unchecked;
    if (sum.object_records_dropped) j["object_records_dropped"] = sum.object_records_dropped;
    return j;
}

Json who_json(const WhoAnswer& ans) {
    Json j;
    j["command"] = "who";
    put_path(j, "target", ans.target);
    j["unified"] = ans.unified;
    if (!ans.unified) {
        j["reason"] = text(ans.why_not);
        return j;
    }
    j["id"] = ans.id.hex();
    j["size"] = ans.size;
    Json links = Json::array();
    for (const auto& l : ans.links) {
        Json link;
        link["guest"] = l.guest;
        put_path(link, "path", l.path);
        links.push_back(std::move(link));
    }
    j["links"] = std::move(links);
    if (!ans.unchecked.empty()) {
        Json unchecked = Json::array();
        for (const auto& u : ans.unchecked) {
            Json link;
            link["guest"] = u.guest;
            put_path(link, "path", u.path);
            put_path(link, "error", u.error);
            unchecked.push_back(std::move(link));
        }
        j["unchecked"] = std::move(unchecked);
    }
    return j;
}

Json status_json(const Pool& pool, const PoolStatus& st) {
    Json p;
    put_path(p, "path", pool.path());
    p["share"] = to_string(pool.settings().share);
    p["protect"] = to_string(pool.settings().protect);
    p["ignore_mtime"] = pool.settings().ignore_mtime;
    p["objects"] = st.objects;
    p["bytes_in_pool"] = st.pool_bytes;
    p["linked_paths"] = st.links;
    p["bytes_unshared"] = st.logical_bytes;
    p["bytes_saved"] = st.bytes_saved;
    Json guests = Json::array();
    for (const auto& gs : st.guests) {
        Json g;
        g["name"] = gs.guest.name;
        put_path(g, "root", gs.guest.root);
        g["files_linked"] = gs.files_linked;
        g["bytes_linked"] = gs.bytes_linked;
        g["bytes_saved"] = gs.bytes_saved;
        g["last_import"] = unix_time(gs.guest.last_import);
        // What the text shows too: the package databases the last import read ("dpkg",
        // "none", "" if not recorded) and the guest's stored rules, "- GLOB" / "+ GLOB".
        g["package_dbs"] = text(gs.guest.package_dbs);
        g["config_files"] = gs.guest.config_files;
        Json rules = Json::array();
        for (const auto& r : gs.guest.excludes)
            if (!r.empty()) rules.push_back(text(r.substr(0, 1) + " " + r.substr(1)));
        g["rules"] = std::move(rules);
        guests.push_back(std::move(g));
    }
    Json j;
    j["command"] = "status";
    j["pool"] = std::move(p);
    j["guests"] = std::move(guests);
    return j;
}

Json unshare_json(const UnshareOptions& opt, const UnshareSummary& sum) {
    Json j;
    j["command"] = "unshare";
    j["name"] = opt.name;
    j["dry_run"] = opt.dry_run;
    j["unshared"] = sum.unshared;
    j["bytes_copied"] = sum.bytes_copied;
    j["records_dropped"] = sum.not_linked;
    if (!opt.packages.empty()) {
        Json packages = Json::array();
        for (const auto& p : sum.packages)
            packages.push_back({{"package", p.package},
                                {"db", p.db},
                                {"unshared", p.unshared},
                                {"bytes_copied", p.bytes_copied}});
        j["packages"] = packages;
    }
    return j;
}

Json list_json(const std::vector<GuestRecord>& guests) {
    Json list = Json::array();
    for (const auto& gr : guests) {
        Json g;
        g["name"] = gr.name;
        put_path(g, "root", gr.root);
        g["last_import"] = unix_time(gr.last_import);
        list.push_back(std::move(g));
    }
    Json j;
    j["command"] = "list";
    j["guests"] = std::move(list);
    return j;
}

Json forget_json(const ForgetSummary& sum) {
    Json j;
    j["command"] = "forget";
    j["name"] = sum.name;
    put_path(j, "root", sum.root);
    j["keep_links"] = sum.keep_links;
    j["dry_run"] = sum.dry_run;
    j["unshared"] = sum.unshared.unshared;
    j["bytes_copied"] = sum.unshared.bytes_copied;
    j["records_dropped"] =
        sum.unshared.not_linked + sum.records_dropped + sum.deleted.records_dropped;
    if (sum.unrecorded) j["unrecorded_links"] = sum.unrecorded;
    j["delete_root"] = sum.delete_root;
    if (sum.delete_root)
        j["deleted"] = {{"root_was_gone", sum.deleted.root_was_gone},
                        {"linked", sum.deleted.linked},
                        {"files", sum.deleted.files},
                        {"dirs", sum.deleted.dirs},
                        {"other", sum.deleted.other}};
    return j;
}

Json error_json(const Error& e) {
    Json j;
    j["error"] = text(e.message);
    j["errno"] = e.err;
    return j;
}

Json version_json() {
    Json j;
    j["command"] = "version";
    j["version"] = version();
    j["revision"] = revision().empty() ? Json(nullptr) : Json(revision());
    return j;
}

void print_json(const Json& j) {
    // Every command's document ends with the version that wrote it (not an error document:
    // that one is {"error", "errno"} only).
    Json out = j;
    if (out.is_object() && out.contains("command") && !out.contains("version"))
        out["version"] = version();
    // Every string was made valid UTF-8 above; `replace` only guards against a slip.
    std::cout << out.dump(2, ' ', false, Json::error_handler_t::replace) << "\n" << std::flush;
}

}  // namespace unify
