// The KV cache and attention on the device.
//
// store_kv: one thread per element, converting to f16 (round to nearest even) for f16 caches.
// A paged cache (backend.h: KvLayout) is read through the same kernels with the cache row of a
// position looked up in the sequence's block table (PagedRows) instead of being the position.
// attention: one block per (query head, token), q in shared memory. The block's warps take
// tiles of 32 visible keys in turn (warp w: keys 32 w .. 32 w + 31, then 32 (w + kWarps) ...).
// In a tile, lane j computes the whole score of key j (16-byte loads of its row when the
// row allows), the warp updates its online softmax (running max m, denominator l, weighted
// sum o, all f32) once per tile, then adds the 32 values rows weighted by their
// probabilities (lane holds o[d] for d = lane + 32 i; value rows are read coalesced). The
// warps' partial results are merged at the end.
#include "backend/cuda/common.cuh"
#include "backend/cuda/quantize_x.cuh"

namespace strata::cuda {
namespace {

constexpr int kWarps = 8;
constexpr int kPerLane = int(kMaxHeadDim) / kWarp;  // elements of a head per lane, at most
constexpr int64_t kMaxGridY = 65535;

template <bool kF16>
__device__ __forceinline__ float cache_value(const void* row, int64_t d) {
  if constexpr (kF16) {
    return f16_bits_to_f32(static_cast<const uint16_t*>(row)[d]);
  } else {
    return static_cast<const float*>(row)[d];
  }
}

template <bool kF16>
__global__ void store_kv_kernel(const void* src, RowLayout ls, void* cache, RowLayout lc, int64_t head_dim,
                                int64_t n_rows, int64_t n_kv_heads, int64_t pos, const int32_t* pos_dev) {
  start_after_previous_kernel();
  const int64_t d = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (d >= head_dim) return;
  const int64_t first_cache_row = (pos_dev != nullptr ? int64_t(*pos_dev) : pos) * n_kv_heads;
  for (int64_t r = blockIdx.y; r < n_rows; r += gridDim.y) {  // r = kv_head + t * n_kv_heads
    const float value = row_ptr<float>(src, ls, r)[d];
    if constexpr (kF16) {
      row_ptr<__half>(cache, lc, first_cache_row + r)[d] = __float2half_rn(value);
    } else {
      row_ptr<float>(cache, lc, first_cache_row + r)[d] = value;
    }
  }
}

// Paged store: token t's heads go to cache row rows[t].
template <bool kF16>
__global__ void store_kv_rows_kernel(const void* src, RowLayout ls, void* cache, RowLayout lc, int64_t head_dim,
                                     int64_t n_rows, int64_t n_kv_heads, const int32_t* rows) {
  start_after_previous_kernel();
  const int64_t d = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (d >= head_dim) return;
  for (int64_t r = blockIdx.y; r < n_rows; r += gridDim.y) {  // r = kv_head + t * n_kv_heads
    const int64_t kv_head = r % n_kv_heads, t = r / n_kv_heads;
    const int64_t cache_row = kv_head + int64_t(rows[t]) * n_kv_heads;
    const float value = row_ptr<float>(src, ls, r)[d];
    if constexpr (kF16) {
      row_ptr<__half>(cache, lc, cache_row)[d] = __float2half_rn(value);
    } else {
      row_ptr<float>(cache, lc, cache_row)[d] = value;
    }
  }
}

// The cache row of a position: itself (a dense cache) or through a block table.
struct DenseRows {
  __device__ __forceinline__ int64_t operator()(int64_t s) const { return s; }
};
struct PagedRows {
  const int32_t* table;  // the sequence's blocks
  int64_t block_tokens;
  __device__ __forceinline__ int64_t operator()(int64_t s) const {
    return int64_t(table[s / block_tokens]) * block_tokens + s % block_tokens;
  }
};

// q . k over one head: k is a cache row (f32 or f16), q in shared memory (broadcast reads).
template <bool kF16>
__device__ __forceinline__ float dot_row(const float* q, const void* k, int64_t head_dim, bool vec) {
  float dot = 0.0f;
  if (vec) {  // head_dim % 8 == 0 and 16-byte aligned rows
    for (int64_t d = 0; d < head_dim; d += 8) {
      const uint4* p = reinterpret_cast<const uint4*>(static_cast<const char*>(k) + d * (kF16 ? 2 : 4));
      float kv[8];
      if constexpr (kF16) {
        const uint4 u = *p;
        const uint32_t w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          kv[2 * i] = f16_bits_to_f32(uint16_t(w[i] & 0xffffu));
          kv[2 * i + 1] = f16_bits_to_f32(uint16_t(w[i] >> 16));
        }
      } else {
        const uint4 a = p[0], b = p[1];
        kv[0] = __uint_as_float(a.x), kv[1] = __uint_as_float(a.y), kv[2] = __uint_as_float(a.z);
        kv[3] = __uint_as_float(a.w), kv[4] = __uint_as_float(b.x), kv[5] = __uint_as_float(b.y);
        kv[6] = __uint_as_float(b.z), kv[7] = __uint_as_float(b.w);
      }
#pragma unroll
      for (int i = 0; i < 8; ++i) dot += q[d + i] * kv[i];
    }
  } else {
    for (int64_t d = 0; d < head_dim; ++d) dot += q[d] * cache_value<kF16>(k, d);
  }
  return dot;
}

// One warp's share of the keys of one head: tiles of 32 keys starting at `first`, `stride`
// apart, below `end`. Online softmax: running max m, denominator l and weighted sum o (lane
// holds o[d] for d = lane + 32 i), all f32.
struct WarpState {
  float m = -INFINITY, l = 0.0f;
  float o[kPerLane] = {};
};

template <bool kF16, typename RowOf = DenseRows>
__device__ __forceinline__ void attend_keys(const float* q_s, const void* k, const RowLayout& lk, const void* v,
                                            const RowLayout& lv, int64_t kv_head, int64_t n_kv_heads, int64_t head_dim,
                                            int64_t first, int64_t end, int64_t stride, float scale, bool vec,
                                            WarpState& st, RowOf row_of = {}) {
  const int lane = threadIdx.x % kWarp;
  for (int64_t base = first; base < end; base += stride) {
    const int64_t s = base + lane;
    float score = -INFINITY;
    if (s < end) {
      score = dot_row<kF16>(q_s, row_ptr<char>(k, lk, kv_head + row_of(s) * n_kv_heads), head_dim, vec) * scale;
    }
    const float m_new = fmaxf(st.m, warp_max(score));  // finite: key `base` is visible
    const float correction = expf(st.m - m_new);
    const float p = s < end ? expf(score - m_new) : 0.0f;
    st.l = st.l * correction + warp_sum(p);
#pragma unroll
    for (int i = 0; i < kPerLane; ++i) st.o[i] *= correction;
    const int n_valid = int(end - base < kWarp ? end - base : kWarp);  // the same in every lane
#pragma unroll 4
    for (int j = 0; j < n_valid; ++j) {
      const float pj = __shfl_sync(0xffffffffu, p, j);
      const void* vr = row_ptr<char>(v, lv, kv_head + row_of(base + j) * n_kv_heads);
#pragma unroll
      for (int i = 0; i < kPerLane; ++i) {
        const int64_t d = lane + kWarp * i;
        if (d < head_dim) st.o[i] += pj * cache_value<kF16>(vr, d);
      }
    }
    st.m = m_new;
  }
}

// Shared memory of a block of kN warps for merging their states.
template <int kN>
struct MergeSpace {
  float m[kN], l[kN];
  float o[kN][kMaxHeadDim];
};

// Merges the block's warp states, stored in `sm` (every warp's m, l and o[0..head_dim)):
// calls write(d, o_d, m, l) for d < head_dim (spread over the block's threads) with the
// block's unnormalized sum o_d, running max m and denominator l.
template <int kN, typename Write>
__device__ __forceinline__ void merge_stored(int64_t head_dim, MergeSpace<kN>& sm, Write&& write) {
  __syncthreads();
  float m_all = -INFINITY;
#pragma unroll
  for (int w = 0; w < kN; ++w) m_all = fmaxf(m_all, sm.m[w]);
  float weight[kN], l_all = 0.0f;
#pragma unroll
  for (int w = 0; w < kN; ++w) {
    weight[w] = sm.l[w] > 0.0f ? expf(sm.m[w] - m_all) : 0.0f;  // warps without keys count 0
    l_all += sm.l[w] * weight[w];
  }
  for (int64_t d = threadIdx.x; d < head_dim; d += blockDim.x) {
    float sum = 0.0f;
#pragma unroll
    for (int w = 0; w < kN; ++w) sum += sm.o[w][d] * weight[w];
    write(d, sum, m_all, l_all);
  }
}

template <int kN, typename Write>
__device__ __forceinline__ void merge_warps(const WarpState& st, int64_t head_dim, MergeSpace<kN>& sm, Write&& write) {
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  if (lane == 0) sm.m[warp] = st.m, sm.l[warp] = st.l;
#pragma unroll
  for (int i = 0; i < kPerLane; ++i) {
    const int64_t d = lane + kWarp * i;
    if (d < head_dim) sm.o[warp][d] = st.o[i];
  }
  merge_stored(head_dim, sm, write);
}

template <bool kF16>
__global__ void __launch_bounds__(kWarps* kWarp)
    attention_kernel(const void* q, RowLayout lq, const void* k, RowLayout lk, const void* v, RowLayout lv, void* out,
                     RowLayout lo, int64_t head_dim, int64_t n_heads, int64_t group, int64_t n_kv_heads,
                     int64_t n_tokens, int64_t n_past, const int32_t* n_past_dev, int64_t window, float scale,
                     bool vec) {
  start_after_previous_kernel();
  __shared__ __align__(16) float q_s[kMaxHeadDim];
  __shared__ MergeSpace<kWarps> sm;
  const int warp = threadIdx.x / kWarp;
  const int64_t h = blockIdx.x, kv_head = h / group;
  for (int64_t t = blockIdx.y; t < n_tokens; t += gridDim.y) {
    __syncthreads();  // the previous token is done with q_s and the merge space
    const float* qr = row_ptr<float>(q, lq, h + t * n_heads);
    for (int64_t d = threadIdx.x; d < head_dim; d += blockDim.x) q_s[d] = qr[d];
    __syncthreads();
    WarpState st;
    // causal: positions 0..n_past+t; in a window, its last `window`
    const int64_t n_kv = (n_past_dev != nullptr ? int64_t(*n_past_dev) : n_past) + t + 1;
    const int64_t first = window > 0 && n_kv > window ? n_kv - window : 0;
    attend_keys<kF16>(q_s, k, lk, v, lv, kv_head, n_kv_heads, head_dim, first + int64_t(warp) * kWarp, n_kv,
                      int64_t(kWarps) * kWarp, scale, vec, st);
    float* orow = row_ptr<float>(out, lo, h + t * n_heads);
    merge_warps(st, head_dim, sm, [&](int64_t d, float o, float, float l) { orow[d] = o / l; });
  }
}

// attention_kernel over a paged cache: token t sees positions 0..positions[t] of sequence
// seq[t] (the last `window` of them where window > 0), whose blocks are block_table[seq[t] * max_blocks ...].
template <bool kF16>
__global__ void __launch_bounds__(kWarps* kWarp)
    attention_paged_kernel(const void* q, RowLayout lq, const void* k, RowLayout lk, const void* v, RowLayout lv,
                           void* out, RowLayout lo, int64_t head_dim, int64_t n_heads, int64_t group,
                           int64_t n_kv_heads, int64_t n_tokens, const int32_t* positions, const int32_t* seq,
                           const int32_t* block_table, int64_t max_blocks, int64_t block_tokens, int64_t window,
                           float scale, bool vec) {
  start_after_previous_kernel();
  __shared__ __align__(16) float q_s[kMaxHeadDim];
  __shared__ MergeSpace<kWarps> sm;
  const int warp = threadIdx.x / kWarp;
  const int64_t h = blockIdx.x, kv_head = h / group;
  for (int64_t t = blockIdx.y; t < n_tokens; t += gridDim.y) {
    __syncthreads();  // the previous token is done with q_s and the merge space
    const float* qr = row_ptr<float>(q, lq, h + t * n_heads);
    for (int64_t d = threadIdx.x; d < head_dim; d += blockDim.x) q_s[d] = qr[d];
    __syncthreads();
    WarpState st;
    // causal: positions 0..positions[t]; in a window, its last `window`
    const int64_t n_kv = int64_t(positions[t]) + 1;
    const int64_t first = window > 0 && n_kv > window ? n_kv - window : 0;
    const PagedRows rows{block_table + int64_t(seq[t]) * max_blocks, block_tokens};
    attend_keys<kF16>(q_s, k, lk, v, lv, kv_head, n_kv_heads, head_dim, first + int64_t(warp) * kWarp, n_kv,
                      int64_t(kWarps) * kWarp, scale, vec, st, rows);
    float* orow = row_ptr<float>(out, lo, h + t * n_heads);
    merge_warps(st, head_dim, sm, [&](int64_t d, float o, float, float l) { orow[d] = o / l; });
  }
}

// Decode (one query token) split over the keys: block (h, split) takes keys
// split * kSplitKeys .. + kSplitKeys - 1 of query head h and writes its partial state to
// part[h, split] = {m, l, o[head_dim]} (`stride` splits per head). For a recorded step the
// grid covers the whole context, so that it does not depend on n_past (then read from the
// device, n_past_dev); blocks past the visible keys return at once. When there is one split
// (n_kv <= kSplitKeys) it also writes the output; else the last of head h's blocks to finish
// merges the head's partial states (merge_if_last), so that decode attention is one launch.
constexpr int kSplitWarps = 4;
constexpr int64_t kSplitKeys = 128;

__device__ __forceinline__ int64_t visible_keys(const int32_t* n_past_dev, int64_t n_past) {
  return (n_past_dev != nullptr ? int64_t(*n_past_dev) : n_past) + 1;
}

// out[:, h] = the partial states of head h's first n_used splits merged (the block's threads
// take d = threadIdx.x, + blockDim.x, ...; each d's sum in the same order whatever the block
// size). The partial states were written by other blocks of this launch: read from the L2.
// q8.q != nullptr (head_dim % 32 == 0, blockDim >= head_dim): out's q8 form too (x = out).
__device__ __forceinline__ void merge_splits(const float* part, int64_t stride, int64_t head_dim, int64_t h,
                                             int64_t n_used, float* orow, XQ8 q8) {
  const float* ph = part + h * stride * (head_dim + 2);
  float m_all = -INFINITY;
  for (int64_t s = 0; s < n_used; ++s) m_all = fmaxf(m_all, __ldcg(ph + s * (head_dim + 2)));
  float l_all = 0.0f;
  for (int64_t s = 0; s < n_used; ++s) {
    const float* p = ph + s * (head_dim + 2);
    l_all += __ldcg(p + 1) * expf(__ldcg(p) - m_all);
  }
  for (int64_t d = threadIdx.x; d < head_dim; d += blockDim.x) {
    float sum = 0.0f;
    for (int64_t s = 0; s < n_used; ++s) {
      const float* p = ph + s * (head_dim + 2);
      sum += __ldcg(p + 2 + d) * expf(__ldcg(p) - m_all);
    }
    orow[d] = sum / l_all;
    if (q8.q != nullptr) quantize_lane_q8(orow[d], h * head_dim + d, q8);
  }
}

// Called by every thread of a split block (n_kv > kSplitKeys) after it wrote its partial
// state: counts the block in done[h], and the head's last block (done[h] reaching the splits
// in use) merges them and sets done[h] back to 0 for the next launch.
__device__ __forceinline__ void merge_if_last(const float* part, int64_t stride, int64_t head_dim, int64_t h,
                                              int64_t n_kv, unsigned* done, float* orow, XQ8 q8) {
  __shared__ bool last;
  const int64_t n_used = ceil_div(n_kv, kSplitKeys);
  __threadfence();  // this block's partial state is visible to the block that merges
  __syncthreads();
  if (threadIdx.x == 0) {
    last = atomicAdd(done + h, 1u) == unsigned(n_used - 1);
    if (last) done[h] = 0;
  }
  __syncthreads();
  if (!last) return;
  __threadfence();
  merge_splits(part, stride, head_dim, h, n_used, orow, q8);
}

template <bool kF16>
__global__ void __launch_bounds__(kSplitWarps* kWarp)
    attention_split_kernel(const void* q, RowLayout lq, const void* k, RowLayout lk, const void* v, RowLayout lv,
                           float* part, int64_t stride, int64_t head_dim, int64_t group, int64_t n_kv_heads,
                           const int32_t* n_past_dev, int64_t n_past, float scale, bool vec, void* out, RowLayout lo,
                           unsigned* done) {
  start_after_previous_kernel();
  __shared__ __align__(16) float q_s[kMaxHeadDim];
  __shared__ MergeSpace<kSplitWarps> sm;
  const int warp = threadIdx.x / kWarp;
  const int64_t h = blockIdx.x, split = blockIdx.y, kv_head = h / group;
  const int64_t n_kv = visible_keys(n_past_dev, n_past);
  const int64_t begin = split * kSplitKeys;
  if (begin >= n_kv) return;  // the whole block: nothing to see
  const int64_t end = begin + kSplitKeys < n_kv ? begin + kSplitKeys : n_kv;
  const float* qr = row_ptr<float>(q, lq, h);
  for (int64_t d = threadIdx.x; d < head_dim; d += blockDim.x) q_s[d] = qr[d];
  __syncthreads();
  WarpState st;
  attend_keys<kF16>(q_s, k, lk, v, lv, kv_head, n_kv_heads, head_dim, begin + int64_t(warp) * kWarp, end,
                    int64_t(kSplitWarps) * kWarp, scale, vec, st);
  float* p = part + (h * stride + split) * (head_dim + 2);
  float* orow = row_ptr<float>(out, lo, h);
  const bool only = n_kv <= kSplitKeys;
  merge_warps(st, head_dim, sm, [&](int64_t d, float o, float m, float l) {
    if (d == 0) p[0] = m, p[1] = l;
    p[2 + d] = o;
    if (only) orow[d] = o / l;
  });
  if (!only) merge_if_last(part, stride, head_dim, h, n_kv, done, orow, XQ8{nullptr, nullptr});
}

// The decode split kernel for f16 caches with head_dim kHd (64, 128), 16-byte aligned cache
// rows and q rows: the same partial states in two passes over the split's keys, every load
// 16 bytes and all of a lane's loads issued before their first use. kG = kHd / 8 lanes share
// a key (8 dims each: one 16-byte word of its key and of its value row), a warp takes
// kRows = 32 / kG keys at a time, the block kBlockRows. Pass 1: each key's kG partial dot
// products summed by shuffles into a score in shared memory. Then every warp reads the
// split's max m and l = sum exp(s - m) from there (the same order in every warp), and pass 2
// adds p_j v_j over each lane's keys; the keys' sums meet by shuffles, the warps' in shared
// memory. When the split is the only one (n_kv <= kSplitKeys) the block also writes the
// head's output o / l (what merge_splits computes from one split, bit for bit).
template <int kHd>
struct SplitF16 {
  static constexpr int kWarps = 8, kG = kHd / 8, kRows = kWarp / kG, kBlockRows = kWarps * kRows;
  static constexpr int kSteps = int(kSplitKeys) / kBlockRows;  // keys per lane
  static_assert(kSteps * kBlockRows == int(kSplitKeys));
};

__device__ __forceinline__ float dot8_f16(float4 qa, float4 qb, uint4 kw) {
  const float2 k0 = __half22float2(*reinterpret_cast<const __half2*>(&kw.x));
  const float2 k1 = __half22float2(*reinterpret_cast<const __half2*>(&kw.y));
  const float2 k2 = __half22float2(*reinterpret_cast<const __half2*>(&kw.z));
  const float2 k3 = __half22float2(*reinterpret_cast<const __half2*>(&kw.w));
  return ((qa.x * k0.x + qa.y * k0.y) + (qa.z * k1.x + qa.w * k1.y)) +
         ((qb.x * k2.x + qb.y * k2.y) + (qb.z * k3.x + qb.w * k3.y));
}

__device__ __forceinline__ void add8_f16(float (&acc)[8], float p, uint4 vw) {
  const uint32_t w[4] = {vw.x, vw.y, vw.z, vw.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 f = __half22float2(*reinterpret_cast<const __half2*>(&w[i]));
    acc[2 * i] += p * f.x;
    acc[2 * i + 1] += p * f.y;
  }
}

template <int kHd>
__global__ void __launch_bounds__(SplitF16<kHd>::kWarps* kWarp)
    attention_split_f16_kernel(const void* q, RowLayout lq, const void* k, RowLayout lk, const void* v, RowLayout lv,
                               float* part, int64_t stride, int64_t group, int64_t n_kv_heads,
                               const int32_t* n_past_dev, int64_t n_past, bool keys_settled, float scale, void* out,
                               RowLayout lo, unsigned* done, XQ8 q8) {
  using S = SplitF16<kHd>;
  __shared__ float score_s[kSplitKeys];
  __shared__ float o_s[S::kWarps][kHd];
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp, sub = lane % S::kG;
  const int row = warp * S::kRows + lane / S::kG;  // the lane's first key in the split
  const int64_t h = blockIdx.x, split = blockIdx.y, kv_head = int(h) / int(group);
  const int64_t n_kv = visible_keys(n_past_dev, n_past);
  const int64_t begin = split * kSplitKeys;
  if (begin >= n_kv) return;
  const int n = int(n_kv - begin < kSplitKeys ? n_kv - begin : kSplitKeys);  // keys of this split
  // Rows addressed without row_offset's 64-bit divisions (dozens per lane, which cost more
  // than the loads): the launch checks that q and out are [kHd, n_heads] and the caches
  // [kHd, n_kv_heads, n_ctx], so that row (kv_head, pos) lies at kv_head * nb1 + pos * nb2.
  const float4* qr = reinterpret_cast<const float4*>(static_cast<const char*>(q) + h * lq.nb1) + 2 * sub;
  const char* k_rows = static_cast<const char*>(k) + kv_head * lk.nb1;
  const char* v_rows = static_cast<const char*>(v) + kv_head * lv.nb1;
  uint4 kw[S::kSteps], vw[S::kSteps];
  auto load_keys = [&](auto wanted) {
#pragma unroll
    for (int i = 0; i < S::kSteps; ++i) {
      const int j = i * S::kBlockRows + row;
      if (j < n && wanted(begin + j)) {
        kw[i] = reinterpret_cast<const uint4*>(k_rows + (begin + j) * lk.nb2)[sub];
        vw[i] = reinterpret_cast<const uint4*>(v_rows + (begin + j) * lv.nb2)[sub];
      }
    }
  };
  // keys_settled: the keys before the newest (n_kv - 1, which the previous kernel may store)
  // were stored before it, so they load while it runs (n_past_dev was written before the
  // step began); only the newest waits for it (docs/benchmarks.md, "early keys").
  if (keys_settled) load_keys([&](int64_t pos) { return pos < n_kv - 1; });
  start_after_previous_kernel();
  load_keys([&](int64_t pos) { return !keys_settled || pos == n_kv - 1; });
  const float4 qa = qr[0], qb = qr[1];
#pragma unroll
  for (int i = 0; i < S::kSteps; ++i) {
    const int j = i * S::kBlockRows + row;
    float dot = j < n ? dot8_f16(qa, qb, kw[i]) : 0.0f;
#pragma unroll
    for (int o = S::kG / 2; o > 0; o /= 2) dot += __shfl_xor_sync(0xffffffffu, dot, o);
    if (sub == 0 && j < n) score_s[j] = dot * scale;
  }
  __syncthreads();
  float m = -INFINITY;
  for (int j = lane; j < n; j += kWarp) m = fmaxf(m, score_s[j]);
  m = warp_max(m);
  float l = 0.0f;
  for (int j = lane; j < n; j += kWarp) l += expf(score_s[j] - m);
  l = warp_sum(l);
  float acc[8] = {};
#pragma unroll
  for (int i = 0; i < S::kSteps; ++i) {
    const int j = i * S::kBlockRows + row;
    if (j < n) add8_f16(acc, expf(score_s[j] - m), vw[i]);
  }
#pragma unroll
  for (int off = S::kG; off < kWarp; off *= 2) {
#pragma unroll
    for (int i = 0; i < 8; ++i) acc[i] += __shfl_xor_sync(0xffffffffu, acc[i], off);
  }
  if (lane < S::kG) {
#pragma unroll
    for (int i = 0; i < 8; ++i) o_s[warp][8 * lane + i] = acc[i];
  }
  __syncthreads();
  float* p = part + (h * stride + split) * (kHd + 2);
  float* orow = reinterpret_cast<float*>(static_cast<char*>(out) + h * lo.nb1);
  const bool only = n_kv <= kSplitKeys;
  if (threadIdx.x < kHd) {
    const int d = int(threadIdx.x);
    float o = 0.0f;
#pragma unroll
    for (int w = 0; w < S::kWarps; ++w) o += o_s[w][d];
    if (d == 0) p[0] = m, p[1] = l;
    p[2 + d] = o;
    if (only) {
      orow[d] = o / l;
      if (q8.q != nullptr) quantize_lane_q8(o / l, h * kHd + d, q8);  // whole warps: kHd % 32 == 0
    }
  }
  if (!only) merge_if_last(part, stride, kHd, h, n_kv, done, orow, q8);
}

}  // namespace

