#include "sampling/params.h"

#include <cmath>

#include "core/error.h"

namespace strata {

namespace {

void require_finite(const char* flag, float value) {
  if (!std::isfinite(value)) fail("{} must be a finite number, got {}", flag, value);
}

}  // namespace

void validate(const SamplingParams& p) {
  require_finite("--temp", p.temperature);
  if (p.temperature < 0.0f) fail("--temp must be >= 0 (0 = greedy), got {}", p.temperature);
  if (p.top_k < 0) fail("--top-k must be >= 0 (0 = off), got {}", p.top_k);
  // NaN fails every comparison, so these range checks reject it too.
  if (!(p.top_p > 0.0f && p.top_p <= 1.0f)) fail("--top-p must be in (0, 1], got {}", p.top_p);
  if (!(p.min_p >= 0.0f && p.min_p <= 1.0f)) fail("--min-p must be in [0, 1], got {}", p.min_p);
  require_finite("--repeat-penalty", p.repeat_penalty);
  if (p.repeat_penalty <= 0.0f) fail("--repeat-penalty must be > 0 (1 = off), got {}", p.repeat_penalty);
  require_finite("--frequency-penalty", p.frequency_penalty);
  require_finite("--presence-penalty", p.presence_penalty);
  if (p.penalty_last_n < -1) {
    fail("--repeat-last-n must be >= -1 (-1 = whole context, 0 = off), got {}", p.penalty_last_n);
  }
}

}  // namespace strata
