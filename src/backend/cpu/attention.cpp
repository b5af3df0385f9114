// The KV cache and attention: store_kv writes new keys/values at their positions (f32 or
// f16, through the ISA path's conversion); attention is causal softmax attention of the new
// queries over the cache with grouped KV heads, one task per (query head, token), each a
// single pass over its keys with an online softmax in f32.
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "backend/cpu/ops.h"
#include "backend/op_checks.h"

namespace strata::cpu {
namespace {

// Keys scored at once before their values are summed (the online softmax's rescale step).
constexpr int64_t kKeyChunk = 64;

struct HeadJob {
  const OpKernels* k;
  int64_t head_dim;
  float scale;
  bool f16;               // cache type
  const uint8_t* k_row0;  // key of position 0 of the job's KV head
  const uint8_t* v_row0;  // value of position 0
  size_t k_pos_stride;    // bytes between positions
  size_t v_pos_stride;
};

float score(const HeadJob& j, const float* q, int64_t s) {
  const uint8_t* key = j.k_row0 + size_t(s) * j.k_pos_stride;
  const float dot = j.f16 ? j.k->dot_f16(reinterpret_cast<const uint16_t*>(key), q, j.head_dim)
                          : j.k->dot_f32(reinterpret_cast<const float*>(key), q, j.head_dim);
  return dot * j.scale;
}

// o += sum_c p[c] v_{s0 + c} over c < n
void add_values(const HeadJob& j, const float* p, int64_t s0, int64_t n, float* o) {
  const uint8_t* values = j.v_row0 + size_t(s0) * j.v_pos_stride;
  if (j.f16) {
    j.k->accumulate_f16(values, j.v_pos_stride, n, p, o, j.head_dim);
  } else {
    j.k->accumulate_f32(values, j.v_pos_stride, n, p, o, j.head_dim);
  }
}

// out = sum_s softmax_s(scale q . k_s) v_s over first <= s < n_kv, with o [head_dim] as scratch.
void attend(const HeadJob& j, const float* q, int64_t first, int64_t n_kv, float* o, float* out) {
  float scores[kKeyChunk];
  float max = -std::numeric_limits<float>::infinity();
  float sum = 0;  // sum of exp(score - max) over the keys so far
  std::fill(o, o + j.head_dim, 0.0f);
  for (int64_t s0 = first; s0 < n_kv; s0 += kKeyChunk) {
    const int64_t n = std::min(kKeyChunk, n_kv - s0);
    float chunk_max = -std::numeric_limits<float>::infinity();
    for (int64_t c = 0; c < n; ++c) {
      scores[c] = score(j, q, s0 + c);
      chunk_max = std::max(chunk_max, scores[c]);
    }
    if (chunk_max > max) {  // rescale what was summed under the old maximum
      const float correction = std::exp(max - chunk_max);
      sum *= correction;
      j.k->scale_f32(correction, o, j.head_dim);
      max = chunk_max;
    }
    j.k->exp_shifted(scores, n, max);  // now the weights
    for (int64_t c = 0; c < n; ++c) sum += scores[c];
    add_values(j, scores, s0, n, o);
  }
  const float inv_sum = 1.0f / sum;
  for (int64_t d = 0; d < j.head_dim; ++d) out[d] = o[d] * inv_sum;
}

}  // namespace

// cache[:, :, pos + t] = src[:, :, t]   src [head_dim, n_kv_heads, n_tokens] f32;
//                                       cache [head_dim, n_kv_heads, n_ctx] f32 or f16
void store_kv(const OpContext& ctx, const Tensor& src, Tensor& cache, int64_t pos) {
  check_store_kv_args(src, cache, pos);
  const int64_t head_dim = src.ne(0), n_kv_heads = src.ne(1);
  const Rows src_rows(src);
  uint8_t* base = cache.mutable_data();
  const bool f16 = cache.dtype() == DType::F16;
  parallel_chunks(*ctx.pool, src.n_rows(), min_rows(head_dim), [&](int64_t first, int64_t last) {
    for (int64_t r = first; r < last; ++r) {
      const int64_t h = r % n_kv_heads, t = r / n_kv_heads;
      uint8_t* dst = base + size_t(h) * cache.nb(1) + size_t(pos + t) * cache.nb(2);
      if (f16) {
        ctx.k->f32_to_f16(src_rows.f32(r), reinterpret_cast<uint16_t*>(dst), head_dim);
      } else {
        std::memcpy(dst, src_rows.f32(r), size_t(head_dim) * sizeof(float));
      }
    }
  });
}

// q, out [head_dim, n_heads, n_tokens] f32; k_cache, v_cache [head_dim, n_kv_heads, n_ctx]
void attention(const OpContext& ctx, const Tensor& q, const Tensor& k_cache, const Tensor& v_cache, int64_t n_past,
               float scale, int64_t window, Tensor& out) {
  check_attention_args(q, k_cache, v_cache, n_past, window, out);
  const int64_t head_dim = q.ne(0), n_heads = q.ne(1), n_tokens = q.ne(2);
  const int64_t group = n_heads / k_cache.ne(1);  // query heads per KV head
  const Rows q_rows(q), out_rows(out);            // row h + t * n_heads
  const int64_t n_jobs = n_heads * n_tokens;
  std::vector<float> scratch(size_t(ctx.pool->n_threads() * head_dim));  // [head_dim] per thread
  auto run_job = [&](int64_t r, int thread) {
    const int64_t h = r % n_heads, t = r / n_heads;
    const HeadJob j{ctx.k,
                    head_dim,
                    scale,
                    k_cache.dtype() == DType::F16,
                    k_cache.data() + size_t(h / group) * k_cache.nb(1),
                    v_cache.data() + size_t(h / group) * v_cache.nb(1),
                    k_cache.nb(2),
                    v_cache.nb(2)};
    const int64_t n_kv = n_past + t + 1;  // keys up to the query; from the window's first
    attend(j, q_rows.f32(r), window > 0 ? std::max<int64_t>(0, n_kv - window) : 0, n_kv,
           scratch.data() + size_t(thread) * size_t(head_dim), out_rows.mutable_f32(r));
  };
  // Small jobs (a short cache) stay on the calling thread: a pool run costs microseconds.
  const int64_t work = n_jobs * (n_past + n_tokens) * head_dim;
  if (work < 32768) {
    for (int64_t r = 0; r < n_jobs; ++r) run_job(r, 0);
  } else {
    ctx.pool->run(n_jobs, run_job);
  }
}

}  // namespace strata::cpu
