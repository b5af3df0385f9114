// The table of op cases that every backend is tested with (op_harness.h): awkward shapes
// (1 row, odd sizes, k of one block, partial rope, GQA, f16 caches) and every weight type
// with a reference dequantize.
#pragma once

#include <tuple>
#include <utility>
#include <vector>

#include "backend/op_cases_attention.h"
#include "backend/op_cases_basic.h"
#include "backend/op_cases_experts.h"
#include "backend/op_cases_paged.h"

namespace strata::test {

// ---- the table -----------------------------------------------------------------------

inline std::vector<OpCase> all_op_cases() {
  std::vector<OpCase> cases;
  uint32_t seed = 1000;
  for (const TypeTraits& t : all_type_traits()) {
    if (t.dequantize != nullptr) add_weight_type_cases(cases, t.type, seed += 100);
  }
  cases.push_back(matmul_case(DType::F32, 4096, 5, 2, seed += 100));  // a long f32 dot product
  cases.push_back(matmul_case(DType::Q4_K, 2048, 3, 1, seed += 100));
  cases.push_back(matmul_case(DType::Q8_0, 96, 11, 17, seed += 100));  // a prompt-sized batch
  cases.push_back(matmul_case(DType::F16, 37, 3, 9, seed += 100));

  for (auto [n, rows] : {std::pair{1, 1}, {7, 3}, {576, 5}}) cases.push_back(rms_norm_case(n, rows, 1e-5f, ++seed));
  cases.push_back(rms_norm_case(33, 2, 1e-2f, ++seed));
  for (auto [n, rows, bc] : {std::tuple{1, 1, false}, {13, 4, false}, {9, 5, true}, {9, 1, true}}) {
    cases.push_back(add_case(n, rows, bc, ++seed));
  }
  cases.push_back(swiglu_case(1, 1, ++seed));
  cases.push_back(swiglu_case(31, 4, ++seed));
  cases.push_back(geglu_case(1, 1, ++seed));
  cases.push_back(geglu_case(37, 5, ++seed));
  cases.push_back(scale_case(9, 3, 25.3f, false, ++seed));
  cases.push_back(scale_case(640, 2, 0.5f, true, ++seed));

  const std::vector<int32_t> positions = {0, 1, 7, 300, 4095};
  for (bool neox : {false, true}) {
    cases.push_back(rope_case(8, 3, positions, RopeConfig{8, 10000.0f, 1.0f, neox, {}}, ++seed));
    cases.push_back(rope_case(10, 2, positions, RopeConfig{6, 10000.0f, 1.0f, neox, {}}, ++seed));  // partial
    cases.push_back(rope_case(64, 2, {5, 123}, RopeConfig{64, 500000.0f, 0.25f, neox, {}}, ++seed));
    std::vector<float> factors = {1.0f, 1.5f, 4.0f, 8.0f, 32.0f, 0.5f, 2.0f, 1.0f};
    cases.push_back(rope_case(16, 1, {3, 1000}, RopeConfig{16, 10000.0f, 1.0f, neox, factors}, ++seed));
  }

  for (DType type : {DType::F32, DType::F16}) {
    cases.push_back(store_kv_case(8, 1, 1, 0, 3, type, ++seed));
    cases.push_back(store_kv_case(12, 3, 4, 2, 7, type, ++seed));
    cases.push_back(attention_case({8, 1, 1, 1, 0, 1, type}, ++seed));     // one token
    cases.push_back(attention_case({16, 6, 2, 5, 3, 11, type}, ++seed));   // GQA, prefill after a prefix
    cases.push_back(attention_case({64, 4, 4, 1, 20, 32, type}, ++seed));  // decode
    cases.push_back(attention_case({8, 9, 3, 7, 0, 7, type}, ++seed));     // SmolLM2's head ratio, full cache
    // Sliding windows: a prompt crossing the window, decode past it, a window wider than the context.
    cases.push_back(attention_case({16, 4, 2, 9, 5, 16, type, 4}, ++seed));
    cases.push_back(attention_case({64, 4, 1, 1, 40, 48, type, 8}, ++seed));
    cases.push_back(attention_case({256, 2, 1, 1, 30, 40, type, 16}, ++seed));  // Gemma 3's head_dim
    cases.push_back(attention_case({8, 2, 2, 6, 0, 6, type, 64}, ++seed));
    // Paged: sequences of shuffled blocks; decode tokens and prompt chunks in one batch.
    const PagedShape one_block{8, 2, 1, 4, 3, {3}, {1}, type};
    const PagedShape mixed{16, 6, 2, 4, 16, {9, 1, 13, 4}, {1, 1, 5, 4}, type};
    const PagedShape odd_blocks{12, 9, 3, 3, 12, {7, 11, 2}, {7, 1, 2}, type};
    const PagedShape windowed{16, 4, 2, 4, 16, {9, 1, 14, 5}, {1, 1, 6, 5}, type, 5};
    for (const PagedShape& s : {one_block, mixed, odd_blocks, windowed}) {
      cases.push_back(paged_store_kv_case(s, ++seed));
      cases.push_back(paged_attention_case(s, ++seed));
    }
  }
  add_expert_cases(cases, seed += 100);
  // Weights prepared for matmuls (the cpu backend's interleaved Q4_0, Q8_0, Q4_K and Q6_K),
  // several groups of 16 rows, decode and prompts. Last, with their own seeds: a case added
  // earlier in the table would move the seeds of the cases after it.
  uint32_t prepared_seed = 90000;
  for (DType type : {DType::Q4_0, DType::Q8_0, DType::Q4_K, DType::Q6_K}) {
    const int64_t k = type_traits(type).block_size == 256 ? 512 : 160;
    for (int64_t m : {1, 2, 9, 17}) cases.push_back(matmul_case(type, k, 37, m, prepared_seed += 100, true));
  }
  return cases;
}

}  // namespace strata::test
