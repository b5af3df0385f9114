// Decode matmul (m <= kMaxVecColumns columns) for the types that carry the models' weights:
// Q4_0, Q8_0, Q4_K, Q6_K and F16. Why the generic kernel (matmul_vec.cuh) is slow: a lane
// there takes a whole 32-element chunk, so the 32 lanes of a warp read x at a stride of
// 128 bytes, and every 16-byte load of x lands in the same 4 of the L1's 32 banks
// (32 wavefronts for 512 bytes); that, not the DRAM, bounds its bandwidth.
//
// Here a CTA of kFastWarps warps computes R rows; its warps split the row's blocks, and
// kLanes lanes share a block, each lane taking a piece of it (8 or 16 elements) for all R
// rows, so each load of x serves R rows. The pieces are chosen, and their two halves
// ordered by block parity ("flip"), so that the 32 lanes' 16-byte loads of x fall on all
// 32 banks (4 wavefronts for 512 bytes, the minimum). Quantized values become floats with
// the magic-number trick: the bits 0x4B0000qq are the float 2^23 + qq, one byte permute
// and one subtraction, exact. The block scale is applied once per piece:
// sum_i d (q_i - o) x_i = d * sum_i (q_i - o) x_i, accumulated in f32. Q4_K on rows of 16
// blocks or more (k >= 4096) takes 8 lanes per block, each reading 16 bytes of nibbles and
// the block's 16-byte header in two 16-byte loads (FastQ4_KWide: fewer instructions per
// weight byte than 16 lanes of 8 bytes). For Q4_0, Q4_K and Q6_K a CTA's rows are first
// copied into shared memory by the copy engine, started before the kernel waits for the
// previous one (kMaxSlabBytes says when and why). The launches of the fused decode ops may
// also normalize x themselves (VecNorm: rms_norm folded in; kMaxNormColumn says when).
//
// Requirements (checked by launch_matvec_fast, which answers cudaErrorNotSupported when
// they fail so the caller can use the generic kernel): x 16-byte aligned, x_stride a
// multiple of 4; rows 2-byte aligned (Q4_0, Q8_0, Q6_K) or 16-byte aligned (Q4_K, F16, and
// rows in the grouped8 format, kernels.h: RowFormat).
// The kernel template and its launch shapes are in matmul_vec_fast.cuh (shared with the
// integer kernels of matmul_vec_q8.cu); this file has the f32 pieces and their dispatch.
#include "backend/cuda/matmul_vec_fast.cuh"

