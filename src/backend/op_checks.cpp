#include "backend/op_checks.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"

namespace strata {
namespace {

std::string dims_string(const Tensor::Dims& ne) {
  int n = kMaxDims;
  while (n > 1 && ne[size_t(n - 1)] == 1) --n;
  std::string s = "[";
  for (int i = 0; i < n; ++i) s += (i ? ", " : "") + std::to_string(ne[size_t(i)]);
  return s + "]";
}

// First and one-past-last byte that `t` can touch; empty when it has no elements.
std::pair<const uint8_t*, const uint8_t*> byte_extent(const Tensor& t) {
  if (t.n_elements() == 0) return {nullptr, nullptr};
  size_t last = t.nb(0);  // the last block (or element) of dim 0
  last += size_t(t.ne(0) / t.traits().block_size - 1) * t.nb(0);
  for (int d = 1; d < kMaxDims; ++d) last += size_t(t.ne(d) - 1) * t.nb(d);
  return {t.data(), t.data() + last};
}

void check_rope_config(const Tensor& x, const RopeConfig& c) {
  constexpr std::string_view op = "rope";
  const int64_t head_dim = x.ne(0);
  if (c.n_rot <= 0 || c.n_rot % 2 != 0 || c.n_rot > head_dim) {
    fail("{}: n_rot = {} must be even and in 2..head_dim = {} (x {})", op, c.n_rot, head_dim, x.describe());
  }
  if (!(c.freq_base > 0.0f) || !std::isfinite(c.freq_base)) fail("{}: freq_base = {} is not positive", op, c.freq_base);
  if (!(c.freq_scale > 0.0f) || !std::isfinite(c.freq_scale)) {
    fail("{}: freq_scale = {} is not positive", op, c.freq_scale);
  }
  if (c.freq_factors.empty()) return;
  if (c.freq_factors.size() != size_t(c.n_rot / 2)) {
    fail("{}: {} freq_factors given, expected n_rot / 2 = {}", op, c.freq_factors.size(), c.n_rot / 2);
  }
  for (size_t i = 0; i < c.freq_factors.size(); ++i) {
    if (!(c.freq_factors[i] > 0.0f) || !std::isfinite(c.freq_factors[i])) {
      fail("{}: freq_factors[{}] = {} is not a positive number", op, i, c.freq_factors[i]);
    }
  }
}

}  // namespace

// ---- small checks ----------------------------------------------------------------------

void check_f32(std::string_view op, std::string_view role, const Tensor& t) {
  if (t.dtype() != DType::F32) fail("{}: {} {} must be f32", op, role, t.describe());
  if (t.nb(0) != sizeof(float)) {
    fail("{}: {} {} has element stride {} bytes; its rows must be packed (stride 4)", op, role, t.describe(), t.nb(0));
  }
}

void check_f32_output(std::string_view op, std::string_view role, const Tensor& t) {
  check_f32(op, role, t);
  if (!t.is_writable()) fail("{}: {} {} is read-only", op, role, t.describe());
}

void check_shape(std::string_view op, std::string_view role, const Tensor& t, const Tensor::Dims& ne) {
  if (t.ne() != ne) fail("{}: {} {} should have shape {}", op, role, t.describe(), dims_string(ne));
}

void check_same_shape(std::string_view op, std::string_view role, const Tensor& t, std::string_view ref_role,
                      const Tensor& ref) {
  if (t.ne() != ref.ne()) {
    fail("{}: {} {} should have the shape of {} {}", op, role, t.describe(), ref_role, ref.describe());
  }
}

void check_max_dims(std::string_view op, std::string_view role, const Tensor& t, int n) {
  if (t.n_dims() > n) fail("{}: {} {} should have at most {} dims", op, role, t.describe(), n);
}

void check_no_alias(std::string_view op, std::string_view out_role, const Tensor& out, std::string_view in_role,
                    const Tensor& in) {
  const auto [out_begin, out_end] = byte_extent(out);
  const auto [in_begin, in_end] = byte_extent(in);
  if (out_begin != nullptr && in_begin != nullptr && out_begin < in_end && in_begin < out_end) {
    fail("{}: {} {} overlaps {} {} in memory; this op needs a separate output", op, out_role, out.describe(), in_role,
         in.describe());
  }
}

void check_same_or_no_alias(std::string_view op, std::string_view out_role, const Tensor& out, std::string_view in_role,
                            const Tensor& in) {
  if (out.data() == in.data() && out.nb() == in.nb() && out.ne() == in.ne()) return;
  check_no_alias(op, out_role, out, in_role, in);
}

void check_kv_cache(std::string_view op, std::string_view role, const Tensor& cache) {
  if (cache.dtype() != DType::F32 && cache.dtype() != DType::F16) {
    fail("{}: {} {} must be f32 or f16", op, role, cache.describe());
  }
  if (cache.nb(0) != cache.traits().type_size) {
    fail("{}: {} {} has element stride {} bytes; its rows must be packed", op, role, cache.describe(), cache.nb(0));
  }
  check_max_dims(op, role, cache, 3);
}

// ---- whole ops ---------------------------------------------------------------------------

void check_get_rows_args(const Tensor& table, std::span<const int32_t> ids, const Tensor& out, TypeCheck check_type) {
  constexpr std::string_view op = "get_rows";
  check_type(op, "table", table);
  check_max_dims(op, "table", table, 2);
  check_f32_output(op, "out", out);
  const int64_t n_embd = table.ne(0), n_vocab = table.ne(1), n_ids = int64_t(ids.size());
  check_shape(op, "out", out, {n_embd, n_ids, 1, 1});
  check_no_alias(op, "out", out, "table", table);
  for (int64_t i = 0; i < n_ids; ++i) {
    const int32_t id = ids[size_t(i)];
    if (id < 0 || id >= n_vocab) {
      fail("{}: id {} (ids[{}]) is out of range for {} (valid ids are 0..{})", op, id, i, table.describe(),
           n_vocab - 1);
    }
  }
}

void check_matmul_args(const Tensor& w, const Tensor& x, const Tensor& out, TypeCheck check_type) {
  check_matmul_args_of("matmul", "weight", w, x, "out", out, check_type);
}

void check_matmul_args_of(std::string_view op, std::string_view w_role, const Tensor& w, const Tensor& x,
                          std::string_view out_role, const Tensor& out, TypeCheck check_type) {
  check_type(op, w_role, w);
  check_max_dims(op, w_role, w, 2);
  check_f32(op, "x", x);
  check_f32_output(op, out_role, out);
  const int64_t k = w.ne(0), n = w.ne(1);
  if (x.ne(0) != k) {
    fail("{}: {} {} has k = {} elements per row but x {} has {}", op, w_role, w.describe(), k, x.describe(), x.ne(0));
  }
  check_shape(op, out_role, out, {n, x.ne(1), x.ne(2), x.ne(3)});
  check_no_alias(op, out_role, out, "x", x);
  check_no_alias(op, out_role, out, w_role, w);
}

void check_rms_norm_args(const Tensor& x, const Tensor& weight, const Tensor& out, TypeCheck check_weight) {
  constexpr std::string_view op = "rms_norm";
  check_f32(op, "x", x);
  check_weight(op, "weight", weight);
  check_shape(op, "weight", weight, {x.ne(0), 1, 1, 1});
  check_f32_output(op, "out", out);
  check_same_shape(op, "out", out, "x", x);
  check_no_alias(op, "out", out, "x", x);
  check_no_alias(op, "out", out, "weight", weight);
}

bool check_add_args(const Tensor& a, const Tensor& b, const Tensor& out, TypeCheck check_b) {
  constexpr std::string_view op = "add";
  check_f32(op, "a", a);
  check_b(op, "b", b);
  check_f32_output(op, "out", out);
  check_same_shape(op, "out", out, "a", a);
  const bool broadcast = b.ne() != a.ne();
  if (broadcast && b.ne() != Tensor::Dims{a.ne(0), 1, 1, 1}) {
    fail("{}: b {} should have the shape of a {} or be one row [{}]", op, b.describe(), a.describe(), a.ne(0));
  }
  check_same_or_no_alias(op, "out", out, "a", a);
  check_no_alias(op, "out", out, "b", b);
  return broadcast;
}

void check_scale_args(const Tensor& x, float s, const Tensor& out) {
  constexpr std::string_view op = "scale";
  check_f32(op, "x", x);
  check_f32_output(op, "out", out);
  check_same_shape(op, "out", out, "x", x);
  if (!std::isfinite(s)) fail("{}: factor {} is not finite", op, s);
  check_same_or_no_alias(op, "out", out, "x", x);
}

void check_swiglu_args(const Tensor& gate, const Tensor& up, const Tensor& out, std::string_view op) {
  check_f32(op, "gate", gate);
  check_f32(op, "up", up);
  check_f32_output(op, "out", out);
  check_same_shape(op, "up", up, "gate", gate);
  check_same_shape(op, "out", out, "gate", gate);
  check_no_alias(op, "out", out, "gate", gate);
  check_no_alias(op, "out", out, "up", up);
}

void check_rope_args(const Tensor& x, std::span<const int32_t> positions, const RopeConfig& c) {
  constexpr std::string_view op = "rope";
  check_f32_output(op, "x", x);
  check_max_dims(op, "x", x, 3);
  if (int64_t(positions.size()) != x.ne(2)) {
    fail("{}: {} positions given for x {} with {} tokens", op, positions.size(), x.describe(), x.ne(2));
  }
  check_rope_config(x, c);
}

void check_kv_layout(std::string_view op, const KvLayout& kv, int64_t n_tokens, const Tensor& cache) {
  if (kv.n_tokens() != n_tokens || int64_t(kv.seq.size()) != n_tokens) {
    fail("{}: {} tokens but the KV layout has {} positions and {} sequence ids", op, n_tokens, kv.positions.size(),
         kv.seq.size());
  }
  if (kv.block_tokens <= 0 || kv.max_blocks <= 0 || kv.block_table.empty() ||
      int64_t(kv.block_table.size()) % kv.max_blocks != 0) {
    fail(
        "{}: KV layout of {} tokens per block, {} blocks per sequence: its block table of {} entries is not a "
        "whole number of sequences",
        op, kv.block_tokens, kv.max_blocks, kv.block_table.size());
  }
  const int64_t n_seqs = int64_t(kv.block_table.size()) / kv.max_blocks;
  const int64_t n_blocks = cache.ne(2) / kv.block_tokens;  // whole blocks in the cache
  // The last position each sequence reaches; then each of its blocks up to there, once.
  std::vector<int64_t> last(size_t(n_seqs), -1);
  for (int64_t t = 0; t < n_tokens; ++t) {
    const int64_t s = kv.seq[size_t(t)], p = kv.positions[size_t(t)];
    if (s < 0 || s >= n_seqs)
      fail("{}: token {} is of sequence {}, outside the {} of the block table", op, t, s, n_seqs);
    if (p < 0 || p / kv.block_tokens >= kv.max_blocks) {
      fail("{}: token {} at position {} is outside the {} blocks of {} tokens of a sequence", op, t, p, kv.max_blocks,
           kv.block_tokens);
    }
    last[size_t(s)] = std::max(last[size_t(s)], p);
  }
  for (int64_t s = 0; s < n_seqs; ++s) {
    for (int64_t b = 0; last[size_t(s)] >= 0 && b <= last[size_t(s)] / kv.block_tokens; ++b) {
      const int64_t block = kv.block_table[size_t(s * kv.max_blocks + b)];
      if (block < 0 || block >= n_blocks) {
        fail("{}: block {} of sequence {} is block {}, outside the {} blocks of {} tokens of cache {}", op, b, s, block,
             n_blocks, kv.block_tokens, cache.describe());
      }
    }
  }
}

std::optional<int64_t> dense_kv_start(const KvLayout& kv) {
  if (kv.positions.empty() || kv.block_tokens <= 0) return std::nullopt;
  const int32_t p0 = kv.positions[0];
  for (size_t t = 0; t < kv.positions.size(); ++t) {
    if (kv.seq[t] != kv.seq[0] || kv.positions[t] != p0 + int32_t(t)) return std::nullopt;
  }
  const int64_t s = kv.seq[0], last = kv.positions.back();
  for (int64_t b = 0; b <= last / kv.block_tokens; ++b) {
    if (kv.block_table[size_t(s * kv.max_blocks + b)] != b) return std::nullopt;
  }
  return p0;
}

void check_store_kv_args(const Tensor& src, const Tensor& cache, const KvLayout& kv) {
  constexpr std::string_view op = "store_kv";
  check_f32(op, "src", src);
  check_max_dims(op, "src", src, 3);
  check_kv_cache(op, "cache", cache);
  if (!cache.is_writable()) fail("{}: cache {} is read-only", op, cache.describe());
  if (src.ne(0) != cache.ne(0) || src.ne(1) != cache.ne(1)) {
    fail("{}: src {} and cache {} differ in head_dim or n_kv_heads", op, src.describe(), cache.describe());
  }
  check_kv_layout(op, kv, src.ne(2), cache);
  check_no_alias(op, "cache", cache, "src", src);
}

void check_attention_args(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache, const KvLayout& kv,
                          int64_t window, const Tensor& out) {
  constexpr std::string_view op = "attention";
  check_f32(op, "q", q);
  check_max_dims(op, "q", q, 3);
  check_kv_cache(op, "k_cache", k_cache);
  check_kv_cache(op, "v_cache", v_cache);
  check_same_shape(op, "v_cache", v_cache, "k_cache", k_cache);
  check_f32_output(op, "out", out);
  check_same_shape(op, "out", out, "q", q);
  const int64_t n_heads = q.ne(1), n_kv_heads = k_cache.ne(1);
  if (k_cache.ne(0) != q.ne(0)) {
    fail("{}: q {} has head_dim {} but k_cache {} has {}", op, q.describe(), q.ne(0), k_cache.describe(),
         k_cache.ne(0));
  }
  if (n_kv_heads == 0 || n_heads % n_kv_heads != 0) {
    fail("{}: q {} has {} heads, not a multiple of the {} KV heads of k_cache {}", op, q.describe(), n_heads,
         n_kv_heads, k_cache.describe());
  }
  check_kv_layout(op, kv, q.ne(2), k_cache);
  if (window < 0) fail("{}: window {} is negative", op, window);
  check_no_alias(op, "out", out, "q", q);
  check_no_alias(op, "out", out, "k_cache", k_cache);
  check_no_alias(op, "out", out, "v_cache", v_cache);
}

// ---- the fused matmul ----------------------------------------------------------------------

void check_matmul_fused_shape(const FusedMatmul& f) {
  constexpr std::string_view op = "matmul_fused";
  if (f.x == nullptr) fail("{}: no input x", op);
  if (f.prologue == FusedMatmul::Prologue::rms_norm && (f.norm_input == nullptr || f.norm_weight == nullptr)) {
    fail("{}: the rms_norm prologue needs norm_input and norm_weight", op);
  }
  if (f.prologue == FusedMatmul::Prologue::attention &&
      (f.q == nullptr || f.k_cache == nullptr || f.v_cache == nullptr || f.kv == nullptr)) {
    fail("{}: the attention prologue needs q, k_cache, v_cache and kv", op);
  }
  for (size_t i = 0; i < f.jobs.size(); ++i) {
    const MatmulJob& j = f.jobs[i];
    if (j.w == nullptr || j.out == nullptr) fail("{}: job {} has no weight or no output", op, i);
    if ((j.rope || j.store != nullptr) && f.head_dim <= 0) {
      fail("{}: job {} ropes or stores heads but head_dim = {}", op, i, f.head_dim);
    }
    if (j.rope && f.rope == nullptr) fail("{}: job {} ropes but no rope config is given", op, i);
  }
  if (f.gate != FusedMatmul::Gate::none && (f.jobs.size() < 2 || f.gated == nullptr)) {
    fail("{}: the {} gate needs two jobs (gate, up) and a gated output, got {} jobs", op,
         f.gate == FusedMatmul::Gate::swiglu ? "swiglu" : "geglu", f.jobs.size());
  }
}

void check_matmul_fused_args(const FusedMatmul& f, TypeCheck check_type, TypeCheck check_bias) {
  constexpr std::string_view op = "matmul_fused";
  check_matmul_fused_shape(f);
  const Tensor& x = *f.x;
  if (f.prologue == FusedMatmul::Prologue::rms_norm) check_rms_norm_args(*f.norm_input, *f.norm_weight, x, check_bias);
  if (f.prologue == FusedMatmul::Prologue::attention) {
    if (x.n_elements() != f.q->n_elements() || !x.is_contiguous()) {
      fail("{}: x {} cannot hold the attention output of q {}", op, x.describe(), f.q->describe());
    }
    check_attention_args(*f.q, *f.k_cache, *f.v_cache, *f.kv, f.window, x.reshape(f.q->ne()));
  }
  for (size_t i = 0; i < f.jobs.size(); ++i) {
    const MatmulJob& j = f.jobs[i];
    const std::string w_role = fmt::format("weight {}", i), out_role = fmt::format("out {}", i);
    check_matmul_args_of(op, w_role, *j.w, x, out_role, *j.out, check_type);
    if (j.bias != nullptr) {
      check_bias(op, fmt::format("bias {}", i), *j.bias);
      check_shape(op, fmt::format("bias {}", i), *j.bias, {j.out->ne(0), 1, 1, 1});
    }
    if (j.rope || j.store != nullptr) {
      const Tensor h = split_heads(*j.out, f.head_dim);
      if (j.rope) check_rope_args(h, f.positions, *f.rope);
      if (j.store != nullptr) {
        if (f.kv == nullptr) fail("{}: job {} stores into a KV cache but the op has no kv layout", op, i);
        check_store_kv_args(h, *j.store, *f.kv);
      }
    }
    if (j.residual != nullptr) {
      check_f32_output(op, fmt::format("residual {}", i), *j.residual);
      check_same_shape(op, fmt::format("residual {}", i), *j.residual, out_role, *j.out);
      check_no_alias(op, fmt::format("residual {}", i), *j.residual, out_role, *j.out);
      check_no_alias(op, fmt::format("residual {}", i), *j.residual, "x", x);
    }
    for (size_t o = 0; o < i; ++o) {
      check_no_alias(op, out_role, *j.out, fmt::format("out {}", o), *f.jobs[o].out);
      check_no_alias(op, out_role, *j.out, fmt::format("weight {}", o), *f.jobs[o].w);
      check_no_alias(op, fmt::format("out {}", o), *f.jobs[o].out, w_role, *j.w);
    }
  }
  if (f.gate != FusedMatmul::Gate::none) {
    check_swiglu_args(*f.jobs[0].out, *f.jobs[1].out, *f.gated,
                      f.gate == FusedMatmul::Gate::swiglu ? "swiglu" : "geglu");
    check_no_alias(op, "gated", *f.gated, "x", x);
  }
}

// ---- mixture of experts ------------------------------------------------------------------

void check_i32_ids(std::string_view op, std::string_view role, const Tensor& t) {
  if (t.dtype() != DType::I32) fail("{}: {} {} must be i32", op, role, t.describe());
  if (!t.is_contiguous()) fail("{}: {} {} must be packed", op, role, t.describe());
}

void check_route_top_k_args(const Tensor& logits, const Tensor& ids, const Tensor& weights) {
  constexpr std::string_view op = "route_top_k";
  check_f32(op, "logits", logits);
  check_max_dims(op, "logits", logits, 2);
  check_i32_ids(op, "ids", ids);
  if (!ids.is_writable()) fail("{}: ids {} is read-only", op, ids.describe());
  check_f32_output(op, "weights", weights);
  const int64_t n_expert = logits.ne(0), n_used = ids.ne(0), m = logits.ne(1);
  if (n_used < 1 || n_used > n_expert) {
    fail("{}: ids {} chooses {} experts of the {} of logits {}", op, ids.describe(), n_used, n_expert,
         logits.describe());
  }
  check_shape(op, "ids", ids, {n_used, m, 1, 1});
  check_shape(op, "weights", weights, {n_used, m, 1, 1});
  check_no_alias(op, "ids", ids, "logits", logits);
  check_no_alias(op, "weights", weights, "logits", logits);
  check_no_alias(op, "weights", weights, "ids", ids);
}

void check_matmul_experts_args(const Tensor& w, const Tensor& x, const Tensor& ids, const Tensor& out,
                               TypeCheck check_type) {
  constexpr std::string_view op = "matmul_experts";
  check_type(op, "weight", w);
  check_max_dims(op, "weight", w, 3);
  check_f32(op, "x", x);
  check_max_dims(op, "x", x, 3);
  check_i32_ids(op, "ids", ids);
  check_max_dims(op, "ids", ids, 2);
  check_f32_output(op, "out", out);
  const int64_t k = w.ne(0), n = w.ne(1), n_used = ids.ne(0), m = ids.ne(1);
  if (x.ne(0) != k) {
    fail("{}: weight {} has k = {} elements per row but x {} has {}", op, w.describe(), k, x.describe(), x.ne(0));
  }
  if ((x.ne(1) != 1 && x.ne(1) != n_used) || x.ne(2) != m) {
    fail("{}: x {} should have shape [{}, 1 or {}, {}] for ids {}", op, x.describe(), k, n_used, m, ids.describe());
  }
  check_shape(op, "out", out, {n, n_used, m, 1});
  check_no_alias(op, "out", out, "x", x);
  check_no_alias(op, "out", out, "weight", w);
  check_no_alias(op, "out", out, "ids", ids);
}

void check_expert_ids(std::span<const int32_t> ids, int64_t n_expert, const Tensor& w) {
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= n_expert) {
      fail("matmul_experts: ids[{}] = {} is not an expert of weight {} (0..{})", i, ids[i], w.describe(), n_expert - 1);
    }
  }
}

void check_sum_experts_args(const Tensor& y, const Tensor& weights, const Tensor& out) {
  constexpr std::string_view op = "sum_experts";
  check_f32(op, "y", y);
  check_max_dims(op, "y", y, 3);
  check_f32(op, "weights", weights);
  check_f32_output(op, "out", out);
  const int64_t n = y.ne(0), n_used = y.ne(1), m = y.ne(2);
  check_shape(op, "weights", weights, {n_used, m, 1, 1});
  check_shape(op, "out", out, {n, m, 1, 1});
  check_no_alias(op, "out", out, "y", y);
  check_no_alias(op, "out", out, "weights", weights);
}

}  // namespace strata