cudaError_t launch_store_kv(const void* src, RowLayout ls, void* cache, RowLayout lc, bool cache_f16, int64_t head_dim,
                            int64_t n_kv_heads, int64_t n_tokens, int64_t pos, const int32_t* pos_dev,
                            cudaStream_t stream) {
  const int64_t n_rows = n_kv_heads * n_tokens;
  if (head_dim == 0 || n_rows == 0) return cudaSuccess;
  const dim3 grid(unsigned(ceil_div(head_dim, 128)), unsigned(n_rows < kMaxGridY ? n_rows : kMaxGridY));
  if (cache_f16) {
    return launch(store_kv_kernel<true>, grid, 128, 0, stream, src, ls, cache, lc, head_dim, n_rows, n_kv_heads, pos,
                  pos_dev);
  }
  return launch(store_kv_kernel<false>, grid, 128, 0, stream, src, ls, cache, lc, head_dim, n_rows, n_kv_heads, pos,
                pos_dev);
}

cudaError_t launch_store_kv_rows(const void* src, RowLayout ls, void* cache, RowLayout lc, bool cache_f16,
                                 int64_t head_dim, int64_t n_kv_heads, int64_t n_tokens, const int32_t* rows,
                                 cudaStream_t stream) {
  const int64_t n_rows = n_kv_heads * n_tokens;
  if (head_dim == 0 || n_rows == 0) return cudaSuccess;
  const dim3 grid(unsigned(ceil_div(head_dim, 128)), unsigned(n_rows < kMaxGridY ? n_rows : kMaxGridY));
  if (cache_f16) {
    return launch(store_kv_rows_kernel<true>, grid, 128, 0, stream, src, ls, cache, lc, head_dim, n_rows, n_kv_heads,
                  rows);
  }
  return launch(store_kv_rows_kernel<false>, grid, 128, 0, stream, src, ls, cache, lc, head_dim, n_rows, n_kv_heads,
                rows);
}