namespace strata::cuda {
namespace {

using namespace fast_vec;

// The 4 values of a word of bytes, less (2^23 + offset).
__device__ __forceinline__ void unpack4(uint32_t w, float offset, float (&v)[4]) {
#pragma unroll
  for (int e = 0; e < 4; ++e) v[e] = magic_byte(w, e) - (kMagic + offset);
}

// The factored form, for 4-bit values: a word whose bytes hold q << 3 (q = 0..15, bits 3..6)
// gives, byte e moved to bits 16..23 under the exponent of 2^23, the float 2^23 + q 2^19 =
// 2^23 (1 + q / 16), exact. Then sum_i (2^23 + q_i 2^19) x_i = 2^23 X + 2^19 sum_i q_i x_i
// with X = sum_i x_i, so sum_i q_i x_i = S 2^-19 - 16 X: one permute and one FMA per
// element, and no subtraction; S carries ~4 bits less than the exact form (relative error
// ~1e-6 per block, far below the quantization's).
__device__ __forceinline__ float magic_q3(uint32_t w, int e) {
  return __uint_as_float(__byte_perm(w, 0x4B000000u, 0x7054u | (unsigned(e) << 8)));
}
inline constexpr float kInv2Pow19 = 1.0f / 524288.0f;

// sum_e (2^23 + q_e 2^19) x_e over a word of 4 values (bytes q << 3).
__device__ __forceinline__ float dot4_q3(uint32_t w, float4 x) {
  return magic_q3(w, 0) * x.x + magic_q3(w, 1) * x.y + magic_q3(w, 2) * x.z + magic_q3(w, 3) * x.w;
}
__device__ __forceinline__ float sum4(float4 x) {
  return (x.x + x.y) + (x.z + x.w);
}

// Whether the Q4_0 and Q4_K kernels use the exact form (q - o as a float, one subtraction
// more per element) instead of the factored one: STRATA_MATVEC_EXACT=1 (for comparisons).
bool exact_form() {
  static const bool exact = [] {
    const char* e = bench_switch("STRATA_MATVEC_EXACT");
    return e != nullptr && e[0] == '1';
  }();
  return exact;
}

// The Q4_0 kernel's block-loop unrolling: 4, or STRATA_MATVEC_Q4_0_UNROLL=1 or 2 (a knob
// for measurements).
int q4_0_unroll() {
  static const int unroll = [] {
    const char* e = bench_switch("STRATA_MATVEC_Q4_0_UNROLL");
    return e != nullptr ? std::atoi(e) : 4;
  }();
  return unroll;
}

__device__ __forceinline__ float dot4(const float (&v)[4], float4 x) {
  return v[0] * x.x + v[1] * x.y + v[2] * x.z + v[3] * x.w;
}

// float4 number i4 of x: from global memory through the read-only cache, or (kShared) from
// the CTA's normalized copy in shared memory.
template <bool kShared>
__device__ __forceinline__ float4 load_x4(const float* x, int64_t i4) {
  if constexpr (kShared) {
    return reinterpret_cast<const float4*>(x)[i4];
  } else {
    return __ldg(reinterpret_cast<const float4*>(x) + i4);
  }
}

// ---- per-type pieces ------------------------------------------------------------------------
// accumulate<R, M, kSharedX>(rows, b, t, x, x_stride, m, acc): lane t (0..kLanes-1) of block
// b adds its piece's contribution for every row r and column j < m to acc[r][j]; x is in
// shared memory when kSharedX (load_x4).

// Q4_0 (18 bytes: f16 d, 16 bytes of nibbles; byte i holds elements i and i + 16), rows in
// format F (q4_0_scale_at). Lane t takes nibble bytes 4t..4t+3: elements 4t..4t+3 (low
// nibbles) and 16+4t.. (high nibbles).
// Rows of either format go through the slab (grouped rows read directly are slower:
// docs/benchmarks.md).
template <bool kExact, int kUnrollQ = 4, RowFormat F = RowFormat::blocks>
struct FastQ4_0 {
  static constexpr int kLanes = 4, kElems = 32;
  static constexpr bool kManyRows = true;
  static constexpr bool kSlab = true;       // rows through shared memory (see kMaxSlabBytes)
  static constexpr int kUnroll = kUnrollQ;  // block-loop unrolling (T::kUnroll, matmul_vec_fast.cuh)
  template <int R, int M, bool kSharedX>
  static __device__ __forceinline__ void accumulate(const uint8_t* const (&rows)[R], int b, int t, const float* x,
                                                    int64_t x_stride, int m, float (&acc)[R][M]) {
    if constexpr (kExact) {
      accumulate_exact<R, M, kSharedX>(rows, b, t, x, x_stride, m, acc);
    } else {
      accumulate_factored<R, M, kSharedX>(rows, b, t, x, x_stride, m, acc);
    }
  }
  // sum_i d (q_i - 8) x_i = d (S 2^-19 - 24 X), S and X as magic_q3 says.
  template <int R, int M, bool kSharedX>
  static __device__ __forceinline__ void accumulate_factored(const uint8_t* const (&rows)[R], int b, int t,
                                                             const float* x, int64_t x_stride, int m,
                                                             float (&acc)[R][M]) {
    const int flip = b & 1;  // odd blocks take their high nibbles first (bank spread of x)
    uint32_t wa[R], wb[R];
    float d[R];
#pragma unroll
    for (int r = 0; r < R; ++r) {
      d[r] = f16_bits_to_f32(load_u16(rows[r] + quant::q4_0_scale_at<F>(b)));
      const uint32_t q = load_row_word<F>(rows[r] + quant::q4_0_nibbles_at<F>(b) + 4 * t);
      const uint32_t lo = (q << 3) & 0x78787878u, hi = (q >> 1) & 0x78787878u;
      wa[r] = flip ? hi : lo;
      wb[r] = flip ? lo : hi;
    }
    const int64_t ia = int64_t(b) * 8 + t + 4 * flip, ib = int64_t(b) * 8 + t + 4 - 4 * flip;
#pragma unroll
    for (int j = 0; j < M; ++j) {
      if (j < m) {
        const float4 xa = load_x4<kSharedX>(x + j * x_stride, ia), xb = load_x4<kSharedX>(x + j * x_stride, ib);
        const float corr = -24.0f * (sum4(xa) + sum4(xb));
#pragma unroll
        for (int r = 0; r < R; ++r) {
          const float sum = dot4_q3(wa[r], xa) + dot4_q3(wb[r], xb);
          acc[r][j] += d[r] * (sum * kInv2Pow19 + corr);
        }
      }
    }
  }
  template <int R, int M, bool kSharedX>
  static __device__ __forceinline__ void accumulate_exact(const uint8_t* const (&rows)[R], int b, int t, const float* x,
                                                          int64_t x_stride, int m, float (&acc)[R][M]) {
    const int flip = b & 1;
    float va[R][4], vb[R][4], d[R];
#pragma unroll
    for (int r = 0; r < R; ++r) {
      d[r] = f16_bits_to_f32(load_u16(rows[r] + quant::q4_0_scale_at<F>(b)));
      const uint32_t q = load_row_word<F>(rows[r] + quant::q4_0_nibbles_at<F>(b) + 4 * t);
      unpack4((q >> (4 * flip)) & 0x0F0F0F0Fu, 8.0f, va[r]);
      unpack4((q >> (4 - 4 * flip)) & 0x0F0F0F0Fu, 8.0f, vb[r]);
    }
    const int64_t ia = int64_t(b) * 8 + t + 4 * flip, ib = int64_t(b) * 8 + t + 4 - 4 * flip;
#pragma unroll
    for (int j = 0; j < M; ++j) {
      if (j < m) {
        const float4 xa = load_x4<kSharedX>(x + j * x_stride, ia), xb = load_x4<kSharedX>(x + j * x_stride, ib);
#pragma unroll
        for (int r = 0; r < R; ++r) acc[r][j] += d[r] * (dot4(va[r], xa) + dot4(vb[r], xb));
      }
    }
  }
};

// Q8_0 (34 bytes: f16 d, 32 int8). Lane t takes elements 8t..8t+7.
struct FastQ8_0 {
  static constexpr int kLanes = 4, kBytes = 34, kElems = 32;
  static constexpr bool kManyRows = false;
  static constexpr int kFewRows = 1;    // rows per CTA at m = 1 (launch_fast)
  static constexpr bool kSlab = false;  // direct loads (see kMaxSlabBytes)
  static constexpr int kUnroll = 4;     // block-loop unrolling (T::kUnroll, matmul_vec_fast.cuh)
  template <int R, int M, bool kSharedX>
  static __device__ __forceinline__ void accumulate(const uint8_t* const (&rows)[R], int b, int t, const float* x,
                                                    int64_t x_stride, int m, float (&acc)[R][M]) {
    const int flip = b & 1;
    float va[R][4], vb[R][4], d[R];
#pragma unroll
    for (int r = 0; r < R; ++r) {
      const uint8_t* blk = rows[r] + int64_t(b) * kBytes;
      d[r] = f16_bits_to_f32(load_u16(blk));
      const uint32_t q0 = load_u32_2(blk + 2 + 8 * t), q1 = load_u32_2(blk + 6 + 8 * t);
      // int8 v: the byte v ^ 0x80 is v + 128.
      unpack4((flip ? q1 : q0) ^ 0x80808080u, 128.0f, va[r]);
      unpack4((flip ? q0 : q1) ^ 0x80808080u, 128.0f, vb[r]);
    }
    const int64_t ia = int64_t(b) * 8 + 2 * t + flip, ib = int64_t(b) * 8 + 2 * t + 1 - flip;
#pragma unroll
    for (int j = 0; j < M; ++j) {
      if (j < m) {
        const float4 xa = load_x4<kSharedX>(x + j * x_stride, ia), xb = load_x4<kSharedX>(x + j * x_stride, ib);
#pragma unroll
        for (int r = 0; r < R; ++r) acc[r][j] += d[r] * (dot4(va[r], xa) + dot4(vb[r], xb));
      }
    }
  }
};

// Q4_K (144 bytes: f16 d, f16 dmin, 12 bytes of 6-bit scales and mins, 128 bytes of nibbles;
// element 64u + 32h + l is nibble h of qs[32u + l], of sub-block 2u + h). Lane t (0..15)
// takes qs bytes 32u + l0 .. + 7 with u = t / 4, l0 = 8 (t % 4): 8 elements of sub-block 2u
// and 8 of 2u + 1; the block's first 16 bytes (d, dmin, scales) in one 16-byte load. Rows
// must be 16-byte aligned.
template <bool kExact>
struct FastQ4_K {
  static constexpr int kLanes = 16, kBytes = 144, kElems = 256;
  static constexpr bool kManyRows = true;
  static constexpr bool kSlab = true;  // rows through shared memory (see kMaxSlabBytes)
  static constexpr int kUnroll = 4;    // block-loop unrolling (T::kUnroll, matmul_vec_fast.cuh)
  template <int R, int M, bool kSharedX>
  static __device__ __forceinline__ void accumulate(const uint8_t* const (&rows)[R], int b, int t, const float* x,
                                                    int64_t x_stride, int m, float (&acc)[R][M]) {
    const int u = t / 4, l0 = 8 * (t % 4), flip = u & 1;
    float v[R][2][2][4];            // [row][sub-block lo/hi][first/second word][element] (exact form)
    uint32_t wq[R][2][2];           // the same as words of q << 3 (factored form)
    float scale[R][2], bias[R][2];  // value = scale * q - bias per sub-block
#pragma unroll
    for (int r = 0; r < R; ++r) {
      const uint8_t* blk = rows[r] + int64_t(b) * kBytes;
      const uint4 head = *reinterpret_cast<const uint4*>(blk);  // d, dmin, 12 scale bytes
      const uint2 q = *reinterpret_cast<const uint2*>(blk + 16 + 32 * u + l0);
      const float d = f16_bits_to_f32(uint16_t(head.x & 0xffffu)), dmin = f16_bits_to_f32(uint16_t(head.x >> 16));
      uint32_t sc2, mn2;
      q4k_scale_min_pair(head.y, head.z, head.w, u, sc2, mn2);
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const float sc = magic_byte(sc2, h) - kMagic, mn = magic_byte(mn2, h) - kMagic;
        scale[r][h] = d * sc;
        bias[r][h] = dmin * mn;
        const uint32_t first = flip ? q.y : q.x, second = flip ? q.x : q.y;
        if constexpr (kExact) {
          unpack4((first >> (4 * h)) & 0x0F0F0F0Fu, 0.0f, v[r][h][0]);
          unpack4((second >> (4 * h)) & 0x0F0F0F0Fu, 0.0f, v[r][h][1]);
        } else {
          // scale sum q x - bias X = (scale 2^-19) S - (16 scale + bias) X
          wq[r][h][0] = (h == 0 ? first << 3 : first >> 1) & 0x78787878u;
          wq[r][h][1] = (h == 0 ? second << 3 : second >> 1) & 0x78787878u;
          bias[r][h] = 16.0f * scale[r][h] + bias[r][h];
          scale[r][h] *= kInv2Pow19;
        }
      }
    }
    const int64_t base = int64_t(b) * 64 + 16 * u + l0 / 4;  // float4 number of element 64u + l0
#pragma unroll
    for (int j = 0; j < M; ++j) {
      if (j < m) {
        const float* xj = x + j * x_stride;
        float4 xv[2][2];
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          xv[h][0] = load_x4<kSharedX>(xj, base + 8 * h + flip);
          xv[h][1] = load_x4<kSharedX>(xj, base + 8 * h + 1 - flip);
        }
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const float xs =
              (xv[h][0].x + xv[h][0].y + xv[h][0].z + xv[h][0].w) + (xv[h][1].x + xv[h][1].y + xv[h][1].z + xv[h][1].w);
#pragma unroll
          for (int r = 0; r < R; ++r) {
            float qx;
            if constexpr (kExact) {
              qx = dot4(v[r][h][0], xv[h][0]) + dot4(v[r][h][1], xv[h][1]);
            } else {
              qx = dot4_q3(wq[r][h][0], xv[h][0]) + dot4_q3(wq[r][h][1], xv[h][1]);
            }
            acc[r][j] += scale[r][h] * qx - bias[r][h] * xs;
          }
        }
      }
    }
  }
};

