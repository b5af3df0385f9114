// AVX-512 (BW) tiles of the K-quant group, and the same with VNNI. The common form of
// k_quant_kernels.cpp, in two shapes:
// - small tiles (up to 4 x 4), 64 elements at a time: each weight row's levels are unpacked
//   to bytes, vpmaddubsw multiplies them with the int8 activations into int16 pairs, and
//   vpmaddwd (or vpdpwssd) applies the group scales and accumulates int32 lanes. At the end
//   of a super-block the lanes of every (row, column) pair are summed exactly by a
//   transposing tree (one output per lane), and one float vector accumulates
//   (d*dx)*I - (dm*dx)*M;
// - wide tiles on avx512-vnni (16 rows x up to 64 columns; prompts): 16 rows in the lanes
//   of a vector, activation bytes broadcast against them (vpdpbusd). Same integers, same
//   float steps: bitwise the same outputs as the small tiles.
//
// Only intrinsics, block structs and plain arrays, all in an anonymous namespace (see
// kernel_groups.h): nothing here may be picked by the linker for another path.
#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "backend/cpu/interleaved_isa.h"
#include "backend/cpu/k_quant_kernels_simd.h"

// GCC 12's AVX-512 intrinsics start their "undefined" pass-through operands from themselves
// (`__m512i __Y = __Y;`), which -Wuninitialized reports wherever one is inlined.
#if defined(__GNUC__) && !defined(__clang__)  // clang (the fuzz build) has neither warning
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace strata::cpu {
namespace {

constexpr int kRows = 4, kCols = 4;  // the largest small tile (k_quant_kernels.cpp: kAvx512Rows/Cols)

// 64 bytes: the low 32 are `low`, the high 32 are `high`.
inline __m512i concat(__m256i low, __m256i high) {
  return _mm512_inserti64x4(_mm512_castsi256_si512(low), high, 1);
}

// Byte mask with bit `bit` in the low 32 bytes and bit `bit + 1` in the high 32.
inline __m512i bit_pair(int bit) {
  return concat(_mm256_set1_epi8(char(1 << bit)), _mm256_set1_epi8(char(1 << (bit + 1))));
}

// 2-bit fields of Q2_K / Q3_K, elements 64q .. 64q+63: element 128h + 32k + l sits at bits
// 2k of qs[32h + l]; chunk q holds k = 2(q%2) and 2(q%2) + 1 of half h = q/2.
inline __m512i low2_chunk(const uint8_t* qs, int q) {
  const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs + 32 * (q / 2)));
  const __m512i both = concat(v, _mm256_srli_epi16(v, 2));
  return _mm512_and_si512(_mm512_srli_epi16(both, 4 * (q % 2)), _mm512_set1_epi8(3));
}

// 4-bit fields of Q4_K / Q5_K: element 64q + 32h + l in nibble h of qs[32q + l].
inline __m512i low4_chunk(const uint8_t* qs, int q) {
  const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs + 32 * q));
  return _mm512_and_si512(concat(v, _mm256_srli_epi16(v, 4)), _mm512_set1_epi8(15));
}

// Chunk q (0..3) of a super-block: the levels of elements 64q .. 64q+63 as bytes.
struct Q2K {
  using Block = BlockQ2_K;
  static constexpr int kPrefetch = 0;   // blocks ahead that the small (decode) tiles prefetch (0: none)
  static constexpr int kScaleRun = 16;  // elements per distinct scale
  const uint8_t* qs;
  void init(const Block& b) { qs = b.qs; }
  __m512i chunk(int q) const { return low2_chunk(qs, q); }
};

struct Q3K {
  using Block = BlockQ3_K;
  static constexpr int kPrefetch = 0;   // blocks ahead that the small (decode) tiles prefetch (0: none)
  static constexpr int kScaleRun = 16;  // elements per distinct scale
  const uint8_t* qs;
  __m512i hmask;  // hmask in both halves; element e has bit e/32 of byte e%32
  void init(const Block& b) {
    qs = b.qs;
    const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.hmask));
    hmask = concat(h, h);
  }
  __m512i chunk(int q) const {
    const __m512i low = low2_chunk(qs, q);
    const __mmask64 high = _mm512_test_epi8_mask(hmask, bit_pair(2 * q));
    return _mm512_mask_add_epi8(low, high, low, _mm512_set1_epi8(4));
  }
};

struct Q4K {
  using Block = BlockQ4_K;
  static constexpr int kPrefetch = 0;   // blocks ahead that the small (decode) tiles prefetch (0: none)
  static constexpr int kScaleRun = 32;  // elements per distinct scale
  const uint8_t* qs;
  void init(const Block& b) { qs = b.qs; }
  __m512i chunk(int q) const { return low4_chunk(qs, q); }
};

struct Q5K {
  using Block = BlockQ5_K;
  static constexpr int kPrefetch = 0;   // blocks ahead that the small (decode) tiles prefetch (0: none)
  static constexpr int kScaleRun = 32;  // elements per distinct scale
  const uint8_t* qs;
  __m512i qh;  // qh in both halves; element e has bit e/32 of byte e%32
  void init(const Block& b) {
    qs = b.qs;
    const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qh));
    qh = concat(h, h);
  }
  __m512i chunk(int q) const {
    const __m512i low = low4_chunk(qs, q);
    const __mmask64 high = _mm512_test_epi8_mask(qh, bit_pair(2 * q));
    return _mm512_mask_add_epi8(low, high, low, _mm512_set1_epi8(16));
  }
};