namespace {

// 16-byte loads of key rows: rows of whole 16-byte words at 16-byte aligned addresses.
bool key_rows_vectorizable(const void* k, const RowLayout& lk, int64_t head_dim, bool cache_f16) {
  const int64_t elem = cache_f16 ? 2 : 4;
  return head_dim % 8 == 0 && (reinterpret_cast<uintptr_t>(k) & 15) == 0 && lk.nb1 % 16 == 0 && lk.nb2 % 16 == 0 &&
         (head_dim * elem) % 16 == 0;
}

}  // namespace

cudaError_t launch_attention(const void* q, RowLayout lq, const void* k, RowLayout lk, const void* v, RowLayout lv,
                             bool cache_f16, void* out, RowLayout lo, int64_t head_dim, int64_t n_heads,
                             int64_t n_kv_heads, int64_t n_tokens, int64_t n_past, const int32_t* n_past_dev,
                             int64_t window, float scale, cudaStream_t stream) {
  if (n_heads == 0 || n_tokens == 0 || head_dim == 0) return cudaSuccess;
  if (head_dim > kMaxHeadDim || n_kv_heads == 0) return cudaErrorInvalidValue;
  const dim3 grid(unsigned(n_heads), unsigned(n_tokens < kMaxGridY ? n_tokens : kMaxGridY));
  const int64_t group = n_heads / n_kv_heads;
  const bool vec = key_rows_vectorizable(k, lk, head_dim, cache_f16);
  if (cache_f16) {
    return launch(attention_kernel<true>, grid, kWarps * kWarp, 0, stream, q, lq, k, lk, v, lv, out, lo, head_dim,
                  n_heads, group, n_kv_heads, n_tokens, n_past, n_past_dev, window, scale, vec);
  }
  return launch(attention_kernel<false>, grid, kWarps * kWarp, 0, stream, q, lq, k, lk, v, lv, out, lo, head_dim,
                n_heads, group, n_kv_heads, n_tokens, n_past, n_past_dev, window, scale, vec);
}

