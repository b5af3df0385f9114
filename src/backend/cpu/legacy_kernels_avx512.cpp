// The AVX-512 VNNI path of the legacy kernel group: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 weights
// times q8_32 activations (the arithmetic of legacy_kernels.cpp), tiles of up to 4 rows x 4
// columns on 256-bit vectors (AVX-512 VL encodings of vpdpbusd, 32 registers). A block's
// 32 levels are unpacked to unsigned bytes u = q + offset (8 for Q4_0, 16 for Q5_0, 128 for
// Q8_0, 0 for Q4_1 / Q5_1); vpdpbusd adds u_i * qs_i onto -offset * sum(qs), which is made
// once per activation block. Only called at the avx512_vnni level. Internal linkage only
// (ODR hazard of cpu-common): the one export is legacy_kernels_avx512_vnni.
// GCC 12's AVX-512 intrinsics pass _mm512_undefined_*() (a self-initialized variable) as
// the unused source of their unmasked forms, and GCC 12 then reports it as uninitialized.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "backend/cpu/legacy_kernels_isa.h"

namespace strata::cpu {
namespace {

__m256i nibbles(const uint8_t* qs) {  // element i < 16: low nibble of qs[i]; i >= 16: high nibble of qs[i - 16]
  const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  const __m256i both = _mm256_inserti128_si256(_mm256_castsi128_si256(q), _mm_srli_epi16(q, 4), 1);
  return _mm256_and_si256(both, _mm256_set1_epi8(0x0f));
}

__m256i fifth_bits(const uint8_t* qh) {  // 16 in byte i where bit i of the little-endian u32 qh is set
  uint32_t bits;
  std::memcpy(&bits, qh, sizeof(bits));
  return _mm256_maskz_mov_epi8(__mmask32(bits), _mm256_set1_epi8(16));
}

float f16(uint16_t h) {
  return _cvtsh_ss(h);
}

// Per type: the unsigned levels u of a block, the offset u - q, the scale and the min.
struct Q4_0Type {
  using Block = BlockQ4_0;
  static constexpr int kOffset = 8;
  static constexpr bool kHasMin = false;
  static __m256i levels(const Block& b) { return nibbles(b.qs); }
  static float min(const Block&) { return 0.0f; }
};

struct Q4_1Type {
  using Block = BlockQ4_1;
  static constexpr int kOffset = 0;
  static constexpr bool kHasMin = true;
  static __m256i levels(const Block& b) { return nibbles(b.qs); }
  static float min(const Block& b) { return f16(b.m); }
};

struct Q5_0Type {
  using Block = BlockQ5_0;
  static constexpr int kOffset = 16;
  static constexpr bool kHasMin = false;
  static __m256i levels(const Block& b) { return _mm256_or_si256(nibbles(b.qs), fifth_bits(b.qh)); }
  static float min(const Block&) { return 0.0f; }
};

struct Q5_1Type {
  using Block = BlockQ5_1;
  static constexpr int kOffset = 0;
  static constexpr bool kHasMin = true;
  static __m256i levels(const Block& b) { return _mm256_or_si256(nibbles(b.qs), fifth_bits(b.qh)); }
  static float min(const Block& b) { return f16(b.m); }
};

struct Q8_0Type {
  using Block = BlockQ8_0;
  static constexpr int kOffset = 128;
  static constexpr bool kHasMin = false;
  static __m256i levels(const Block& b) {  // q + 128 as unsigned bytes
    return _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qs)), _mm256_set1_epi8(-128));
  }
  static float min(const Block&) { return 0.0f; }
};

float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

const uint8_t* at_offset(const void* p, size_t bytes) {
  return static_cast<const uint8_t*>(p) + bytes;
}

