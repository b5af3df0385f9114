// AVX2 tiles of the K-quant group. The common form of k_quant_kernels.cpp, 32 elements at a
// time: each weight row's levels are unpacked to bytes, vpmaddubsw multiplies them with the
// int8 activations into int16 pairs, and vpmaddwd applies the group scales into int32 lanes.
// At the end of a super-block the lanes of every (row, column) pair are summed exactly by a
// transposing tree (one output per lane), and one float vector accumulates
// (d*dx)*I - (dm*dx)*M.
//
// Only intrinsics, block structs and plain arrays, all in an anonymous namespace (see
// kernel_groups.h): nothing here may be picked by the linker for another path.
#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "backend/cpu/k_quant_kernels_simd.h"

namespace strata::cpu {
namespace {

constexpr int kRows = 2, kCols = 4;  // the largest tile (k_quant_kernels.cpp: kAvx2Rows/Cols)

inline __m256i load32(const uint8_t* p) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
}

// `value` in the bytes of `bits` that have bit `bit` set, else 0.
inline __m256i if_bit(__m256i bits, int bit, char value) {
  const __m256i mask = _mm256_set1_epi8(char(1 << bit));
  return _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(bits, mask), mask), _mm256_set1_epi8(value));
}

// 2-bit fields of Q2_K / Q3_K: element 128h + 32k + l at bits 2k of qs[32h + l]; chunk j is
// h = j/4, k = j%4.
inline __m256i low2_chunk(const uint8_t* qs, int j) {
  return _mm256_and_si256(_mm256_srli_epi16(load32(qs + 32 * (j / 4)), 2 * (j % 4)), _mm256_set1_epi8(3));
}

// 4-bit fields of Q4_K / Q5_K: element 64c + 32h + l in nibble h of qs[32c + l]; chunk j is
// c = j/2, h = j%2.
inline __m256i low4_chunk(const uint8_t* qs, int j) {
  return _mm256_and_si256(_mm256_srli_epi16(load32(qs + 32 * (j / 2)), 4 * (j % 2)), _mm256_set1_epi8(15));
}

// Chunk j (0..7) of a super-block: the levels of elements 32j .. 32j+31 as bytes. The high
// bit of element e (Q3_K hmask, Q5_K qh) is bit e/32 = j of byte e%32.
struct Q2K {
  using Block = BlockQ2_K;
  static constexpr int kPrefetch = 0;   // blocks ahead that the decode tiles prefetch (0: none)
  static constexpr int kScaleRun = 16;  // elements per distinct scale
  static constexpr int kMaxLevel = 3;
  const uint8_t* qs;
  void init(const Block& b) { qs = b.qs; }
  __m256i chunk(int j) const { return low2_chunk(qs, j); }
};

struct Q3K {
  using Block = BlockQ3_K;
  static constexpr int kPrefetch = 0;   // blocks ahead that the decode tiles prefetch (0: none)
  static constexpr int kScaleRun = 16;  // elements per distinct scale
  static constexpr int kMaxLevel = 7;
  const uint8_t* qs;
  __m256i hmask;
  void init(const Block& b) {
    qs = b.qs;
    hmask = load32(b.hmask);
  }
  __m256i chunk(int j) const { return _mm256_or_si256(low2_chunk(qs, j), if_bit(hmask, j, 4)); }
};

struct Q4K {
  using Block = BlockQ4_K;
  static constexpr int kPrefetch = 0;   // blocks ahead that the decode tiles prefetch (0: none)
  static constexpr int kScaleRun = 32;  // elements per distinct scale
  static constexpr int kMaxLevel = 15;
  const uint8_t* qs;
  void init(const Block& b) { qs = b.qs; }
  __m256i chunk(int j) const { return low4_chunk(qs, j); }
};

struct Q5K {
  using Block = BlockQ5_K;
  static constexpr int kPrefetch = 0;   // blocks ahead that the decode tiles prefetch (0: none)
  static constexpr int kScaleRun = 32;  // elements per distinct scale
  static constexpr int kMaxLevel = 31;
  const uint8_t* qs;
  __m256i qh;
  void init(const Block& b) {
    qs = b.qs;
    qh = load32(b.qh);
  }
  __m256i chunk(int j) const { return _mm256_or_si256(low4_chunk(qs, j), if_bit(qh, j, 16)); }
};

