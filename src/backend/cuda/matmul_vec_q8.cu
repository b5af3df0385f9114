// Decode matmul (m = 1) on the integer units: x in its q8 form (XQ8, kernels.h: blocks of 32
// int8 with d and s = d * sum q), the weight's quantized values multiplied with it four at a
// time by dp4a, the integer sums exact, the scales applied in f32 once per piece:
//   sum over a block of d_w (q_w - o) d_x q_x = d_w (d_x sum q_w q_x - o s_x).
// Why: the f32 kernels (matmul_vec_fast.cu) spend ~6 instructions per weight byte turning
// nibbles into floats and multiplying them; here it is ~2.5, and each CTA reads a quarter of
// the bytes of x. The cost is x's rounding to 8 bits (relative error ~1/254 of the block's
// largest value per element), under the quantized matmul threshold (tests/cuda/cuda_q8_test.cpp
// measures it); STRATA_CUDA_MATVEC=f32 keeps the f32 kernels (cuda_matmul.cpp).
//
// The kernel and its launch shapes are those of the f32 pieces (matmul_vec_fast.cuh): a CTA
// computes R rows, its warps split the blocks, kLanes lanes share a block; rows through
// shared memory (the slab) where they fit. Requirements: rows 2-byte aligned (Q4_0, Q6_K) or
// 16-byte aligned (Q4_K, and rows in the grouped8 format, kernels.h: RowFormat); k a
// multiple of the type's block.
#include "backend/cuda/matmul_vec_fast.cuh"
#include "backend/cuda/quantize_x.cuh"