template <typename T, int NR, int NC>
void tile_fixed(int64_t k, const void* w, size_t w_stride, const void* x, size_t x_stride, float* out,
                size_t out_stride) {
  using Block = typename T::Block;
  const Block* rows[NR];
  const ActQ8_32* cols[NC];
  for (int r = 0; r < NR; ++r) rows[r] = reinterpret_cast<const Block*>(at_offset(w, size_t(r) * w_stride));
  for (int c = 0; c < NC; ++c) cols[c] = reinterpret_cast<const ActQ8_32*>(at_offset(x, size_t(c) * x_stride));
  __m256 acc[NR][NC];
  for (int r = 0; r < NR; ++r) {
    for (int c = 0; c < NC; ++c) acc[r][c] = _mm256_setzero_ps();
  }
  for (int64_t b = 0; b < k / 32; ++b) {
    __m256i qs[NC], start[NC];  // start: -offset * sum(qs) in 8 partial sums
    __m256 xd[NC];
    for (int c = 0; c < NC; ++c) {
      qs[c] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(cols[c][b].qs));
      start[c] = _mm256_setzero_si256();
      if constexpr (T::kOffset != 0) {
        start[c] = _mm256_sub_epi32(
            start[c], _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_set1_epi8(char(T::kOffset)), qs[c]));
      }
      xd[c] = _mm256_set1_ps(cols[c][b].d);
    }
    for (int r = 0; r < NR; ++r) {
      const Block& blk = rows[r][b];
      const __m256i u = T::levels(blk);
      const __m256 dw = _mm256_set1_ps(f16(blk.d));
      for (int c = 0; c < NC; ++c) {
        const __m256i isum = _mm256_dpbusd_epi32(start[c], u, qs[c]);
        acc[r][c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_mul_ps(dw, xd[c]), acc[r][c]);
        if constexpr (T::kHasMin) {  // m * s into lane 0 only
          acc[r][c] = _mm256_fmadd_ps(_mm256_setr_ps(T::min(blk), 0, 0, 0, 0, 0, 0, 0), _mm256_set1_ps(cols[c][b].s),
                                      acc[r][c]);
        }
      }
    }
  }
  for (int r = 0; r < NR; ++r) {
    for (int c = 0; c < NC; ++c) out[size_t(c) * out_stride + size_t(r)] = hsum(acc[r][c]);
  }
}

constexpr int kMaxRows = 4;
constexpr int kMaxCols = 4;

template <typename T, int NR>
void tile_rows(int64_t k, const void* w, size_t w_stride, const void* x, size_t x_stride, int nc, float* out,
               size_t out_stride) {
  switch (nc) {
    case 1:
      return tile_fixed<T, NR, 1>(k, w, w_stride, x, x_stride, out, out_stride);
    case 2:
      return tile_fixed<T, NR, 2>(k, w, w_stride, x, x_stride, out, out_stride);
    case 3:
      return tile_fixed<T, NR, 3>(k, w, w_stride, x, x_stride, out, out_stride);
    default:
      return tile_fixed<T, NR, 4>(k, w, w_stride, x, x_stride, out, out_stride);
  }
}

template <typename T>
void tile(int64_t k, const void* w, size_t w_stride, int nr, const void* x, size_t x_stride, int nc, float* out,
          size_t out_stride) {
  switch (nr) {
    case 1:
      return tile_rows<T, 1>(k, w, w_stride, x, x_stride, nc, out, out_stride);
    case 2:
      return tile_rows<T, 2>(k, w, w_stride, x, x_stride, nc, out, out_stride);
    case 3:
      return tile_rows<T, 3>(k, w, w_stride, x, x_stride, nc, out, out_stride);
    default:
      return tile_rows<T, 4>(k, w, w_stride, x, x_stride, nc, out, out_stride);
  }
}

// ---- packed prompt kernels (packed_gemm.h) ------------------------------------------------
// Lanes are the 16 columns of a PackedQ8x16. Per block and row: the 32 levels u are stored
// once and each 4-byte group is broadcast against the 16 columns' same group (vpdpbusd),
// on top of -offset * sum(qs); then acc += float(isum) * (d_w * d_x) [+ m * s].
constexpr int kPackedMaxRows = 8;

template <typename T>
constexpr int kOffsetShift = T::kOffset == 8     ? 3
                             : T::kOffset == 16  ? 4
                             : T::kOffset == 128 ? 7
                                                 : 0;

