// The checks and the quarantine of unify verify (algorithm in verify.h). The cheap default
// reads every object once with XXH3 only; any doubt it raises (content or id mismatch) is
// settled with a full SHA-256 of that object, so a wrong index record is told apart from a
// damaged object: an object whose bytes and metadata give its id is never called damaged.
#include "repair/verify.h"

#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <charconv>
#include <map>
#include <memory>
#include <ostream>
#include <set>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "linker/unshare.h"
#include "repair/stamp.h"
#include "store/guest_root.h"
#include "store/hasher.h"
#include "store/identify.h"
#include "store/interrupt.h"
#include "store/link_check.h"
#include "store/parallel.h"
#include "store/printable.h"
#include "store/tree_walk.h"

namespace unify {

namespace {

constexpr size_t kBuffer = 1 << 20;

// XXH3-64 and length of fd's content, read from offset 0 with one buffer per thread.
Result<std::pair<uint64_t, uint64_t>> xxh3_fd(int fd, const std::string& shown) {
    thread_local std::vector<char> buf;
    thread_local std::unique_ptr<XXH3_state_t, decltype(&XXH3_freeState)> state(nullptr,
                                                                                &XXH3_freeState);
    if (buf.empty()) buf.resize(kBuffer);
    if (!state) state.reset(XXH3_createState());
    if (!state) return fail("XXH3_createState(" + shown + "): out of memory", ENOMEM);
    XXH3_64bits_reset(state.get());
    off_t off = 0;
    for (;;) {
        ssize_t n = pread(fd, buf.data(), buf.size(), off);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return sys_fail("read", shown);
        if (n == 0) break;
        XXH3_64bits_update(state.get(), buf.data(), size_t(n));
        off += n;
    }
    return std::make_pair(uint64_t(XXH3_64bits_digest(state.get())), uint64_t(off));
}

// One object file of a shard: what pass 1 knows, and what pass 2 found.
struct Item {
    std::string file;  // the name inside the shard directory
    ObjectId id;
    uint32_t replica = 0;
    std::optional<ObjectRecord> rec;

    enum State { ok, damaged, bad_record, stray, failed } state = ok;
    bool content = false, metadata = false, unprotected = false;
    unsigned guest_flags = 0;  // store/protect.h
    FileStat st;
    ContentHash full;  // when a full hash was made
    bool have_full = false;
    Error error;
    std::string why_stray;
};

// Pass 2 for one object: see the comment at the top of this file.
void check_item(const Pool& pool, const std::string& name, const std::string& shown, bool full_mode,
                Item& it) {
    auto fail_with = [&](Error e) {
        it.state = Item::failed;
        it.error = std::move(e);
    };
    auto f = pool.open_object(name);
    if (!f) {
        if (f.error().err == ELOOP) {
            it.state = Item::stray;
            it.why_stray = "a symlink";
            return;
        }
        return fail_with(f.error());
    }
    int fd = f->get();
    auto st = stat_fd(fd, shown);
    if (!st) return fail_with(st.error());
    it.st = *st;
    if (!st->is_reg()) {
        it.state = Item::stray;
        it.why_stray = "not a regular file";
        return;
    }
    auto prot = pool.protection().is_protected(fd, shown);
    if (!prot) return fail_with(prot.error());
    it.unprotected = !*prot;
    if (pool.protection().mode() != ProtectMode::none) {
        auto flags = get_inode_flags(fd, shown);
        if (!flags) return fail_with(flags.error());
        it.guest_flags = guest_flags(*flags);
    }
    auto x = read_xattrs(fd, shown);
    if (!x) return fail_with(x.error());
    Identity ident = Identity::of(*st, std::move(*x));
    IdRules rules = pool.settings().id_rules();
    auto gives_id = [&](const Digest& content) { return rules.id_of(content, ident) == it.id; };

    bool doubt = true;
    if (it.rec && !full_mode) {
        auto h = xxh3_fd(fd, shown);
        if (!h) return fail_with(h.error());
        doubt = h->first != it.rec->xxh3 || h->second != it.rec->size || !gives_id(it.rec->content);
    }
    if (doubt) {
        auto h = hash_fd(fd, shown);
        if (!h) return fail_with(h.error());
        it.full = *h;
        it.have_full = true;
        if (gives_id(h->sha256)) {
            // The object is what its id says; only its record may be wrong.
            if (it.rec && (h->sha256 != it.rec->content || h->size != it.rec->size ||
                           h->xxh3 != it.rec->xxh3))
                it.state = Item::bad_record;
        } else if (it.rec) {
            it.content = h->sha256 != it.rec->content || h->size != it.rec->size;
            it.metadata = !gives_id(it.rec->content);
        } else {
            // Without a record nothing tells content from metadata.
            it.content = it.metadata = true;
        }
    }
    if (it.state == Item::ok && (it.content || it.metadata || it.unprotected))
        it.state = Item::damaged;
}

// The recorded links of damaged and missing objects, by guest name.
class LinkFinder {
  public:
    LinkFinder(const Pool& pool, Txn& txn, std::ostream& log) : checker_(pool, &log), txn_(txn) {}

