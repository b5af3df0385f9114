// The AVX-512 VNNI path of the legacy kernel group: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 weights
// times q8_32 activations (the arithmetic of legacy_kernels.cpp). Only called at the
// avx512_vnni level.
//  - Tile kernels, up to 4 rows x 4 columns: a block's 32 levels are unpacked to unsigned
//    bytes u = q + offset (8 for Q4_0, 16 for Q5_0, 128 for Q8_0, 0 for Q4_1 / Q5_1) and
//    vpdpbusd adds u_i * qs_i onto -offset * sum(qs), made once per activation block.
//    Q4_0 and Q4_1 take two blocks per step on 512-bit vectors (tile_pairs), the others one
//    block on 256-bit vectors (tile_single). While reading a tile they prefetch the rows
//    three tiles on (3 * NR rows further): decode reads a few short rows side by side, too
//    short for the hardware prefetcher.
//  - Packed prompt kernels (packed_gemm.h): 16 repacked rows in the lanes of a vector.
// Internal linkage only (ODR hazard of cpu-common): the exports are the two functions at the
// end.
// GCC 12's AVX-512 intrinsics pass _mm512_undefined_*() (a self-initialized variable) as
// the unused source of their unmasked forms, and GCC 12 then reports it as uninitialized.
#if defined(__GNUC__) && !defined(__clang__)  // clang (the fuzz build) has neither warning
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
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
  static constexpr bool kPairs = true;  // blocks taken two at a time (tile_pairs): d at word 0, qs from word 1
  static constexpr int kWords = 9, kQsWord = 1;
  [[maybe_unused]] static constexpr int kMinWord = 0;  // no min: read only for types with one
  static __m256i levels(const Block& b) { return nibbles(b.qs); }
  static float min(const Block&) { return 0.0f; }
};

struct Q4_1Type {
  using Block = BlockQ4_1;
  static constexpr int kOffset = 0;
  static constexpr bool kHasMin = true;
  static constexpr bool kPairs = true;  // d at word 0, m at word 1, qs from word 2
  static constexpr int kWords = 10, kQsWord = 2, kMinWord = 1;
  static __m256i levels(const Block& b) { return nibbles(b.qs); }
  static float min(const Block& b) { return f16(b.m); }
};

struct Q5_0Type {
  using Block = BlockQ5_0;
  static constexpr int kOffset = 16;
  static constexpr bool kHasMin = false;
  static constexpr bool kPairs = false;
  static __m256i levels(const Block& b) { return _mm256_or_si256(nibbles(b.qs), fifth_bits(b.qh)); }
  static float min(const Block&) { return 0.0f; }
};

struct Q5_1Type {
  using Block = BlockQ5_1;
  static constexpr int kOffset = 0;
  static constexpr bool kHasMin = true;
  static constexpr bool kPairs = false;
  static __m256i levels(const Block& b) { return _mm256_or_si256(nibbles(b.qs), fifth_bits(b.qh)); }
  static float min(const Block& b) { return f16(b.m); }
};