namespace strata::cuda {
namespace {

using namespace fast_vec;

constexpr uint32_t kLowNibbles = 0x0F0F0F0Fu;

// The bytes q - 32 (int8) of a word of 6-bit values q (q6_k_word), formed without borrows:
// ((q | 0x80) - 0x20) ^ 0x80 per byte.
__device__ __forceinline__ uint32_t q6_k_centered(uint32_t q) {
  return ((q | 0x80808080u) - 0x20202020u) ^ 0x80808080u;
}

// Pieces of x's q8 form (in global memory, or kShared: in the CTA's shared memory): the
// int8 values from element e as 4 bytes (e % 4 == 0), 8 (e % 8 == 0) or 16 (e % 16 == 0),
// and block b's {d, s}.
template <bool kShared, typename W>
__device__ __forceinline__ W load_q8(const XQ8& x, int64_t e) {
  const auto* p = reinterpret_cast<const W*>(x.q + e);
  if constexpr (kShared) {
    return *p;
  } else {
    return __ldg(p);
  }
}
template <bool kShared>
__device__ __forceinline__ float2 load_ds(const XQ8& x, int64_t b) {
  if constexpr (kShared) {
    return x.ds[b];
  } else {
    return __ldg(x.ds + b);
  }
}

// Q4_0 (18 bytes: f16 d, 16 bytes of nibbles; byte i holds elements i and i + 16). Lane t
// (0, 1) takes bytes 8t .. 8t + 7: elements 8t .. 8t + 7 (low nibbles) and 16 + 8t .. (high);
// each lane carries half of the block's offset term: d_w (d_x S_t - 4 s_x).
struct FastQ4_0x8 {
  static constexpr bool kQ8 = true;
  static constexpr int kLanes = 2, kBytes = 18, kElems = 32;
  static constexpr bool kManyRows = true;
  static constexpr bool kSlab = true;
  static constexpr int kUnroll = 8;  // block-loop unrolling (dispatch_q8)
  template <int R, int M, bool kSharedX>
  static __device__ __forceinline__ void accumulate(const uint8_t* const (&rows)[R], int b, int t, const XQ8& x,
                                                    int64_t /*x_stride*/, int /*m*/, float (&acc)[R][M]) {
    const int2 xa = load_q8<kSharedX, int2>(x, int64_t(b) * 32 + 8 * t);
    const int2 xb = load_q8<kSharedX, int2>(x, int64_t(b) * 32 + 16 + 8 * t);
    const float2 ds = load_ds<kSharedX>(x, b);
#pragma unroll
    for (int r = 0; r < R; ++r) {
      const uint8_t* blk = rows[r] + int64_t(b) * kBytes;
      const float d = f16_bits_to_f32(load_u16(blk));
      const uint32_t q0 = load_u32_2(blk + 2 + 8 * t), q1 = load_u32_2(blk + 6 + 8 * t);
      int s = __dp4a(int(q0 & kLowNibbles), xa.x, 0);
      s = __dp4a(int(q1 & kLowNibbles), xa.y, s);
      s = __dp4a(int((q0 >> 4) & kLowNibbles), xb.x, s);
      s = __dp4a(int((q1 >> 4) & kLowNibbles), xb.y, s);
      acc[r][0] += d * (ds.x * float(s) - 4.0f * ds.y);
    }
  }
};

// Q4_0 rows in the grouped8 format (kernels.h: RowFormat): one lane per block, its 16 bytes of
// nibbles in one 16-byte load (low nibbles elements 0..15, high 16..31), so a warp reads 32
// consecutive blocks (4 runs of 8, 576 bytes) of each of its rows: d_w (d_x S - 8 s_x).
// Rows read directly (not through the slab), the block loop unrolled 2, 4 rows per CTA where
// n >= 4096 (launch_fast): the fastest of the variants measured (docs/benchmarks.md).
struct FastQ4_0Gx8 {
  static constexpr bool kQ8 = true;
  static constexpr int kLanes = 1, kElems = 32;
  static constexpr bool kManyRows = true;
  static constexpr bool kSlab = false;
  static constexpr int kUnroll = 2;
  template <int R, int M, bool kSharedX>
  static __device__ __forceinline__ void accumulate(const uint8_t* const (&rows)[R], int b, int /*t*/, const XQ8& x,
                                                    int64_t /*x_stride*/, int /*m*/, float (&acc)[R][M]) {
    constexpr RowFormat kF = RowFormat::grouped8;
    const int4 xa = load_q8<kSharedX, int4>(x, int64_t(b) * 32), xb = load_q8<kSharedX, int4>(x, int64_t(b) * 32 + 16);
    const float2 ds = load_ds<kSharedX>(x, b);
#pragma unroll
    for (int r = 0; r < R; ++r) {
      const float d = f16_bits_to_f32(load_u16(rows[r] + quant::q4_0_scale_at<kF>(b)));
      const uint4 q = *reinterpret_cast<const uint4*>(rows[r] + quant::q4_0_nibbles_at<kF>(b));
      int s = __dp4a(int(q.x & kLowNibbles), xa.x, 0);
      s = __dp4a(int(q.y & kLowNibbles), xa.y, s);
      s = __dp4a(int(q.z & kLowNibbles), xa.z, s);
      s = __dp4a(int(q.w & kLowNibbles), xa.w, s);
      s = __dp4a(int((q.x >> 4) & kLowNibbles), xb.x, s);
      s = __dp4a(int((q.y >> 4) & kLowNibbles), xb.y, s);
      s = __dp4a(int((q.z >> 4) & kLowNibbles), xb.z, s);
      s = __dp4a(int((q.w >> 4) & kLowNibbles), xb.w, s);
      acc[r][0] += d * (ds.x * float(s) - 8.0f * ds.y);
    }
  }
};

// Q4_K (144 bytes: f16 d, f16 dmin, 12 bytes of 6-bit scales and mins, 128 bytes of nibbles;
// element 64p + 32h + l is nibble h of qs[32p + l], of sub-block 2p + h, value
// d sc q - dmin mn). Lane t (0..7) takes qs bytes 32p + l0 .. + 15 (p = t / 2, l0 = 16 (t % 2))
// in one 16-byte load: 16 elements of sub-block 2p and 16 of 2p + 1, each sub-block one q8
// block of x; the lane carries half of each sub-block's min term.
struct FastQ4_Kx8 {
  static constexpr bool kQ8 = true;
  static constexpr int kLanes = 8, kBytes = 144, kElems = 256;
  static constexpr bool kManyRows = true;
  static constexpr bool kSlab = true;
  static constexpr int kUnroll = 1;  // block-loop unrolling (dispatch_q8)
  template <int R, int M, bool kSharedX>
  static __device__ __forceinline__ void accumulate(const uint8_t* const (&rows)[R], int b, int t, const XQ8& x,
                                                    int64_t /*x_stride*/, int /*m*/, float (&acc)[R][M]) {
    const int p = t / 2, l0 = 16 * (t % 2);
    const int64_t e = int64_t(b) * 256 + 64 * p + l0;  // element of the lane's first low nibble
    const int4 xl = load_q8<kSharedX, int4>(x, e), xh = load_q8<kSharedX, int4>(x, e + 32);
    const float2 dsl = load_ds<kSharedX>(x, int64_t(b) * 8 + 2 * p),
                 dsh = load_ds<kSharedX>(x, int64_t(b) * 8 + 2 * p + 1);
#pragma unroll
    for (int r = 0; r < R; ++r) {
      const uint8_t* blk = rows[r] + int64_t(b) * kBytes;
      const uint4 head = *reinterpret_cast<const uint4*>(blk);  // d, dmin, 12 scale bytes
      const uint4 q = *reinterpret_cast<const uint4*>(blk + 16 + 32 * p + l0);
      const float d = f16_bits_to_f32(uint16_t(head.x & 0xffffu)), dmin = f16_bits_to_f32(uint16_t(head.x >> 16));
      uint32_t sc, mn;
      q4k_scale_min_pair(head.y, head.z, head.w, p, sc, mn);
      int sl = __dp4a(int(q.x & kLowNibbles), xl.x, 0);
      sl = __dp4a(int(q.y & kLowNibbles), xl.y, sl);
      sl = __dp4a(int(q.z & kLowNibbles), xl.z, sl);
      sl = __dp4a(int(q.w & kLowNibbles), xl.w, sl);
      int sh = __dp4a(int((q.x >> 4) & kLowNibbles), xh.x, 0);
      sh = __dp4a(int((q.y >> 4) & kLowNibbles), xh.y, sh);
      sh = __dp4a(int((q.z >> 4) & kLowNibbles), xh.z, sh);
      sh = __dp4a(int((q.w >> 4) & kLowNibbles), xh.w, sh);
      const float sc0 = magic_byte(sc, 0) - kMagic, sc1 = magic_byte(sc, 1) - kMagic;
      const float mn0 = magic_byte(mn, 0) - kMagic, mn1 = magic_byte(mn, 1) - kMagic;
      const float dots = sc0 * (dsl.x * float(sl)) + sc1 * (dsh.x * float(sh));
      const float mins = mn0 * dsl.y + mn1 * dsh.y;
      acc[r][0] += d * dots - 0.5f * dmin * mins;
    }
  }
};

// x's q8 form for a Q6_K piece: W (int: 4 values, int2: 8) from element l0 of each of the 4
// q8 blocks 4g .. 4g + 3 of block b (group g's k = 0..3), and their scales d.
template <bool kShared, typename W>
__device__ __forceinline__ void load_q6_k_x(const XQ8& x, int b, int g, int l0, W (&xw)[4], float (&dx)[4]) {
#pragma unroll
  for (int k = 0; k < 4; ++k) {
    const int64_t block = int64_t(b) * 8 + 4 * g + k;
    xw[k] = load_q8<kShared, W>(x, block * 32 + l0);
    dx[k] = load_ds<kShared>(x, block).x;
  }
}

// Q6_K (210 bytes: ql[128], qh[64], int8 scales[16], f16 d; element 128g + 32k + l has low
// bits (ql[64g + 32(k&1) + l] >> 4(k>>1)) & 15, high bits (qh[32g + l] >> 2k) & 3, value
// d * scales[8g + 2k + l/16] * (q - 32)). Lane t (0..15) takes l = l0 .. l0 + 3 of group
// g = t / 8 (l0 = 4 (t % 8)) for k = 0..3: one word of each of 4 q8 blocks of x, the bytes
// q - 32 formed by q6_k_centered.
struct FastQ6_Kx8 {
  static constexpr bool kQ8 = true;
  static constexpr int kLanes = 16, kBytes = 210, kElems = 256;
  static constexpr bool kManyRows = true;  // unlike the f32 piece's one row per CTA (dispatch_q8)
  static constexpr bool kSlab = true;
  static constexpr int kUnroll = 2;
  template <int R, int M, bool kSharedX>
  static __device__ __forceinline__ void accumulate(const uint8_t* const (&rows)[R], int b, int t, const XQ8& x,
                                                    int64_t /*x_stride*/, int /*m*/, float (&acc)[R][M]) {
    const int g = t / 8, l0 = 4 * (t % 8);
    int xw[4];
    float dx[4];
    load_q6_k_x<kSharedX>(x, b, g, l0, xw, dx);
#pragma unroll
    for (int r = 0; r < R; ++r) {
      const uint8_t* blk = rows[r] + int64_t(b) * kBytes;
      const uint32_t ql0 = load_u32_2(blk + 64 * g + l0), ql1 = load_u32_2(blk + 64 * g + 32 + l0);
      const uint32_t qh = load_u32_2(blk + 128 + 32 * g + l0);
      const float d = f16_bits_to_f32(load_u16(blk + 208));
      const int sc_shift = 8 * (l0 / 16);
      float s = 0.0f;
#pragma unroll
      for (int k = 0; k < 4; ++k) {
        const uint32_t centered = q6_k_centered(q6_k_word(k & 1 ? ql1 : ql0, qh, k));
        const int sc = int(int8_t(uint8_t(load_u16(blk + 192 + 8 * g + 2 * k) >> sc_shift)));
        s += float(sc) * (dx[k] * float(__dp4a(int(centered), xw[k], 0)));
      }
      acc[r][0] += d * s;
    }
  }
};

// Q6_K rows in the grouped8 format (kernels.h: RowFormat): lane t (0..7) takes l = l0 .. l0 + 7
// of group g = t / 4 (l0 = 8 (t % 4)) for k = 0..3, its low bits, high bits and the group's 8
// scales in one aligned 8-byte load each: two words of each of 4 q8 blocks of x. Rows go
// through the slab (direct loads measure the same; docs/benchmarks.md).
struct FastQ6_KGx8 {
  static constexpr bool kQ8 = true;
  static constexpr int kLanes = 8, kElems = 256;
  static constexpr bool kManyRows = true;
  static constexpr bool kSlab = true;
  static constexpr int kUnroll = 2;
  template <int R, int M, bool kSharedX>
  static __device__ __forceinline__ void accumulate(const uint8_t* const (&rows)[R], int b, int t, const XQ8& x,
                                                    int64_t /*x_stride*/, int /*m*/, float (&acc)[R][M]) {
    const int g = t / 4, l0 = 8 * (t % 4);
    int2 xw[4];
    float dx[4];
    load_q6_k_x<kSharedX>(x, b, g, l0, xw, dx);
    const quant::Q6_KParts p = quant::q6_k_parts<RowFormat::grouped8>(b);
    const int sc_byte = l0 / 16;  // scales[8g + 2k + l0 / 16]
#pragma unroll
    for (int r = 0; r < R; ++r) {
      const uint8_t* row = rows[r];
      const uint2 ql0 = *reinterpret_cast<const uint2*>(row + p.ql + 64 * g + l0);
      const uint2 ql1 = *reinterpret_cast<const uint2*>(row + p.ql + 64 * g + 32 + l0);
      const uint2 qh = *reinterpret_cast<const uint2*>(row + p.qh + 32 * g + l0);
      const uint2 sc8 = *reinterpret_cast<const uint2*>(row + p.scales + 8 * g);
      const float d = f16_bits_to_f32(load_u16(row + p.d));
      float s = 0.0f;
#pragma unroll
      for (int k = 0; k < 4; ++k) {
        const uint2 ql = k & 1 ? ql1 : ql0;
        int sum = 0;
#pragma unroll
        for (int w = 0; w < 2; ++w) {
          const uint32_t lw = w == 0 ? ql.x : ql.y, hw = w == 0 ? qh.x : qh.y;
          const uint32_t centered = q6_k_centered(q6_k_word(lw, hw, k));
          sum = __dp4a(int(centered), w == 0 ? xw[k].x : xw[k].y, sum);
        }
        const uint32_t sc_word = k < 2 ? sc8.x : sc8.y;
        const int sc = int(int8_t(uint8_t(sc_word >> (8 * (2 * (k & 1) + sc_byte)))));
        s += float(sc) * (dx[k] * float(sum));
      }
      acc[r][0] += d * s;
    }
  }
};

// Rows per CTA and block-loop unrolling of the integer pieces: Q6_K rows 4 per CTA where
// n >= 4096 (kManyRows, unlike its f32 piece) unrolled 2, Q4_K not unrolled, Q4_0 in the
// file's format unrolled 8; each the fastest of the variants measured (docs/benchmarks.md).
cudaError_t dispatch_q8(WeightType type, FastJobs& jobs, int64_t k, XQ8 x, bool swiglu, cudaStream_t stream) {
  if (!matvec_q8_supported(type.type, k) || jobs.n_jobs < 1 || jobs.n_jobs > kMaxVecJobs) return cudaErrorNotSupported;
  const bool rows2 = rows_aligned(jobs, 2), rows16 = rows_aligned(jobs, 16);
  auto go = [&](auto tag, bool ok) {
    using T = typename decltype(tag)::type;
    return ok ? launch_jobs<T>(jobs, k, x, 0, 1, swiglu, stream) : cudaErrorNotSupported;
  };
  if (type.format == RowFormat::grouped8) {
    switch (type.type) {
      case DType::Q4_0:
        return go(quant::Tag<FastQ4_0Gx8>{}, rows16);
      case DType::Q6_K:
        return go(quant::Tag<FastQ6_KGx8>{}, rows16);
      default:
        return cudaErrorNotSupported;
    }
  }
  switch (type.type) {
    case DType::Q4_0:
      return go(quant::Tag<FastQ4_0x8>{}, rows2);
    case DType::Q4_K:
      return go(quant::Tag<FastQ4_Kx8>{}, rows16);
    case DType::Q6_K:
      return go(quant::Tag<FastQ6_Kx8>{}, rows2);
    default:
      return cudaErrorNotSupported;
  }
}

}  // namespace

bool matvec_q8_supported(DType type, int64_t k) {
  const bool typed = type == DType::Q4_0 || type == DType::Q4_K || type == DType::Q6_K;
  return typed && k > 0 && k <= int64_t(INT32_MAX) && k % type_traits(type).block_size == 0;
}

cudaError_t launch_matvec_q8_jobs(WeightType type, const VecJob* jobs, int n_jobs, int64_t k, XQ8 x, cudaStream_t stream,
                                  const VecRope* rope) {
  FastJobs fast;
  if (!make_jobs(jobs, n_jobs, nullptr, rope, fast)) return cudaErrorNotSupported;
  return dispatch_q8(type, fast, k, x, false, stream);
}

bool matvec_q8_pair_supported(WeightType a, WeightType b) {
  return a == WeightType{DType::Q4_K, RowFormat::blocks} && b == WeightType{DType::Q6_K, RowFormat::grouped8};
}

// Q4_K jobs and regrouped Q6_K jobs of one x in one launch (PiecePair: the jobs before n_a on
// the Q4_K piece), e.g. a Q4_K_M file's Q4_K q and k with a Q6_K v: one launch fewer is worth
// more than the pair kernel's extra registers cost (docs/benchmarks.md).
cudaError_t launch_matvec_q8_jobs_pair(WeightType a, WeightType b, const VecJob* jobs, int n_a, int n_jobs, int64_t k,
                                       XQ8 x, cudaStream_t stream, const VecRope* rope) {
  if (!matvec_q8_pair_supported(a, b) || !matvec_q8_supported(a.type, k) || !matvec_q8_supported(b.type, k) ||
      n_a < 1 || n_a >= n_jobs) {
    return cudaErrorNotSupported;
  }
  FastJobs fast;
  if (!make_jobs(jobs, n_jobs, nullptr, rope, fast) || !rows_aligned(fast, 16)) return cudaErrorNotSupported;
  fast.first_b = n_a;
  return launch_jobs<PiecePair<FastQ4_Kx8, FastQ6_KGx8>>(fast, k, x, 0, 1, false, stream);
}

cudaError_t launch_matvec_q8_swiglu(WeightType type, const VecJob& gate, const VecJob& up, float* act, int64_t k, XQ8 x,
                                    cudaStream_t stream) {
  FastJobs fast;
  if (!make_swiglu_jobs(gate, up, act, 0, nullptr, fast)) return cudaErrorNotSupported;
  return dispatch_q8(type, fast, k, x, true, stream);
}

}  // namespace strata::cuda