cudaError_t launch_attention_paged(const void* q, RowLayout lq, const void* k, RowLayout lk, const void* v,
                                   RowLayout lv, bool cache_f16, void* out, RowLayout lo, int64_t head_dim,
                                   int64_t n_heads, int64_t n_kv_heads, int64_t n_tokens, const int32_t* positions,
                                   const int32_t* seq, const int32_t* block_table, int64_t max_blocks,
                                   int64_t block_tokens, int64_t window, float scale, cudaStream_t stream) {
  if (n_heads == 0 || n_tokens == 0 || head_dim == 0) return cudaSuccess;
  if (head_dim > kMaxHeadDim || n_kv_heads == 0 || block_tokens <= 0) return cudaErrorInvalidValue;
  const dim3 grid(unsigned(n_heads), unsigned(n_tokens < kMaxGridY ? n_tokens : kMaxGridY));
  const int64_t group = n_heads / n_kv_heads;
  const bool vec = key_rows_vectorizable(k, lk, head_dim, cache_f16);
  if (cache_f16) {
    return launch(attention_paged_kernel<true>, grid, kWarps * kWarp, 0, stream, q, lq, k, lk, v, lv, out, lo, head_dim,
                  n_heads, group, n_kv_heads, n_tokens, positions, seq, block_table, max_blocks, block_tokens, window,
                  scale, vec);
  }
  return launch(attention_paged_kernel<false>, grid, kWarps * kWarp, 0, stream, q, lq, k, lk, v, lv, out, lo, head_dim,
                n_heads, group, n_kv_heads, n_tokens, positions, seq, block_table, max_blocks, block_tokens, window,
                scale, vec);
}

