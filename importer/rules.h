// Which guest paths may be unified. A path is decided by the first rule that matches, in
// this order:
//   1. package configuration files: the guest's own package databases (dpkg conffiles, rpm
//      %config, pacman backup files; importer/package_db.h) name them; always private;
//   2. the user's rules, in the order given: "+GLOB" (--include) unifies, "-GLOB" (--exclude)
//      keeps private;
//   3. the default rules (default_rules()), modelled on util-vserver's vunify-exclude; a
//      reflink pool's list opens a few trees of public package data under /var first.
// A path that no rule matches may be unified. Only regular files of at least --min-size
// bytes are ever linked, whatever the rules say.
//
// Globs: one with a '/' is matched against the whole guest path ("/usr/share/doc/*"), one
// without against a single path component ("*.pyc"); '*', '?' and '[...]' never match '/'.
// A rule that matches a directory matches everything below it, so "-/usr/share/doc" keeps
// the whole tree private and "+/etc/ssl/certs" unifies what is below it (rule 1 still wins).
//
// The walker asks walk_dir() before it enters a directory: a directory whose every
// descendant is excluded is not walked at all; one that is excluded but where an earlier
// include rule could match something below (e.g. /etc for "+/etc/ssl/certs/*") is walked,
// and each path in it is decided on its own.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "importer/package_db.h"
#include "store/result.h"
#include "store/share_mode.h"

namespace unify {

struct Rule {
    bool include = false;
    std::string glob;
    std::string note;  // default rules: why the rule is there

    // "+GLOB" / "-GLOB", as stored in GuestRecord::excludes.
    std::string stored() const { return (include ? "+" : "-") + glob; }
};

// "+GLOB" includes, "-GLOB" excludes; anything else (an --exclude glob stored by an older
// unify, before rules had a sign) excludes the whole string.
Rule parse_stored_rule(const std::string& s);

// The file format of --exclude-from: one rule per line, "+ GLOB" or "- GLOB" (the space is
// optional), "# comment" and blank lines ignored. Returns the rules in stored form.
Result<std::vector<std::string>> parse_rule_file(const std::string& text, const std::string& shown);

// Reads an --exclude-from FILE (an administrator's host path) and parses it.
Result<std::vector<std::string>> read_rule_file(const std::string& path);

// Rule 3: the default rules of a pool of that share mode, first match wins.
const std::vector<Rule>& default_rules(ShareMode share);

enum class RuleMatch {
    none,               // no rule matched: may be unified
    package_config,     // rule 1: private
    user_include,       // rule 2, "+GLOB": may be unified
    user_exclusion,     // rule 2, "-GLOB": private
    default_include,    // rule 3, a safe subtree: may be unified
    default_exclusion,  // rule 3: private
};

struct Decision {
    RuleMatch match = RuleMatch::none;
    const Rule* rule = nullptr;          // the user or default rule that decided
    size_t index = 0;                    // its 1-based position among the user rules
    const ConfigOwner* owner = nullptr;  // package_config: the owning package
    std::string matched;                 // the path or ancestor directory the glob matched

    bool unifiable() const {
        return match == RuleMatch::none || match == RuleMatch::user_include ||
               match == RuleMatch::default_include;
    }
};

class Rules {
  public:
    // user_rules: stored form ("+GLOB"/"-GLOB"). config may be null: no package database.
    // share: the pool's mode, which picks the default rules.
    Rules(const std::vector<std::string>& user_rules, uint64_t min_size,
          const PackageConfig* config = nullptr, ShareMode share = ShareMode::hardlink);
    Rules(const Rules&) = delete;  // compiled_ points into user_
    Rules& operator=(const Rules&) = delete;

    // path: inside the guest, starting with '/'.
    Decision decide(const std::string& path) const;
    RuleMatch match(const std::string& path) const { return decide(path).match; }
    // False if nothing below directory `path` can be unified; `why` gets the decision for
    // the directory itself.
    bool walk_dir(const std::string& path, Decision* why = nullptr) const;

    uint64_t min_size() const { return min_size_; }
    const std::vector<Rule>& user_rules() const { return user_; }

  private:
    struct Compiled {
        const Rule* rule;
        bool whole;                      // has a '/': matched against a whole path prefix
        bool literal;                    // no glob characters: a plain string compare
        std::vector<std::string> parts;  // whole: the glob's components
        std::string glob;                // whole: normalised to "/a/b"
    };
    static Compiled compile(const Rule& r);
    // If the rule matches `path` or one of its ancestors, the one it matched.
    static bool matches(const Compiled& c, const std::string& path, const std::vector<size_t>& ends,
                        std::string* matched);
    // Whether the rule could match some path strictly below directory `path`.
    static bool could_match_below(const Compiled& c, const std::vector<std::string>& comps);
    Decision decide_rules(const std::string& path) const;

    std::vector<Rule> user_;
    std::vector<Compiled> compiled_;  // user rules, then default rules
    uint64_t min_size_;
    const PackageConfig* config_;
};

}  // namespace unify
