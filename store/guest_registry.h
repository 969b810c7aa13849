// The guest registry (POOL/guests.conf): the list of guests, kept outside the index so that
// it survives the loss of the index and `unify reindex` knows which roots to walk. The index
// stays the source every command reads; this file is its durable copy, rewritten whole (temp
// file, fsync, rename, fsync of the pool directory) by every writer that changes a guest:
// import after registering a guest and after it completes (unless only its last import time
// moved: sync_guest_registry), forget after removing one.
//
// Format, one record per line, fields separated by TAB; in a value, backslash, TAB, newline
// and other control bytes are written as \\, \t, \n and \xHH, every other byte as it is
// (paths are bytes, not necessarily UTF-8):
//   # comment
//   version<TAB>1
//   guest<TAB>id=1<TAB>name=web1<TAB>root=/vservers/web1<TAB>last_import=1732456000
//        <TAB>min_size=1<TAB>package_dbs=dpkg<TAB>config_files=310<TAB>root_dev=2049
//        <TAB>root_ino=131073[<TAB>rule=-GLOB]...
// (one line). "rule" repeats, in the guest's order. A field GuestRecord gains must be added
// here too (write_guest_registry and its parser): reindex restores guests from this file only.
#pragma once

#include <vector>

#include "store/index.h"
#include "store/pool.h"

namespace unify {

// Replaces POOL/guests.conf with exactly these guests.
Result<void> write_guest_registry(const Pool& pool, const std::vector<GuestRecord>& guests);

// The guests in POOL/guests.conf. A missing file is an error with err == ENOENT (a pool made
// before the registry existed, or no guest was ever registered).
Result<std::vector<GuestRecord>> read_guest_registry(const Pool& pool);

// "COMMAND: no guest named 'NAME'", with what to do: see unify list, or, where guests.conf
// lists the name though the index does not (an index restored from an older backup), run
// unify reindex. errno 0: not a system error.
Error no_guest_named(const Pool& pool, const std::string& command, const std::string& name);

// Writes the guests the index holds now (one read transaction): what a writer calls after
// the index commit that changed a guest. A file that differs only in the guests' last import
// times (each still 0 where the index's is) is left as it is: the time it keeps for a guest
// is that of the import that last changed the file, and `list` reads the index's.
Result<void> sync_guest_registry(Pool& pool);

}  // namespace unify