template <typename T, int NR>
void packed_tile_fixed(int64_t k, const void* w, size_t w_stride, const PackedQ8x16* x, int nc, float* out,
                       size_t out_stride) {
  static_assert(T::kOffset == 0 || (1 << kOffsetShift<T>) == T::kOffset);
  using Block = typename T::Block;
  const Block* rows[NR];
  for (int r = 0; r < NR; ++r) rows[r] = reinterpret_cast<const Block*>(at_offset(w, size_t(r) * w_stride));
  __m512 acc[NR];
  for (int r = 0; r < NR; ++r) acc[r] = _mm512_setzero_ps();
  for (int64_t b = 0; b < k / 32; ++b) {
    const PackedQ8x16& p = x[b];
    __m512i xg[8];
    for (int g = 0; g < 8; ++g) xg[g] = _mm512_loadu_si512(p.qs[g]);
    const __m512 xd = _mm512_loadu_ps(p.d);
    __m512i start = _mm512_setzero_si512();
    if constexpr (T::kOffset != 0) {
      start = _mm512_sub_epi32(start, _mm512_slli_epi32(_mm512_loadu_si512(p.sum), kOffsetShift<T>));
    }
    for (int r = 0; r < NR; ++r) {
      const Block& blk = rows[r][b];
      alignas(32) int32_t u[8];
      _mm256_store_si256(reinterpret_cast<__m256i*>(u), T::levels(blk));
      __m512i isum = start;
      for (int g = 0; g < 8; ++g) isum = _mm512_dpbusd_epi32(isum, _mm512_set1_epi32(u[g]), xg[g]);
      acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_mul_ps(_mm512_set1_ps(f16(blk.d)), xd), acc[r]);
      if constexpr (T::kHasMin) acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(T::min(blk)), _mm512_loadu_ps(p.s), acc[r]);
    }
  }
  for (int r = 0; r < NR; ++r) {
    alignas(64) float lanes[kPackColumns];
    _mm512_store_ps(lanes, acc[r]);
    for (int c = 0; c < nc; ++c) out[size_t(c) * out_stride + size_t(r)] = lanes[c];
  }
}

template <typename T>
void packed_tile(int64_t k, const void* w, size_t w_stride, int nr, const PackedQ8x16* x, int nc, float* out,
                 size_t out_stride) {
  switch (nr) {
    case 1:
      return packed_tile_fixed<T, 1>(k, w, w_stride, x, nc, out, out_stride);
    case 2:
      return packed_tile_fixed<T, 2>(k, w, w_stride, x, nc, out, out_stride);
    case 3:
      return packed_tile_fixed<T, 3>(k, w, w_stride, x, nc, out, out_stride);
    case 4:
      return packed_tile_fixed<T, 4>(k, w, w_stride, x, nc, out, out_stride);
    case 5:
      return packed_tile_fixed<T, 5>(k, w, w_stride, x, nc, out, out_stride);
    case 6:
      return packed_tile_fixed<T, 6>(k, w, w_stride, x, nc, out, out_stride);
    case 7:
      return packed_tile_fixed<T, 7>(k, w, w_stride, x, nc, out, out_stride);
    default:
      return packed_tile_fixed<T, 8>(k, w, w_stride, x, nc, out, out_stride);
  }
}

constexpr PackedKernels kPackedQ4_0{kPackedMaxRows, packed_tile<Q4_0Type>};
constexpr PackedKernels kPackedQ4_1{kPackedMaxRows, packed_tile<Q4_1Type>};
constexpr PackedKernels kPackedQ5_0{kPackedMaxRows, packed_tile<Q5_0Type>};
constexpr PackedKernels kPackedQ5_1{kPackedMaxRows, packed_tile<Q5_1Type>};
constexpr PackedKernels kPackedQ8_0{kPackedMaxRows, packed_tile<Q8_0Type>};

constexpr TypeKernels kQ4_0{ActFormat::q8_32, kMaxRows, kMaxCols, tile<Q4_0Type>};
constexpr TypeKernels kQ4_1{ActFormat::q8_32, kMaxRows, kMaxCols, tile<Q4_1Type>};
constexpr TypeKernels kQ5_0{ActFormat::q8_32, kMaxRows, kMaxCols, tile<Q5_0Type>};
constexpr TypeKernels kQ5_1{ActFormat::q8_32, kMaxRows, kMaxCols, tile<Q5_1Type>};
constexpr TypeKernels kQ8_0{ActFormat::q8_32, kMaxRows, kMaxCols, tile<Q8_0Type>};

}  // namespace

const TypeKernels* legacy_kernels_avx512_vnni(DType type) {
  switch (type) {
    case DType::Q4_0:
      return &kQ4_0;
    case DType::Q4_1:
      return &kQ4_1;
    case DType::Q5_0:
      return &kQ5_0;
    case DType::Q5_1:
      return &kQ5_1;
    case DType::Q8_0:
      return &kQ8_0;
    default:
      return nullptr;
  }
}

const PackedKernels* legacy_packed_kernels_avx512_vnni(DType type) {
  switch (type) {
    case DType::Q4_0:
      return &kPackedQ4_0;
    case DType::Q4_1:
      return &kPackedQ4_1;
    case DType::Q5_0:
      return &kPackedQ5_0;
    case DType::Q5_1:
      return &kPackedQ5_1;
    case DType::Q8_0:
      return &kPackedQ8_0;
    default:
      return nullptr;
  }
}

}  // namespace strata::cpu
