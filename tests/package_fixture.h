// The fixture package of the package-upgrade tests, shared by tests/package_upgrade_test.cc
// (hardlink pools) and tests/reflink_test.cc (reflink pools): the shell script that makes
// its trees in two versions, the .debs built from them with dpkg-deb, a root dpkg --root can
// install into, and the runners.
#pragma once

#include <initializer_list>
#include <string>
#include <utility>

namespace unify::test {

// Runs a shell command; exit status and its stdout + stderr.
std::pair<int, std::string> shell(const std::string& cmd);

// Lines that report a problem: what an admin would see scroll by as failure.
std::string problem_lines(const std::string& out);

// A shell function `mk DIR VERSION` that makes the fixture's package tree (set -e first).
extern const char* const kFixtureScript;

// fixture_1.deb and fixture_2.deb in `out`. big: each version also ships
// /usr/share/fixture/big, 64 KiB of its version digit (a file too large for btrfs to keep
// inline, that changes in the upgrade).
void build_debs(const std::string& out, bool big = false);

// What dpkg --root needs of a root: status, available, info/, updates/ (and the guest's
// merged-/usr symlink).
void dpkg_guest(const std::string& root);

// dpkg --root=ROOT --force-script-chrootless ARGS: exit status and output.
std::pair<int, std::string> dpkg(const std::string& root, const std::string& args);

// The first of `tools` missing from PATH, as need_tool says it, or "".
std::string need_tools(std::initializer_list<const char*> tools);

}  // namespace unify::test
