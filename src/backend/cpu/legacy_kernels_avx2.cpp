// The AVX2 path of the legacy kernel group: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 weights times q8_32
// activations (the arithmetic of legacy_kernels.cpp), tiles of up to 4 rows x 2 columns.
// A block's 32 levels are unpacked to unsigned bytes u = q + offset (offset 8 for Q4_0, 16
// for Q5_0, 0 for Q4_1 / Q5_1) and multiplied with the activation bytes by vpmaddubsw +
// vpmaddwd (|u| <= 31, so no 16-bit saturation); sum(offset * qs) is subtracted once per
// activation block. Q8_0 multiplies |q| by qs carrying q's sign. Internal linkage only (ODR
// hazard of cpu-common): the one export is legacy_kernels_avx2.
// While reading a tile the kernels prefetch the rows three tiles on (3 * NR rows further):
// decode reads a few short rows side by side, too short for the hardware prefetcher.
#include <immintrin.h>

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "backend/cpu/legacy_kernels_isa.h"
#include "backend/cpu/packed_gemm.h"

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
  const __m256i spread = _mm256_shuffle_epi8(
      _mm256_set1_epi32(int(bits)),
      _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3));
  const __m256i bit = _mm256_set1_epi64x(0x8040201008040201LL);
  const __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit);
  return _mm256_and_si256(set, _mm256_set1_epi8(16));
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

// Q8_0's levels are signed: dot() takes the sign path for it.
struct Q8_0Type {
  using Block = BlockQ8_0;
  static constexpr int kOffset = 0;
  static constexpr bool kHasMin = false;
  static __m256i levels(const Block& b) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qs)); }
  static float min(const Block&) { return 0.0f; }
};

__m256i sum_pairs(__m256i p16) {
  return _mm256_madd_epi16(p16, _mm256_set1_epi16(1));
}

