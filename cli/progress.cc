#include "cli/progress.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>

#include "cli/format.h"

namespace unify {

namespace {

constexpr auto kRedraw = std::chrono::milliseconds(250);

// "1.2 GB"; the exact figure belongs in the summary, not here.
std::string short_bytes(double v) {
    const char* units[] = {"bytes", "kB", "MB", "GB", "TB"};
    int u = 0;
    while (v >= 1000 && u < 4) {
        v /= 1000;
        ++u;
    }
    char buf[32];
    snprintf(buf, sizeof buf, u ? "%.1f %s" : "%.0f %s", v, units[u]);
    return buf;
}

std::string duration(double s) {
    auto t = uint64_t(s + 0.5);
    char buf[32];
    if (t >= 3600)
        snprintf(buf, sizeof buf, "%llu:%02llu:%02llu", (unsigned long long)(t / 3600),
                 (unsigned long long)(t / 60 % 60), (unsigned long long)(t % 60));
    else
        snprintf(buf, sizeof buf, "%llu:%02llu", (unsigned long long)(t / 60),
                 (unsigned long long)(t % 60));
    return buf;
}

unsigned terminal_columns() {
    winsize ws{};
    if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
    return 80;
}

}  // namespace

// Forwards to std::cerr's buffer, clearing the progress line before the first byte of text.
class ProgressLine::ClearingBuf : public std::streambuf {
  public:
    explicit ClearingBuf(ProgressLine& line) : line_(line), out_(std::cerr.rdbuf()) {}

  protected:
    // What reaches the terminal is made terminal_safe (store/printable.h): a guest name a
    // message carries unescaped must not send the admin's terminal escape sequences.
    int overflow(int c) override {
        if (c == traits_type::eof()) return traits_type::not_eof(c);
        line_.clear();
        std::string safe = terminal_safe(std::string(1, char(c)));
        return out_->sputn(safe.data(), std::streamsize(safe.size())) ? c : traits_type::eof();
    }
    std::streamsize xsputn(const char* s, std::streamsize n) override {
        line_.clear();
        std::string safe = terminal_safe(std::string(s, size_t(n)));
        return out_->sputn(safe.data(), std::streamsize(safe.size())) ==
                       std::streamsize(safe.size())
                   ? n
                   : 0;
    }
    int sync() override { return out_->pubsync(); }

  private:
    ProgressLine& line_;
    std::streambuf* out_;
};

bool progress_wanted(const Globals& g) {
    return !g.quiet && !g.json && isatty(STDERR_FILENO);
}

ProgressLine::ProgressLine(bool enabled)
    : enabled_(enabled), buf_(std::make_unique<ClearingBuf>(*this)), log_(buf_.get()) {}

ProgressLine::~ProgressLine() {
    finish();
}

ProgressFn ProgressLine::callback() {
    if (!enabled_) return {};
    return [this](const Progress& p) { update(p); };
}

void ProgressLine::finish() {
    clear();
    std::cerr.flush();
}

void ProgressLine::clear() {
    if (!shown_) return;
    std::cerr << "\r\033[K" << std::flush;
    shown_ = false;
}

void ProgressLine::update(const Progress& p) {
    auto now = Clock::now();
    if (p.phase != phase_) {
        phase_ = p.phase;
        phase_start_ = now;
    }
    if (drawn_once_ && now - last_draw_ < kRedraw) return;
    drawn_once_ = true;
    last_draw_ = now;
    std::string line = format(p, std::chrono::duration<double>(now - phase_start_).count());
    // A line that wraps cannot be redrawn with '\r'.
    size_t width = terminal_columns() - 1;
    if (line.size() > width) line.resize(width);
    std::cerr << "\r" << line << "\033[K" << std::flush;
    shown_ = true;
}

std::string ProgressLine::format(const Progress& p, double seconds) {
    std::string line = std::string(p.phase) + ": " + format_count(p.done) + " " + p.unit;
    if (p.bytes) line += ", " + short_bytes(double(p.bytes)) + " hashed";
    if (seconds >= 0.5) {
        line += ", " + format_count(uint64_t(double(p.done) / seconds)) + " " + p.unit + "/s";
        if (p.bytes) line += ", " + short_bytes(double(p.bytes) / seconds) + "/s";
    }
    if (p.parts) {
        uint64_t part = std::min(p.part, p.parts);
        line += ", " + std::to_string(part * 100 / p.parts) + "%";
        if (part && part < p.parts && seconds >= 0.5)
            line += ", ETA " + duration(seconds * double(p.parts - part) / double(part));
    }
    return line;
}

}  // namespace unify
