#include <malloc.h>

#include "cli/commands.h"
#include "store/fd_limit.h"

int main(int argc, char** argv) {
    // One malloc arena for every thread. The threads of parallel loops are kept between loops
    // (store/parallel.h), each with the arena it first used, and each arena kept what it held
    // at its peak: a 100,000-file import's RssAnon was 17.5 to 18.8 MiB with kept threads,
    // 13.9 with one arena (15.3 to 16.7 before threads were kept), bench P6. Imports of
    // g1..g4 were as fast with one arena (bench/ab-import, B/A 1.00): the loops' threads
    // mostly make system calls and hash, and allocate little.
    mallopt(M_ARENA_MAX, 1);
    unify::reserve_fd_table();
    return unify::run_cli(argc, argv);
}
