// Op cases for the backend harness (op_harness.h): the mixture-of-experts ops route_top_k,
// matmul_experts (every weight type with a reference dequantize) and sum_experts, with
// expectations written directly in double precision from the definitions in backend.h.
#pragma once

#include <algorithm>
#include <cmath>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "backend/op_cases_basic.h"

namespace strata::test {

// An i32 backend tensor [n_used, m] holding `ids` (token-major: ids[t * n_used + s]).
inline Tensor upload_ids(Backend& b, const std::vector<int32_t>& ids, int64_t n_used, int64_t m) {
  Tensor host = Tensor::empty(DType::I32, {n_used, m}, "ids");
  std::copy(ids.begin(), ids.end(), reinterpret_cast<int32_t*>(host.mutable_data()));
  return b.upload(host);
}

// ---- route_top_k ---------------------------------------------------------------------

// The n_used largest of each column (ties: lower index first) and the softmax over them.
inline std::vector<double> expect_route(const std::vector<float>& logits, int64_t n_expert, int64_t n_used, int64_t m) {
  std::vector<double> ids, weights;
  for (int64_t t = 0; t < m; ++t) {
    const float* l = &logits[size_t(t * n_expert)];
    std::vector<int32_t> order(static_cast<size_t>(n_expert));
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return l[a] > l[b]; });
    double sum = 0;
    for (int64_t s = 0; s < n_used; ++s) sum += std::exp(double(l[order[size_t(s)]]));
    for (int64_t s = 0; s < n_used; ++s) {
      ids.push_back(order[size_t(s)]);
      weights.push_back(std::exp(double(l[order[size_t(s)]])) / sum);
    }
  }
  ids.insert(ids.end(), weights.begin(), weights.end());
  return ids;
}

// Logits [n_expert, m]; ties: each column repeats some values exactly. Output: the ids (as
// floats) followed by the weights.
inline OpCase route_top_k_case(int64_t n_expert, int64_t n_used, int64_t m, bool ties, uint32_t seed) {
  auto logits = std::make_shared<std::vector<float>>(random_values(size_t(n_expert * m), seed, 2.0f));
  if (ties) {
    for (int64_t t = 0; t < m; ++t) {
      float* l = &(*logits)[size_t(t * n_expert)];
      for (int64_t e = 1; e < n_expert; e += 2) l[e] = l[e - 1];  // pairs of equal logits
    }
  }
  return OpCase{fmt::format("route_top_k/e{}_k{}_m{}{}", n_expert, n_used, m, ties ? "_ties" : ""), "route_top_k",
                kNmseElementwise,
                [=](Backend& b) {
                  Tensor ld = upload_values(b, *logits, {n_expert, m});
                  Tensor ids = b.alloc(DType::I32, {n_used, m}, "ids");
                  Tensor weights = b.alloc(DType::F32, {n_used, m}, "weights");
                  b.route_top_k(ld, ids, weights);
                  b.synchronize();
                  std::vector<int32_t> id(size_t(n_used * m));
                  b.read_i32(ids, id);
                  std::vector<float> out(id.begin(), id.end());
                  const std::vector<float> w = download(b, weights);
                  out.insert(out.end(), w.begin(), w.end());
                  return out;
                },
                [=] { return expect_route(*logits, n_expert, n_used, m); }};
}

// ---- matmul_experts ------------------------------------------------------------------