struct Q8_0Type {
  using Block = BlockQ8_0;
  static constexpr int kOffset = 128;
  static constexpr bool kHasMin = false;
  static constexpr bool kPairs = false;
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

// One block per step (Q5_0, Q5_1, Q8_0): 8 lanes of partial sums per output.
template <typename T, int NR, int NC>
void tile_single(int64_t k, const void* w, size_t w_stride, const void* x, size_t x_stride, float* out,
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
      _mm_prefetch(reinterpret_cast<const char*>(&blk) + 3 * NR * w_stride, _MM_HINT_T0);  // three tiles on
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

// ---- two blocks per step (Q4_0, Q4_1) ----------------------------------------------------
// A step's two weight blocks come in one masked load (their words only, never past the row)
// and are rearranged by word permutes; levels and activations sit in the 128-bit parts
// [b0 elements 0-15, b1 0-15, b0 16-31, b1 16-31], 16 lanes of partial sums per output.
// A row of an odd number of blocks ends with a step of one block (the other one zeros).

struct Words32 {
  alignas(64) int16_t v[32];
};

template <typename T>
constexpr Words32 level_words() {  // word j of [b0.qs, b1.qs, b0.qs, b1.qs], 8 words each
  Words32 w{};
  for (int j = 0; j < 32; ++j) w.v[j] = int16_t((j / 8 % 2) * T::kWords + T::kQsWord + j % 8);
  return w;
}

template <typename T>
constexpr Words32 pattern_words(int field) {  // words 0-15: field of [b0 x4, b1 x4, b0 x4, b1 x4]
  Words32 w{};
  for (int j = 0; j < 16; ++j) w.v[j] = int16_t((j / 4 % 2) * T::kWords + field);
  return w;
}

constexpr Words32 high_half_shift() {  // 4 for the words of elements 16-31
  Words32 w{};
  for (int j = 16; j < 32; ++j) w.v[j] = 4;
  return w;
}

template <typename T>
constexpr Words32 kLevelWords = level_words<T>();
template <typename T>
constexpr Words32 kScaleWords = pattern_words<T>(0);
template <typename T>
constexpr Words32 kMinWords = pattern_words<T>(T::kMinWord);
constexpr Words32 kHighHalfShift = high_half_shift();

__m512i load_words(const Words32& w) {
  return _mm512_load_si512(w.v);
}

template <typename T>
__m512i load_pair(const typename T::Block* p, int blocks) {
  return _mm512_maskz_loadu_epi16(__mmask32((1u << (blocks * T::kWords)) - 1), p);
}

template <typename T>
__m512i pair_levels(__m512i words) {
  const __m512i qs = _mm512_permutexvar_epi16(load_words(kLevelWords<T>), words);
  return _mm512_and_si512(_mm512_srlv_epi16(qs, load_words(kHighHalfShift)), _mm512_set1_epi8(0x0f));
}

// The f16 field at `idx` of each block, as 16 floats in the lane pattern of the partial sums.
__m512 pair_pattern(__m512i words, const Words32& idx) {
  return _mm512_cvtph_ps(_mm512_castsi512_si256(_mm512_permutexvar_epi16(load_words(idx), words)));
}

// Q4_1's mins in lanes 0 and 4 only (b0's and b1's), zeros elsewhere: added once per block.
template <typename T>
__m512 pair_mins(__m512i words) {
  return _mm512_cvtph_ps(_mm512_castsi512_si256(_mm512_maskz_permutexvar_epi16(0x11, load_words(kMinWords<T>), words)));
}

// Activation blocks a[0] and a[1] (a[1] taken as zeros when blocks == 1).
__m512i act_pair_qs(const ActQ8_32* a, int blocks) {
  const __m256i q0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a[0].qs));
  const __m256i q1 =
      blocks == 2 ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a[1].qs)) : _mm256_setzero_si256();
  return _mm512_permutex2var_epi64(_mm512_castsi256_si512(q0), _mm512_setr_epi64(0, 1, 8, 9, 2, 3, 10, 11),
                                   _mm512_castsi256_si512(q1));
}

__m512 act_pair_pattern(float f0, float f1) {
  return _mm512_mask_blend_ps(0xf0f0, _mm512_set1_ps(f0), _mm512_set1_ps(f1));
}

float hsum(__m512 v) {
  __m512 t = _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, 0x4e));
  t = _mm512_add_ps(t, _mm512_shuffle_f32x4(t, t, 0xb1));
  t = _mm512_add_ps(t, _mm512_permute_ps(t, 0x4e));
  t = _mm512_add_ps(t, _mm512_permute_ps(t, 0xb1));
  return _mm512_cvtss_f32(t);
}