// Q4_K with 8 lanes per block: lane t takes qs bytes 16t .. 16t + 15 in one 16-byte load
// (p = t / 2, l0 = 16 (t % 2)): elements l0 .. l0 + 15 of sub-blocks 2p (low nibbles) and
// 2p + 1 (high nibbles), 32 elements; the block's first 16 bytes (d, dmin, the 12 scale
// bytes) come in one more 16-byte load, and the two scales and mins are decoded together.
// Rows must be 16-byte aligned. Factored form only (magic_q3). Lane t takes its 4 float4 of
// x per sub-block starting at number p (and its words of q alike, rotated once after the
// load), so that the 8 lanes of a block load x from 8 different 16-byte bank groups (4
// wavefronts per warp load instead of 16).
struct FastQ4_KWide {
  static constexpr int kLanes = 8, kBytes = 144, kElems = 256;
  static constexpr bool kManyRows = true;
  static constexpr bool kSlab = true;  // rows through shared memory (see kMaxSlabBytes)
  static constexpr int kUnroll = 1;    // block-loop unrolling (T::kUnroll, matmul_vec_fast.cuh)
  template <int R, int M, bool kSharedX>
  static __device__ __forceinline__ void accumulate(const uint8_t* const (&rows)[R], int b, int t, const float* x,
                                                    int64_t x_stride, int m, float (&acc)[R][M]) {
    const int p = t / 2, half = t % 2;
    uint4 q[R];
    float scale[R][2], bias[R][2];  // factored: acc += scale S - bias X per sub-block
#pragma unroll
    for (int r = 0; r < R; ++r) {
      const uint8_t* blk = rows[r] + int64_t(b) * kBytes;
      const uint4 head = *reinterpret_cast<const uint4*>(blk);
      q[r] = *reinterpret_cast<const uint4*>(blk + 16 + 32 * p + 16 * half);
      // words p, p + 1, ... (mod 4) first
      if (p & 1) q[r] = make_uint4(q[r].y, q[r].z, q[r].w, q[r].x);
      if (p & 2) q[r] = make_uint4(q[r].z, q[r].w, q[r].x, q[r].y);
      const float d = f16_bits_to_f32(uint16_t(head.x & 0xffffu)), dmin = f16_bits_to_f32(uint16_t(head.x >> 16));
      uint32_t sc, mn;
      q4k_scale_min_pair(head.y, head.z, head.w, p, sc, mn);
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const float s = d * (magic_byte(sc, h) - kMagic);
        bias[r][h] = 16.0f * s + dmin * (magic_byte(mn, h) - kMagic);
        scale[r][h] = s * kInv2Pow19;
      }
    }
    const int64_t base = int64_t(b) * 64 + 16 * p + 4 * half;  // float4 number of element 64p + l0
#pragma unroll
    for (int j = 0; j < M; ++j) {
      if (j < m) {
        const float* xj = x + j * x_stride;
        float4 xv[2][4];
#pragma unroll
        for (int h = 0; h < 2; ++h) {
#pragma unroll
          for (int i = 0; i < 4; ++i) xv[h][i] = load_x4<kSharedX>(xj, base + 8 * h + ((i + p) & 3));
        }
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const float xs = (sum4(xv[h][0]) + sum4(xv[h][1])) + (sum4(xv[h][2]) + sum4(xv[h][3]));
#pragma unroll
          for (int r = 0; r < R; ++r) {
            const uint32_t w[4] = {q[r].x, q[r].y, q[r].z, q[r].w};
            float qx = 0.0f;
#pragma unroll
            for (int i = 0; i < 4; ++i) {
              const uint32_t wi = (h == 0 ? w[i] << 3 : w[i] >> 1) & 0x78787878u;
              qx += dot4_q3(wi, xv[h][i]);
            }
            acc[r][j] += scale[r][h] * qx - bias[r][h] * xs;
          }
        }
      }
    }
  }
};

