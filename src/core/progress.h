// A one-line progress bar on stderr, drawn only when stderr is a terminal.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

namespace strata {

class ProgressBar {
public:
  // `enabled` false (or stderr not a terminal) makes every call a no-op.
  ProgressBar(std::string label, bool enabled);
  ~ProgressBar();
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;

  // fraction in [0, 1]; redraws at most ~10 times a second.
  void update(double fraction, std::string_view detail = {});
  // Draws 100% and ends the line.
  void finish();

private:
  void draw(double fraction, std::string_view detail);
  std::string label_;
  bool enabled_;
  bool finished_ = false;
  std::chrono::steady_clock::time_point last_draw_{};
};

}  // namespace strata