template <typename T, int NR, int NC>
void tile_pairs(int64_t k, const void* w, size_t w_stride, const void* x, size_t x_stride, float* out,
                size_t out_stride) {
  using Block = typename T::Block;
  const Block* rows[NR];
  const ActQ8_32* cols[NC];
  for (int r = 0; r < NR; ++r) rows[r] = reinterpret_cast<const Block*>(at_offset(w, size_t(r) * w_stride));
  for (int c = 0; c < NC; ++c) cols[c] = reinterpret_cast<const ActQ8_32*>(at_offset(x, size_t(c) * x_stride));
  __m512 acc[NR][NC];
  for (int r = 0; r < NR; ++r) {
    for (int c = 0; c < NC; ++c) acc[r][c] = _mm512_setzero_ps();
  }
  const int64_t nb = k / 32;
  for (int64_t b = 0; b < nb; b += 2) {
    const int blocks = nb - b >= 2 ? 2 : 1;
    __m512i qs[NC], start[NC];  // start: -offset * sum(qs) in 16 partial sums
    __m512 xd[NC], xs[NC];
    for (int c = 0; c < NC; ++c) {
      const ActQ8_32* a = cols[c] + b;
      qs[c] = act_pair_qs(a, blocks);
      start[c] = _mm512_setzero_si512();
      if constexpr (T::kOffset != 0) {
        start[c] = _mm512_sub_epi32(
            start[c], _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8(char(T::kOffset)), qs[c]));
      }
      xd[c] = act_pair_pattern(a[0].d, blocks == 2 ? a[1].d : 0.0f);
      if constexpr (T::kHasMin) xs[c] = act_pair_pattern(a[0].s, blocks == 2 ? a[1].s : 0.0f);
    }
    for (int r = 0; r < NR; ++r) {
      const Block* p = rows[r] + b;
      _mm_prefetch(reinterpret_cast<const char*>(p) + 3 * NR * w_stride, _MM_HINT_T0);  // three tiles on
      const __m512i words = load_pair<T>(p, blocks);
      const __m512i u = pair_levels<T>(words);
      const __m512 dw = pair_pattern(words, kScaleWords<T>);
      for (int c = 0; c < NC; ++c) {
        const __m512i isum = _mm512_dpbusd_epi32(start[c], u, qs[c]);
        acc[r][c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_mul_ps(dw, xd[c]), acc[r][c]);
        if constexpr (T::kHasMin) acc[r][c] = _mm512_fmadd_ps(pair_mins<T>(words), xs[c], acc[r][c]);
      }
    }
  }
  for (int r = 0; r < NR; ++r) {
    for (int c = 0; c < NC; ++c) out[size_t(c) * out_stride + size_t(r)] = hsum(acc[r][c]);
  }
}

template <typename T, int NR, int NC>
void tile_fixed(int64_t k, const void* w, size_t w_stride, const void* x, size_t x_stride, float* out,
                size_t out_stride) {
  if constexpr (T::kPairs) {
    tile_pairs<T, NR, NC>(k, w, w_stride, x, x_stride, out, out_stride);
  } else {
    tile_single<T, NR, NC>(k, w, w_stride, x, x_stride, out, out_stride);
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
// Lanes are 16 weight rows. The repack writes each row's signed levels q = u - offset as
// 4-byte groups; the kernel broadcasts an activation column's biased group from memory
// against a group of the 16 rows (vpdpbusd onto start = -128 * sum(q)), then
// acc += float(isum) * (d_w * d_x) [+ m * s] in each row's lane.
constexpr int kRowTileMaxCols = 8;

// The 16 x 8 transpose of the repack: z[i] holds rows i (low half) and i + 8 (high half),
// 8 groups each; out[g] gets group g of the 16 rows in row order.
void transpose_groups(const __m512i z[8], __m512i out[8]) {
  __m512i t[8], u[8];
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm512_unpacklo_epi32(z[i], z[i + 1]);
    t[i + 1] = _mm512_unpackhi_epi32(z[i], z[i + 1]);
  }
  for (int h = 0; h < 8; h += 4) {                         // rows 0-3 (h = 0) and 4-7 (h = 4), each with its + 8
    u[h] = _mm512_unpacklo_epi64(t[h], t[h + 2]);          // groups 0 and 4
    u[h + 1] = _mm512_unpackhi_epi64(t[h], t[h + 2]);      // 1 and 5
    u[h + 2] = _mm512_unpacklo_epi64(t[h + 1], t[h + 3]);  // 2 and 6
    u[h + 3] = _mm512_unpackhi_epi64(t[h + 1], t[h + 3]);  // 3 and 7
  }
  const __m512i low = _mm512_setr_epi64(0, 1, 8, 9, 4, 5, 12, 13), high = _mm512_setr_epi64(2, 3, 10, 11, 6, 7, 14, 15);
  for (int g = 0; g < 4; ++g) {
    out[g] = _mm512_permutex2var_epi64(u[g], low, u[g + 4]);
    out[g + 4] = _mm512_permutex2var_epi64(u[g], high, u[g + 4]);
  }
}

template <typename T>
void repack_rows(int64_t k, const void* w, size_t w_stride, int nr, RowPackedBlock* out) {
  using Block = typename T::Block;
  const Block* rows[kPackRows];
  for (int r = 0; r < nr; ++r) rows[r] = reinterpret_cast<const Block*>(at_offset(w, size_t(r) * w_stride));
  for (int64_t b = 0; b < k / 32; ++b) {
    RowPackedBlock& p = out[b];
    __m256i q[kPackRows];  // signed levels of each row (zeros past nr)
    for (int r = 0; r < kPackRows; ++r) {
      q[r] =
          r < nr ? _mm256_sub_epi8(T::levels(rows[r][b]), _mm256_set1_epi8(char(T::kOffset))) : _mm256_setzero_si256();
      p.d[r] = r < nr ? f16(rows[r][b].d) : 0.0f;
      p.m[r] = r < nr ? T::min(rows[r][b]) : 0.0f;
    }
    __m512i z[8], groups[8];
    for (int i = 0; i < 8; ++i) z[i] = _mm512_inserti64x4(_mm512_castsi256_si512(q[i]), q[i + 8], 1);
    transpose_groups(z, groups);
    __m512i sum = _mm512_setzero_si512();  // per row: the sum of its levels
    for (int g = 0; g < 8; ++g) {
      _mm512_storeu_si512(p.q[g], groups[g]);
      sum = _mm512_dpbusd_epi32(sum, _mm512_set1_epi8(1), groups[g]);
    }
    _mm512_storeu_si512(p.start, _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32(sum, 7)));
  }
}