// Q6_K (210 bytes: ql[128], qh[64], int8 scales[16], f16 d; element 128g + 32k + l has
// low bits (ql[64g + 32(k&1) + l] >> 4(k>>1)) & 15, high bits (qh[32g + l] >> 2k) & 3,
// value d * scales[8g + 2k + l/16] * (q - 32)). Lane t (0..15) takes l = l0..l0+3 of group
// g = t / 8 (l0 = 4 (t % 8)) for k = 0..3: 16 elements. Rows 2-byte aligned.
template <RowFormat F = RowFormat::blocks>
struct FastQ6_K {
  static constexpr int kLanes = 16, kElems = 256;
  static constexpr bool kManyRows = false;
  static constexpr int kFewRows = 1;   // rows per CTA at m = 1 (launch_fast)
  static constexpr bool kSlab = true;  // rows through shared memory (see kMaxSlabBytes)
  static constexpr int kUnroll = 2;    // block-loop unrolling (T::kUnroll, matmul_vec_fast.cuh)
  template <int R, int M, bool kSharedX>
  static __device__ __forceinline__ void accumulate(const uint8_t* const (&rows)[R], int b, int t, const float* x,
                                                    int64_t x_stride, int m, float (&acc)[R][M]) {
    const int g = t / 8, l0 = 4 * (t % 8);
    const quant::Q6_KParts p = quant::q6_k_parts<F>(b);
    float v[R][4][4], scale[R][4];
#pragma unroll
    for (int r = 0; r < R; ++r) {
      const uint8_t* row = rows[r];
      const uint32_t ql0 = load_row_word<F>(row + p.ql + 64 * g + l0),
                     ql1 = load_row_word<F>(row + p.ql + 64 * g + 32 + l0);
      const uint32_t qh = load_row_word<F>(row + p.qh + 32 * g + l0);
      const float d = f16_bits_to_f32(load_u16(row + p.d));
      const int sc_shift = 8 * (l0 / 16);
#pragma unroll
      for (int k = 0; k < 4; ++k) {
        unpack4(q6_k_word(k & 1 ? ql1 : ql0, qh, k), 32.0f, v[r][k]);
        const int sc = int(int8_t(uint8_t(load_u16(row + p.scales + 8 * g + 2 * k) >> sc_shift)));
        scale[r][k] = d * float(sc);
      }
    }
    const int64_t base = int64_t(b) * 64 + 32 * g + l0 / 4;  // float4 number of element 128g + l0
#pragma unroll
    for (int j = 0; j < M; ++j) {
      if (j < m) {
        const float* xj = x + j * x_stride;
        float4 xv[4];
#pragma unroll
        for (int k = 0; k < 4; ++k) xv[k] = load_x4<kSharedX>(xj, base + 8 * k);
#pragma unroll
        for (int r = 0; r < R; ++r) {
          float s = 0.0f;
#pragma unroll
          for (int k = 0; k < 4; ++k) s += scale[r][k] * dot4(v[r][k], xv[k]);
          acc[r][j] += s;
        }
      }
    }
  }
};

