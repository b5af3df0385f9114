// Op cases for the CUDA backend on top of the shared table (backend/op_cases.h): shapes that
// reach the GPU kernels' edges: many rows and blocks, rows that are not a multiple of the
// rows per block, k of many blocks or super-blocks, m around the switch from the
// matrix-vector kernels (m <= 8) to the GEMM path (m > 8), GEMM tiles, grids with more than
// 65535 rows, long-context decode attention, head sizes that are not a
// power of two, prompt attention on tensor cores, and a column view as input (the last
// token's logits).
#pragma once

#include <memory>
#include <mutex>
#include <vector>

#include "backend/op_cases.h"

namespace strata::test {

// matmul_case with the same data, made on first use instead of when the table is built:
// quantizing these large weights takes seconds, which a machine without a GPU (where every
// case is skipped) should not pay.
inline OpCase lazy_matmul_case(DType type, int64_t k, int64_t n, int64_t m, uint32_t seed) {
  struct Data {
    Tensor w;
    std::vector<float> w_deq, x;
  };
  auto once = std::make_shared<std::once_flag>();
  auto data = std::make_shared<Data>();
  auto get = [=]() -> const Data& {
    std::call_once(*once, [&] {
      data->w = Tensor::from_f32(random_values(size_t(k * n), seed), {k, n}, type, "w");
      data->w_deq = host_values(data->w);
      data->x = random_values(size_t(k * m), seed + 1);
    });
    return *data;
  };
  return OpCase{fmt::format("matmul/{}/k{}_n{}_m{}", dtype_name(type), k, n, m), "matmul",
                type_traits(type).is_quantized ? kNmseQuantMatmul : kNmsePlainMatmul,
                [=](Backend& b) {
                  const Data& d = get();
                  Tensor wd = b.upload(d.w);
                  Tensor xd = upload_values(b, d.x, {k, m});
                  Tensor out = b.alloc(DType::F32, {n, m}, "out");
                  b.matmul(wd, xd, out);
                  return download(b, out);
                },
                [=] {
                  const Data& d = get();
                  return expect_matmul(d.w_deq, d.x, k, n, m);
                }};
}

// matmul with x given as one column of a wider tensor (a strided view, as the model's
// last-token logits are computed).
inline OpCase matmul_column_view_case(DType type, int64_t k, int64_t n, int64_t m, int64_t column, uint32_t seed) {
  auto w = std::make_shared<Tensor>(Tensor::from_f32(random_values(size_t(k * n), seed), {k, n}, type, "w"));
  auto w_deq = std::make_shared<std::vector<float>>(host_values(*w));
  auto x = std::make_shared<std::vector<float>>(random_values(size_t(k * m), seed + 1));
  return OpCase{fmt::format("matmul_column/{}/k{}_n{}_col{}_of{}", dtype_name(type), k, n, column, m), "matmul",
                type_traits(type).is_quantized ? kNmseQuantMatmul : kNmsePlainMatmul,
                [=](Backend& b) {
                  Tensor xd = upload_values(b, *x, {k, m});
                  Tensor wd = b.upload(*w);
                  Tensor out = b.alloc(DType::F32, {n, 1}, "out");
                  b.matmul(wd, xd.slice(1, column, 1), out);
                  return download(b, out);
                },
                [=] {
                  std::vector<float> col(x->begin() + column * k, x->begin() + (column + 1) * k);
                  return expect_matmul(*w_deq, col, k, n, 1);
                }};
}

// add with out == a (in place, as the model adds to its residual stream).
inline OpCase add_in_place_case(int64_t n, int64_t rows, uint32_t seed) {
  auto a = std::make_shared<std::vector<float>>(random_values(size_t(n * rows), seed));
  auto bv = std::make_shared<std::vector<float>>(random_values(size_t(n * rows), seed + 1));
  return OpCase{fmt::format("add/in_place_n{}_r{}", n, rows), "add", kNmseElementwise,
                [=](Backend& b) {
                  Tensor ad = upload_values(b, *a, {n, rows});
                  Tensor bd = upload_values(b, *bv, {n, rows});
                  b.add(ad, bd, ad);
                  return download(b, ad);
                },
                [=] {
                  std::vector<double> out(a->size());
                  for (size_t i = 0; i < out.size(); ++i) out[i] = double((*a)[i]) + double((*bv)[i]);
                  return out;
                }};
}

inline std::vector<OpCase> cuda_op_cases() {
  std::vector<OpCase> cases;
  uint32_t seed = 9000;
  for (const TypeTraits& t : all_type_traits()) {
    if (t.dequantize == nullptr) continue;
    const bool plain = !t.is_quantized;
    const int64_t k = plain ? 1000 : 1024;  // plain: a multiple of 8 (vector loads)
    for (int64_t m : {1, 3, 8, 9, 40}) cases.push_back(lazy_matmul_case(t.type, k, 515, m, seed += 10));
    if (plain) cases.push_back(lazy_matmul_case(t.type, 999, 37, 2, seed += 10));  // odd k: scalar loads
    cases.push_back(get_rows_case(t.type, k, 300, {299, 0, 17, 17, 150, 1, 298}, seed += 10));
  }
  cases.push_back(lazy_matmul_case(DType::Q4_0, 65536, 515, 9, seed += 10));  // several GEMM tiles
  cases.push_back(lazy_matmul_case(DType::Q6_K, 4096, 2048, 1, seed += 10));  // TinyLlama's output shape, smaller
  cases.push_back(matmul_column_view_case(DType::Q4_0, 2048, 300, 7, 6, seed += 10));
  // The fast matrix-vector kernels (matmul_vec_fast.cu): each rows-per-CTA choice (4 rows
  // from n = 4096, 2 from 1024, else 1) with a partial last CTA, every column-count variant
  // (m = 2, 4, 5, 7), n far below the GPU's multiprocessor count, and for F16 rows that are
  // not 16-byte aligned (the generic kernel's fallback).
  for (DType type : {DType::Q4_0, DType::Q8_0, DType::Q4_K, DType::Q6_K, DType::F16}) {
    cases.push_back(lazy_matmul_case(type, 512, 4097, 1, seed += 10));
    cases.push_back(lazy_matmul_case(type, 768, 1501, 1, seed += 10));
    for (int64_t m : {2, 4, 5, 7}) cases.push_back(lazy_matmul_case(type, 256, 33, m, seed += 10));
    cases.push_back(lazy_matmul_case(type, 2048, 7, 1, seed += 10));
  }
  cases.push_back(lazy_matmul_case(DType::F16, 1004, 40, 1, seed += 10));
  cases.push_back(matmul_column_view_case(DType::F16, 2048, 300, 7, 3, seed += 10));
  // Q4_K's 8-lane kernel (rows of 16 blocks or more) steps 16 blocks per CTA: 19 blocks
  // (k = 4864) leave a partial step, 4100 rows a partial last CTA; Q4_0 alike (fixed seeds:
  // the cases around keep theirs).
  cases.push_back(lazy_matmul_case(DType::Q4_K, 4864, 4100, 1, 7001));
  cases.push_back(lazy_matmul_case(DType::Q4_K, 4864, 1030, 3, 7011));
  cases.push_back(lazy_matmul_case(DType::Q4_K, 4096, 33, 8, 7031));
  cases.push_back(lazy_matmul_case(DType::Q4_0, 2816, 4100, 1, 7021));
  // Q4_0 rows of a multiple of 256 elements are regrouped at upload (kernels.h: RowFormat), so
  // the cases above take the grouped kernels; rows of 33 blocks stay as in the file.
  for (int64_t m : {1, 3, 9}) cases.push_back(lazy_matmul_case(DType::Q4_0, 1056, 4100, m, uint32_t(7041 + m)));
  cases.push_back(get_rows_case(DType::Q4_0, 1056, 300, {299, 0, 17}, 7061));
  // Q6_K rows of whole runs of 8 blocks (2048 elements) are regrouped too: several columns.
  cases.push_back(lazy_matmul_case(DType::Q6_K, 2048, 33, 3, 7071));
  cases.push_back(lazy_matmul_case(DType::Q6_K, 6144, 1030, 1, 7081));

  cases.push_back(rms_norm_case(4096, 7, 1e-5f, ++seed));
  cases.push_back(rms_norm_case(2048, 1, 1e-6f, ++seed));
  cases.push_back(rms_norm_case(1000, 3, 1e-5f, ++seed));   // the path shared with the matvec kernels, partial
  cases.push_back(rms_norm_case(5, 70000, 1e-5f, ++seed));  // more rows than one grid dimension holds
  cases.push_back(rms_norm_case(8192, 2, 1e-5f, ++seed));   // the longest row kept in registers
  cases.push_back(rms_norm_case(8196, 3, 1e-5f, ++seed));   // longer: the looping path
  cases.push_back(rms_norm_case(4100, 1, 1e-5f, ++seed));   // a partial last float4 step
  cases.push_back(rms_norm_case(12288, 1, 1e-5f, ++seed));  // one row: split over blocks at any length
  cases.push_back(rms_norm_case(8, 1, 1e-5f, ++seed));      // one row of two words: one block, mostly idle
  cases.push_back(add_case(4096, 9, false, ++seed));
  cases.push_back(add_case(4096, 9, true, ++seed));
  cases.push_back(add_in_place_case(2048, 5, ++seed));
  cases.push_back(add_case(3, 70001, false, ++seed));
  cases.push_back(swiglu_case(5632, 3, ++seed));

  std::vector<int32_t> positions;
  for (int32_t i = 0; i < 70; ++i) positions.push_back((i * 7919) % 100000);
  std::vector<float> llama3_factors(32);
  for (size_t i = 0; i < llama3_factors.size(); ++i) llama3_factors[i] = i < 12 ? 1.0f : i < 20 ? 2.5f : 8.0f;
  for (bool neox : {false, true}) {
    cases.push_back(rope_case(128, 32, positions, RopeConfig{128, 10000.0f, 1.0f, neox, {}}, ++seed));
    cases.push_back(rope_case(128, 8, positions, RopeConfig{64, 1000000.0f, 1.0f, neox, {}}, ++seed));
    cases.push_back(rope_case(64, 4, positions, RopeConfig{64, 500000.0f, 0.125f, neox, llama3_factors}, ++seed));
  }

  for (DType type : {DType::F32, DType::F16}) {
    cases.push_back(store_kv_case(128, 8, 9, 100, 200, type, ++seed));
    cases.push_back(store_kv_case(64, 4, 1, 255, 256, type, ++seed));
    cases.push_back(attention_case({128, 32, 8, 1, 1000, 1024, type}, ++seed));  // long-context decode
    cases.push_back(attention_case({64, 32, 4, 40, 60, 128, type}, ++seed));     // a prompt after a prefix
    cases.push_back(attention_case({128, 8, 8, 17, 0, 17, type}, ++seed));       // no GQA, full cache
    cases.push_back(attention_case({80, 4, 2, 3, 5, 9, type}, ++seed));          // head_dim not a power of 2
    cases.push_back(attention_case({256, 2, 1, 2, 7, 12, type}, ++seed));        // the largest head
    cases.push_back(attention_case({96, 12, 3, 1, 0, 1, type}, ++seed));         // the first token
    // Decode splits of 128 keys (attention.cu): one whole split, one key past it, many splits.
    cases.push_back(attention_case({64, 32, 4, 1, 127, 130, type}, ++seed));
    cases.push_back(attention_case({64, 4, 2, 1, 128, 300, type}, ++seed));
    cases.push_back(attention_case({128, 8, 2, 1, 4095, 4096, type}, ++seed));
    // Short decode contexts, where one split holds every key and writes the output itself.
    cases.push_back(attention_case({128, 32, 32, 1, 0, 8, type}, ++seed));    // Llama-2-7B's first token
    cases.push_back(attention_case({64, 32, 4, 1, 20, 64, type}, ++seed));    // TinyLlama, 21 keys
    cases.push_back(attention_case({128, 8, 2, 1, 200, 512, type}, ++seed));  // two splits, the second partial
  }
  // The tensor-core prefill kernel (attention_prefill.cu: f16 cache, head_dim 64 or 128,
  // n_tokens >= 16): GQA groups 1, 4 and 8; token counts at, just past and off its 64-query
  // tiles; with and without a prefix (n_past); caches longer than the part in use.
  const DType f16 = DType::F16;
  cases.push_back(attention_case({64, 8, 2, 16, 0, 40, f16}, ++seed));       // the smallest prompt, group 4
  cases.push_back(attention_case({64, 4, 4, 17, 37, 80, f16}, ++seed));      // no GQA, after a prefix
  cases.push_back(attention_case({128, 8, 1, 64, 0, 100, f16}, ++seed));     // one whole tile, group 8
  cases.push_back(attention_case({128, 4, 1, 100, 37, 200, f16}, ++seed));   // a partial second tile
  cases.push_back(attention_case({128, 8, 2, 16, 300, 400, f16}, ++seed));   // a short prompt, long prefix
  cases.push_back(attention_case({64, 32, 4, 100, 300, 512, f16}, ++seed));  // TinyLlama's heads
  cases.push_back(attention_case({64, 8, 1, 512, 300, 1024, f16}, ++seed));  // pp512 after a prefix, group 8
  cases.push_back(attention_case({128, 4, 4, 512, 0, 600, f16}, ++seed));    // pp512, no GQA
  return cases;
}

}  // namespace strata::test