// Q6_K: element 128h + 32k + l: low 4 bits in nibble k/2 of ql[64h + 32(k%2) + l], high 2 bits
// at bits 2k of qh[32h + l]; chunk j is h = j/4, k = j%4.
struct Q6K {
  using Block = BlockQ6_K;
  static constexpr int kPrefetch = 2;
  static constexpr int kScaleRun = 16;  // elements per distinct scale
  static constexpr int kMaxLevel = 63;
  const uint8_t* ql;
  const uint8_t* qh;
  void init(const Block& b) {
    ql = b.ql;
    qh = b.qh;
  }
  __m256i chunk(int j) const {
    const int h = j / 4, k = j % 4;
    const __m256i low =
        _mm256_and_si256(_mm256_srli_epi16(load32(ql + 64 * h + 32 * (k % 2)), 4 * (k / 2)), _mm256_set1_epi8(15));
    const __m256i high = _mm256_and_si256(_mm256_srli_epi16(load32(qh + 32 * h), 2 * k), _mm256_set1_epi8(3));
    return _mm256_or_si256(low, _mm256_slli_epi16(high, 4));
  }
};

// The scales of chunk j as 16 int16 lanes: sc[2j] in lanes 0..7, sc[2j+1] in lanes 8..15.
inline __m256i chunk_scales(__m256i sc16, int j) {
  const __m256i pair = _mm256_permutevar8x32_epi32(sc16, _mm256_set1_epi32(j));            // (sc[2j], sc[2j+1]) x 8
  const __m256i spread = _mm256_setr_epi8(0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1,  //
                                          2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3);
  return _mm256_shuffle_epi8(pair, spread);
}

// ---- The transposing sum: 8 vectors of 8 int32 lanes -> one vector of their 8 sums ---------
// Input p's sum lands in lane 4*(p%2) + p/2. Absent inputs count as zero.
constexpr int sum_lane(int p) {
  return 4 * (p % 2) + p / 2;
}

inline __m256i fold128(__m256i a, __m256i b) {
  return _mm256_add_epi32(_mm256_permute2x128_si256(a, b, 0x20), _mm256_permute2x128_si256(a, b, 0x31));
}
inline __m256i fold64(__m256i a, __m256i b) {
  return _mm256_add_epi32(_mm256_unpacklo_epi64(a, b), _mm256_unpackhi_epi64(a, b));
}
inline __m256i fold32(__m256i a, __m256i b) {
  const __m256 fa = _mm256_castsi256_ps(a), fb = _mm256_castsi256_ps(b);
  return _mm256_add_epi32(_mm256_castps_si256(_mm256_shuffle_ps(fa, fb, _MM_SHUFFLE(2, 0, 2, 0))),
                          _mm256_castps_si256(_mm256_shuffle_ps(fa, fb, _MM_SHUFFLE(3, 1, 3, 1))));
}

template <int N>
inline __m256i sum_lanes(__m256i* v) {
  constexpr int n1 = (N + 1) / 2, n2 = (n1 + 1) / 2;
  const __m256i zero = _mm256_setzero_si256();
#pragma GCC unroll 4
  for (int i = 0; i < n1; ++i) v[i] = fold128(v[2 * i], 2 * i + 1 < N ? v[2 * i + 1] : zero);
#pragma GCC unroll 2
  for (int i = 0; i < n2; ++i) v[i] = fold64(v[2 * i], 2 * i + 1 < n1 ? v[2 * i + 1] : zero);
  return fold32(v[0], n2 > 1 ? v[1] : zero);
}

// For each lane of the sums, where its pair's d, dm and dx are in the vectors of
// row_scales and column_scales (0 where the lane is unused).
struct LaneScales {
  alignas(32) int32_t d[8];
  alignas(32) int32_t dm[8];
  alignas(32) int32_t dx[8];
};
template <int R, int C>
constexpr LaneScales lane_scales() {
  LaneScales l{};
  for (int lane = 0; lane < 8; ++lane) {
    const int p = 2 * (lane % 4) + lane / 4;
    if (p < R * C) {
      l.d[lane] = 2 * (p / C);
      l.dm[lane] = 2 * (p / C) + 1;
      l.dx[lane] = p % C;
    }
  }
  return l;
}
template <int R, int C>
constexpr LaneScales kLaneScales = lane_scales<R, C>();