// Q6_K: element 128h + 32k + l: low 4 bits in nibble k/2 of ql[64h + 32(k%2) + l], high 2 bits
// at bits 2k of qh[32h + l]; chunk q holds k = 2(q%2) and 2(q%2) + 1 of half h = q/2. The
// high bits are moved to bits 4..5 by one variable word shift per chunk (left 4 / left 2 for
// k = 0 / 1, none / right 2 for k = 2 / 3: no bit crosses a byte into bits 4..5), and one
// ternary-logic op merges them with the low nibbles.
struct Q6K {
  using Block = BlockQ6_K;
  static constexpr int kPrefetch = 2;
  static constexpr int kScaleRun = 16;  // elements per distinct scale
  const uint8_t* ql;
  const uint8_t* qh;
  void init(const Block& b) {
    ql = b.ql;
    qh = b.qh;
  }
  __m512i chunk(int q) const {
    const int h = q / 2, odd = q % 2;
    const __m512i l = _mm512_loadu_si512(ql + 64 * h);
    const __m512i nibbles = odd ? _mm512_srli_epi16(l, 4) : l;
    const __m512i v = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(qh + 32 * h)));
    const __m512i counts = concat(_mm256_set1_epi16(short(odd ? 0 : 4)), _mm256_set1_epi16(2));
    const __m512i moved = odd ? _mm512_srlv_epi16(v, counts) : _mm512_sllv_epi16(v, counts);
    const __m512i high = _mm512_and_si512(moved, _mm512_set1_epi8(0x30));
    // (nibbles & 0x0f) | high: A = nibbles (0xf0), B = high (0xcc), C = the mask (0xaa).
    return _mm512_ternarylogic_epi32(nibbles, high, _mm512_set1_epi8(15), 0xec);
  }
};

// vpermw indices that spread the 16 group scales over the 32 int16 lanes of chunk q
// (lane i belongs to group 4q + i/8).
struct ChunkGroups {
  alignas(64) int16_t index[4][32];
};
constexpr ChunkGroups make_chunk_groups() {
  ChunkGroups g{};
  for (int q = 0; q < 4; ++q) {
    for (int i = 0; i < 32; ++i) g.index[q][i] = int16_t(4 * q + i / 8);
  }
  return g;
}
constexpr ChunkGroups kChunkGroups = make_chunk_groups();

// acc += the group-scaled products of 64 levels w (bytes 0..63) and activations a (int8):
// |w * a| pairs stay within int16 (63 * 127 * 2 < 32767). First: acc is not read.
template <bool Vnni, bool First>
inline __m512i dot_acc(__m512i acc, __m512i w, __m512i a, __m512i scales) {
  const __m512i pairs = _mm512_maddubs_epi16(w, a);
  if constexpr (First) {
    return _mm512_madd_epi16(pairs, scales);
  } else if constexpr (Vnni) {
    return _mm512_dpwssd_epi32(acc, pairs, scales);
  } else {
    return _mm512_add_epi32(acc, _mm512_madd_epi16(pairs, scales));
  }
}

// ---- The transposing sum: 16 vectors of 16 int32 lanes -> one vector of their 16 sums ----
// Input p's sum lands in lane 4*(p%4) + p/4. Absent inputs count as zero.
constexpr int sum_lane(int p) {
  return 4 * (p % 4) + p / 4;
}

// [a's 8 lane pairs summed | b's]: the 256-bit halves added.
inline __m512i fold256(__m512i a, __m512i b) {
  return _mm512_add_epi32(_mm512_shuffle_i64x2(a, b, _MM_SHUFFLE(1, 0, 1, 0)),
                          _mm512_shuffle_i64x2(a, b, _MM_SHUFFLE(3, 2, 3, 2)));
}
// Two vectors of two inputs' 8 lanes each -> four inputs' 4 lanes, one per 128-bit quarter.
inline __m512i fold128(__m512i a, __m512i b) {
  return _mm512_add_epi32(_mm512_shuffle_i64x2(a, b, _MM_SHUFFLE(2, 0, 2, 0)),
                          _mm512_shuffle_i64x2(a, b, _MM_SHUFFLE(3, 1, 3, 1)));
}
inline __m512i fold64(__m512i a, __m512i b) {
  return _mm512_add_epi32(_mm512_unpacklo_epi64(a, b), _mm512_unpackhi_epi64(a, b));
}
inline __m512i fold32(__m512i a, __m512i b) {
  const __m512 fa = _mm512_castsi512_ps(a), fb = _mm512_castsi512_ps(b);
  return _mm512_add_epi32(_mm512_castps_si512(_mm512_shuffle_ps(fa, fb, _MM_SHUFFLE(2, 0, 2, 0))),
                          _mm512_castps_si512(_mm512_shuffle_ps(fa, fb, _MM_SHUFFLE(3, 1, 3, 1))));
}

// From n vectors of fold256's form (inputs 2i and 2i+1 in vector i).
template <int N>
inline __m512i sum_halves(__m512i* u) {
  constexpr int n2 = (N + 1) / 2, n3 = (n2 + 1) / 2;
  const __m512i zero = _mm512_setzero_si512();
#pragma GCC unroll 8
  for (int i = 0; i < n2; ++i) u[i] = fold128(u[2 * i], 2 * i + 1 < N ? u[2 * i + 1] : zero);
#pragma GCC unroll 8
  for (int i = 0; i < n3; ++i) u[i] = fold64(u[2 * i], 2 * i + 1 < n2 ? u[2 * i + 1] : zero);
  return fold32(u[0], n3 > 1 ? u[1] : zero);
}