// F16 rows, a "block" being 8 elements (16 bytes); one lane per block. Rows and x 16-byte
// aligned.
struct FastF16 {
  static constexpr int kLanes = 1, kBytes = 16, kElems = 8;
  static constexpr bool kManyRows = false;
  static constexpr int kFewRows = 2;    // rows per CTA at m = 1 (launch_fast)
  static constexpr bool kSlab = false;  // direct loads (see kMaxSlabBytes)
  static constexpr int kUnroll = 2;     // block-loop unrolling (T::kUnroll, matmul_vec_fast.cuh)
  template <int R, int M, bool kSharedX>
  static __device__ __forceinline__ void accumulate(const uint8_t* const (&rows)[R], int b, int /*t*/, const float* x,
                                                    int64_t x_stride, int m, float (&acc)[R][M]) {
    const int flip = (b >> 2) & 1;  // lanes 4..7 of each 8 take their second half first
    float va[R][4], vb[R][4];
#pragma unroll
    for (int r = 0; r < R; ++r) {
      const uint4 q = *reinterpret_cast<const uint4*>(rows[r] + int64_t(b) * kBytes);
      const uint32_t a0 = flip ? q.z : q.x, a1 = flip ? q.w : q.y, b0 = flip ? q.x : q.z, b1 = flip ? q.y : q.w;
      const float2 fa0 = __half22float2(*reinterpret_cast<const __half2*>(&a0));
      const float2 fa1 = __half22float2(*reinterpret_cast<const __half2*>(&a1));
      const float2 fb0 = __half22float2(*reinterpret_cast<const __half2*>(&b0));
      const float2 fb1 = __half22float2(*reinterpret_cast<const __half2*>(&b1));
      va[r][0] = fa0.x, va[r][1] = fa0.y, va[r][2] = fa1.x, va[r][3] = fa1.y;
      vb[r][0] = fb0.x, vb[r][1] = fb0.y, vb[r][2] = fb1.x, vb[r][3] = fb1.y;
    }
    const int64_t ia = int64_t(b) * 2 + flip, ib = int64_t(b) * 2 + 1 - flip;
#pragma unroll
    for (int j = 0; j < M; ++j) {
      if (j < m) {
        const float4 xa = load_x4<kSharedX>(x + j * x_stride, ia), xb = load_x4<kSharedX>(x + j * x_stride, ib);
#pragma unroll
        for (int r = 0; r < R; ++r) acc[r][j] += dot4(va[r], xa) + dot4(vb[r], xb);
      }
    }
  }
};