// d and dm of rows 0..R-1 in lanes 2r and 2r+1 (rows past R repeat row 0).
template <int R>
inline __m256 row_scales(const GroupScales* s) {
  static_assert(R <= 2);
  return _mm256_castps128_ps256(_mm_movelh_ps(s[0].d_dm, s[R > 1 ? 1 : 0].d_dm));
}
// dx of columns 0..C-1 in lanes 0..C-1 (columns past C repeat column 0).
template <int C>
inline __m256 column_scales(const BlockQ8_K* const* cols) {
  const auto dx = [&](int c) { return cols[c < C ? c : 0]->d; };
  return _mm256_castps128_ps256(_mm_setr_ps(dx(0), dx(1), dx(2), dx(3)));
}

// ---- The tile: R rows x C columns, pair p = (row p / C, column p % C) ---------------------
template <class T, int R, int C>
void tile(int64_t k, const uint8_t* w, size_t w_stride, const uint8_t* x, size_t x_stride, float* out,
          size_t out_stride) {
  using Block = typename T::Block;
  constexpr int P = R * C;
  __m256 acc = _mm256_setzero_ps();
  for (int64_t ib = 0, nb = k / QK_K; ib < nb; ++ib) {
    T rows[R];
    GroupScales scales[R];
#pragma GCC unroll 2
    for (int r = 0; r < R; ++r) {
      const Block& b = reinterpret_cast<const Block*>(w + r * w_stride)[ib];
      if (T::kPrefetch > 0 && ib + T::kPrefetch < nb) {
        const char* ahead = reinterpret_cast<const char*>(&b + T::kPrefetch);
#pragma GCC unroll 4
        for (size_t line = 0; line < sizeof(Block); line += 64) _mm_prefetch(ahead + line, _MM_HINT_T0);
      }
      rows[r].init(b);
      scales[r] = group_scales(b);
    }
    const BlockQ8_K* cols[C];
#pragma GCC unroll 4
    for (int c = 0; c < C; ++c) cols[c] = reinterpret_cast<const BlockQ8_K*>(x + c * x_stride) + ib;

    __m256i isum[P];
#pragma GCC unroll 8
    for (int p = 0; p < P; ++p) isum[p] = _mm256_setzero_si256();
#pragma GCC unroll 8
    for (int j = 0; j < 8; ++j) {
      __m256i levels[R], sc[R];
#pragma GCC unroll 2
      for (int r = 0; r < R; ++r) {
        levels[r] = rows[r].chunk(j);
        sc[r] = chunk_scales(scales[r].sc16, j);
      }
#pragma GCC unroll 4
      for (int c = 0; c < C; ++c) {
        const __m256i a = load32(reinterpret_cast<const uint8_t*>(cols[c]->qs) + 32 * j);
#pragma GCC unroll 2
        for (int r = 0; r < R; ++r) {
          // |level * a| pairs stay within int16 (63 * 127 * 2 < 32767).
          const __m256i pairs = _mm256_maddubs_epi16(levels[r], a);
          isum[r * C + c] = _mm256_add_epi32(isum[r * C + c], _mm256_madd_epi16(pairs, sc[r]));
        }
      }
    }
    const __m256i itotal = sum_lanes<P>(isum);

    __m256i msum[P];
#pragma GCC unroll 8
    for (int p = 0; p < P; ++p) {
      const __m256i bsums = load32(reinterpret_cast<const uint8_t*>(cols[p % C]->bsums));
      msum[p] = _mm256_madd_epi16(scales[p / C].m16, bsums);
    }
    const __m256i mtotal = sum_lanes<P>(msum);

    // Lane L of the sums holds pair p = 2*(L%4) + L/4: spread the rows' d, dm and the columns' dx.
    const LaneScales& lanes = kLaneScales<R, C>;
    const __m256 d_dm = row_scales<R>(scales), dx = column_scales<C>(cols);
    const __m256 lane_dx = _mm256_permutevar8x32_ps(dx, _mm256_load_si256(reinterpret_cast<const __m256i*>(lanes.dx)));
    const __m256 lane_d = _mm256_permutevar8x32_ps(d_dm, _mm256_load_si256(reinterpret_cast<const __m256i*>(lanes.d)));
    const __m256 lane_dm =
        _mm256_permutevar8x32_ps(d_dm, _mm256_load_si256(reinterpret_cast<const __m256i*>(lanes.dm)));
    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(itotal), _mm256_mul_ps(lane_d, lane_dx), acc);
    acc = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(mtotal), _mm256_mul_ps(lane_dm, lane_dx), acc);
  }
  alignas(32) float sums[8];
  _mm256_store_ps(sums, acc);
  for (int p = 0; p < P; ++p) out[(p % C) * out_stride + p / C] = sums[sum_lane(p)];
}

