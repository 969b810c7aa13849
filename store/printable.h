// Guest file names are untrusted bytes: before one reaches a terminal or a log, its control
// characters are escaped, or a guest could forge output lines with a newline in a name, or
// send the admin's terminal escape sequences (set its title, rewrite the screen).
#pragma once

#include <string>

namespace unify {

// Control characters, backslash and bytes that are not valid UTF-8 become \n, \t, \\ or
// \xNN: for a name inside a line of output.
std::string printable(const std::string& s);

// Control characters other than newline and tab become \xNN: for whole messages on their
// way to the terminal, whose own line breaks stay, as the last guard for a name that was
// put into a message without printable().
std::string terminal_safe(const std::string& s);

}  // namespace unify