    // The recorded links of (id, replica) whose path is `obj`'s inode now; those whose path
    // could not be looked at go to `unchecked`.
    Result<std::vector<VerifyLink>> linking(const ObjectId& id, uint32_t replica,
                                            const FileStat& obj,
                                            std::vector<UncheckedLink>& unchecked) {
        return collect(id, [&](const LinkRecord& l) -> Result<bool> {
            if (l.replica != replica) return false;
            auto state = checker_.check(txn_, l, obj);
            if (!state) return std::unexpected(state.error());
            // A path that could not be looked at, or in a root that cannot be opened: whether
            // it still links the object is not known (the quarantine must not drop it).
            if (*state == LinkChecker::State::unreachable ||
                *state == LinkChecker::State::unchecked) {
                auto g = checker_.guest(txn_, l.guest);
                if (!g) return std::unexpected(g.error());
                const Error* root = checker_.root_error(l.guest);
                std::string why = *state == LinkChecker::State::unreachable
                                      ? checker_.path_error().message
                                  : root ? "its guest root: " + root->message
                                         : std::string("its guest is not registered");
                unchecked.push_back({guest_name(*g, l), l.path, why});
                return false;
            }
            return *state == LinkChecker::State::holds;
        });
    }

    // Every recorded link of id, unchecked.
    Result<std::vector<VerifyLink>> recorded(const ObjectId& id) {
        return collect(id, [](const LinkRecord&) -> Result<bool> { return true; });
    }

  private:
    static std::string guest_name(const GuestRecord* g, const LinkRecord& l) {
        return g ? g->name : "#" + std::to_string(l.guest);
    }

    Result<std::vector<VerifyLink>> collect(
        const ObjectId& id, const std::function<Result<bool>(const LinkRecord&)>& keep) {
        std::vector<VerifyLink> out;
        Result<void> err;
        auto r = txn_.for_each_link_of_object(id, [&](const LinkRecord& l) {
            auto k = keep(l);
            auto g = k ? checker_.guest(txn_, l.guest)
                       : Result<const GuestRecord*>(std::unexpected(k.error()));
            if (!g) {
                err = std::unexpected(g.error());
                return false;
            }
            if (*k) out.push_back({guest_name(*g, l), l.path});
            return true;
        });
        if (!r) return std::unexpected(r.error());
        if (!err) return std::unexpected(err.error());
        return out;
    }

