// The AVX2 path of the float kernel group: F32, F16 (F16C) and BF16 (shifted into the high
// half of an f32) weights times f32 activations, tiles of up to 4 rows x 2 columns. Each
// dot product: 8 lanes of fused multiply-adds over the whole chunks of 8, reduced in a fixed
// order, then the k % 8 last terms one by one. Internal linkage only (ODR hazard of
// cpu-common): the one export is float_kernels_avx2.
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "backend/cpu/float_kernels_isa.h"

namespace strata::cpu {
namespace {

struct F32Weights {
  static __m256 load8(const void* row, int64_t i) { return _mm256_loadu_ps(static_cast<const float*>(row) + i); }
  static float at(const void* row, int64_t i) { return static_cast<const float*>(row)[i]; }
  static const void* address(const void* row, int64_t i) { return static_cast<const float*>(row) + i; }
};

struct F16Weights {
  static __m256 load8(const void* row, int64_t i) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(row) + i)));
  }
  static float at(const void* row, int64_t i) { return _cvtsh_ss(static_cast<const uint16_t*>(row)[i]); }
  static const void* address(const void* row, int64_t i) { return static_cast<const uint16_t*>(row) + i; }
};

struct BF16Weights {
  static __m256 load8(const void* row, int64_t i) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(row) + i));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  }
  static const void* address(const void* row, int64_t i) { return static_cast<const uint16_t*>(row) + i; }
  static float at(const void* row, int64_t i) {
    const uint32_t bits = uint32_t(static_cast<const uint16_t*>(row)[i]) << 16;
    float f;
    std::memcpy(&f, &bits, sizeof(f));
    return f;
  }
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

template <typename W, int NR, int NC>
void tile_fixed(int64_t k, const void* w, size_t w_stride, const void* x, size_t x_stride, float* out,
                size_t out_stride) {
  const void* rows[NR];
  const float* cols[NC];
  for (int r = 0; r < NR; ++r) rows[r] = at_offset(w, size_t(r) * w_stride);
  for (int c = 0; c < NC; ++c) cols[c] = reinterpret_cast<const float*>(at_offset(x, size_t(c) * x_stride));
  __m256 acc[NR][NC];
  for (int r = 0; r < NR; ++r) {
    for (int c = 0; c < NC; ++c) acc[r][c] = _mm256_setzero_ps();
  }
  const int64_t whole = k / 8 * 8;
  for (int64_t i = 0; i < whole; i += 8) {
    __m256 xv[NC];
    for (int c = 0; c < NC; ++c) xv[c] = _mm256_loadu_ps(cols[c] + i);
    for (int r = 0; r < NR; ++r) {
      _mm_prefetch(reinterpret_cast<const char*>(W::address(rows[r], i)) + NR * w_stride, _MM_HINT_T0);
      const __m256 wv = W::load8(rows[r], i);
      for (int c = 0; c < NC; ++c) acc[r][c] = _mm256_fmadd_ps(wv, xv[c], acc[r][c]);
    }
  }
  for (int r = 0; r < NR; ++r) {
    for (int c = 0; c < NC; ++c) {
      float sum = hsum(acc[r][c]);
      for (int64_t i = whole; i < k; ++i) sum = __builtin_fmaf(W::at(rows[r], i), cols[c][i], sum);
      out[size_t(c) * out_stride + size_t(r)] = sum;
    }
  }
}

constexpr int kMaxRows = 4;
constexpr int kMaxCols = 2;

template <typename W, int NR>
void tile_rows(int64_t k, const void* w, size_t w_stride, const void* x, size_t x_stride, int nc, float* out,
               size_t out_stride) {
  if (nc == 1) {
    tile_fixed<W, NR, 1>(k, w, w_stride, x, x_stride, out, out_stride);
  } else {
    tile_fixed<W, NR, 2>(k, w, w_stride, x, x_stride, out, out_stride);
  }
}

template <typename W>
void tile(int64_t k, const void* w, size_t w_stride, int nr, const void* x, size_t x_stride, int nc, float* out,
          size_t out_stride) {
  switch (nr) {
    case 1:
      return tile_rows<W, 1>(k, w, w_stride, x, x_stride, nc, out, out_stride);
    case 2:
      return tile_rows<W, 2>(k, w, w_stride, x, x_stride, nc, out, out_stride);
    case 3:
      return tile_rows<W, 3>(k, w, w_stride, x, x_stride, nc, out, out_stride);
    default:
      return tile_rows<W, 4>(k, w, w_stride, x, x_stride, nc, out, out_stride);
  }
}

constexpr TypeKernels kF32{ActFormat::f32, kMaxRows, kMaxCols, tile<F32Weights>};
constexpr TypeKernels kF16{ActFormat::f32, kMaxRows, kMaxCols, tile<F16Weights>};
constexpr TypeKernels kBF16{ActFormat::f32, kMaxRows, kMaxCols, tile<BF16Weights>};

}  // namespace

const TypeKernels* float_kernels_avx2(DType type) {
  switch (type) {
    case DType::F32:
      return &kF32;
    case DType::F16:
      return &kF16;
    case DType::BF16:
      return &kBF16;
    default:
      return nullptr;
  }
}

}  // namespace strata::cpu
