// The shapes of Backend::matmul_fused that the model uses, each run on any backend either
// fused (the backend's matmul_fused) or as its parts (Backend::matmul_fused, the plain ops one
// by one), returning every tensor the op writes. Shared by the generic suite
// (backend_fused_test.cpp) and the CUDA tests that hold its launches to the parts' bits.
#pragma once

#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "backend/op_cases_basic.h"
#include "backend/op_harness.h"

namespace strata::test {

// The backend's copy of a weight, prepared for matmuls as the model's are.
inline Tensor upload_weight(Backend& b, const Tensor& host) {
  Tensor w = b.upload(host);
  b.prepare_matmul_weight(w);
  return w;
}

// A weight quantized on the host with the reference quantizer.
struct Weight {
  Tensor host;
  int64_t k, n;
};
inline Weight make_weight(DType type, int64_t k, int64_t n, uint32_t seed) {
  return {Tensor::from_f32(random_values(size_t(k * n), seed), {k, n}, type, "w"), k, n};
}

using Outputs = std::vector<std::vector<float>>;

inline void run_fused(Backend& b, const FusedMatmul& op, bool fused) {
  if (fused) {
    b.matmul_fused(op);
  } else {
    b.Backend::matmul_fused(op);
  }
}

// Gives op the prologue x = rms_norm(input, weight) (eps 1e-5).
inline void with_rms_norm(FusedMatmul& op, const Tensor& input, const Tensor& weight) {
  op.prologue = FusedMatmul::Prologue::rms_norm;
  op.norm_input = &input;
  op.norm_weight = &weight;
  op.norm_eps = 1e-5f;
}

// The weights on the backend, an output [n, m] for each, and plain jobs that join them.
struct Batch {
  std::vector<Tensor> weights, outs, biases;
  std::vector<MatmulJob> jobs;
};
inline std::unique_ptr<Batch> make_batch(Backend& b, const std::vector<Weight>& ws, int64_t m) {
  auto batch = std::make_unique<Batch>();  // on the heap: the jobs point into its vectors
  for (const Weight& w : ws) {
    batch->weights.push_back(upload_weight(b, w.host));
    batch->outs.push_back(b.alloc(DType::F32, {w.n, m}, "out"));
  }
  for (size_t i = 0; i < ws.size(); ++i) batch->jobs.push_back({.w = &batch->weights[i], .out = &batch->outs[i]});
  return batch;
}

// product = w x; residual += product. Returns {product, residual}.
inline Outputs run_matmul_add(Backend& b, const Weight& w, int64_t m, uint32_t seed, bool fused) {
  const Tensor wd = upload_weight(b, w.host);
  Tensor x = upload_values(b, random_values(size_t(w.k * m), seed), {w.k, m});
  Tensor product = b.alloc(DType::F32, {w.n, m}, "product");
  Tensor acc = upload_values(b, random_values(size_t(w.n * m), seed + 1), {w.n, m});
  const MatmulJob job[] = {{.w = &wd, .out = &product, .residual = &acc}};
  run_fused(b, {.x = &x, .jobs = job}, fused);
  return {download(b, product), download(b, acc)};
}

// [normed = rms_norm(x)]; gate = w_gate x; up = w_up x; out = silu(gate) * up (or, with
// Gate::geglu, gelu_tanh(gate) * up). Returns {[normed,] gate, up, out}.
inline Outputs run_swiglu(Backend& b, const Weight& wg, const Weight& wu, int64_t m, uint32_t seed, bool fused,
                          bool norm, FusedMatmul::Gate gate_op = FusedMatmul::Gate::swiglu) {
  const int64_t k = wg.k;
  const Tensor g = b.upload(wg.host), u = b.upload(wu.host);
  const Tensor input = upload_values(b, random_values(size_t(k * m), seed), {k, m});
  const Tensor norm_weight = upload_values(b, random_values(size_t(k), seed + 1), {k});
  Tensor x = norm ? b.alloc(DType::F32, {k, m}, "normed") : input;
  Tensor gate = b.alloc(DType::F32, {wg.n, m}, "gate"), up = b.alloc(DType::F32, {wg.n, m}, "up");
  Tensor out = b.alloc(DType::F32, {wg.n, m}, "out");
  const MatmulJob jobs[] = {{.w = &g, .out = &gate}, {.w = &u, .out = &up}};
  FusedMatmul op{.x = &x, .jobs = jobs, .gate = gate_op, .gated = &out};
  if (norm) with_rms_norm(op, input, norm_weight);
  run_fused(b, op, fused);
  Outputs result;
  if (norm) result.push_back(download(b, x));
  for (const Tensor* t : {&gate, &up, &out}) result.push_back(download(b, *t));
  return result;
}

// [normed = rms_norm(x)]; out_i = w_i x for each weight. Returns {[normed,] outputs...}.
inline Outputs run_batch(Backend& b, const std::vector<Weight>& ws, int64_t m, uint32_t seed, bool fused, bool norm) {
  const int64_t k = ws[0].k;
  const Tensor input = upload_values(b, random_values(size_t(k * m), seed), {k, m});
  const Tensor norm_weight = upload_values(b, random_values(size_t(k), seed + 1), {k});
  Tensor x = norm ? b.alloc(DType::F32, {k, m}, "normed") : input;
  const std::unique_ptr<Batch> batch = make_batch(b, ws, m);
  FusedMatmul op{.x = &x, .jobs = batch->jobs};
  if (norm) with_rms_norm(op, input, norm_weight);
  run_fused(b, op, fused);
  Outputs result;
  if (norm) result.push_back(download(b, x));
  for (const Tensor& t : batch->outs) result.push_back(download(b, t));
  return result;
}

// The attention input of m tokens at positions pos..: normed = rms_norm(x), q, k, v = w normed
// (+ bias with `bias`), q and k roped, k and v stored at cache rows pos.. (the caches of
// pos + m + 1 rows start at 0). Returns {normed, q, k, v, k_cache, v_cache}.
struct QkvCase {
  std::vector<Weight> w;  // q, k, v
  int64_t head_dim;
  DType cache;
  RopeConfig rope;
  bool bias = false;
};
inline Outputs run_qkv_rope_store(Backend& b, const QkvCase& c, int64_t pos, uint32_t seed, bool fused, int64_t m = 1) {
  const int64_t k = c.w[0].k, n_kv = c.w[1].n / c.head_dim;
  const Tensor x = upload_values(b, random_values(size_t(k * m), seed), {k, m});
  const Tensor norm_weight = upload_values(b, random_values(size_t(k), seed + 1), {k});
  Tensor normed = b.alloc(DType::F32, {k, m}, "normed");
  const std::unique_ptr<Batch> batch = make_batch(b, c.w, m);
  Tensor k_cache = b.alloc(c.cache, {c.head_dim, n_kv, pos + m + 1}, "k_cache");
  Tensor v_cache = b.alloc(c.cache, {c.head_dim, n_kv, pos + m + 1}, "v_cache");
  const DenseKvLayout kv(pos, m, pos + m + 1);
  std::vector<MatmulJob>& jobs = batch->jobs;
  jobs[0].rope = jobs[1].rope = true;
  jobs[1].store = &k_cache;
  jobs[2].store = &v_cache;
  if (c.bias) {
    for (size_t i = 0; i < 3; ++i) {
      batch->biases.push_back(upload_values(b, random_values(size_t(c.w[i].n), seed + 10 + uint32_t(i)), {c.w[i].n}));
    }
    for (size_t i = 0; i < 3; ++i) jobs[i].bias = &batch->biases[i];
  }
  run_fused(b,
            {.x = &normed,
             .prologue = FusedMatmul::Prologue::rms_norm,
             .norm_input = &x,
             .norm_weight = &norm_weight,
             .norm_eps = 1e-5f,
             .kv = &kv.get(),
             .jobs = jobs,
             .head_dim = c.head_dim,
             .rope = &c.rope,
             .positions = kv.get().positions},
            fused);
  Outputs result = {download(b, normed)};
  for (const Tensor& t : batch->outs) result.push_back(download(b, t));
  result.push_back(download(b, k_cache));
  result.push_back(download(b, v_cache));
  return result;
}

// Attention of m queries over a cache holding keys 0..n_past + m - 1 (random), then the output
// projection with its residual add. Returns {attention out, product, residual}.
struct AttentionCase {
  int64_t head_dim, n_heads, n_kv_heads, n_past;
  DType cache;
  int64_t window = 0;  // sliding window (0: none)
};
inline Outputs run_attention_matmul_add(Backend& b, const AttentionCase& c, const Weight& w, uint32_t seed, bool fused,
                                        int64_t m = 1) {
  const int64_t n_ctx = c.n_past + m + 2;
  const Tensor q =
      upload_values(b, random_values(size_t(c.head_dim * c.n_heads * m), seed), {c.head_dim, c.n_heads, m});
  const size_t cache_values = size_t(c.head_dim * c.n_kv_heads * n_ctx);
  const Tensor k_cache =
      upload_values(b, random_values(cache_values, seed + 1), {c.head_dim, c.n_kv_heads, n_ctx}, c.cache);
  const Tensor v_cache =
      upload_values(b, random_values(cache_values, seed + 2), {c.head_dim, c.n_kv_heads, n_ctx}, c.cache);
  Tensor out = b.alloc(DType::F32, {c.head_dim * c.n_heads, m}, "out");
  const Tensor wd = upload_weight(b, w.host);
  Tensor product = b.alloc(DType::F32, {w.n, m}, "product");
  Tensor acc = upload_values(b, random_values(size_t(w.n * m), seed + 3), {w.n, m});
  const MatmulJob job[] = {{.w = &wd, .out = &product, .residual = &acc}};
  const DenseKvLayout kv(c.n_past, m, n_ctx);
  run_fused(b,
            {.x = &out,
             .prologue = FusedMatmul::Prologue::attention,
             .q = &q,
             .k_cache = &k_cache,
             .v_cache = &v_cache,
             .kv = &kv.get(),
             .scale = 1.0f / std::sqrt(float(c.head_dim)),
             .window = c.window,
             .jobs = job},
            fused);
  return {download(b, out), download(b, product), download(b, acc)};
}

}  // namespace strata::test
