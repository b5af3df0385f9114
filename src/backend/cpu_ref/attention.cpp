// The KV cache and attention over a paged cache (KvLayout): store_kv writes each token's keys
// or values at its row; attention is causal softmax attention of each query over the cached
// entries of its sequence, with grouped KV heads (GQA).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "backend/cpu_ref/checks.h"
#include "backend/cpu_ref/ops.h"
#include "core/error.h"
#include "core/half.h"

namespace strata::cpu_ref {
namespace {

// out[:, h, t] = sum_s p_s v[:, h/g, row(s)],  p = softmax_s(scale * q[:, h, t] . k[:, h/g, row(s)]),
// s over positions 0..positions[t] of the token's sequence (causal), and only the last `window`
// of them where window > 0.
template <typename Acc>
void attention_heads(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache, const KvLayout& kv, float scale,
                     int64_t window, Tensor& out) {
  const int64_t head_dim = q.ne(0);
  const int64_t n_heads = q.ne(1);
  const int64_t group = n_heads / k_cache.ne(1);         // query heads per KV head
  const std::vector<const float*> q_rows = f32_rows(q);  // row h + t * n_heads
  const std::vector<float*> out_rows = mutable_f32_rows(out);
  std::vector<float> row(static_cast<size_t>(head_dim));  // [head_dim] one cached key or value in f32
  for (int64_t t = 0; t < q.ne(2); ++t) {
    const int64_t n_kv = kv.positions[size_t(t)] + 1;                            // keys up to this query
    const int64_t first = window > 0 ? std::max<int64_t>(0, n_kv - window) : 0;  // first key it sees
    const int64_t seq = kv.seq[size_t(t)];
    for (int64_t h = 0; h < n_heads; ++h) {
      const int64_t kv_head = h / group;
      const float* qr = q_rows[size_t(h + t * n_heads)];
      std::vector<Acc> p(static_cast<size_t>(n_kv), Acc(0));  // scores, then probabilities (from first)
      Acc max = -std::numeric_limits<Acc>::infinity();
      for (int64_t s = first; s < n_kv; ++s) {
        k_cache.dequantize_row(row.data(), kv_head, kv.row(seq, s));
        Acc dot = 0;
        for (int64_t d = 0; d < head_dim; ++d) dot += Acc(qr[d]) * Acc(row[size_t(d)]);
        p[size_t(s)] = dot * Acc(scale);
        max = std::max(max, p[size_t(s)]);
      }
      Acc sum = 0;
      for (int64_t s = first; s < n_kv; ++s) {
        p[size_t(s)] = std::exp(p[size_t(s)] - max);
        sum += p[size_t(s)];
      }
      std::vector<Acc> o(size_t(head_dim), Acc(0));  // [head_dim] weighted sum of values
      for (int64_t s = first; s < n_kv; ++s) {
        v_cache.dequantize_row(row.data(), kv_head, kv.row(seq, s));
        const Acc ps = p[size_t(s)] / sum;
        for (int64_t d = 0; d < head_dim; ++d) o[size_t(d)] += ps * Acc(row[size_t(d)]);
      }
      for (int64_t d = 0; d < head_dim; ++d) out_rows[size_t(h + t * n_heads)][d] = float(o[size_t(d)]);
    }
  }
}

}  // namespace

// cache[:, :, kv.row(seq[t], positions[t])] = src[:, :, t]
//   src [head_dim, n_kv_heads, n_tokens] f32; cache [head_dim, n_kv_heads, n_rows] f32 or f16
void store_kv(const Tensor& src, Tensor& cache, const KvLayout& kv) {
  check_store_kv_args(src, cache, kv);
  const int64_t n_tokens = src.ne(2);
  const int64_t head_dim = src.ne(0);
  for (int64_t t = 0; t < n_tokens; ++t) {
    for (int64_t h = 0; h < src.ne(1); ++h) {
      const auto* s = reinterpret_cast<const float*>(src.row(h, t));
      uint8_t* dst = cache.mutable_row(h, kv.row(kv.seq[size_t(t)], kv.positions[size_t(t)]));
      if (cache.dtype() == DType::F32) {
        std::memcpy(dst, s, size_t(head_dim) * sizeof(float));
      } else {
        auto* d = reinterpret_cast<uint16_t*>(dst);
        for (int64_t i = 0; i < head_dim; ++i) d[i] = f32_to_f16(s[i]);
      }
    }
  }
}

// q, out [head_dim, n_heads, n_tokens] f32; k_cache, v_cache [head_dim, n_kv_heads, n_rows]
void attention(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache, const KvLayout& kv, float scale,
               int64_t window, Tensor& out, Accumulation acc) {
  check_attention_args(q, k_cache, v_cache, kv, window, out);
  if (acc == Accumulation::f64) {
    attention_heads<double>(q, k_cache, v_cache, kv, scale, window, out);
  } else {
    attention_heads<float>(q, k_cache, v_cache, kv, scale, window, out);
  }
}

}  // namespace strata::cpu_ref
