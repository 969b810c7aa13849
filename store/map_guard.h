// A memory-mapped file that is shorter than what refers into it (a truncated or damaged LMDB
// index, a disk error under a mapped page) makes the read fault: SIGBUS, or SIGSEGV past the
// mapping's end. The process would die by the signal, with no word of which file or what to
// do. A range registered here turns such a fault into an error message naming the file and
// what to run, and exit status 1: the one place unify exits from deep inside, since a
// faulting read cannot be turned into a value. Nothing is lost by exiting there: an LMDB
// write transaction that never committed leaves the index as it was, and an interrupted
// protection window is finished by the next writer (store/intent.h).
#pragma once

#include <cstddef>
#include <string>

namespace unify {

// Registers [addr, addr + len): a fault inside prints "unify: error: " + message and exits 1.
// Up to a few ranges at once (one per open index); further ones are not guarded.
void guard_mapping(const void* addr, size_t len, const std::string& message);
void unguard_mapping(const void* addr);

}  // namespace unify