using TileFn = void (*)(int64_t, const uint8_t*, size_t, const uint8_t*, size_t, float*, size_t);

template <class T, int R>
constexpr TileFn kRowTiles[kCols] = {tile<T, R, 1>, tile<T, R, 2>, tile<T, R, 3>, tile<T, R, 4>};

template <class T>
void dot_tile(int64_t k, const void* w, size_t w_stride, int nr, const void* x, size_t x_stride, int nc, float* out,
              size_t out_stride) {
  static constexpr const TileFn* kTiles[kRows] = {kRowTiles<T, 1>, kRowTiles<T, 2>};
  kTiles[nr - 1][nc - 1](k, static_cast<const uint8_t*>(w), w_stride, static_cast<const uint8_t*>(x), x_stride, out,
                         out_stride);
}

// ---- Wide tiles: 8 weight rows in the lanes of a vector -----------------------------------
// For prompts: per super-block the 8 rows' levels are unpacked once and transposed so that a
// vector holds one 4-element group of all 8 rows; each column's 4 activation bytes are
// broadcast against it (vpmaddubsw), the int16 pair sums of up to kPairSums groups are added
// before vpmaddwd widens them, each run of one scale is multiplied by the rows' scales in
// int32, and the per-block float work is shared by the 8 rows. The integers I and M and the
// float steps are those of the small tiles, so both give bitwise the same outputs; calls
// with fewer than kWideMinCols columns (decode) take the small tiles.
constexpr int kWideRows = 8, kWideCols = 64, kWideMinCols = 4;

// One super-block of 8 rows, row r in lane r of every vector.
struct WideBlock {
  alignas(32) int32_t q[64][8];      // level bytes of elements 4g..4g+3
  alignas(32) int32_t scale[16][8];  // group scale sc[g]
  alignas(32) int32_t offset[8][8];  // int16 pair (m[2p], m[2p+1])
  alignas(32) float d[8];
  alignas(32) float dm[8];
};

// In-register transpose: t[i] lane r = a[r] lane i.
inline void transpose8(const __m256i* a, __m256i* t) {
  __m256i b[8], c[8];
#pragma GCC unroll 4
  for (int i = 0; i < 4; ++i) {
    b[2 * i] = _mm256_unpacklo_epi32(a[2 * i], a[2 * i + 1]);
    b[2 * i + 1] = _mm256_unpackhi_epi32(a[2 * i], a[2 * i + 1]);
  }
  // c[4i + j], 128-bit lane L: element 4L + j of rows 4i .. 4i+3.
#pragma GCC unroll 2
  for (int i = 0; i < 2; ++i) {
    c[4 * i] = _mm256_unpacklo_epi64(b[4 * i], b[4 * i + 2]);
    c[4 * i + 1] = _mm256_unpackhi_epi64(b[4 * i], b[4 * i + 2]);
    c[4 * i + 2] = _mm256_unpacklo_epi64(b[4 * i + 1], b[4 * i + 3]);
    c[4 * i + 3] = _mm256_unpackhi_epi64(b[4 * i + 1], b[4 * i + 3]);
  }
#pragma GCC unroll 4
  for (int j = 0; j < 4; ++j) {
    t[j] = _mm256_permute2x128_si256(c[j], c[4 + j], 0x20);
    t[4 + j] = _mm256_permute2x128_si256(c[j], c[4 + j], 0x31);
  }
}

