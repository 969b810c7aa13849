// The progress line of a long command (import, gc, unshare, forget) on a terminal: one line on
// stderr, redrawn in place with '\r' at most four times a second and cleared at the end. It
// shows what the library reports through its ProgressFn (store/progress.h): units done, bytes
// hashed, the rate and, where the size of the phase is known, a percentage and an ETA.
// -v lines and warnings go through log(), which clears the line before they are written.
#pragma once

#include <chrono>
#include <memory>
#include <ostream>
#include <string>

#include "cli/session.h"
#include "store/progress.h"

namespace unify {

// Only when stderr is a terminal, and neither --quiet nor --json.
bool progress_wanted(const Globals& g);

class ProgressLine {
  public:
    explicit ProgressLine(bool enabled);
    ~ProgressLine();
    ProgressLine(const ProgressLine&) = delete;
    ProgressLine& operator=(const ProgressLine&) = delete;

    // For the library's options; empty when disabled.
    ProgressFn callback();
    // The log stream to hand to the library (std::cerr underneath).
    std::ostream& log() { return log_; }
    // Clears the line; call it before printing the summary or an error.
    void finish();

    // The text of one line (no '\r'); `seconds` is the time spent in p's phase so far.
    static std::string format(const Progress& p, double seconds);

  private:
    class ClearingBuf;
    void update(const Progress& p);
    void clear();

    using Clock = std::chrono::steady_clock;
    bool enabled_;
    bool shown_ = false;  // a line is on the terminal now
    bool drawn_once_ = false;
    Clock::time_point last_draw_{};
    std::string phase_;  // of the last update, to restart the clock on a new phase
    Clock::time_point phase_start_{};
    std::unique_ptr<ClearingBuf> buf_;
    std::ostream log_;
};

}  // namespace unify