template <int N>
inline __m512i sum_lanes(__m512i* v) {
  constexpr int n1 = (N + 1) / 2;
  const __m512i zero = _mm512_setzero_si512();
#pragma GCC unroll 8
  for (int i = 0; i < n1; ++i) v[i] = fold256(v[2 * i], 2 * i + 1 < N ? v[2 * i + 1] : zero);
  return sum_halves<n1>(v);
}

// For each lane of the sums, where its pair's d, dm and dx are in the vectors of
// row_scales and column_scales (0 where the lane is unused).
struct LaneScales {
  alignas(64) int32_t d[16];
  alignas(64) int32_t dm[16];
  alignas(64) int32_t dx[16];
};
template <int R, int C>
constexpr LaneScales lane_scales() {
  LaneScales l{};
  for (int lane = 0; lane < 16; ++lane) {
    const int p = 4 * (lane % 4) + lane / 4;
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
inline __m512 row_scales(const GroupScales* s) {
  const auto dd = [&](int r) { return s[r < R ? r : 0].d_dm; };
  const __m256 rows = _mm256_set_m128(_mm_movelh_ps(dd(2), dd(3)), _mm_movelh_ps(dd(0), dd(1)));
  return _mm512_castps256_ps512(rows);
}
// dx of columns 0..C-1 in lanes 0..C-1 (columns past C repeat column 0).
template <int C>
inline __m512 column_scales(const BlockQ8_K* const* cols) {
  const auto dx = [&](int c) { return cols[c < C ? c : 0]->d; };
  return _mm512_castps128_ps512(_mm_setr_ps(dx(0), dx(1), dx(2), dx(3)));
}

// ---- The tile: R rows x C columns, pair p = (row p / C, column p % C) ---------------------
template <class T, bool Vnni, int R, int C>
void tile(int64_t k, const uint8_t* w, size_t w_stride, const uint8_t* x, size_t x_stride, float* out,
          size_t out_stride) {
  using Block = typename T::Block;
  constexpr int P = R * C;
  constexpr int kHalves = (P + 1) / 2;
  __m512 acc = _mm512_setzero_ps();
  for (int64_t ib = 0, nb = k / QK_K; ib < nb; ++ib) {
    T rows[R];
    GroupScales scales[R];
    __m512i chunk_scales[R][4];
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      const Block& b = reinterpret_cast<const Block*>(w + r * w_stride)[ib];
      if (T::kPrefetch > 0 && ib + T::kPrefetch < nb) {
        const char* ahead = reinterpret_cast<const char*>(&b + T::kPrefetch);
#pragma GCC unroll 4
        for (size_t line = 0; line < sizeof(Block); line += 64) _mm_prefetch(ahead + line, _MM_HINT_T0);
      }
      rows[r].init(b);
      scales[r] = group_scales(b);
      const __m512i sc = _mm512_castsi256_si512(scales[r].sc16);
#pragma GCC unroll 4
      for (int q = 0; q < 4; ++q) {
        chunk_scales[r][q] = _mm512_permutexvar_epi16(_mm512_load_si512(kChunkGroups.index[q]), sc);
      }
    }
    const BlockQ8_K* cols[C];
#pragma GCC unroll 4
    for (int c = 0; c < C; ++c) cols[c] = reinterpret_cast<const BlockQ8_K*>(x + c * x_stride) + ib;

    __m512i isum[P];
    // Chunk 0 starts the sums, chunks 1..3 add to them.
    auto chunk = [&]<bool First>(int q) {
      __m512i levels[R];
#pragma GCC unroll 4
      for (int r = 0; r < R; ++r) levels[r] = rows[r].chunk(q);
#pragma GCC unroll 4
      for (int c = 0; c < C; ++c) {
        const __m512i a = _mm512_loadu_si512(cols[c]->qs + 64 * q);
#pragma GCC unroll 4
        for (int r = 0; r < R; ++r) {
          isum[r * C + c] = dot_acc<Vnni, First>(isum[r * C + c], levels[r], a, chunk_scales[r][q]);
        }
      }
    };
    chunk.template operator()<true>(0);
#pragma GCC unroll 3
    for (int q = 1; q < 4; ++q) chunk.template operator()<false>(q);
    const __m512i itotal = sum_lanes<P>(isum);

    // The offsets: vector i holds pairs 2i and 2i+1 (in its low and high halves).
    __m512i msum[kHalves];
#pragma GCC unroll 8
    for (int i = 0; i < kHalves; ++i) {
      const int p0 = 2 * i, p1 = 2 * i + 1;
      const __m256i bs0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(cols[p0 % C]->bsums));
      if (p1 < P) {
        const __m256i bs1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(cols[p1 % C]->bsums));
        const __m512i m = p0 / C == p1 / C ? _mm512_broadcast_i64x4(scales[p0 / C].m16)
                                           : concat(scales[p0 / C].m16, scales[p1 / C].m16);
        const __m512i bs = p0 % C == p1 % C ? _mm512_broadcast_i64x4(bs0) : concat(bs0, bs1);
        msum[i] = _mm512_madd_epi16(m, bs);
      } else {
        msum[i] = _mm512_madd_epi16(_mm512_zextsi256_si512(scales[p0 / C].m16), _mm512_zextsi256_si512(bs0));
      }
    }
    const __m512i mtotal = sum_halves<kHalves>(msum);

    // Lane L of the sums holds pair p = 4*(L%4) + L/4: spread the rows' d, dm and the columns' dx.
    const LaneScales& lanes = kLaneScales<R, C>;
    const __m512 d_dm = row_scales<R>(scales), dx = column_scales<C>(cols);
    const __m512 lane_dx = _mm512_permutexvar_ps(_mm512_load_si512(lanes.dx), dx);
    const __m512 lane_d = _mm512_permutexvar_ps(_mm512_load_si512(lanes.d), d_dm);
    const __m512 lane_dm = _mm512_permutexvar_ps(_mm512_load_si512(lanes.dm), d_dm);
    acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(itotal), _mm512_mul_ps(lane_d, lane_dx), acc);
    acc = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(mtotal), _mm512_mul_ps(lane_dm, lane_dx), acc);
  }
  alignas(64) float sums[16];
  _mm512_store_ps(sums, acc);
  for (int p = 0; p < P; ++p) out[(p % C) * out_stride + p / C] = sums[sum_lane(p)];
}