// Super-block ib of nr rows (rows past nr repeat row 0; their lanes are never read out).
template <class T>
void wide_repack(const uint8_t* w, size_t w_stride, int nr, int64_t ib, WideBlock& out) {
  using Block = typename T::Block;
  T rows[kWideRows];
  __m256i a[kWideRows], m[kWideRows], t[kWideRows];
  float d[kWideRows], dm[kWideRows];
  for (int r = 0; r < kWideRows; ++r) {
    const Block& b = reinterpret_cast<const Block*>(w + size_t(r < nr ? r : 0) * w_stride)[ib];
    rows[r].init(b);
    const GroupScales s = group_scales(b);
    a[r] = s.sc16;  // 8 scale pairs
    m[r] = s.m16;   // 8 offset pairs
    d[r] = _mm_cvtss_f32(s.d_dm);
    dm[r] = _mm_cvtss_f32(_mm_movehdup_ps(s.d_dm));
  }
  transpose8(a, t);
#pragma GCC unroll 8
  for (int p = 0; p < 8; ++p) {
    _mm256_store_si256(reinterpret_cast<__m256i*>(out.scale[2 * p]),
                       _mm256_srai_epi32(_mm256_slli_epi32(t[p], 16), 16));
    _mm256_store_si256(reinterpret_cast<__m256i*>(out.scale[2 * p + 1]), _mm256_srai_epi32(t[p], 16));
  }
  transpose8(m, t);
#pragma GCC unroll 8
  for (int p = 0; p < 8; ++p) _mm256_store_si256(reinterpret_cast<__m256i*>(out.offset[p]), t[p]);
  _mm256_store_ps(out.d, _mm256_setr_ps(d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]));
  _mm256_store_ps(out.dm, _mm256_setr_ps(dm[0], dm[1], dm[2], dm[3], dm[4], dm[5], dm[6], dm[7]));
  for (int j = 0; j < 8; ++j) {
    for (int r = 0; r < kWideRows; ++r) a[r] = rows[r].chunk(j);
    transpose8(a, t);
    for (int i = 0; i < 8; ++i) _mm256_store_si256(reinterpret_cast<__m256i*>(out.q[8 * j + i]), t[i]);
  }
}

inline __m256i broadcast4(const void* p) {
  return _mm256_set1_epi32(int(load_u32(static_cast<const uint8_t*>(p))));
}

// NC columns of one super-block against a WideBlock: acc[c] (lanes = rows) += the block's dots.
template <class T, int NC>
inline void wide_columns(const WideBlock& wb, const BlockQ8_K* const* cols, __m256* acc) {
  constexpr int kRun = T::kScaleRun, kGroupsPerRun = kRun / 4;
  // vpmaddubsw results (|.| <= 2 * kMaxLevel * 127) an int16 lane can add up exactly.
  constexpr int kFit = 32767 / (2 * T::kMaxLevel * 127);
  constexpr int kPairSums = kFit < kGroupsPerRun ? kFit : kGroupsPerRun;
  static_assert(kPairSums >= 1 && kGroupsPerRun % kPairSums == 0);
  const __m256i ones = _mm256_set1_epi16(1);
  __m256i isum[NC], msum[NC];
  for (int c = 0; c < NC; ++c) isum[c] = msum[c] = _mm256_setzero_si256();
  for (int j = 0; j < QK_K / kRun; ++j) {
    __m256i run[NC];
    for (int c = 0; c < NC; ++c) run[c] = _mm256_setzero_si256();
    for (int g0 = j * kGroupsPerRun; g0 < (j + 1) * kGroupsPerRun; g0 += kPairSums) {
      __m256i pairs[NC];
      for (int c = 0; c < NC; ++c) pairs[c] = _mm256_setzero_si256();
#pragma GCC unroll 8
      for (int g = g0; g < g0 + kPairSums; ++g) {
        const __m256i levels = _mm256_load_si256(reinterpret_cast<const __m256i*>(wb.q[g]));
        for (int c = 0; c < NC; ++c) {
          pairs[c] = _mm256_add_epi16(pairs[c], _mm256_maddubs_epi16(levels, broadcast4(cols[c]->qs + 4 * g)));
        }
      }
      for (int c = 0; c < NC; ++c) run[c] = _mm256_add_epi32(run[c], _mm256_madd_epi16(pairs[c], ones));
    }
    const __m256i scale = _mm256_load_si256(reinterpret_cast<const __m256i*>(wb.scale[j * kRun / 16]));
    for (int c = 0; c < NC; ++c) isum[c] = _mm256_add_epi32(isum[c], _mm256_mullo_epi32(run[c], scale));
  }
#pragma GCC unroll 8
  for (int p = 0; p < 8; ++p) {
    const __m256i offsets = _mm256_load_si256(reinterpret_cast<const __m256i*>(wb.offset[p]));
    for (int c = 0; c < NC; ++c) {
      msum[c] = _mm256_add_epi32(msum[c], _mm256_madd_epi16(offsets, broadcast4(cols[c]->bsums + 2 * p)));
    }
  }
  const __m256 d = _mm256_load_ps(wb.d), dm = _mm256_load_ps(wb.dm);
  for (int c = 0; c < NC; ++c) {
    const __m256 dx = _mm256_set1_ps(cols[c]->d);
    acc[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[c]), _mm256_mul_ps(d, dx), acc[c]);
    acc[c] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(msum[c]), _mm256_mul_ps(dm, dx), acc[c]);
  }
}