// Launches the jobs (their first_cta aside) when the fast kernels take them, else answers
// cudaErrorNotSupported and launches nothing.
cudaError_t dispatch_fast(WeightType type, FastJobs& jobs, int64_t k, const float* x, int64_t x_stride, int m,
                          bool swiglu, cudaStream_t stream) {
  if (!aligned(x, 16) || (m > 1 && x_stride % 4 != 0) || m < 1 || m > kMaxVecColumns || k > int64_t(INT32_MAX) ||
      jobs.n_jobs < 1 || jobs.n_jobs > kMaxVecJobs) {
    return cudaErrorNotSupported;
  }
  if (jobs.norm.weight != nullptr && (m != 1 || k % 4 != 0 || k > kMaxNormColumn || !aligned(jobs.norm.weight, 16) ||
                                      !aligned(jobs.norm.normed, 16))) {
    return cudaErrorNotSupported;
  }
  const bool rows2 = rows_aligned(jobs, 2), rows16 = rows_aligned(jobs, 16);
  auto go = [&](auto tag, bool ok) {
    using T = typename decltype(tag)::type;
    return ok ? launch_jobs<T>(jobs, k, x, x_stride, m, swiglu, stream) : cudaErrorNotSupported;
  };
  if (type.format == RowFormat::grouped8) {
    switch (type.type) {
      case DType::Q4_0:
        if (exact_form()) return go(quant::Tag<FastQ4_0<true, 4, RowFormat::grouped8>>{}, rows16);
        return go(quant::Tag<FastQ4_0<false, 4, RowFormat::grouped8>>{}, rows16);
      case DType::Q6_K:
        return go(quant::Tag<FastQ6_K<RowFormat::grouped8>>{}, rows16);
      default:
        return cudaErrorNotSupported;
    }
  }
  switch (type.type) {
    case DType::Q4_0:
      if (exact_form()) return go(quant::Tag<FastQ4_0<true>>{}, rows2);
      switch (q4_0_unroll()) {
        case 1:
          return go(quant::Tag<FastQ4_0<false, 1>>{}, rows2);
        case 2:
          return go(quant::Tag<FastQ4_0<false, 2>>{}, rows2);
        default:
          return go(quant::Tag<FastQ4_0<false>>{}, rows2);
      }
    case DType::Q8_0:
      return go(quant::Tag<FastQ8_0>{}, rows2);
    case DType::Q4_K:
      // 8 lanes per block when a row has 16 blocks or more (one CTA step of that kernel),
      // else 16 (a CTA of 4 warps would leave warps idle on k = 2048).
      if (exact_form()) return go(quant::Tag<FastQ4_K<true>>{}, rows16);
      if (k / FastQ4_KWide::kElems >= kFastWarps * (kWarp / FastQ4_KWide::kLanes)) {
        return go(quant::Tag<FastQ4_KWide>{}, rows16);
      }
      return go(quant::Tag<FastQ4_K<false>>{}, rows16);
    case DType::Q6_K:
      return go(quant::Tag<FastQ6_K<>>{}, rows2);
    case DType::F16:
      return go(quant::Tag<FastF16>{}, rows16);
    default:
      return cudaErrorNotSupported;
  }
}

}  // namespace

