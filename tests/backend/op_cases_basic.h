// Op cases for the backend harness (op_harness.h): matmul and get_rows for every weight
// type, and the row-wise and element-wise ops. Each has random inputs of an awkward shape
// and an expectation written directly in double precision, independent of any backend.
#pragma once

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "backend/op_harness.h"
#include "core/dtype.h"
#include "core/error.h"

namespace strata::test {

// Thresholds for a backend under test (design.md principle 3).
inline constexpr double kNmseElementwise = 1e-7;  // add, swiglu, rms_norm, rope
inline constexpr double kNmseExact = 1e-12;       // get_rows, store_kv to f32: copies
inline constexpr double kNmseQuantMatmul = 5e-4;  // matmul with a quantized weight
inline constexpr double kNmsePlainMatmul = 1e-5;  // matmul with an f32 / f16 / bf16 weight
// Attention: its expectation reads the cache's own (f16-rounded) values, so what is left is the
// f32 accumulation of scores, softmax and weighted sums, and on CUDA's prompt kernel the f16
// rounding of q and of the probabilities that the tensor cores multiply (about 2^-11 relative
// per operand: NMSE near 1e-7). Not the quantized matmul's 5e-4, which would hide a wrong
// mask or a lost position.
inline constexpr double kNmseAttention = 1e-5;

// x rounded to the nearest f16 value (ties to even), computed from the format's definition:
// 11 significant bits, subnormal quantum 2^-24. (Values stay far from the f16 range limit.)
inline double round_to_f16(double x) {
  if (x == 0) return x;
  const double quantum =
      std::fabs(x) < std::ldexp(1.0, -14) ? std::ldexp(1.0, -24) : std::ldexp(1.0, std::ilogb(x) - 10);
  return std::nearbyint(x / quantum) * quantum;
}

// ---- matmul and get_rows: every type with a reference dequantize ----------------------

// out[j, i] = sum_l w[i, l] * x[j, l] in double, w given as dequantized rows [n][k]
inline std::vector<double> expect_matmul(const std::vector<float>& w, const std::vector<float>& x, int64_t k, int64_t n,
                                         int64_t m) {
  std::vector<double> out(size_t(n * m));
  for (int64_t j = 0; j < m; ++j) {
    for (int64_t i = 0; i < n; ++i) {
      double sum = 0;
      for (int64_t l = 0; l < k; ++l) sum += double(w[size_t(i * k + l)]) * double(x[size_t(j * k + l)]);
      out[size_t(j * n + i)] = sum;
    }
  }
  return out;
}

// prepared: the weight goes through Backend::prepare_matmul_weight first, as the model's do.
inline OpCase matmul_case(DType type, int64_t k, int64_t n, int64_t m, uint32_t seed, bool prepared = false) {
  // The weight is quantized once with the reference quantizer; the expectation uses its
  // exact dequantized values.
  auto w = std::make_shared<Tensor>(Tensor::from_f32(random_values(size_t(k * n), seed), {k, n}, type, "w"));
  auto w_deq = std::make_shared<std::vector<float>>(host_values(*w));
  auto x = std::make_shared<std::vector<float>>(random_values(size_t(k * m), seed + 1));
  const bool quantized = type_traits(type).is_quantized;
  return OpCase{fmt::format("matmul/{}{}/k{}_n{}_m{}", dtype_name(type), prepared ? "/prepared" : "", k, n, m),
                "matmul", quantized ? kNmseQuantMatmul : kNmsePlainMatmul,
                [=](Backend& b) {
                  Tensor wd = b.upload(*w);
                  if (prepared) b.prepare_matmul_weight(wd);
                  Tensor xd = upload_values(b, *x, {k, m});
                  Tensor out = b.alloc(DType::F32, {n, m}, "out");
                  b.matmul(wd, xd, out);
                  return download(b, out);
                },
                [=] { return expect_matmul(*w_deq, *x, k, n, m); }};
}

inline OpCase get_rows_case(DType type, int64_t n_embd, int64_t n_vocab, std::vector<int32_t> ids, uint32_t seed) {
  auto table = std::make_shared<Tensor>(
      Tensor::from_f32(random_values(size_t(n_embd * n_vocab), seed), {n_embd, n_vocab}, type, "table"));
  auto table_deq = std::make_shared<std::vector<float>>(host_values(*table));
  const int64_t n_ids = int64_t(ids.size());
  return OpCase{fmt::format("get_rows/{}/e{}_v{}_n{}", dtype_name(type), n_embd, n_vocab, n_ids), "get_rows",
                kNmseExact,
                [=](Backend& b) {
                  Tensor td = b.upload(*table);
                  Tensor out = b.alloc(DType::F32, {n_embd, n_ids}, "out");
                  b.get_rows(td, ids, out);
                  return download(b, out);
                },
                [=] {
                  std::vector<double> out;
                  for (int32_t id : ids) {
                    for (int64_t e = 0; e < n_embd; ++e) out.push_back((*table_deq)[size_t(id * n_embd + e)]);
                  }
                  return out;
                }};
}

// Block-multiple k for quantized types (k must be whole blocks), odd k for plain types.
inline void add_weight_type_cases(std::vector<OpCase>& cases, DType type, uint32_t seed) {
  const int64_t block = type_traits(type).block_size;
  const int64_t k1 = block == 1 ? 37 : block;
  const int64_t k2 = block == 1 ? 1 : 3 * block;
  for (bool prepared : {false, true}) {
    cases.push_back(matmul_case(type, k1, 1, 1, seed, prepared));
    cases.push_back(matmul_case(type, k2, 7, 3, seed + 10, prepared));
    cases.push_back(matmul_case(type, k1, 13, 5, seed + 20, prepared));
  }
  cases.push_back(get_rows_case(type, k1, 9, {0, 8, 3, 3}, seed + 30));
}

// ---- row-wise and element-wise ops ---------------------------------------------------

inline OpCase rms_norm_case(int64_t n, int64_t rows, float eps, uint32_t seed) {
  auto x = std::make_shared<std::vector<float>>(random_values(size_t(n * rows), seed, 3.0f));
  auto w = std::make_shared<std::vector<float>>(random_values(size_t(n), seed + 1));
  return OpCase{fmt::format("rms_norm/n{}_r{}", n, rows), "rms_norm", kNmseElementwise,
                [=](Backend& b) {
                  Tensor xd = upload_values(b, *x, {n, rows});
                  Tensor wd = upload_values(b, *w, {n});
                  Tensor out = b.alloc(DType::F32, {n, rows}, "out");
                  b.rms_norm(xd, wd, eps, out);
                  return download(b, out);
                },
                [=] {
                  std::vector<double> out(x->size());
                  for (int64_t r = 0; r < rows; ++r) {
                    double ss = 0;
                    for (int64_t i = 0; i < n; ++i) ss += double((*x)[size_t(r * n + i)]) * (*x)[size_t(r * n + i)];
                    const double rms = std::sqrt(ss / double(n) + double(eps));
                    for (int64_t i = 0; i < n; ++i) {
                      out[size_t(r * n + i)] = double((*x)[size_t(r * n + i)]) / rms * double((*w)[size_t(i)]);
                    }
                  }
                  return out;
                }};
}

// a [n, rows] + b [n, rows] (or b [n] when broadcast)
inline OpCase add_case(int64_t n, int64_t rows, bool broadcast, uint32_t seed) {
  auto a = std::make_shared<std::vector<float>>(random_values(size_t(n * rows), seed));
  auto bv = std::make_shared<std::vector<float>>(random_values(size_t(broadcast ? n : n * rows), seed + 1));
  return OpCase{fmt::format("add/n{}_r{}{}", n, rows, broadcast ? "_row" : ""), "add", kNmseElementwise,
                [=](Backend& b) {
                  Tensor ad = upload_values(b, *a, {n, rows});
                  Tensor bd = broadcast ? upload_values(b, *bv, {n}) : upload_values(b, *bv, {n, rows});
                  Tensor out = b.alloc(DType::F32, {n, rows}, "out");
                  b.add(ad, bd, out);
                  return download(b, out);
                },
                [=] {
                  std::vector<double> out(a->size());
                  for (size_t i = 0; i < out.size(); ++i) {
                    out[i] = double((*a)[i]) + double((*bv)[broadcast ? i % size_t(n) : i]);
                  }
                  return out;
                }};
}

inline OpCase swiglu_case(int64_t n, int64_t rows, uint32_t seed) {
  auto gate = std::make_shared<std::vector<float>>(random_values(size_t(n * rows), seed, 4.0f));
  auto up = std::make_shared<std::vector<float>>(random_values(size_t(n * rows), seed + 1));
  return OpCase{fmt::format("swiglu/n{}_r{}", n, rows), "swiglu", kNmseElementwise,
                [=](Backend& b) {
                  Tensor gd = upload_values(b, *gate, {n, rows});
                  Tensor ud = upload_values(b, *up, {n, rows});
                  Tensor out = b.alloc(DType::F32, {n, rows}, "out");
                  b.swiglu(gd, ud, out);
                  return download(b, out);
                },
                [=] {
                  std::vector<double> out(gate->size());
                  for (size_t i = 0; i < out.size(); ++i) {
                    const double g = (*gate)[i];
                    out[i] = g / (1.0 + std::exp(-g)) * double((*up)[i]);
                  }
                  return out;
                }};
}

// gelu(g) * up with the tanh GELU; gate spread 4 reaches both saturated ends of tanh.
inline OpCase geglu_case(int64_t n, int64_t rows, uint32_t seed) {
  auto gate = std::make_shared<std::vector<float>>(random_values(size_t(n * rows), seed, 4.0f));
  auto up = std::make_shared<std::vector<float>>(random_values(size_t(n * rows), seed + 1));
  return OpCase{fmt::format("geglu/n{}_r{}", n, rows), "geglu", kNmseElementwise,
                [=](Backend& b) {
                  Tensor gd = upload_values(b, *gate, {n, rows});
                  Tensor ud = upload_values(b, *up, {n, rows});
                  Tensor out = b.alloc(DType::F32, {n, rows}, "out");
                  b.geglu(gd, ud, out);
                  return download(b, out);
                },
                [=] {
                  std::vector<double> out(gate->size());
                  for (size_t i = 0; i < out.size(); ++i) {
                    const double g = (*gate)[i];
                    const double gelu = 0.5 * g * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (g + 0.044715 * g * g * g)));
                    out[i] = gelu * double((*up)[i]);
                  }
                  return out;
                }};
}

// out = s * x, into a separate output or in place.
inline OpCase scale_case(int64_t n, int64_t rows, float s, bool in_place, uint32_t seed) {
  auto x = std::make_shared<std::vector<float>>(random_values(size_t(n * rows), seed));
  return OpCase{fmt::format("scale/n{}_r{}_s{}{}", n, rows, s, in_place ? "_in_place" : ""), "scale", kNmseElementwise,
                [=](Backend& b) {
                  Tensor xd = upload_values(b, *x, {n, rows});
                  if (in_place) {
                    b.scale(xd, s, xd);
                    return download(b, xd);
                  }
                  Tensor out = b.alloc(DType::F32, {n, rows}, "out");
                  b.scale(xd, s, out);
                  return download(b, out);
                },
                [=] {
                  std::vector<double> out(x->size());
                  for (size_t i = 0; i < out.size(); ++i) out[i] = double((*x)[i]) * double(s);
                  return out;
                }};
}

// Rows of n values around `offset` (a large offset checks the max subtraction).

}  // namespace strata::test