    LinkChecker checker_;
    Txn& txn_;
};

// Passes 1 to 3 over one shard. Records of damaged objects and bad records are kept aside
// for the quarantine pass.
struct Found {
    std::vector<DamagedObject> damaged;
    std::vector<FileStat> damaged_st;
    std::vector<std::pair<std::string, ObjectRecord>> bad_records;  // name, corrected record
};

Result<void> verify_shard(Pool& pool, Txn& txn, LinkFinder& links, size_t s,
                          const VerifyOptions& opt, std::ostream& log, VerifySummary& sum,
                          Found& found) {
    auto listed = pool.list_shard(s);
    if (!listed) {
        if (listed.error().err != ENOENT) return std::unexpected(listed.error());
        sum.strays.push_back(pool.object_shown(Pool::shard_name(s)) + " (missing shard directory)");
        return {};
    }
    const std::string &shard = listed->name, &shard_shown = listed->shown;

    // Pass 1: names and records (the transaction stays on this thread).
    std::vector<std::string> strays;
    std::vector<Item> items;
    for (auto& o : listed->objects(strays)) {
        Item it;
        it.file = std::move(o.file);
        it.id = o.id;
        it.replica = o.replica;
        auto rec = txn.object(it.id);
        if (!rec) return std::unexpected(rec.error());
        it.rec = *rec;
        items.push_back(std::move(it));
    }
    for (const auto& name : strays)
        sum.strays.push_back(join_path(shard_shown, name) + " (not an object name)");

    // Pass 2, on all cores.
    parallel_for(items.size(), opt.jobs, [&](size_t i) {
        check_item(pool, shard + "/" + items[i].file, join_path(shard_shown, items[i].file),
                   opt.full, items[i]);
    });

    std::unordered_set<ObjectId> present;
    for (auto& it : items) {
        std::string name = shard + "/" + it.file;
        if (it.state == Item::failed) return std::unexpected(it.error);
        if (it.state == Item::stray) {
            sum.strays.push_back(join_path(shard_shown, it.file) + " (" + it.why_stray + ")");
            continue;
        }
        present.insert(it.id);
        ++sum.objects_checked;
        sum.bytes_checked += it.st.size;
        if (!it.rec || it.replica >= it.rec->replicas) sum.unindexed.push_back(name);
        if (it.guest_flags && it.state != Item::damaged)
            sum.flagged.emplace_back(name, it.guest_flags);
        if (it.state == Item::bad_record) {
            ObjectRecord fixed = *it.rec;
            fixed.size = it.full.size;
            fixed.xxh3 = it.full.xxh3;
            fixed.content = it.full.sha256;
            found.bad_records.emplace_back(name, fixed);
        }
        if (it.state != Item::damaged) {
            if (opt.verbose) log << "ok " << name << "\n";
            continue;
        }
        DamagedObject d;
        d.name = name;
        d.id = it.id;
        d.replica = it.replica;
        d.content = it.content;
        d.metadata = it.metadata;
        d.unprotected = it.unprotected;
        d.recorded = it.rec.has_value();
        // Pass 3: who links it.
        auto l = links.linking(it.id, it.replica, it.st, d.unchecked);
        if (!l) return std::unexpected(l.error());
        d.links = std::move(*l);
        if (opt.verbose) log << "damaged " << name << ": " << describe(d, opt.full) << "\n";
        found.damaged.push_back(std::move(d));
        found.damaged_st.push_back(it.st);
    }

    // Records of this shard that no object file stands for.
    auto ids = txn.objects_with_prefix(shard);
    if (!ids) return std::unexpected(ids.error());
    for (const auto& id : *ids) {
        if (present.count(id)) continue;
        MissingObject m;
        m.id = id;
        auto l = links.recorded(id);
        if (!l) return std::unexpected(l.error());
        m.links = std::move(*l);
        sum.missing.push_back(std::move(m));
    }
    return {};
}

// POOL/quarantine, made on first use.
Result<Fd> quarantine_dir(const Pool& pool) {
    std::string shown = join_path(pool.path(), "quarantine");
    if (mkdirat(pool.fd(), "quarantine", 0700) != 0 && errno != EEXIST)
        return sys_fail("mkdir", shown);
    return open_beneath(pool.fd(), "quarantine", O_RDONLY | O_DIRECTORY, shown);
}

// Protects a damaged object that was only unprotected, then hashes it again now that nobody
// can write it. True if it is what its id says.
Result<bool> reprotect(const Pool& pool, DamagedObject& d) {
    std::string shown = pool.object_shown(d.name);
    auto f = pool.open_object(d.name);
    if (!f) return std::unexpected(f.error());
    if (auto r = pool.protection().protect(f->get(), shown); !r) return std::unexpected(r.error());
    auto now = identify_fd(f->get(), shown, pool.settings().id_rules());
    if (!now) return std::unexpected(now.error());
    if (now->id == d.id) return true;
    d.content = d.metadata = true;  // it changed while it was unprotected
    return false;
}

// Renames objects/<name> to quarantine/<file>.<stamp>[-k] inside the object's protection
// window: the guests that still link the inode must not be able to change it for each other,
// so its flag is set again after the rename. Returns the new host path.
Result<std::string> move_aside(const Pool& pool, const DamagedObject& d, int qfd,
                               const std::string& stamp) {
    std::string shown = pool.object_shown(d.name);
    auto f = pool.open_object(d.name);
    if (!f) return std::unexpected(f.error());
    std::string base = d.name.substr(3) + "." + stamp, target;
    auto rename = [&]() -> Result<void> {
        for (int k = 0;; ++k) {
            target = k ? base + "-" + std::to_string(k) : base;
            if (renameat2(pool.objects_fd(), d.name.c_str(), qfd, target.c_str(),
                          RENAME_NOREPLACE) == 0)
                return {};
            if (errno == EEXIST && k < 1000) continue;
            return sys_fail("rename",
                            shown + " -> " + join_path(pool.path(), "quarantine/" + target));
        }
    };
    if (auto r = pool.with_links_allowed(d.id, d.replica, f->get(), rename); !r)
        return std::unexpected(r.error());
    return join_path(pool.path(), "quarantine/" + target);
}

// True if any replica file of id is left in the pool, trying replicas [0, n).
Result<bool> any_replica_left(const Pool& pool, const ObjectId& id, uint32_t n) {
    for (uint32_t r = 0; r < n; ++r) {
        auto st = pool.stat_object(id, r);
        if (!st) return std::unexpected(st.error());
        if (*st) return true;
    }
    return false;
}

// Deletes the link records of (id, replica), or of every replica when replica is empty.
Result<size_t> drop_links(Txn& txn, const ObjectId& id, std::optional<uint32_t> replica) {
    std::vector<std::pair<uint32_t, std::string>> doomed;
    auto r = txn.for_each_link_of_object(id, [&](const LinkRecord& l) {
        if (!replica || l.replica == *replica) doomed.emplace_back(l.guest, l.path);
        return true;
    });
    if (!r) return std::unexpected(r.error());
    for (const auto& [g, p] : doomed)
        if (auto d = txn.delete_link(g, p); !d) return std::unexpected(d.error());
    return doomed.size();
}

Result<void> in_write_txn(Pool& pool, const std::function<Result<void>(Txn&)>& body) {
    auto txn = pool.index().write();
    if (!txn) return std::unexpected(txn.error());
    auto r = body(**txn);
    if (!r) return r;
    return (*txn)->commit();
}

// See "quarantine" in verify.h. Fills d.action; an error here stops only this object.
Result<void> quarantine_one(Pool& pool, DamagedObject& d, const VerifyOptions& opt,
                            std::ostream& log, std::optional<Fd>& qfd, const std::string& stamp) {
    if (!d.content && !d.metadata) {
        auto ok = reprotect(pool, d);
        if (!ok) return std::unexpected(ok.error());
        if (*ok) {
            d.action = "protected again; its SHA-256 content and metadata match its id";
            d.fixed = true;
            return {};
        }
    }
    // Moving the object aside would leave an unchecked path linking it, unshared and with
    // its record dropped: nothing would ever give that guest its private copy.
    if (!d.unchecked.empty())
        return fail(d.unchecked.front().guest + ":" + printable(d.unchecked.front().path) +
                    " could not be checked (" + d.unchecked.front().error + ")");
    if (!qfd) {
        auto q = quarantine_dir(pool);
        if (!q) return std::unexpected(q.error());
        qfd = std::move(*q);
    }
    // The record goes first: unshare refuses to copy an object that does not match its
    // record, and here the copy is meant to keep exactly what the guests have now.
    std::optional<ObjectRecord> saved;
    auto dropped = in_write_txn(pool, [&](Txn& txn) -> Result<void> {
        auto rec = txn.object(d.id);
        if (!rec) return std::unexpected(rec.error());
        saved = *rec;
        return txn.delete_object(d.id);
    });
    if (!dropped) return dropped;
    auto restore_record = [&]() -> Result<void> {
        if (!saved) return {};
        return in_write_txn(pool, [&](Txn& txn) { return txn.put_object(d.id, *saved); });
    };
    std::map<std::string, std::vector<std::string>> by_guest;
    for (const auto& l : d.links) by_guest[l.guest].push_back(l.path);
    size_t unshared = 0;
    for (const auto& [guest, paths] : by_guest) {
        UnshareOptions u;
        u.name = guest;
        u.paths = paths;
        u.verbose = opt.verbose;
        auto r = unshare_guest(pool, u, log);
        if (!r) {
            (void)restore_record();
            return std::unexpected(context(r.error(), "unsharing the paths that link " + d.name));
        }
        unshared += r->unshared;
    }
    auto moved = move_aside(pool, d, qfd->get(), stamp);
    if (!moved) {
        (void)restore_record();
        return std::unexpected(moved.error());
    }
    size_t stale = 0;
    bool kept = false;
    auto recorded = in_write_txn(pool, [&](Txn& txn) -> Result<void> {
        auto n = drop_links(txn, d.id, d.replica);
        if (!n) return std::unexpected(n.error());
        stale = *n;
        if (!saved) return {};
        auto left = any_replica_left(pool, d.id, std::max(saved->replicas, d.replica + 1));
        if (!left) return std::unexpected(left.error());
        kept = *left;
        return kept ? txn.put_object(d.id, *saved) : Result<void>();
    });
    if (!recorded) return recorded;
    d.action = "moved to " + *moved + "; " + std::to_string(unshared) + " guest path" +
               (unshared == 1 ? "" : "s") +
               " unshared (each keeps what it has now as a private, unprotected file: restore "
               "it from a good copy, e.g. by reinstalling its package, then import the guest "
               "again)";
    if (stale) d.action += "; " + std::to_string(stale) + " stale link records dropped";
    d.action +=
        kept ? "; the record stays for the other replicas of the id" : "; its index record dropped";
    d.fixed = true;
    return {};
}

}  // namespace

std::string describe(const DamagedObject& d, bool full) {
    std::vector<std::string> p;
    if (!d.recorded) {
        p.push_back("its content and metadata do not give its id (SHA-256; no index record)");
    } else {
        if (d.content)
            p.push_back(std::string("content does not match its index record (") +
                        (full ? "SHA-256" : "XXH3, confirmed by SHA-256") + ")");
        if (d.metadata)
            p.push_back("metadata (type, mode, owner, mtime or xattrs) does not match its id");
    }
    if (d.unprotected) p.push_back("not protected (its protection flag is not set)");
    std::string out;
    for (const auto& s : p) out += (out.empty() ? "" : "; ") + s;
    return out;
}

// A reflink pool's recorded sharers, each checked on the filesystem (FIEMAP of the file and
// its object).
static Result<void> check_sharers(Pool& pool, VerifySummary& sum) {
    auto txn = pool.index().read();
    if (!txn) return std::unexpected(txn.error());
    auto guests = (*txn)->guests();
    if (!guests) return std::unexpected(guests.error());
    LinkChecker checker(pool);
    for (const auto& g : *guests) {
        Result<void> err;
        auto r = (*txn)->for_each_link_of_guest(g.id, [&](const LinkRecord& l) {
            auto state = checker.check(**txn, l);
            if (!state) {
                err = std::unexpected(state.error());
                return false;
            }
            if (*state == LinkChecker::State::unreachable) {
                sum.sharers_unchecked.push_back({g.name, l.path, checker.path_error().message});
                return true;
            }
            ++sum.sharers_checked;
            if (*state == LinkChecker::State::stale) sum.sharers_gone.push_back({g.name, l.path});
            return true;
        });
        if (!r) return r;
        if (!err) return err;
    }
    return (*txn)->commit();
}

// A hardlink pool's link records, every one read once (a reflink pool's are, by
// check_sharers): a damaged page of the links table fails verify here, with the reindex
// hint, instead of the next import or who of that guest.
static Result<void> read_link_records(Pool& pool) {
    auto txn = pool.index().read();
    if (!txn) return std::unexpected(txn.error());
    auto guests = (*txn)->guests();
    if (!guests) return std::unexpected(guests.error());
    for (const auto& g : *guests)
        if (auto r = (*txn)->for_each_link_of_guest(g.id, [](const LinkRecord&) { return true; });
            !r)
            return std::unexpected(context(r.error(), "the link records of guest " + g.name));
    return (*txn)->commit();
}

// The names of `object`'s inode below the guests' roots that d.links does not hold: each is
// recorded (one transaction) and added to d.links. A root that cannot be opened is left to
// the paths its records name.
Result<void> record_unrecorded_names(Pool& pool, const std::vector<GuestRecord>& guests,
                                     DamagedObject& d, const FileStat& object) {
    std::set<std::pair<std::string, std::string>> known;
    for (const auto& l : d.links) known.insert({l.guest, l.path});
    std::vector<LinkRecord> found;
    for (const GuestRecord& g : guests) {
        auto root = open_guest_root(pool, g);
        if (!root) continue;
        auto r = for_each_linked_file(
            root->fd.get(), root->path, object.dev, [&](const TreeItem& it) -> Result<void> {
                if (it.st.same_inode(object) && !known.count({g.name, it.path})) {
                    found.push_back({g.id, it.path, d.id, d.replica, it.st.ino, it.st.size,
                                     it.st.mtime_ns, it.st.ctime_ns});
                    d.links.push_back({g.name, it.path});
                }
                return {};
            });
        if (!r) return r;
    }
    if (found.empty()) return {};
    return in_write_txn(pool, [&](Txn& txn) -> Result<void> {
        for (const auto& l : found)
            if (auto r = txn.put_link(l); !r) return r;
        return {};
    });
}

Result<std::string> quarantine_object(Pool& pool, const std::string& name, std::ostream& log) {
    auto parsed = name.size() > 3 ? Pool::parse_object_file(name.substr(3)) : std::nullopt;
    if (!parsed) return fail("quarantine: '" + name + "' is not an object name");
    DamagedObject d;
    d.name = name;
    d.id = parsed->first;
    d.replica = parsed->second;
    d.content = d.metadata = true;  // which of them changed is not looked at: either moves it
    {
        auto st = pool.stat_object(d.id, d.replica);
        if (!st) return std::unexpected(st.error());
        if (!*st) return std::string("gone from the pool");
        auto txn = pool.index().read();
        if (!txn) return std::unexpected(txn.error());
        LinkFinder links(pool, **txn, log);
        auto l = links.linking(d.id, d.replica, **st, d.unchecked);
        if (!l) return std::unexpected(l.error());
        d.links = std::move(*l);
        auto guests = (*txn)->guests();
        if (!guests) return std::unexpected(guests.error());
        (void)(*txn)->commit();
        // A writer killed in the window had linked paths it never recorded (its index commit
        // comes after), and a guest may have added names: every guest's tree is looked at,
        // and each name of the inode is recorded, so that it gets its private copy too.
        if (auto r = record_unrecorded_names(pool, *guests, d, **st); !r)
            return std::unexpected(r.error());
    }
    std::optional<Fd> qfd;
    if (auto r = quarantine_one(pool, d, VerifyOptions{}, log, qfd, utc_stamp()); !r)
        return std::unexpected(r.error());
    return d.action;
}

Result<VerifySummary> verify_pool(Pool& pool, const VerifyOptions& opt_in, std::ostream& log) {
    VerifyOptions opt = opt_in;
    opt.jobs = jobs_or_cores(opt.jobs);
    VerifySummary sum;
    sum.gc_interrupted = pool.gc_interrupted();  // the caller holds the lock: no gc runs now
    Found found;
    {
        auto txn = pool.index().read();
        if (!txn) return std::unexpected(txn.error());
        LinkFinder links(pool, **txn, log);
        for (size_t s = 0; s < kShards; ++s) {
            // Only looked so far, also with --quarantine (pass 4 below is what changes).
            if (interrupted()) return std::unexpected(context(interrupted_error(false), "verify"));
            if (auto r = verify_shard(pool, **txn, links, s, opt, log, sum, found); !r)
                return std::unexpected(context(r.error(), "verify"));
            if (opt.progress)
                opt.progress({.phase = "verify",
                              .unit = "objects",
                              .done = sum.objects_checked,
                              .bytes = sum.bytes_checked,
                              .part = s + 1,
                              .parts = kShards});
        }
        (void)(*txn)->commit();
    }
    sum.damaged = std::move(found.damaged);
    for (const auto& bad : found.bad_records) sum.bad_records.push_back(bad.first);
    if (auto r = pool.settings().reflink() ? check_sharers(pool, sum) : read_link_records(pool); !r)
        return std::unexpected(context(r.error(), "verify"));
    if (!opt.quarantine) return sum;

    // Pass 4, under the lock the caller holds.
    std::optional<Fd> qfd;
    std::string stamp = utc_stamp();
    for (auto& d : sum.damaged) {
        if (interrupted()) return std::unexpected(interrupted_error());
        if (auto r = quarantine_one(pool, d, opt, log, qfd, stamp); !r)
            d.action = "not quarantined: " + r.error().message;
    }
    for (auto& m : sum.missing) {
        size_t n = 0;
        auto r = in_write_txn(pool, [&](Txn& txn) -> Result<void> {
            auto dropped = drop_links(txn, m.id, std::nullopt);
            if (!dropped) return std::unexpected(dropped.error());
            n = *dropped;
            return txn.delete_object(m.id);
        });
        m.action = r ? "record and " + std::to_string(n) + " link record" + (n == 1 ? "" : "s") +
                           " dropped"
                     : "not dropped: " + r.error().message;
    }
    // Flags a guest set: cleared on the object itself (the immutable flag may stay while
    // other flags change), nothing else about it is wrong.
    sum.flags_cleared = true;
    for (const auto& [name, flags] : sum.flagged) {
        std::string shown = pool.object_shown(name);
        auto clear = [&]() -> Result<void> {
            auto f = pool.open_object(name);
            if (!f) return std::unexpected(f.error());
            auto now = get_inode_flags(f->get(), shown);
            if (!now) return std::unexpected(now.error());
            return set_inode_flags(f->get(), *now & ~guest_flags(*now), shown);
        };
        if (auto r = clear(); !r) {
            sum.flags_cleared = false;
            log << "unify: error: clearing the flags of " << shown << ": " << r.error().message
                << "\n";
        }
    }
    if (!found.bad_records.empty()) {
        auto r = in_write_txn(pool, [&](Txn& txn) -> Result<void> {
            for (const auto& [name, rec] : found.bad_records) {
                auto id = ObjectId::from_hex(name.substr(3, 64));
                if (auto p = txn.put_object(*id, rec); !p) return p;
            }
            return {};
        });
        sum.bad_records_fixed = r.has_value();
        if (!r) log << "unify: error: rewriting index records: " << r.error().message << "\n";
    }
    return sum;
}

}  // namespace unify
