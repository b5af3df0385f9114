// The AVX-512 path of the float kernel group: F32, F16 and BF16 weights times f32
// activations, tiles of up to 4 rows x 4 columns. Each dot product: 16 lanes of fused
// multiply-adds over chunks of 16, the last partial chunk loaded under a mask, reduced in a
// fixed order. Internal linkage only (ODR hazard of cpu-common): the one export is
// float_kernels_avx512.
// GCC 12's AVX-512 intrinsics pass _mm512_undefined_ps() (a self-initialized variable) as
// the unused source of their unmasked forms, and GCC 12 then reports it as uninitialized.
#if defined(__GNUC__) && !defined(__clang__)  // clang (the fuzz build) has neither warning
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include <cstdint>
#include <type_traits>

#include "backend/cpu/float_kernels_isa.h"

namespace strata::cpu {
namespace {

struct F32Weights {
  static constexpr size_t kBytes = 4;  // per element
  static __m512 load16(const void* row, int64_t i, __mmask16 m) {
    return _mm512_maskz_loadu_ps(m, static_cast<const float*>(row) + i);
  }
  static __m512 load16(const void* row, int64_t i) { return _mm512_loadu_ps(static_cast<const float*>(row) + i); }
};

struct F16Weights {
  static constexpr size_t kBytes = 2;
  static __m512 load16(const void* row, int64_t i, __mmask16 m) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, static_cast<const uint16_t*>(row) + i));
  }
  static __m512 load16(const void* row, int64_t i) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(static_cast<const uint16_t*>(row) + i)));
  }
};

struct BF16Weights {
  static constexpr size_t kBytes = 2;
  static __m512 load16(const void* row, int64_t i, __mmask16 m) {
    return widen(_mm256_maskz_loadu_epi16(m, static_cast<const uint16_t*>(row) + i));
  }
  static __m512 load16(const void* row, int64_t i) {
    return widen(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(static_cast<const uint16_t*>(row) + i)));
  }
  static __m512 widen(__m256i h) { return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16)); }
};

// The sum of the 16 lanes, in a fixed order.
float hsum(__m512 v) {
  __m512 t = _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, 0x4e));
  t = _mm512_add_ps(t, _mm512_shuffle_f32x4(t, t, 0xb1));
  t = _mm512_add_ps(t, _mm512_permute_ps(t, 0x4e));
  t = _mm512_add_ps(t, _mm512_permute_ps(t, 0xb1));
  return _mm512_cvtss_f32(t);
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
  __m512 acc[NR][NC];
  for (int r = 0; r < NR; ++r) {
    for (int c = 0; c < NC; ++c) acc[r][c] = _mm512_setzero_ps();
  }
  // One step of 16 elements from i: plain loads for whole chunks, masked for the last partial one.
  auto step = [&](int64_t i, __mmask16 m, auto masked) {
    __m512 xv[NC];
    for (int c = 0; c < NC; ++c) xv[c] = masked ? _mm512_maskz_loadu_ps(m, cols[c] + i) : _mm512_loadu_ps(cols[c] + i);
    for (int r = 0; r < NR; ++r) {
      _mm_prefetch(reinterpret_cast<const char*>(rows[r]) + size_t(i) * W::kBytes + NR * w_stride, _MM_HINT_T0);
      const __m512 wv = masked ? W::load16(rows[r], i, m) : W::load16(rows[r], i);
      for (int c = 0; c < NC; ++c) acc[r][c] = _mm512_fmadd_ps(wv, xv[c], acc[r][c]);
    }
  };
  const int64_t whole = k / 16 * 16;
  for (int64_t i = 0; i < whole; i += 16) step(i, __mmask16(0xffff), std::false_type{});
  if (whole < k) step(whole, __mmask16((1u << (k - whole)) - 1), std::true_type{});
  for (int r = 0; r < NR; ++r) {
    for (int c = 0; c < NC; ++c) out[size_t(c) * out_stride + size_t(r)] = hsum(acc[r][c]);
  }
}

constexpr int kMaxRows = 4;
constexpr int kMaxCols = 4;

template <typename W, int NR>
void tile_rows(int64_t k, const void* w, size_t w_stride, const void* x, size_t x_stride, int nc, float* out,
               size_t out_stride) {
  switch (nc) {
    case 1:
      return tile_fixed<W, NR, 1>(k, w, w_stride, x, x_stride, out, out_stride);
    case 2:
      return tile_fixed<W, NR, 2>(k, w, w_stride, x, x_stride, out, out_stride);
    case 3:
      return tile_fixed<W, NR, 3>(k, w, w_stride, x, x_stride, out, out_stride);
    default:
      return tile_fixed<W, NR, 4>(k, w, w_stride, x, x_stride, out, out_stride);
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

const TypeKernels* float_kernels_avx512(DType type) {
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