__m512i broadcast_group(const int8_t* qs) {
  int32_t g;
  std::memcpy(&g, qs, sizeof(g));
  return _mm512_set1_epi32(g);
}

template <bool kHasMin, int NC>
void row_tile_fixed(int64_t k, const RowPackedBlock* w, int nr, const void* x, size_t x_stride, float* out,
                    size_t out_stride) {
  const ActQ8_32* cols[NC];
  for (int c = 0; c < NC; ++c) cols[c] = reinterpret_cast<const ActQ8_32*>(at_offset(x, size_t(c) * x_stride));
  __m512 acc[NC];
  for (int c = 0; c < NC; ++c) acc[c] = _mm512_setzero_ps();
  for (int64_t b = 0; b < k / 32; ++b) {
    const RowPackedBlock& p = w[b];
    __m512i wq[8];
    for (int g = 0; g < 8; ++g) wq[g] = _mm512_loadu_si512(p.q[g]);
    const __m512 wd = _mm512_loadu_ps(p.d);
    const __m512i start = _mm512_loadu_si512(p.start);
    for (int c = 0; c < NC; ++c) {
      const ActQ8_32& a = cols[c][b];
      __m512i isum = start;
      for (int g = 0; g < 8; ++g) isum = _mm512_dpbusd_epi32(isum, broadcast_group(a.qs + 4 * g), wq[g]);
      acc[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_mul_ps(wd, _mm512_set1_ps(a.d)), acc[c]);
      if constexpr (kHasMin) acc[c] = _mm512_fmadd_ps(_mm512_loadu_ps(p.m), _mm512_set1_ps(a.s), acc[c]);
    }
  }
  const __mmask16 rows = __mmask16((1u << nr) - 1);
  for (int c = 0; c < NC; ++c) _mm512_mask_storeu_ps(out + size_t(c) * out_stride, rows, acc[c]);
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
    case 4:
      return row_tile_fixed<kHasMin, 4>(k, w, nr, x, x_stride, out, out_stride);
    case 5:
      return row_tile_fixed<kHasMin, 5>(k, w, nr, x, x_stride, out, out_stride);
    case 6:
      return row_tile_fixed<kHasMin, 6>(k, w, nr, x, x_stride, out, out_stride);
    case 7:
      return row_tile_fixed<kHasMin, 7>(k, w, nr, x, x_stride, out, out_stride);
    default:
      return row_tile_fixed<kHasMin, 8>(k, w, nr, x, x_stride, out, out_stride);
  }
}

template <typename T>
constexpr PackedKernels kPacked{kRowTileMaxCols, repack_rows<T>, row_tile<T::kHasMin>};

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
      return &kPacked<Q4_0Type>;
    case DType::Q4_1:
      return &kPacked<Q4_1Type>;
    case DType::Q5_0:
      return &kPacked<Q5_0Type>;
    case DType::Q5_1:
      return &kPacked<Q5_1Type>;
    case DType::Q8_0:
      return &kPacked<Q8_0Type>;
    default:
      return nullptr;
  }
}

}  // namespace strata::cpu
