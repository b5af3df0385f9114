// Comparing named intermediates of two runs (strata verify / strata compare): error
// metrics, per-op NMSE thresholds, and recording taps.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "backend/backend.h"
#include "model/transformer.h"

namespace strata {

struct TensorDiff {
  std::string name;
  std::vector<int64_t> shape;  // ne order
  double max_abs = 0;
  double nmse = 0;    // sum((a - b)^2) / sum(b^2), b the reference
  double cosine = 1;  // a.b / (|a| |b|)
  double threshold = 0;
  bool pass = true;
  // Tokens routed to other experts at a router near-tie (route_ties.h), left out of
  // nmse_checked, the NMSE that decides pass (nmse itself propagates).
  int64_t route_ties = 0;
  double nmse_checked = 0;
};

// Metrics of `test` against `reference` (same length).
TensorDiff diff_values(std::string name, std::vector<int64_t> shape, std::span<const float> test,
                       std::span<const float> reference);

// The NMSE an op may add, by the op's stable name: 5e-4 for matrix products (q_rope and
// k_rope included: the fused q/k/v matmul writes them; the experts' ffn_moe_*) and attention (quantized weights,
// reduced-precision activations), 1e-7 for elementwise ops and norms.
double op_nmse_threshold(std::string_view name);

// Errors propagate: a tensor may carry its inputs' error as well as its own. A tensor passes
// when nmse <= op threshold + kPropagation * (largest NMSE of the tensors before it).
inline constexpr double kPropagation = 4.0;

// Marks pass/fail on diffs given in execution order, using the rule above (on nmse_checked
// where route_ties > 0).
void apply_thresholds(std::vector<TensorDiff>& diffs);

// Host copies of every tapped tensor of one run, in execution order.
struct Recording {
  std::vector<std::string> order;
  std::map<std::string, Tensor, std::less<>> values;  // host f32
};
// A tap that copies each tensor to the host into `rec` (names repeated across passes get
// a suffix "#k").
Tap recording_tap(Backend& backend, Recording& rec);

// Diffs of every tensor present in both recordings, in `test`'s order.
std::vector<TensorDiff> diff_recordings(const Recording& test, const Recording& reference);

}  // namespace strata
