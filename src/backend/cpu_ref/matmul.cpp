// matmul and matmul_experts: weights of any dequantizable type times f32 activations.
//
//   out[i, j] = (((w[0,i] x[0,j] + w[1,i] x[1,j]) + w[2,i] x[2,j]) + ...)
//
// Each weight row is dequantized once per call with the type's reference dequantize, then
// dotted with every activation column, accumulating in Acc (float or double) in index
// order, as above. Two things make this fast enough for a small model without changing a
// single bit of that result:
//  - columns are taken kTile at a time: the kTile sums of a tile advance together, each
//    still adding its products in index order;
//  - with several threads the weight rows are split into contiguous ranges, and every
//    output element is computed by one thread in the same order: the result does not
//    depend on the thread count.
// matmul_experts computes each column as matmul computes it with the expert's matrix.
#include <algorithm>
#include <exception>
#include <thread>
#include <vector>

#include "backend/cpu_ref/checks.h"
#include "backend/cpu_ref/ops.h"
#include "core/error.h"

namespace strata::cpu_ref {
namespace {

// sum_l w[l] * x[l], in index order.
template <typename Acc>
Acc dot(const float* w, const float* x, int64_t k) {
  Acc sum = 0;
  for (int64_t l = 0; l < k; ++l) sum += Acc(w[l]) * Acc(x[l]);
  return sum;
}

// The kTile dot products of w with columns x[0..kTile-1], each summed in index order
// exactly as dot() sums it; the kTile sums are independent, so the CPU overlaps them
// instead of waiting on one chain of additions.
constexpr size_t kTile = 8;

template <typename Acc>
void dot_tile(const float* w, const float* const* x, int64_t k, Acc* sums) {
  Acc s[kTile] = {};
  for (int64_t l = 0; l < k; ++l) {
    const Acc wl = w[l];
    for (size_t c = 0; c < kTile; ++c) s[c] += wl * Acc(x[c][l]);
  }
  std::copy(s, s + kTile, sums);
}

// out rows i in [first, last):  out[i, j] = sum_l w[l, i] * x[l, j]
template <typename Acc>
void matmul_rows(const Tensor& w, const std::vector<const float*>& x_cols, const std::vector<float*>& out_cols,
                 int64_t first, int64_t last) {
  const int64_t k = w.ne(0);
  const size_t m = x_cols.size();
  std::vector<float> w_row(static_cast<size_t>(k));  // [k] weight row i, dequantized
  for (int64_t i = first; i < last; ++i) {
    w.dequantize_row(w_row.data(), i);
    size_t j = 0;
    for (; j + kTile <= m; j += kTile) {  // whole tiles of columns
      Acc sums[kTile];
      dot_tile<Acc>(w_row.data(), &x_cols[j], k, sums);
      for (size_t c = 0; c < kTile; ++c) out_cols[j + c][i] = float(sums[c]);
    }
    for (; j < m; ++j) out_cols[j][i] = float(dot<Acc>(w_row.data(), x_cols[j], k));  // the columns left over
  }
}

// Runs body(first, last) over [0, n) split into n_threads contiguous ranges; rethrows the
// first exception of any thread.
template <typename Body>
void parallel_ranges(int64_t n, int n_threads, const Body& body) {
  const int64_t n_parts = std::clamp<int64_t>(n_threads, 1, std::max<int64_t>(n, 1));
  if (n_parts == 1) {
    body(0, n);
    return;
  }
  std::vector<std::exception_ptr> errors(static_cast<size_t>(n_parts));
  std::vector<std::thread> threads;
  for (int64_t p = 0; p < n_parts; ++p) {
    threads.emplace_back([&, p] {
      try {
        body(n * p / n_parts, n * (p + 1) / n_parts);
      } catch (...) {
        errors[size_t(p)] = std::current_exception();
      }
    });
  }
  for (auto& t : threads) t.join();
  for (auto& e : errors) {
    if (e) std::rethrow_exception(e);
  }
}

// Below this many multiply-adds per thread a call is not worth starting threads for.
constexpr double kMinWorkPerThread = 1 << 17;

}  // namespace

// w [k, n] any type; x [k, m...] f32; out [n, m...] f32
void matmul(const Tensor& w, const Tensor& x, Tensor& out, Accumulation acc, int n_threads) {
  check_matmul_args(w, x, out, check_dequantizable);
  const int64_t k = w.ne(0);
  const int64_t n = w.ne(1);

  const std::vector<const float*> x_cols = f32_rows(x);        // m columns of [k]
  const std::vector<float*> out_cols = mutable_f32_rows(out);  // m columns of [n]
  const double work = double(k) * double(n) * double(x_cols.size());
  const int threads = int(std::clamp(work / kMinWorkPerThread, 1.0, double(std::max(n_threads, 1))));
  parallel_ranges(n, threads, [&](int64_t first, int64_t last) {
    if (acc == Accumulation::f64) {
      matmul_rows<double>(w, x_cols, out_cols, first, last);
    } else {
      matmul_rows<float>(w, x_cols, out_cols, first, last);
    }
  });
}

// w [k, n, n_expert] any type; x [k, 1 or n_used, m] f32; ids [n_used, m] i32; out [n, n_used, m] f32
void matmul_experts(const Tensor& w, const Tensor& x, const Tensor& ids, Tensor& out, Accumulation acc, int n_threads) {
  check_matmul_experts_args(w, x, ids, out, check_dequantizable);
  const int64_t n_expert = w.ne(2), n_used = ids.ne(0), m = ids.ne(1);
  const std::span<const int32_t> id(reinterpret_cast<const int32_t*>(ids.data()), size_t(n_used * m));
  check_expert_ids(id, n_expert, w);
  for (int64_t e = 0; e < n_expert; ++e) {
    std::vector<const float*> x_cols;  // the columns routed to expert e
    std::vector<float*> out_cols;
    for (int64_t t = 0; t < m; ++t) {
      for (int64_t s = 0; s < n_used; ++s) {
        if (id[size_t(t * n_used + s)] != e) continue;
        x_cols.push_back(reinterpret_cast<const float*>(x.row(x.ne(1) == 1 ? 0 : s, t)));
        out_cols.push_back(reinterpret_cast<float*>(out.mutable_row(s, t)));
      }
    }
    if (x_cols.empty()) continue;
    const Tensor we = w.slice(2, e, 1);  // [k, n] expert e
    const double work = double(w.ne(0)) * double(w.ne(1)) * double(x_cols.size());
    const int threads = int(std::clamp(work / kMinWorkPerThread, 1.0, double(std::max(n_threads, 1))));
    parallel_ranges(w.ne(1), threads, [&](int64_t first, int64_t last) {
      if (acc == Accumulation::f64) {
        matmul_rows<double>(we, x_cols, out_cols, first, last);
      } else {
        matmul_rows<float>(we, x_cols, out_cols, first, last);
      }
    });
  }
}

}  // namespace strata::cpu_ref