using TileFn = void (*)(int64_t, const uint8_t*, size_t, const uint8_t*, size_t, float*, size_t);

template <class T, bool Vnni, int R>
constexpr TileFn kRowTiles[kCols] = {tile<T, Vnni, R, 1>, tile<T, Vnni, R, 2>, tile<T, Vnni, R, 3>,
                                     tile<T, Vnni, R, 4>};

template <class T, bool Vnni>
void dot_tile(int64_t k, const void* w, size_t w_stride, int nr, const void* x, size_t x_stride, int nc, float* out,
              size_t out_stride) {
  static constexpr const TileFn* kTiles[kRows] = {kRowTiles<T, Vnni, 1>, kRowTiles<T, Vnni, 2>, kRowTiles<T, Vnni, 3>,
                                                  kRowTiles<T, Vnni, 4>};
  kTiles[nr - 1][nc - 1](k, static_cast<const uint8_t*>(w), w_stride, static_cast<const uint8_t*>(x), x_stride, out,
                         out_stride);
}

// ---- Wide tiles (VNNI): 16 weight rows in the lanes of a vector ---------------------------
// For prompts: per super-block the 16 rows' levels are unpacked once and transposed so that
// a vector holds one 4-element group of all 16 rows; each column's 4 activation bytes are
// broadcast against it (vpdpbusd: 16 rows x 4 products), each run of one scale is
// multiplied by the rows' scales in int32, and the per-block float work is shared by the 16
// rows. The integers I and M and the float steps are those of the small tiles, so both
// give bitwise the same outputs; calls with fewer than kWideMinCols columns (decode) take
// the small tiles.
constexpr int kWideRows = 16, kWideCols = 64, kWideMinCols = 4;

// One super-block of 16 rows, row r in lane r of every vector.
struct WideBlock {
  alignas(64) int32_t q[64][16];      // level bytes of elements 4g..4g+3
  alignas(64) int32_t scale[16][16];  // group scale sc[g]
  alignas(64) int32_t offset[8][16];  // int16 pair (m[2p], m[2p+1])
  alignas(64) float d[16];
  alignas(64) float dm[16];
};

// In-register transpose: t[i] lane r = a[r] lane i.
inline void transpose16(const __m512i* a, __m512i* t) {
  __m512i b[16], c[16];
#pragma GCC unroll 8
  for (int i = 0; i < 8; ++i) {
    b[2 * i] = _mm512_unpacklo_epi32(a[2 * i], a[2 * i + 1]);
    b[2 * i + 1] = _mm512_unpackhi_epi32(a[2 * i], a[2 * i + 1]);
  }
  // c[4i + j], 128-bit lane L: element 4L + j of rows 4i .. 4i+3.
#pragma GCC unroll 4
  for (int i = 0; i < 4; ++i) {
    c[4 * i] = _mm512_unpacklo_epi64(b[4 * i], b[4 * i + 2]);
    c[4 * i + 1] = _mm512_unpackhi_epi64(b[4 * i], b[4 * i + 2]);
    c[4 * i + 2] = _mm512_unpacklo_epi64(b[4 * i + 1], b[4 * i + 3]);
    c[4 * i + 3] = _mm512_unpackhi_epi64(b[4 * i + 1], b[4 * i + 3]);
  }
#pragma GCC unroll 4
  for (int j = 0; j < 4; ++j) {
    const __m512i even01 = _mm512_shuffle_i32x4(c[j], c[4 + j], _MM_SHUFFLE(2, 0, 2, 0));
    const __m512i even23 = _mm512_shuffle_i32x4(c[8 + j], c[12 + j], _MM_SHUFFLE(2, 0, 2, 0));
    const __m512i odd01 = _mm512_shuffle_i32x4(c[j], c[4 + j], _MM_SHUFFLE(3, 1, 3, 1));
    const __m512i odd23 = _mm512_shuffle_i32x4(c[8 + j], c[12 + j], _MM_SHUFFLE(3, 1, 3, 1));
    t[j] = _mm512_shuffle_i32x4(even01, even23, _MM_SHUFFLE(2, 0, 2, 0));
    t[8 + j] = _mm512_shuffle_i32x4(even01, even23, _MM_SHUFFLE(3, 1, 3, 1));
    t[4 + j] = _mm512_shuffle_i32x4(odd01, odd23, _MM_SHUFFLE(2, 0, 2, 0));
    t[12 + j] = _mm512_shuffle_i32x4(odd01, odd23, _MM_SHUFFLE(3, 1, 3, 1));
  }
}

