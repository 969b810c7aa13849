#include "cli/commands.h"

int main(int argc, char** argv) {
    return unify::run_cli(argc, argv);
}
