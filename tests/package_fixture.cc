#include "tests/package_fixture.h"

#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <sstream>

#include "tests/test_support.h"

namespace unify::test {

namespace fs = std::filesystem;

// Runs a shell command; exit status and its stdout + stderr.
std::pair<int, std::string> shell(const std::string& cmd) {
    std::string out;
    FILE* p = popen(("(" + cmd + ") 2>&1").c_str(), "r");
    if (!p) return {-1, "popen failed"};
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    int st = pclose(p);
    return {WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st), out};
}

// Lines that report a problem: what an admin would see scroll by as failure.
std::string problem_lines(const std::string& out) {
    std::string bad, line;
    std::istringstream in(out);
    while (std::getline(in, line)) {
        if (contains(line, "RPM should not be used directly") ||
            contains(line, "assuming you know what you are doing"))
            continue;  // Debian's rpm says this on every call
        if (contains(line, "rror") || contains(line, "arning") || contains(line, "not permitted") ||
            contains(line, "rm: ") || contains(line, "annot"))
            bad += line + "\n";
    }
    return bad;
}

// The fixture's files, as each version's package ships them. /lib/fixture is reached
// through the guest's /lib -> usr/lib (merged /usr), so the package database lists /lib/...
// and the index /usr/lib/...
const char* const kFixtureScript = R"SH(set -e
mk() {  # mk DIR VERSION: the package tree
  mkdir -p "$1/usr/lib/python3/dist-packages/fixture" "$1/usr/share/fixture" "$1/lib/fixture"
  echo "print('v$2')" > "$1/usr/lib/python3/dist-packages/fixture/mod.py"
  echo "data v$2" > "$1/usr/share/fixture/data"
  head -c 5000 /dev/zero | tr '\0' c > "$1/usr/share/fixture/common"
  echo "[Unit] v1" > "$1/lib/fixture/unit.service"
  if [ -n "${FIXTURE_BIG:-}" ]; then head -c 65536 /dev/zero | tr '\0' "$2" > "$1/usr/share/fixture/big"; fi
  find "$1" -exec touch -h -d @1700000000 {} +
}
)SH";

void build_debs(const std::string& out, bool big) {
    std::string script = std::string(big ? "FIXTURE_BIG=1\n" : "") + kFixtureScript + "mkdir -p '" +
                         out + "'; cd '" + out +
                         "'\n"
                         "for v in 1 2; do\n"
                         "  mk pkg$v $v; mkdir -p pkg$v/DEBIAN\n"
                         "  printf 'Package: fixture\\nVersion: %s.0\\nArchitecture: all\\n"
                         "Maintainer: t <t@example.org>\\nDescription: fixture\\n' $v "
                         "> pkg$v/DEBIAN/control\n"
                         // postinst: what py3compile does; prerm: what py3clean does.
                         "  printf '#!/bin/sh\\nset -e\\nd=\"$DPKG_ROOT/usr/lib/python3/"
                         "dist-packages/fixture\"\\nmkdir -p \"$d/__pycache__\"\\ncp \"$d/mod.py\" "
                         "\"$d/__pycache__/mod.cpython-311.pyc\"\\n' > pkg$v/DEBIAN/postinst\n"
                         "  printf '#!/bin/sh\\nset -e\\nd=\"$DPKG_ROOT/usr/lib/python3/"
                         "dist-packages/fixture/__pycache__\"\\nrm -f \"$d\"/*.pyc\\nrmdir \"$d\" "
                         "|| true\\n' > pkg$v/DEBIAN/prerm\n"
                         "  chmod 755 pkg$v/DEBIAN/postinst pkg$v/DEBIAN/prerm\n"
                         "  dpkg-deb --root-owner-group -b pkg$v fixture_$v.deb >/dev/null\n"
                         "done\n";
    ASSERT_EQ(sh(script), 0);
}

// What dpkg --root needs of a root: status, available, info/, updates/ (and the guest's
// merged-/usr symlink).
void dpkg_guest(const std::string& root) {
    fs::create_directories(root + "/var/lib/dpkg/info");
    fs::create_directories(root + "/var/lib/dpkg/updates");
    fs::create_directories(root + "/usr/lib");
    write_file(root + "/var/lib/dpkg/status", "");
    write_file(root + "/var/lib/dpkg/available", "");
    ASSERT_EQ(symlink("usr/lib", (root + "/lib").c_str()), 0);
}

std::pair<int, std::string> dpkg(const std::string& root, const std::string& args) {
    return shell("dpkg --root='" + root + "' --force-script-chrootless " + args);
}

std::string need_tools(std::initializer_list<const char*> tools) {
    for (const char* t : tools)
        if (auto r = need_tool(t); !r.empty()) return r;
    return "";
}

}  // namespace unify::test