// Super-block ib of nr rows (rows past nr repeat row 0; their lanes are never read out).
template <class T>
void wide_repack(const uint8_t* w, size_t w_stride, int nr, int64_t ib, WideBlock& out) {
  using Block = typename T::Block;
  T rows[kWideRows];
  __m512i a[kWideRows], t[kWideRows];
  alignas(64) float d_dm[kWideRows][4];
  for (int r = 0; r < kWideRows; ++r) {
    const Block& b = reinterpret_cast<const Block*>(w + size_t(r < nr ? r : 0) * w_stride)[ib];
    rows[r].init(b);
    const GroupScales s = group_scales(b);
    a[r] = concat(s.sc16, s.m16);  // 8 scale pairs, 8 offset pairs
    _mm_store_ps(d_dm[r], s.d_dm);
  }
  transpose16(a, t);
#pragma GCC unroll 8
  for (int p = 0; p < 8; ++p) {
    _mm512_store_si512(out.scale[2 * p], _mm512_srai_epi32(_mm512_slli_epi32(t[p], 16), 16));
    _mm512_store_si512(out.scale[2 * p + 1], _mm512_srai_epi32(t[p], 16));
    _mm512_store_si512(out.offset[p], t[8 + p]);
  }
  const __m512 lo = _mm512_load_ps(d_dm[0]), mid = _mm512_load_ps(d_dm[4]), hi = _mm512_load_ps(d_dm[8]),
               top = _mm512_load_ps(d_dm[12]);
  const __m512i even = _mm512_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28, 0, 4, 8, 12, 16, 20, 24, 28);
  const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
  const __m512 d_low = _mm512_permutex2var_ps(lo, even, mid), d_high = _mm512_permutex2var_ps(hi, even, top);
  const __m512 m_low = _mm512_permutex2var_ps(lo, odd, mid), m_high = _mm512_permutex2var_ps(hi, odd, top);
  _mm512_store_ps(out.d, _mm512_shuffle_f32x4(d_low, d_high, _MM_SHUFFLE(1, 0, 1, 0)));
  _mm512_store_ps(out.dm, _mm512_shuffle_f32x4(m_low, m_high, _MM_SHUFFLE(1, 0, 1, 0)));
  for (int q = 0; q < 4; ++q) {
    for (int r = 0; r < kWideRows; ++r) a[r] = rows[r].chunk(q);
    transpose16(a, t);
    for (int i = 0; i < 16; ++i) _mm512_store_si512(out.q[16 * q + i], t[i]);
  }
}

inline __m512i broadcast4(const void* p) {
  return _mm512_set1_epi32(int(load_u32(static_cast<const uint8_t*>(p))));
}

// NC columns of one super-block against a WideBlock: acc[c] (lanes = rows) += the block's dots.
template <class T, int NC>
inline void wide_columns(const WideBlock& wb, const BlockQ8_K* const* cols, __m512* acc) {
  constexpr int kRun = T::kScaleRun, kGroupsPerRun = kRun / 4;
  __m512i isum[NC], msum[NC];
  for (int c = 0; c < NC; ++c) isum[c] = msum[c] = _mm512_setzero_si512();
  for (int j = 0; j < QK_K / kRun; ++j) {
    __m512i run[NC];
    for (int c = 0; c < NC; ++c) run[c] = _mm512_setzero_si512();
#pragma GCC unroll 8
    for (int g = j * kGroupsPerRun; g < (j + 1) * kGroupsPerRun; ++g) {
      const __m512i levels = _mm512_load_si512(wb.q[g]);
      for (int c = 0; c < NC; ++c) run[c] = _mm512_dpbusd_epi32(run[c], levels, broadcast4(cols[c]->qs + 4 * g));
    }
    const __m512i scale = _mm512_load_si512(wb.scale[j * kRun / 16]);
    for (int c = 0; c < NC; ++c) isum[c] = _mm512_add_epi32(isum[c], _mm512_mullo_epi32(run[c], scale));
  }
#pragma GCC unroll 8
  for (int p = 0; p < 8; ++p) {
    const __m512i offsets = _mm512_load_si512(wb.offset[p]);
    for (int c = 0; c < NC; ++c) msum[c] = _mm512_dpwssd_epi32(msum[c], offsets, broadcast4(cols[c]->bsums + 2 * p));
  }
  const __m512 d = _mm512_load_ps(wb.d), dm = _mm512_load_ps(wb.dm);
  for (int c = 0; c < NC; ++c) {
    const __m512 dx = _mm512_set1_ps(cols[c]->d);
    acc[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[c]), _mm512_mul_ps(d, dx), acc[c]);
    acc[c] = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(msum[c]), _mm512_mul_ps(dm, dx), acc[c]);
  }
}

// The 16 rows' dots with nc columns (nc <= kWideCols), super-block after super-block, each
// WideBlock made by block_of(ib, block); out[c * out_stride + r] for r < nr.
template <class T, class BlockOf>
void wide_dots(int64_t k, const BlockOf& block_of, int nr, const void* x, size_t x_stride, int nc, float* out,
               size_t out_stride) {
  const auto* xb = static_cast<const uint8_t*>(x);
  WideBlock block;
  __m512 acc[kWideCols];
  for (int c = 0; c < nc; ++c) acc[c] = _mm512_setzero_ps();
  for (int64_t ib = 0, nb = k / QK_K; ib < nb; ++ib) {
    block_of(ib, block);
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
    alignas(64) float lanes[kWideRows];
    _mm512_store_ps(lanes, acc[c]);
    for (int r = 0; r < nr; ++r) out[size_t(c) * out_stride + size_t(r)] = lanes[r];
  }
}

