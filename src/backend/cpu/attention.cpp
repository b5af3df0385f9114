// The KV cache and attention over a paged cache (KvLayout): store_kv writes each token's keys
// or values at its row (f32 or f16, through the ISA path's conversion); attention is causal
// softmax attention of each query over its sequence's cached entries with grouped KV heads,
// one task per (query head, token), each a single pass over its keys (chunks of positions,
// read run by run of consecutive cache rows) with an online softmax in f32.
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
  const uint8_t* k_row0;  // key of cache row 0 of the job's KV head
  const uint8_t* v_row0;  // value of cache row 0
  size_t k_pos_stride;    // bytes between rows
  size_t v_pos_stride;
};

float score(const HeadJob& j, const float* q, int64_t s) {
  const uint8_t* key = j.k_row0 + size_t(s) * j.k_pos_stride;
  const float dot = j.f16 ? j.k->dot_f16(reinterpret_cast<const uint16_t*>(key), q, j.head_dim)
                          : j.k->dot_f32(reinterpret_cast<const float*>(key), q, j.head_dim);
  return dot * j.scale;
}

// o += sum_c p[c] v_{row s0 + c} over c < n
void add_values(const HeadJob& j, const float* p, int64_t s0, int64_t n, float* o) {
  const uint8_t* values = j.v_row0 + size_t(s0) * j.v_pos_stride;
  if (j.f16) {
    j.k->accumulate_f16(values, j.v_pos_stride, n, p, o, j.head_dim);
  } else {
    j.k->accumulate_f32(values, j.v_pos_stride, n, p, o, j.head_dim);
  }
}

// Calls f(first_row, first_position, n) for the runs of consecutive cache rows that hold
// positions p0..p0+n_pos-1 of sequence `seq`, in position order (one run where the blocks lie
// in order; `dense`: the layout's rows are its positions, dense_kv_start).
template <typename F>
void for_each_run(const KvLayout& kv, bool dense, int64_t seq, int64_t p0, int64_t n_pos, F&& f) {
  if (dense) return f(p0, p0, n_pos);
  int64_t start = 0, first = p0, n = 0;
  for (int64_t p = p0; p < p0 + n_pos;) {
    const int64_t row = kv.row(seq, p);
    const int64_t len = std::min(kv.block_tokens - p % kv.block_tokens, p0 + n_pos - p);  // to the block's end
    if (n > 0 && row == start + n) {
      n += len;
    } else {
      if (n > 0) f(start, first, n);
      start = row, first = p, n = len;
    }
    p += len;
  }
  if (n > 0) f(start, first, n);
}

// out = sum_s softmax_s(scale q . k_s) v_s over the positions first <= s < n_kv of sequence
// `seq`, with o [head_dim] as scratch. Keys are taken in chunks of kKeyChunk positions from
// position `first` wherever their rows lie, so the result does not depend on which blocks hold
// them.
void attend(const HeadJob& j, const float* q, const KvLayout& kv, bool dense, int64_t seq, int64_t first, int64_t n_kv,
            float* o, float* out) {
  float scores[kKeyChunk];
  float max = -std::numeric_limits<float>::infinity();
  float sum = 0;  // sum of exp(score - max) over the keys so far
  std::fill(o, o + j.head_dim, 0.0f);
  for (int64_t s0 = first; s0 < n_kv; s0 += kKeyChunk) {
    const int64_t n = std::min(kKeyChunk, n_kv - s0);
    for_each_run(kv, dense, seq, s0, n, [&](int64_t row, int64_t pos, int64_t len) {
      for (int64_t c = 0; c < len; ++c) scores[pos - s0 + c] = score(j, q, row + c);
    });
    float chunk_max = -std::numeric_limits<float>::infinity();
    for (int64_t c = 0; c < n; ++c) chunk_max = std::max(chunk_max, scores[c]);
    if (chunk_max > max) {  // rescale what was summed under the old maximum
      const float correction = std::exp(max - chunk_max);
      sum *= correction;
      j.k->scale_f32(correction, o, j.head_dim);
      max = chunk_max;
    }
    j.k->exp_shifted(scores, n, max);  // now the weights
    for (int64_t c = 0; c < n; ++c) sum += scores[c];
    for_each_run(kv, dense, seq, s0, n,
                 [&](int64_t row, int64_t pos, int64_t len) { add_values(j, scores + (pos - s0), row, len, o); });
  }
  const float inv_sum = 1.0f / sum;
  for (int64_t d = 0; d < j.head_dim; ++d) out[d] = o[d] * inv_sum;
}

}  // namespace

// cache[:, :, kv.row(seq[t], positions[t])] = src[:, :, t]
//   src [head_dim, n_kv_heads, n_tokens] f32; cache [head_dim, n_kv_heads, n_rows] f32 or f16
void store_kv(const OpContext& ctx, const Tensor& src, Tensor& cache, const KvLayout& kv) {
  check_store_kv_args(src, cache, kv);
  const int64_t head_dim = src.ne(0), n_kv_heads = src.ne(1);
  const Rows src_rows(src);
  uint8_t* base = cache.mutable_data();
  const bool f16 = cache.dtype() == DType::F16;
  parallel_chunks(*ctx.pool, src.n_rows(), min_rows(head_dim), [&](int64_t first, int64_t last) {
    for (int64_t r = first; r < last; ++r) {
      const int64_t h = r % n_kv_heads, t = r / n_kv_heads;
      const int64_t row = kv.row(kv.seq[size_t(t)], kv.positions[size_t(t)]);
      uint8_t* dst = base + size_t(h) * cache.nb(1) + size_t(row) * cache.nb(2);
      if (f16) {
        ctx.k->f32_to_f16(src_rows.f32(r), reinterpret_cast<uint16_t*>(dst), head_dim);
      } else {
        std::memcpy(dst, src_rows.f32(r), size_t(head_dim) * sizeof(float));
      }
    }
  });
}

// q, out [head_dim, n_heads, n_tokens] f32; k_cache, v_cache [head_dim, n_kv_heads, n_rows]
void attention(const OpContext& ctx, const Tensor& q, const Tensor& k_cache, const Tensor& v_cache, const KvLayout& kv,
               float scale, int64_t window, Tensor& out) {
  check_attention_args(q, k_cache, v_cache, kv, window, out);
  const int64_t head_dim = q.ne(0), n_heads = q.ne(1), n_tokens = q.ne(2);
  const int64_t group = n_heads / k_cache.ne(1);  // query heads per KV head
  const Rows q_rows(q), out_rows(out);            // row h + t * n_heads
  const int64_t n_jobs = n_heads * n_tokens;
  const bool dense = dense_kv_start(kv).has_value();                     // rows are positions: no block lookups
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
    const int64_t n_kv = kv.positions[size_t(t)] + 1;  // keys up to the query; from the window's first
    attend(j, q_rows.f32(r), kv, dense, kv.seq[size_t(t)], window > 0 ? std::max<int64_t>(0, n_kv - window) : 0, n_kv,
           scratch.data() + size_t(thread) * size_t(head_dim), out_rows.mutable_f32(r));
  };
  // Small jobs (a short cache) stay on the calling thread: a pool run costs microseconds.
  int64_t keys = 0;  // keys seen by all tokens
  for (const int32_t p : kv.positions) keys += int64_t(p) + 1;
  const int64_t work = n_heads * keys * head_dim;
  if (work < 32768) {
    for (int64_t r = 0; r < n_jobs; ++r) run_job(r, 0);
  } else {
    ctx.pool->run(n_jobs, run_job);
  }
}

}  // namespace strata::cpu