template <class T>
void wide_tile(int64_t k, const void* w, size_t w_stride, int nr, const void* x, size_t x_stride, int nc, float* out,
               size_t out_stride) {
  const auto* wb = static_cast<const uint8_t*>(w);
  const auto* xb = static_cast<const uint8_t*>(x);
  if (nc < kWideMinCols) {
    for (int r = 0; r < nr; r += kRows) {
      dot_tile<T>(k, wb + size_t(r) * w_stride, w_stride, nr - r < kRows ? nr - r : kRows, x, x_stride, nc, out + r,
                  out_stride);
    }
    return;
  }
  WideBlock block;
  __m256 acc[kWideCols];
  for (int c = 0; c < nc; ++c) acc[c] = _mm256_setzero_ps();
  for (int64_t ib = 0, nb = k / QK_K; ib < nb; ++ib) {
    wide_repack<T>(wb, w_stride, nr, ib, block);
    const BlockQ8_K* cols[kWideCols];
    for (int c = 0; c < nc; ++c) cols[c] = reinterpret_cast<const BlockQ8_K*>(xb + size_t(c) * x_stride) + ib;
    int c = 0;
    for (; c + 4 <= nc; c += 4) wide_columns<T, 4>(block, cols + c, acc + c);
    switch (nc - c) {
      case 3:
        wide_columns<T, 3>(block, cols + c, acc + c);
        break;
      case 2:
        wide_columns<T, 2>(block, cols + c, acc + c);
        break;
      case 1:
        wide_columns<T, 1>(block, cols + c, acc + c);
        break;
      default:
        break;
    }
  }
  for (int c = 0; c < nc; ++c) {
    alignas(32) float lanes[kWideRows];
    _mm256_store_ps(lanes, acc[c]);
    for (int r = 0; r < nr; ++r) out[size_t(c) * out_stride + size_t(r)] = lanes[r];
  }
}

}  // namespace

#define STRATA_K_QUANT_TILES(name, T)                                                                              \
  void name##_tile_avx2(int64_t k, const void* w, size_t w_stride, int nr, const void* x, size_t x_stride, int nc, \
                        float* out, size_t out_stride) {                                                           \
    wide_tile<T>(k, w, w_stride, nr, x, x_stride, nc, out, out_stride);                                            \
  }

STRATA_K_QUANT_TILES(q2_k, Q2K)
STRATA_K_QUANT_TILES(q3_k, Q3K)
STRATA_K_QUANT_TILES(q4_k, Q4K)
STRATA_K_QUANT_TILES(q5_k, Q5K)
STRATA_K_QUANT_TILES(q6_k, Q6K)

}  // namespace strata::cpu