template <class T>
void wide_tile(int64_t k, const void* w, size_t w_stride, int nr, const void* x, size_t x_stride, int nc, float* out,
               size_t out_stride) {
  const auto* wb = static_cast<const uint8_t*>(w);
  if (nc < kWideMinCols) {
    for (int r = 0; r < nr; r += kRows) {
      dot_tile<T, true>(k, wb + size_t(r) * w_stride, w_stride, nr - r < kRows ? nr - r : kRows, x, x_stride, nc,
                        out + r, out_stride);
    }
    return;
  }
  const auto block_of = [&](int64_t ib, WideBlock& block) { wide_repack<T>(wb, w_stride, nr, ib, block); };
  wide_dots<T>(k, block_of, nr, x, x_stride, nc, out, out_stride);
}

// ---- Interleaved Q4_K (interleaved.h): the 16 rows of a group stored in lanes -------------
// A super-block of a group: d[16], dmin[16] (f16), scale[8][16], min[8][16] (bytes), then 32
// vectors whose low nibbles are the levels of group j (elements 4j..4j+3) and high nibbles
// those of group 32 + j. The integers and float steps are wide_columns' (and so the small
// tiles'), read from this layout.
struct Q4KGroup {
  static constexpr size_t kDmin = 32, kScales = 64, kMins = kScales + 128, kLevels = kMins + 128;
  static constexpr size_t kBytes = kLevels + 32 * 64;
};

inline __m512i lane_bytes(const uint8_t* p) {  // 16 bytes, one per lane, as int32
  return _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

inline __m512i lane_min_pairs(const uint8_t* p) {  // 16 pairs of bytes, one pair per lane, as int16
  return _mm512_cvtepu8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}

inline __m512 lane_halves(const uint8_t* p) {  // 16 f16, one per lane
  return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}

template <int NC>
void q4_k_group_tile(int64_t k, const uint8_t* w, const void* x, size_t x_stride, float* out, size_t out_stride) {
  const BlockQ8_K* cols[NC];
  __m512 acc[NC];
  for (int c = 0; c < NC; ++c) {
    cols[c] = reinterpret_cast<const BlockQ8_K*>(static_cast<const uint8_t*>(x) + size_t(c) * x_stride);
    acc[c] = _mm512_setzero_ps();
  }
  const __m512i low4 = _mm512_set1_epi8(15);
  for (int64_t ib = 0; ib < k / QK_K; ++ib) {
    const uint8_t* p = w + size_t(ib) * Q4KGroup::kBytes;
    __m512i isum[NC], msum[NC];
    for (int c = 0; c < NC; ++c) isum[c] = msum[c] = _mm512_setzero_si512();
    for (int s = 0; s < 4; ++s) {  // sub-blocks s (low nibbles) and s + 4 (high nibbles)
      __m512i run_low[NC], run_high[NC];
      for (int c = 0; c < NC; ++c) run_low[c] = run_high[c] = _mm512_setzero_si512();
#pragma GCC unroll 8
      for (int t = 0; t < 8; ++t) {
        const int g = 8 * s + t;
        const __m512i v = _mm512_loadu_si512(p + Q4KGroup::kLevels + 64 * size_t(g));
        const __m512i low = _mm512_and_si512(v, low4), high = _mm512_and_si512(_mm512_srli_epi16(v, 4), low4);
        for (int c = 0; c < NC; ++c) {
          run_low[c] = _mm512_dpbusd_epi32(run_low[c], low, broadcast4(cols[c][ib].qs + 4 * g));
          run_high[c] = _mm512_dpbusd_epi32(run_high[c], high, broadcast4(cols[c][ib].qs + 128 + 4 * g));
        }
      }
      const __m512i scale_low = lane_bytes(p + Q4KGroup::kScales + 16 * size_t(s));
      const __m512i scale_high = lane_bytes(p + Q4KGroup::kScales + 16 * size_t(s + 4));
      for (int c = 0; c < NC; ++c) {
        isum[c] = _mm512_add_epi32(isum[c], _mm512_mullo_epi32(run_low[c], scale_low));
        isum[c] = _mm512_add_epi32(isum[c], _mm512_mullo_epi32(run_high[c], scale_high));
      }
    }
    for (int q = 0; q < 4; ++q) {  // sub-blocks 2q and 2q + 1: int16 pairs (min, activation sum)
      const __m512i mins = lane_min_pairs(p + Q4KGroup::kMins + 32 * size_t(q));
      for (int c = 0; c < NC; ++c) {
        const int16_t* bs = cols[c][ib].bsums + 4 * q;
        const auto xs = [&](int i) { return uint32_t(uint16_t(int16_t(bs[2 * i] + bs[2 * i + 1]))); };
        msum[c] = _mm512_dpwssd_epi32(msum[c], mins, _mm512_set1_epi32(int32_t(xs(0) | xs(1) << 16)));
      }
    }
    const __m512 d = lane_halves(p), dm = lane_halves(p + Q4KGroup::kDmin);
    for (int c = 0; c < NC; ++c) {
      const __m512 dx = _mm512_set1_ps(cols[c][ib].d);
      acc[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[c]), _mm512_mul_ps(d, dx), acc[c]);
      acc[c] = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(msum[c]), _mm512_mul_ps(dm, dx), acc[c]);
    }
  }
  for (int c = 0; c < NC; ++c) _mm512_storeu_ps(out + size_t(c) * out_stride, acc[c]);
}

constexpr int kInterleavedCols = 4;

