// The command table: every subcommand, its options, and the function that runs it.
#pragma once

namespace unify {

// Exit codes: 0 ok, 1 error, 2 usage.
int run_cli(int argc, char** argv);

}  // namespace unify
