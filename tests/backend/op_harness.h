// A data-driven harness for backend ops (design principle 3), shaped to be reused for
// every backend: a table of OpCase, each run on "the backend under test" and compared with
// an independent expectation under an NMSE threshold per op,
//   NMSE = sum((want - got)^2) / sum(want^2).
// A case owns its inputs as plain host vectors and builds fresh tensors for every run
// (upload, alloc), so in-place ops never disturb the data the expectation is computed from.
#pragma once

#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <ostream>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "core/error.h"
#include "core/tensor.h"

namespace strata::test {

// The message of the strata::Error that f throws, or "" if it throws none.
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

struct OpCase {
  std::string name;  // "matmul/q4_0/k64_n7_m3"
  std::string op;    // "matmul": for filtering and reporting
  double max_nmse;   // the op's threshold for a backend under test (design.md)
  // Runs the op on a backend, returns its output as host f32 in storage order.
  std::function<std::vector<float>(Backend&)> run;
  // The expected output, computed directly in double precision from the same inputs.
  std::function<std::vector<double>()> expect;
};

inline void PrintTo(const OpCase& c, std::ostream* os) {
  *os << c.name;
}

// NMSE of `got` against `want`; +inf if sizes differ or anything is not finite. When want
// is all zeros, the plain sum of squared errors.
inline double nmse(std::span<const double> want, std::span<const float> got) {
  if (want.size() != got.size()) return std::numeric_limits<double>::infinity();
  double err = 0, ref = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    const double d = want[i] - double(got[i]);
    err += d * d;
    ref += want[i] * want[i];
  }
  if (!std::isfinite(err) || !std::isfinite(ref)) return std::numeric_limits<double>::infinity();
  return ref > 0 ? err / ref : err;
}

inline std::vector<double> to_double(std::span<const float> x) {
  return {x.begin(), x.end()};
}

// The values of a host tensor in storage order, as f32.
inline std::vector<float> host_values(const Tensor& t) {
  const Tensor f = t.to_f32();
  const auto* p = reinterpret_cast<const float*>(f.data());
  return std::vector<float>(p, p + f.n_elements());
}

// Uploads f32 values of shape `ne` (storage order) as a backend tensor of type `type`
// (quantized on the host with the reference quantizer when type is not f32).
inline Tensor upload_values(Backend& b, std::span<const float> values, ShapeRef ne, DType type = DType::F32,
                            std::string name = {}) {
  return b.upload(Tensor::from_f32(values, ne, type, std::move(name)));
}

// The backend output `t` as host values.
inline std::vector<float> download(Backend& b, const Tensor& t) {
  b.synchronize();
  return host_values(b.to_host_f32(t));
}

// Seeded normal(0, sigma) values.
inline std::vector<float> random_values(size_t n, uint32_t seed, float sigma = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, sigma);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

}  // namespace strata::test
