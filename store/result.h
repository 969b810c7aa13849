// Errors are values: every fallible call returns Result<T>, and the message names the
// operation, the path and errno, so it can be printed as it is at the top.
#pragma once

#include <cerrno>
#include <cstring>
#include <expected>
#include <string>

namespace unify {

struct Error {
    std::string message;
    int err = 0;  // errno of the failing call, 0 when not a system error
};

template <class T = void>
using Result = std::expected<T, Error>;

inline std::unexpected<Error> fail(std::string message, int err = 0) {
    return std::unexpected(Error{std::move(message), err});
}

// "linkat(/vservers/web1/usr/bin/ls): Operation not permitted (EPERM)"
inline std::string sys_message(const std::string& call, const std::string& path, int err) {
    const char* name = strerrorname_np(err);
    return call + "(" + path + "): " + std::strerror(err) + " (" + (name ? name : "?") + ")";
}

inline std::unexpected<Error> sys_fail(const std::string& call, const std::string& path,
                                       int err = errno) {
    return fail(sys_message(call, path, err), err);
}

// Adds what was being done to an error from below: "import web1: " + "linkat(...)".
inline Error context(Error e, const std::string& what) {
    e.message = what + ": " + e.message;
    return e;
}

}  // namespace unify