size_t attention_decode_partial_floats(int64_t n_heads, int64_t head_dim, int64_t n_ctx) {
  return size_t(n_heads * ceil_div(n_ctx, kSplitKeys) * (head_dim + 2));
}

cudaError_t launch_attention_decode(const void* q, RowLayout lq, const void* k, RowLayout lk, const void* v,
                                    RowLayout lv, bool cache_f16, void* out, RowLayout lo, int64_t head_dim,
                                    int64_t n_heads, int64_t n_kv_heads, int64_t n_ctx, int64_t n_past,
                                    const int32_t* n_past_dev, bool keys_settled, float scale, float* partials,
                                    unsigned* done, XQ8 q8, cudaStream_t stream) {
  if (n_heads == 0 || head_dim == 0) return cudaSuccess;
  if (head_dim > kMaxHeadDim || n_kv_heads == 0 || n_ctx > int64_t(kMaxGridY) * kSplitKeys) {
    return cudaErrorInvalidValue;
  }
  // Recorded (n_past on the device): splits for the whole context; else for the visible keys.
  const int64_t n_splits = ceil_div(n_past_dev != nullptr ? n_ctx : n_past + 1, kSplitKeys);
  const int64_t stride = ceil_div(n_ctx, kSplitKeys);  // splits per head in `partials`
  const dim3 grid{unsigned(n_heads), unsigned(n_splits)};
  const int64_t group = n_heads / n_kv_heads;
  const bool vec = key_rows_vectorizable(k, lk, head_dim, cache_f16);
  const bool v_vec = (reinterpret_cast<uintptr_t>(v) & 15) == 0 && lv.nb1 % 16 == 0 && lv.nb2 % 16 == 0;
  const bool q_vec = (reinterpret_cast<uintptr_t>(q) & 15) == 0 && lq.nb1 % 16 == 0 && lq.nb2 % 16 == 0;
  const bool rows_direct = lq.ne1 >= n_heads && lo.ne1 >= n_heads && lk.ne1 == n_kv_heads && lv.ne1 == n_kv_heads &&
                           lk.ne2 >= n_ctx && lv.ne2 >= n_ctx;  // attention_split_f16_kernel's addressing
  const bool f16_kernel = cache_f16 && vec && v_vec && q_vec && rows_direct && (head_dim == 64 || head_dim == 128);
  const bool out_packed = lo.nb1 == head_dim * int64_t(sizeof(float)) && (reinterpret_cast<uintptr_t>(out) & 3) == 0;
  if (q8.q != nullptr && (!f16_kernel || !out_packed)) return cudaErrorNotSupported;
  cudaError_t split;
  if (f16_kernel && head_dim == 64) {
    split = launch(attention_split_f16_kernel<64>, grid, SplitF16<64>::kWarps * kWarp, 0, stream, q, lq, k, lk, v, lv,
                   partials, stride, group, n_kv_heads, n_past_dev, n_past, keys_settled, scale, out, lo, done, q8);
  } else if (f16_kernel && head_dim == 128) {
    split = launch(attention_split_f16_kernel<128>, grid, SplitF16<128>::kWarps * kWarp, 0, stream, q, lq, k, lk, v, lv,
                   partials, stride, group, n_kv_heads, n_past_dev, n_past, keys_settled, scale, out, lo, done, q8);
  } else {
    split = launch(cache_f16 ? attention_split_kernel<true> : attention_split_kernel<false>, grid, kSplitWarps * kWarp,
                   0, stream, q, lq, k, lk, v, lv, partials, stride, head_dim, group, n_kv_heads, n_past_dev, n_past,
                   scale, vec, out, lo, done);
  }
  return split;
}

}  // namespace strata::cuda
