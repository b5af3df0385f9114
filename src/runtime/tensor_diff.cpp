#include "runtime/tensor_diff.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"
#include "runtime/route_ties.h"

namespace strata {

TensorDiff diff_values(std::string name, std::vector<int64_t> shape, std::span<const float> test,
                       std::span<const float> reference) {
  if (test.size() != reference.size()) {
    fail("tensor '{}': {} values against {} in the reference", name, test.size(), reference.size());
  }
  TensorDiff d{std::move(name), std::move(shape)};
  double err2 = 0, ref2 = 0, test2 = 0, dot = 0;
  for (size_t i = 0; i < test.size(); ++i) {
    const double a = test[i], b = reference[i];
    const double e = std::isnan(a) != std::isnan(b) ? std::numeric_limits<double>::infinity() : a - b;
    d.max_abs = std::max(d.max_abs, std::fabs(e));
    err2 += e * e;
    ref2 += b * b;
    test2 += a * a;
    dot += a * b;
  }
  d.nmse = ref2 > 0 ? err2 / ref2 : (err2 > 0 ? std::numeric_limits<double>::infinity() : 0.0);
  d.cosine = ref2 > 0 && test2 > 0 ? dot / std::sqrt(ref2 * test2) : (err2 == 0 ? 1.0 : 0.0);
  if (std::isnan(d.nmse)) d.nmse = std::numeric_limits<double>::infinity();
  return d;
}

double op_nmse_threshold(std::string_view name) {
  const size_t dot = name.rfind('.');
  std::string_view op = dot == std::string_view::npos ? name : name.substr(dot + 1);
  op = op.substr(0, op.find('#'));
  // q_rope and k_rope are the products of the fused q/k/v matmul (its epilogue ropes them).
  static constexpr std::string_view kProducts[] = {
      "q",      "k",       "v",      "q_rope",         "k_rope",       "attn_out",   "attn_proj",   "ffn_gate",
      "ffn_up", "ffn_out", "logits", "ffn_moe_logits", "ffn_moe_gate", "ffn_moe_up", "ffn_moe_down"};
  for (std::string_view p : kProducts) {
    if (op == p) return 5e-4;
  }
  return 1e-7;
}

void apply_thresholds(std::vector<TensorDiff>& diffs) {
  double upstream = 0;
  for (auto& d : diffs) {
    d.threshold = op_nmse_threshold(d.name) + kPropagation * upstream;
    d.pass = (d.route_ties > 0 ? d.nmse_checked : d.nmse) <= d.threshold;
    upstream = std::max(upstream, d.nmse);
  }
}

Tap recording_tap(Backend& backend, Recording& rec) {
  return [&backend, &rec](std::string_view name, const Tensor& value) {
    std::string key(name);
    for (int k = 1; rec.values.contains(key); ++k) key = std::string(name) + "#" + std::to_string(k);
    rec.order.push_back(key);
    rec.values.emplace(key, backend.to_host_f32(value));
  };
}

std::vector<TensorDiff> diff_recordings(const Recording& test, const Recording& reference) {
  std::vector<TensorDiff> diffs;
  for (const auto& name : test.order) {
    const auto ref = reference.values.find(name);
    if (ref == reference.values.end()) continue;
    const Tensor& a = test.values.at(name);
    const Tensor& b = ref->second;
    const auto* pa = reinterpret_cast<const float*>(a.data());
    const auto* pb = reinterpret_cast<const float*>(b.data());
    std::vector<int64_t> shape(a.ne().begin(), a.ne().begin() + std::max(a.n_dims(), 2));
    diffs.push_back(diff_values(name, shape, {pa, size_t(a.n_elements())}, {pb, size_t(b.n_elements())}));
  }
  mark_route_ties(test, reference, diffs);
  apply_thresholds(diffs);
  return diffs;
}

}  // namespace strata