// 8 int32 partial sums of u_i * qs_i (unsigned u) or q_i * qs_i (Q8_0, signed q).
template <typename T>
__m256i dot(__m256i u, __m256i qs) {
  if constexpr (std::is_same_v<T, Q8_0Type>) {
    return sum_pairs(_mm256_maddubs_epi16(_mm256_sign_epi8(u, u), _mm256_sign_epi8(qs, u)));
  } else {
    return sum_pairs(_mm256_maddubs_epi16(u, qs));
  }
}

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
    __m256i qs[NC], offset[NC];
    __m256 xd[NC];
    for (int c = 0; c < NC; ++c) {
      qs[c] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(cols[c][b].qs));
      if constexpr (T::kOffset != 0) offset[c] = sum_pairs(_mm256_maddubs_epi16(_mm256_set1_epi8(T::kOffset), qs[c]));
      xd[c] = _mm256_set1_ps(cols[c][b].d);
    }
    for (int r = 0; r < NR; ++r) {
      const Block& blk = rows[r][b];
      _mm_prefetch(reinterpret_cast<const char*>(&blk) + 3 * NR * w_stride, _MM_HINT_T0);  // three tiles on
      const __m256i u = T::levels(blk);
      const __m256 dw = _mm256_set1_ps(f16(blk.d));
      for (int c = 0; c < NC; ++c) {
        __m256i isum = dot<T>(u, qs[c]);
        if constexpr (T::kOffset != 0) isum = _mm256_sub_epi32(isum, offset[c]);
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
constexpr int kMaxCols = 2;

template <typename T, int NR>
void tile_rows(int64_t k, const void* w, size_t w_stride, const void* x, size_t x_stride, int nc, float* out,
               size_t out_stride) {
  if (nc == 1) {
    tile_fixed<T, NR, 1>(k, w, w_stride, x, x_stride, out, out_stride);
  } else {
    tile_fixed<T, NR, 2>(k, w, w_stride, x, x_stride, out, out_stride);
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
// Lanes are 8 of the 16 repacked rows: each RowPackedBlock is two halves. vpmaddubsw
// multiplies an activation column's biased group (bytes 0..255, broadcast from memory) with
// the rows' levels (-16..31) in 16-bit pairs; two groups' pairs are added in 16 bits (at most
// 4 * 255 * 31 = 31620 < 32768) before vpmaddwd widens them onto start = -128 * sum(q).
// Q8_0's levels (up to 128) would overflow: it has no packed kernels on this path.
constexpr int kRowTileMaxCols = 4;

// rows[i] (8 groups each) -> rows[g] = group g of the 8 rows.
void transpose_8x8(__m256i v[8]) {
  __m256i t[8], u[8];
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_epi32(v[i], v[i + 1]);
    t[i + 1] = _mm256_unpackhi_epi32(v[i], v[i + 1]);
  }
  for (int h = 0; h < 8; h += 4) {
    u[h] = _mm256_unpacklo_epi64(t[h], t[h + 2]);          // groups 0, 4 of rows h..h+3
    u[h + 1] = _mm256_unpackhi_epi64(t[h], t[h + 2]);      // 1, 5
    u[h + 2] = _mm256_unpacklo_epi64(t[h + 1], t[h + 3]);  // 2, 6
    u[h + 3] = _mm256_unpackhi_epi64(t[h + 1], t[h + 3]);  // 3, 7
  }
  for (int g = 0; g < 4; ++g) {
    v[g] = _mm256_permute2x128_si256(u[g], u[g + 4], 0x20);
    v[g + 4] = _mm256_permute2x128_si256(u[g], u[g + 4], 0x31);
  }
}

template <typename T>
void repack_rows(int64_t k, const void* w, size_t w_stride, int nr, RowPackedBlock* out) {
  using Block = typename T::Block;
  const Block* rows[kPackRows];
  for (int r = 0; r < nr; ++r) rows[r] = reinterpret_cast<const Block*>(at_offset(w, size_t(r) * w_stride));
  for (int64_t b = 0; b < k / 32; ++b) {
    RowPackedBlock& p = out[b];
    for (int half = 0; half < 2; ++half) {
      __m256i v[8];  // signed levels of rows half * 8 + i (zeros past nr)
      for (int i = 0; i < 8; ++i) {
        const int r = half * 8 + i;
        v[i] = r < nr ? _mm256_sub_epi8(T::levels(rows[r][b]), _mm256_set1_epi8(char(T::kOffset)))
                      : _mm256_setzero_si256();
        p.d[r] = r < nr ? f16(rows[r][b].d) : 0.0f;
        p.m[r] = r < nr ? T::min(rows[r][b]) : 0.0f;
      }
      transpose_8x8(v);
      __m256i sum = _mm256_setzero_si256();
      for (int g = 0; g < 8; ++g) {
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(p.q[g][half * 8]), v[g]);
        sum = _mm256_add_epi32(sum, sum_pairs(_mm256_maddubs_epi16(_mm256_set1_epi8(1), v[g])));
      }
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(p.start + half * 8),
                          _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(sum, 7)));
    }
  }
}

__m256i broadcast_group(const int8_t* qs) {
  int32_t g;
  std::memcpy(&g, qs, sizeof(g));
  return _mm256_set1_epi32(g);
}

template <bool kHasMin, int NC>
void row_tile_fixed(int64_t k, const RowPackedBlock* w, int nr, const void* x, size_t x_stride, float* out,
                    size_t out_stride) {
  const ActQ8_32* cols[NC];
  for (int c = 0; c < NC; ++c) cols[c] = reinterpret_cast<const ActQ8_32*>(at_offset(x, size_t(c) * x_stride));
  __m256 acc[NC][2];
  for (int c = 0; c < NC; ++c) acc[c][0] = acc[c][1] = _mm256_setzero_ps();
  for (int64_t b = 0; b < k / 32; ++b) {
    const RowPackedBlock& p = w[b];
    for (int c = 0; c < NC; ++c) {
      const ActQ8_32& a = cols[c][b];
      __m256i bx[8];
      for (int g = 0; g < 8; ++g) bx[g] = broadcast_group(a.qs + 4 * g);
      for (int half = 0; half < 2; ++half) {
        __m256i isum = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p.start + half * 8));
        for (int g = 0; g < 8; g += 2) {
          const __m256i w0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p.q[g][half * 8]));
          const __m256i w1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p.q[g + 1][half * 8]));
          const __m256i pairs = _mm256_add_epi16(_mm256_maddubs_epi16(bx[g], w0), _mm256_maddubs_epi16(bx[g + 1], w1));
          isum = _mm256_add_epi32(isum, sum_pairs(pairs));
        }
        const __m256 wd = _mm256_loadu_ps(p.d + half * 8);
        acc[c][half] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_mul_ps(wd, _mm256_set1_ps(a.d)), acc[c][half]);
        if constexpr (kHasMin) {
          acc[c][half] = _mm256_fmadd_ps(_mm256_loadu_ps(p.m + half * 8), _mm256_set1_ps(a.s), acc[c][half]);
        }
      }
    }
  }
  for (int c = 0; c < NC; ++c) {
    alignas(32) float lanes[kPackRows];
    _mm256_store_ps(lanes, acc[c][0]);
    _mm256_store_ps(lanes + 8, acc[c][1]);
    for (int r = 0; r < nr; ++r) out[size_t(c) * out_stride + size_t(r)] = lanes[r];
  }
}

