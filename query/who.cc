#include "query/who.h"

#include <stdlib.h>
#include <unistd.h>

#include <iterator>
#include <map>
#include <memory>
#include <optional>

#include "importer/guest_target.h"
#include "store/guest_path.h"
#include "store/guest_registry.h"
#include "store/guest_root.h"
#include "store/link_check.h"
#include "store/parallel.h"

namespace unify {

namespace {

// More threads than this would each start for a handful of guests.
constexpr unsigned kMaxParts = 4;

bool is_hex(const std::string& s) {
    return !s.empty() && s.find_first_not_of("0123456789abcdefABCDEF") == std::string::npos;
}

// Lexical: "/a/./b/../c" -> "/a/c". No symlink is followed.
std::string normalise(const std::string& p) {
    std::vector<std::string> parts;
    size_t i = 0;
    while (i <= p.size()) {
        size_t j = p.find('/', i);
        if (j == std::string::npos) j = p.size();
        std::string c = p.substr(i, j - i);
        if (c == "..") {
            if (!parts.empty()) parts.pop_back();
        } else if (!c.empty() && c != ".") {
            parts.push_back(c);
        }
        i = j + 1;
    }
    std::string out;
    for (const auto& c : parts) out += "/" + c;
    return out.empty() ? "/" : out;
}

std::optional<GuestRecord> guest_containing(const std::vector<GuestRecord>& guests,
                                            const std::string& path) {
    for (const auto& g : guests)
        if (path_within(path, g.root) && path.size() > g.root.size()) return g;
    return std::nullopt;
}

// Checks each recorded link `visit` is given: one whose path still is the object's inode goes
// to `ans.links`, one whose path could not be looked at to `ans.unchecked`. `holds` counts
// the first kind by replica, with an entry for every replica seen.
LinkVisitor checked_into(LinkChecker& links, Txn& txn, WhoAnswer& ans,
                         std::map<uint32_t, uint64_t>& holds, Result<void>& err) {
    return [&](const LinkRecord& l) {
        auto state = links.check(txn, l);
        if (!state) {
            err = std::unexpected(state.error());
            return false;
        }
        uint64_t& held = holds[l.replica];
        bool unreachable = *state == LinkChecker::State::unreachable;
        if (*state != LinkChecker::State::holds && !unreachable) return true;
        auto g = links.guest(txn, l.guest);
        if (!g) {
            err = std::unexpected(g.error());
            return false;
        }
        if (unreachable) {
            ans.unchecked.push_back({(*g)->name, l.path, links.path_error().message});
        } else {
            ans.links.push_back({(*g)->name, l.path});
            ++held;
        }
        return true;
    };
}

// Every name of each of the object's `replicas` is among the paths that held: its link count
// is one (the pool's name) more than them. A replica no asked name held (another name of it
// in a directory that also has the asked one) must have no name but the pool's.
Result<bool> every_name_held(LinkChecker& links, const ObjectId& id, uint32_t replicas,
                             const std::map<uint32_t, uint64_t>& holds) {
    if (replicas == 0 || (!holds.empty() && holds.rbegin()->first >= replicas)) return false;
    for (uint32_t r = 0; r < replicas; ++r) {
        auto it = holds.find(r);
        uint64_t held = it == holds.end() ? 0 : it->second;
        auto st = links.object(id, r);  // the checks' own look at it
        if (!st) return std::unexpected(st.error());
        if (*st ? (*st)->nlink != held + 1 : held != 0) return false;
    }
    return true;
}

// One run of the guests (Txn::for_each_link_of_object_named's parts), with what its checks
// found.
struct NamedPart {
    WhoAnswer named;
    std::map<uint32_t, uint64_t> holds;
    Result<bool> every_dir = true;
    Result<void> err;
};

// The checked links of `id` named `name` into `out` and `holds`, the guests cut into runs
// looked at side by side, each in a read transaction and with a checker of its own (the first
// in `txn` with `links`; the others' may see a later commit, which changes nothing, every
// link being checked on the filesystem): every guest costs its seeks into the index, every
// link its page faults there and its system calls. Concatenated in order, the runs' links
// are in guest order. Whether every directory holding the object had a link of that name.
Result<bool> named_links(Pool& pool, Txn& txn, LinkChecker& links, const ObjectId& id,
                         const std::string& name, unsigned jobs, WhoAnswer& out,
                         std::map<uint32_t, uint64_t>& holds) {
    const unsigned parts = std::min(jobs_or_cores(jobs), kMaxParts);
    std::vector<NamedPart> got(parts);
    parallel_for(parts, parts, [&](size_t k) {
        NamedPart& p = got[k];
        std::unique_ptr<Txn> own;
        std::optional<LinkChecker> checker;
        if (k > 0) {
            auto t = pool.index().read();
            if (!t) {
                p.every_dir = std::unexpected(t.error());
                return;
            }
            own = std::move(*t);
            checker.emplace(pool);
        }
        Txn& t = k > 0 ? *own : txn;
        LinkChecker& c = k > 0 ? *checker : links;
        p.every_dir = t.for_each_link_of_object_named(
            id, name, checked_into(c, t, p.named, p.holds, p.err), uint32_t(k), parts);
    });
    bool every_dir = true;
    for (NamedPart& p : got) {
        if (!p.every_dir) return std::unexpected(p.every_dir.error());
        if (!p.err) return std::unexpected(p.err.error());
        every_dir = every_dir && *p.every_dir;
        std::move(p.named.links.begin(), p.named.links.end(), std::back_inserter(out.links));
        std::move(p.named.unchecked.begin(), p.named.unchecked.end(),
                  std::back_inserter(out.unchecked));
        for (const auto& [replica, n] : p.holds) holds[replica] += n;
    }
    return every_dir;
}

// Reports every recorded link of `id` whose path still is the object's inode, and those
// whose path could not be looked at. `name`: the asked path's file name (asked by id: its
// first link's); `replicas`: the object record's count (0: no record).
// The links of that name are looked up first, one per directory that holds the object,
// instead of reading all of each such directory's links (a real guest's /usr/bin holds a
// thousand; 100 sharers in such directories: 10 ms of a `who` against 4). They are the whole
// answer when every such directory had one and the link counts leave no name of the object
// unaccounted for. Otherwise (another name, a count the records do not explain, a reflink
// pool, whose objects are not linked) every link of the object is read.
Result<void> verified_links(Pool& pool, Txn& txn, const ObjectId& id, const std::string* name,
                            uint32_t replicas, unsigned jobs, WhoAnswer& ans) {
    LinkChecker links(pool);
    Result<void> err;
    std::map<uint32_t, uint64_t> holds;
    if (name && !pool.settings().reflink()) {
        WhoAnswer named;
        auto every_dir = named_links(pool, txn, links, id, *name, jobs, named, holds);
        if (!every_dir) return std::unexpected(every_dir.error());
        auto all = *every_dir ? every_name_held(links, id, replicas, holds) : Result<bool>(false);
        if (!all) return std::unexpected(all.error());
        if (*all) {
            ans.links = std::move(named.links);
            ans.unchecked = std::move(named.unchecked);
            return {};
        }
        holds.clear();
    }
    auto r = txn.for_each_link_of_object(id, checked_into(links, txn, ans, holds, err));
    if (!r) return r;
    return err;
}

}  // namespace

Result<WhoAnswer> who(Pool& pool, const std::string& target, unsigned jobs) {
    WhoAnswer ans;
    auto txn_r = pool.index().read();
    if (!txn_r) return std::unexpected(txn_r.error());
    Txn& txn = **txn_r;

    std::optional<GuestRecord> guest;
    std::string path;
    auto colon = target.find(':');
    if (colon != std::string::npos && colon > 0 && target[0] != '/') {
        auto g = txn.guest(target.substr(0, colon));
        if (!g) return std::unexpected(g.error());
        if (!*g) return std::unexpected(no_guest_named(pool, "who", target.substr(0, colon)));
        guest = *g;
        path = normalise(target.substr(colon + 1));
    } else if (target[0] != '/' && target[0] != '.' && is_hex(target)) {
        if (target.size() < 8)
            return fail("who: an object id prefix needs at least 8 hex digits: '" + target + "'");
        std::string lower = target;
        for (auto& c : lower) c = char(tolower(c));
        auto ids = txn.objects_with_prefix(lower);
        if (!ids) return std::unexpected(ids.error());
        if (ids->empty()) return fail("who: no object id starts with " + lower);
        if (ids->size() > 1)
            return fail("who: " + std::to_string(ids->size()) + " objects start with " + lower +
                        "; give more digits");
        ans.id = ids->front();
        ans.target = ans.id.hex();
    } else {
        std::string abs = target;
        if (abs[0] != '/') {
            char* cwd = getcwd(nullptr, 0);
            abs = std::string(cwd ? cwd : "/") + "/" + target;
            free(cwd);
        }
        abs = normalise(abs);
        // Only a host path needs every guest's record (1,000 guests: 7 % of a `who`).
        auto guests = txn.guests();
        if (!guests) return std::unexpected(guests.error());
        guest = guest_containing(*guests, abs);
        if (!guest) {  // the admin's own path may run through a symlink outside the guests
            auto slash = abs.rfind('/');
            char* real = realpath(slash == 0 ? "/" : abs.substr(0, slash).c_str(), nullptr);
            if (real) {
                abs = join_path(real, abs.substr(slash + 1));
                free(real);
                guest = guest_containing(*guests, abs);
            }
        }
        if (!guest)
            return fail("who: " + target +
                        " is not inside a registered guest root (see unify list)");
        path = abs.substr(guest->root.size());
    }

    if (guest) {
        auto root = open_guest_root(pool, *guest);
        if (!root) return std::unexpected(context(root.error(), "who"));
        auto canon = resolve_guest_target(root->fd.get(), guest->root, path);
        if (!canon) return std::unexpected(context(canon.error(), "who"));
        path = *canon;
        ans.target = guest->name + ":" + path;
        if (path == "/")
            return fail("who: " + target + " is the guest's root directory; who takes a file");
        auto st = stat_guest_path(root->fd.get(), path, join_path(guest->root, path));
        if (!st) return std::unexpected(context(st.error(), "who"));
        if (!*st) {
            auto mount = mount_point_above(root->fd.get(), path, guest->root);
            if (!mount) return std::unexpected(context(mount.error(), "who"));
            if (*mount)
                return fail("who: " + join_path(guest->root, path) + " is below a mount point at " +
                                **mount + " inside the guest (openat2 RESOLVE_NO_XDEV of " +
                                join_path(guest->root, **mount) +
                                ": EXDEV); unify does not cross mount points, so nothing "
                                "below one is unified",
                            EXDEV);
            return fail("who: " + join_path(guest->root, path) + " does not exist in the guest",
                        ENOENT);
        }
        auto link = txn.link(guest->id, path);
        if (!link) return std::unexpected(link.error());
        std::optional<FileStat> obj;
        if (*link) {
            auto o = pool.stat_object((*link)->id, (*link)->replica);
            if (!o) return std::unexpected(o.error());
            obj = *o;
        }
        bool holds = *link && obj && obj->same_inode(**st);
        if (*link && obj && pool.settings().reflink()) {  // its own inode, sharing blocks
            LinkChecker check(pool);
            auto state = check.check(txn, **link, *obj);
            if (!state) return std::unexpected(state.error());
            if (*state == LinkChecker::State::unreachable)
                return std::unexpected(context(check.path_error(), "who"));
            holds = *state == LinkChecker::State::holds;
        }
        if (!holds) {
            ans.why_not = !(*st)->is_reg() ? "not a regular file"
                          : *link          ? "it was replaced or unshared since it was linked"
                                           : "not linked to any object";
            return ans;
        }
        ans.id = (*link)->id;
    }
    auto rec = txn.object(ans.id);
    if (!rec) return std::unexpected(rec.error());
    if (*rec) {
        ans.size = (*rec)->size;
    } else if (auto st = pool.stat_object(ans.id); st && *st) {
        ans.size = (*st)->size;
    }
    // Asked by id: the name of its first link is as good a guess (all of one directory read).
    if (!guest) {
        auto first = txn.for_each_link_of_object(ans.id, [&](const LinkRecord& l) {
            path = l.path;
            return false;
        });
        if (!first) return std::unexpected(first.error());
    }
    std::string name = path.substr(path.rfind('/') + 1);
    uint32_t replicas = *rec ? (*rec)->replicas : 0;
    if (auto r =
            verified_links(pool, txn, ans.id, path.empty() ? nullptr : &name, replicas, jobs, ans);
        !r)
        return std::unexpected(r.error());
    ans.unified = true;
    return ans;
}

}  // namespace unify