// The WideBlock of super-block ib of a group: levels unpacked, each scale for both of its
// runs of 16, each min as the int16 pair of its two bsums.
void q4_k_group_wide(const uint8_t* w, int64_t ib, WideBlock& out) {
  const uint8_t* p = w + size_t(ib) * Q4KGroup::kBytes;
  const __m512i low4 = _mm512_set1_epi8(15);
  for (int g = 0; g < 32; ++g) {
    const __m512i v = _mm512_loadu_si512(p + Q4KGroup::kLevels + 64 * size_t(g));
    _mm512_store_si512(out.q[g], _mm512_and_si512(v, low4));
    _mm512_store_si512(out.q[32 + g], _mm512_and_si512(_mm512_srli_epi16(v, 4), low4));
  }
  for (int j = 0; j < 8; ++j) {
    const __m512i scale = lane_bytes(p + Q4KGroup::kScales + 16 * size_t(j));
    _mm512_store_si512(out.scale[2 * j], scale);
    _mm512_store_si512(out.scale[2 * j + 1], scale);
  }
  for (int q = 0; q < 4; ++q) {  // min pair (m[2q], m[2q+1]) -> offsets (m, m) of each
    const __m512i pairs = lane_min_pairs(p + Q4KGroup::kMins + 32 * size_t(q));
    const __m512i even = _mm512_and_si512(pairs, _mm512_set1_epi32(0xffff)), odd = _mm512_srli_epi32(pairs, 16);
    _mm512_store_si512(out.offset[2 * q], _mm512_or_si512(even, _mm512_slli_epi32(even, 16)));
    _mm512_store_si512(out.offset[2 * q + 1], _mm512_or_si512(odd, _mm512_slli_epi32(odd, 16)));
  }
  _mm512_store_ps(out.d, lane_halves(p));
  _mm512_store_ps(out.dm, lane_halves(p + Q4KGroup::kDmin));
}

// ---- Interleaved Q6_K: d[16] (f16), scale pairs [8][16][2] (int8), 32 vectors of the levels'
// low 4 bits (as Q4_K's nibbles), 16 vectors of their top 2 bits: byte i of row r in vector t
// holds those of elements 4t+i, 64+4t+i, 128+4t+i and 192+4t+i at bits 0, 2, 4 and 6.
struct Q6KGroup {
  static constexpr size_t kScales = 32, kLow = kScales + 256, kHigh = kLow + 32 * 64;
  static constexpr size_t kBytes = kHigh + 16 * 64;
};

// The levels of groups t, 16 + t, 32 + t and 48 + t (elements 4g..4g+3 of the 16 rows).
inline void q6_k_levels(const uint8_t* p, int t, __m512i u[4]) {
  const __m512i low4 = _mm512_set1_epi8(15), top2 = _mm512_set1_epi8(0x30);
  const __m512i a = _mm512_loadu_si512(p + Q6KGroup::kLow + 64 * size_t(t));
  const __m512i b = _mm512_loadu_si512(p + Q6KGroup::kLow + 64 * size_t(16 + t));
  const __m512i h = _mm512_loadu_si512(p + Q6KGroup::kHigh + 64 * size_t(t));
  // (x & 15) | (y & 0x30): ternary logic A & C | B with B's other bits cleared first.
  const auto join = [&](__m512i x, __m512i y) {
    return _mm512_ternarylogic_epi32(x, _mm512_and_si512(y, top2), low4, 0xec);
  };
  u[0] = join(a, _mm512_slli_epi16(h, 4));
  u[1] = join(b, _mm512_slli_epi16(h, 2));
  u[2] = join(_mm512_srli_epi16(a, 4), h);
  u[3] = join(_mm512_srli_epi16(b, 4), _mm512_srli_epi16(h, 2));
}

// Scale pair p as int16 pairs per lane (scales of runs 2p and 2p + 1 of each row).
inline __m512i q6_k_scale_pairs(const uint8_t* p, int pair) {
  return _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + Q6KGroup::kScales + 32 * pair)));
}

template <int NC>
void q6_k_group_tile(int64_t k, const uint8_t* w, const void* x, size_t x_stride, float* out, size_t out_stride) {
  const BlockQ8_K* cols[NC];
  __m512 acc[NC];
  for (int c = 0; c < NC; ++c) {
    cols[c] = reinterpret_cast<const BlockQ8_K*>(static_cast<const uint8_t*>(x) + size_t(c) * x_stride);
    acc[c] = _mm512_setzero_ps();
  }
  for (int64_t ib = 0; ib < k / QK_K; ++ib) {
    const uint8_t* p = w + size_t(ib) * Q6KGroup::kBytes;
    __m512i isum[NC], msum[NC];
    for (int c = 0; c < NC; ++c) isum[c] = msum[c] = _mm512_setzero_si512();
    for (int T = 0; T < 4; ++T) {  // runs 4q + T of 16 elements: groups 16q + 4T .. 16q + 4T + 3
      __m512i run[NC][4];
      for (int c = 0; c < NC; ++c) run[c][0] = run[c][1] = run[c][2] = run[c][3] = _mm512_setzero_si512();
#pragma GCC unroll 4
      for (int t = 4 * T; t < 4 * T + 4; ++t) {
        __m512i u[4];
        q6_k_levels(p, t, u);
        for (int c = 0; c < NC; ++c) {
          for (int q = 0; q < 4; ++q) {
            run[c][q] = _mm512_dpbusd_epi32(run[c][q], u[q], broadcast4(cols[c][ib].qs + 4 * (16 * q + t)));
          }
        }
      }
      for (int q = 0; q < 4; ++q) {  // run j = 4q + T: scale pair j / 2, member j % 2
        const int j = 4 * q + T;
        const __m512i pairs = q6_k_scale_pairs(p, j / 2);
        const __m512i scale =
            j % 2 == 0 ? _mm512_srai_epi32(_mm512_slli_epi32(pairs, 16), 16) : _mm512_srai_epi32(pairs, 16);
        for (int c = 0; c < NC; ++c) isum[c] = _mm512_add_epi32(isum[c], _mm512_mullo_epi32(run[c][q], scale));
      }
    }
    for (int pair = 0; pair < 8; ++pair) {  // levels are stored + 32: offsets 32 * scale
      const __m512i offsets = _mm512_slli_epi16(q6_k_scale_pairs(p, pair), 5);
      for (int c = 0; c < NC; ++c)
        msum[c] = _mm512_dpwssd_epi32(msum[c], offsets, broadcast4(cols[c][ib].bsums + 2 * pair));
    }
    const __m512 d = lane_halves(p);
    for (int c = 0; c < NC; ++c) {
      const __m512 ddx = _mm512_mul_ps(d, _mm512_set1_ps(cols[c][ib].d));
      acc[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[c]), ddx, acc[c]);
      acc[c] = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(msum[c]), ddx, acc[c]);
    }
  }
  for (int c = 0; c < NC; ++c) _mm512_storeu_ps(out + size_t(c) * out_stride, acc[c]);
}

