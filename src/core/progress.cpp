#include "core/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>

namespace strata {

ProgressBar::ProgressBar(std::string label, bool enabled)
    : label_(std::move(label)), enabled_(enabled && isatty(STDERR_FILENO) == 1) {}

ProgressBar::~ProgressBar() {
  if (enabled_ && !finished_) std::fputc('\n', stderr);
}

void ProgressBar::update(double fraction, std::string_view detail) {
  if (!enabled_) return;
  const auto now = std::chrono::steady_clock::now();
  if (now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  draw(fraction, detail);
}

void ProgressBar::finish() {
  if (!enabled_ || finished_) return;
  draw(1.0, "");
  std::fputc('\n', stderr);
  finished_ = true;
}

void ProgressBar::draw(double fraction, std::string_view detail) {
  constexpr int kWidth = 30;
  fraction = std::clamp(fraction, 0.0, 1.0);
  const int filled = int(fraction * kWidth);
  std::string bar(size_t(filled), '=');
  if (filled < kWidth) bar += '>';
  bar.resize(kWidth, ' ');
  const std::string shown(detail.substr(0, 40));
  std::fprintf(stderr, "\r%s [%s] %3d%% %-40s", label_.c_str(), bar.c_str(), int(fraction * 100.0), shown.c_str());
  std::fflush(stderr);
}

}  // namespace strata