cudaError_t launch_matvec_fast(WeightType type, const void* w, size_t row_bytes, int64_t k, int64_t n, const float* x,
                               int64_t x_stride, float* out, int64_t out_stride, int m, cudaStream_t stream) {
  const VecJob job{w, row_bytes, n, out, out_stride, nullptr, 0};
  return launch_matvec_fast_jobs(type, &job, 1, k, x, x_stride, m, stream);
}

cudaError_t launch_matvec_fast_jobs(WeightType type, const VecJob* jobs, int n_jobs, int64_t k, const float* x,
                                    int64_t x_stride, int m, cudaStream_t stream, const VecNorm* norm,
                                    const VecRope* rope) {
  FastJobs fast;
  if (!make_jobs(jobs, n_jobs, norm, rope, fast)) return cudaErrorNotSupported;
  return dispatch_fast(type, fast, k, x, x_stride, m, false, stream);
}

cudaError_t launch_matvec_fast_swiglu(WeightType type, const VecJob& gate, const VecJob& up, float* act,
                                      int64_t act_stride, int64_t k, const float* x, int64_t x_stride, int m,
                                      cudaStream_t stream, const VecNorm* norm) {
  FastJobs fast;
  if (!make_swiglu_jobs(gate, up, act, act_stride, norm, fast)) return cudaErrorNotSupported;
  return dispatch_fast(type, fast, k, x, x_stride, m, true, stream);
}

}  // namespace strata::cuda