void q6_k_group_wide(const uint8_t* w, int64_t ib, WideBlock& out) {
  const uint8_t* p = w + size_t(ib) * Q6KGroup::kBytes;
  for (int t = 0; t < 16; ++t) {
    __m512i u[4];
    q6_k_levels(p, t, u);
    for (int q = 0; q < 4; ++q) _mm512_store_si512(out.q[16 * q + t], u[q]);
  }
  for (int pair = 0; pair < 8; ++pair) {
    const __m512i pairs = q6_k_scale_pairs(p, pair);
    _mm512_store_si512(out.scale[2 * pair], _mm512_srai_epi32(_mm512_slli_epi32(pairs, 16), 16));
    _mm512_store_si512(out.scale[2 * pair + 1], _mm512_srai_epi32(pairs, 16));
    _mm512_store_si512(out.offset[pair], _mm512_slli_epi16(pairs, 5));
  }
  const __m512 d = lane_halves(p);
  _mm512_store_ps(out.d, d);
  _mm512_store_ps(out.dm, d);
}

// A group layout's entries of the kernel table: its tiles by column count, its prompts
// through WideBlocks and wide_columns of the type's policy.
template <class T, int NC>
struct GroupTile;
template <int NC>
struct GroupTile<Q4K, NC> {
  static constexpr auto fn = q4_k_group_tile<NC>;
};
template <int NC>
struct GroupTile<Q6K, NC> {
  static constexpr auto fn = q6_k_group_tile<NC>;
};

template <class T>
void group_tile(int64_t k, const uint8_t* w, const void* x, size_t x_stride, const int32_t*, size_t, int nc, float* out,
                size_t out_stride) {
  switch (nc) {
    case 1:
      return GroupTile<T, 1>::fn(k, w, x, x_stride, out, out_stride);
    case 2:
      return GroupTile<T, 2>::fn(k, w, x, x_stride, out, out_stride);
    case 3:
      return GroupTile<T, 3>::fn(k, w, x, x_stride, out, out_stride);
    default:
      return GroupTile<T, 4>::fn(k, w, x, x_stride, out, out_stride);
  }
}

template <class T, void (*Wide)(const uint8_t*, int64_t, WideBlock&)>
void group_prompt(int64_t k, const uint8_t* w, const void* x, size_t x_stride, int nc, float* out, size_t out_stride) {
  const auto block_of = [&](int64_t ib, WideBlock& block) { Wide(w, ib, block); };
  wide_dots<T>(k, block_of, kWideRows, x, x_stride, nc, out, out_stride);
}

constexpr InterleavedKernels kQ4KInterleaved{QK_K,
                                             Q4KGroup::kBytes,
                                             nullptr,
                                             kInterleavedCols,
                                             group_tile<Q4K>,
                                             nullptr,
                                             kWideCols,
                                             group_prompt<Q4K, q4_k_group_wide>};
constexpr InterleavedKernels kQ6KInterleaved{QK_K,
                                             Q6KGroup::kBytes,
                                             nullptr,
                                             kInterleavedCols,
                                             group_tile<Q6K>,
                                             nullptr,
                                             kWideCols,
                                             group_prompt<Q6K, q6_k_group_wide>};

}  // namespace

#define STRATA_K_QUANT_TILES(name, T)                                                                                \
  void name##_tile_avx512(int64_t k, const void* w, size_t w_stride, int nr, const void* x, size_t x_stride, int nc, \
                          float* out, size_t out_stride) {                                                           \
    dot_tile<T, false>(k, w, w_stride, nr, x, x_stride, nc, out, out_stride);                                        \
  }                                                                                                                  \
  void name##_tile_avx512_vnni(int64_t k, const void* w, size_t w_stride, int nr, const void* x, size_t x_stride,    \
                               int nc, float* out, size_t out_stride) {                                              \
    wide_tile<T>(k, w, w_stride, nr, x, x_stride, nc, out, out_stride);                                              \
  }

STRATA_K_QUANT_TILES(q2_k, Q2K)
STRATA_K_QUANT_TILES(q3_k, Q3K)
STRATA_K_QUANT_TILES(q4_k, Q4K)
STRATA_K_QUANT_TILES(q5_k, Q5K)
STRATA_K_QUANT_TILES(q6_k, Q6K)

const InterleavedKernels* interleaved_k_quant_tiles_avx512_vnni(DType type) {
  switch (type) {
    case DType::Q4_K:
      return &kQ4KInterleaved;
    case DType::Q6_K:
      return &kQ6KInterleaved;
    default:
      return nullptr;
  }
}

}  // namespace strata::cpu