template <bool kHasMin>
void row_tile(int64_t k, const RowPackedBlock* w, int nr, const void* x, size_t x_stride, int nc, float* out,
              size_t out_stride) {
  switch (nc) {
    case 1:
      return row_tile_fixed<kHasMin, 1>(k, w, nr, x, x_stride, out, out_stride);
    case 2:
      return row_tile_fixed<kHasMin, 2>(k, w, nr, x, x_stride, out, out_stride);
    case 3:
      return row_tile_fixed<kHasMin, 3>(k, w, nr, x, x_stride, out, out_stride);
    default:
      return row_tile_fixed<kHasMin, 4>(k, w, nr, x, x_stride, out, out_stride);
  }
}

template <typename T>
constexpr PackedKernels kPacked{kRowTileMaxCols, repack_rows<T>, row_tile<T::kHasMin>};

// ---- row dequantization (legacy_kernels_isa.h) ---------------------------------------------
// The reference's floats exactly: level * d (+ m, a separate addition as the reference's,
// which is compiled without contraction).
template <typename T>
void dequantize_row(const void* src, float* dst, int64_t n) {
  const auto* blocks = static_cast<const typename T::Block*>(src);
  for (int64_t b = 0; b < n / 32; ++b) {
    const auto& blk = blocks[b];
    const __m256i q = _mm256_sub_epi8(T::levels(blk), _mm256_set1_epi8(char(T::kOffset)));
    const __m256 d = _mm256_set1_ps(f16(blk.d)), m = _mm256_set1_ps(T::min(blk));
    const __m128i halves[2] = {_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1)};
    for (int i = 0; i < 4; ++i) {
      const __m128i eight = i % 2 == 0 ? halves[i / 2] : _mm_srli_si128(halves[i / 2], 8);
      __m256 f = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(eight)), d);
      if constexpr (T::kHasMin) f = _mm256_add_ps(f, m);
      _mm256_storeu_ps(dst + 32 * b + 8 * i, f);
    }
  }
}

constexpr TypeKernels kQ4_0{ActFormat::q8_32, kMaxRows, kMaxCols, tile<Q4_0Type>};
constexpr TypeKernels kQ4_1{ActFormat::q8_32, kMaxRows, kMaxCols, tile<Q4_1Type>};
constexpr TypeKernels kQ5_0{ActFormat::q8_32, kMaxRows, kMaxCols, tile<Q5_0Type>};
constexpr TypeKernels kQ5_1{ActFormat::q8_32, kMaxRows, kMaxCols, tile<Q5_1Type>};
constexpr TypeKernels kQ8_0{ActFormat::q8_32, kMaxRows, kMaxCols, tile<Q8_0Type>};

}  // namespace

const TypeKernels* legacy_kernels_avx2(DType type) {
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

DequantizeRowFn legacy_dequantize_avx2(DType type) {
  switch (type) {
    case DType::Q4_0:
      return dequantize_row<Q4_0Type>;
    case DType::Q4_1:
      return dequantize_row<Q4_1Type>;
    case DType::Q5_0:
      return dequantize_row<Q5_0Type>;
    case DType::Q5_1:
      return dequantize_row<Q5_1Type>;
    case DType::Q8_0:
      return dequantize_row<Q8_0Type>;
    default:
      return nullptr;
  }
}

const PackedKernels* legacy_packed_kernels_avx2(DType type) {
  switch (type) {
    case DType::Q4_0:
      return &kPacked<Q4_0Type>;
    case DType::Q4_1:
      return &kPacked<Q4_1Type>;
    case DType::Q5_0:
      return &kPacked<Q5_0Type>;
    case DType::Q5_1:
      return &kPacked<Q5_1Type>;
    default:
      return nullptr;  // Q8_0: its levels would overflow the 16-bit pairs
  }
}

}  // namespace strata::cpu