// w [k, n, n_expert] quantized to `type`; x [k, x_slots, m] with x_slots 1 (every slot reads
// the token's column) or n_used; ids fixed and in range, with repeats across tokens.
inline OpCase matmul_experts_case(DType type, int64_t k, int64_t n, int64_t n_expert, int64_t n_used, int64_t x_slots,
                                  int64_t m, uint32_t seed) {
  auto w = std::make_shared<Tensor>(
      Tensor::from_f32(random_values(size_t(k * n * n_expert), seed), {k, n, n_expert}, type, "ffn_up_exps"));
  auto w_deq = std::make_shared<std::vector<float>>(host_values(*w));
  auto x = std::make_shared<std::vector<float>>(random_values(size_t(k * x_slots * m), seed + 1));
  std::vector<int32_t> ids(size_t(n_used * m));
  for (int64_t t = 0; t < m; ++t) {
    for (int64_t s = 0; s < n_used; ++s) ids[size_t(t * n_used + s)] = int32_t((t * 3 + s * 5 + seed) % n_expert);
  }
  const bool quantized = type_traits(type).is_quantized;
  return OpCase{
      fmt::format("matmul_experts/{}/k{}_n{}_e{}_k{}_x{}_m{}", dtype_name(type), k, n, n_expert, n_used, x_slots, m),
      "matmul_experts", quantized ? kNmseQuantMatmul : kNmsePlainMatmul,
      [=](Backend& b) {
        Tensor wd = b.upload(*w);
        Tensor xd = upload_values(b, *x, {k, x_slots, m});
        Tensor idd = upload_ids(b, ids, n_used, m);
        Tensor out = b.alloc(DType::F32, {n, n_used, m}, "out");
        b.matmul_experts(wd, xd, idd, out);
        return download(b, out);
      },
      [=] {
        std::vector<double> out;
        for (int64_t t = 0; t < m; ++t) {
          for (int64_t s = 0; s < n_used; ++s) {
            const int64_t e = ids[size_t(t * n_used + s)];
            const float* xc = &(*x)[size_t((t * x_slots + (x_slots == 1 ? 0 : s)) * k)];
            for (int64_t i = 0; i < n; ++i) {
              const float* wr = &(*w_deq)[size_t((e * n + i) * k)];
              double sum = 0;
              for (int64_t l = 0; l < k; ++l) sum += double(wr[l]) * double(xc[l]);
              out.push_back(sum);
            }
          }
        }
        return out;
      }};
}

// ---- sum_experts ---------------------------------------------------------------------

inline OpCase sum_experts_case(int64_t n, int64_t n_used, int64_t m, uint32_t seed) {
  auto y = std::make_shared<std::vector<float>>(random_values(size_t(n * n_used * m), seed));
  auto w = std::make_shared<std::vector<float>>(random_values(size_t(n_used * m), seed + 1, 0.5f));
  return OpCase{fmt::format("sum_experts/n{}_k{}_m{}", n, n_used, m), "sum_experts", kNmseElementwise,
                [=](Backend& b) {
                  Tensor yd = upload_values(b, *y, {n, n_used, m});
                  Tensor wd = upload_values(b, *w, {n_used, m});
                  Tensor out = b.alloc(DType::F32, {n, m}, "out");
                  b.sum_experts(yd, wd, out);
                  return download(b, out);
                },
                [=] {
                  std::vector<double> out;
                  for (int64_t t = 0; t < m; ++t) {
                    for (int64_t i = 0; i < n; ++i) {
                      double sum = 0;
                      for (int64_t s = 0; s < n_used; ++s) {
                        sum += double((*w)[size_t(t * n_used + s)]) * double((*y)[size_t((t * n_used + s) * n + i)]);
                      }
                      out.push_back(sum);
                    }
                  }
                  return out;
                }};
}

// Every case of the three ops: each weight type at a decode and a prompt shape, with x shared
// by the slots (gate, up) and one x per slot (down).
inline void add_expert_cases(std::vector<OpCase>& cases, uint32_t seed) {
  for (const TypeTraits& t : all_type_traits()) {
    if (t.dequantize == nullptr) continue;
    const int64_t k = t.block_size == 1 ? 37 : t.block_size;
    cases.push_back(matmul_experts_case(t.type, k, 5, 4, 2, 1, 1, seed += 10));
    cases.push_back(matmul_experts_case(t.type, 2 * k, 3, 8, 3, 3, 6, seed += 10));
  }
  cases.push_back(matmul_experts_case(DType::Q4_K, 256, 17, 16, 8, 1, 11, seed += 10));  // Qwen3-MoE's 8 of 128
  for (auto [e, k, m, ties] : {std::tuple{4, 1, 1, false}, {8, 2, 5, false}, {8, 2, 3, true}, {128, 8, 3, false}}) {
    cases.push_back(route_top_k_case(e, k, m, ties, ++seed));
  }
  cases.push_back(route_top_k_case(6, 6, 2, true, ++seed));  // every expert
  cases.push_back(sum_experts_case(1, 1, 1, ++seed));
  cases.push_back(sum_experts_case(37, 2, 5, ++seed));
  cases.push_back(sum_experts_case(64, 8, 3, ++seed));
}

}  // namespace strata::test
