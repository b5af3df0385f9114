// The AVX2 path of the op primitives: 16 lanes as two 8-float registers of fused
// multiply-adds, f16 through F16C, the last partial chunk through a zero-padded copy.
// Internal linkage only (the ODR rule of the per-ISA files): the one export is
// op_kernels_avx2.
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "backend/cpu/op_kernels_isa.h"

namespace strata::cpu {
namespace {

// lanes (0..7) + (8..15), then the same tree as the portable path: halves added in turn.
float reduce(__m256 lo, __m256 hi) {
  const __m256 s8 = _mm256_add_ps(lo, hi);
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

__m256 load_f16x8(const uint16_t* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

float dot_f32(const float* a, const float* b, int64_t n) {
  __m256 lo = _mm256_setzero_ps(), hi = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    lo = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), lo);
    hi = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), hi);
  }
  if (i < n) {
    float ta[16] = {}, tb[16] = {};
    std::memcpy(ta, a + i, size_t(n - i) * sizeof(float));
    std::memcpy(tb, b + i, size_t(n - i) * sizeof(float));
    lo = _mm256_fmadd_ps(_mm256_loadu_ps(ta), _mm256_loadu_ps(tb), lo);
    hi = _mm256_fmadd_ps(_mm256_loadu_ps(ta + 8), _mm256_loadu_ps(tb + 8), hi);
  }
  return reduce(lo, hi);
}

float dot_f16(const uint16_t* a, const float* b, int64_t n) {
  __m256 lo = _mm256_setzero_ps(), hi = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    lo = _mm256_fmadd_ps(load_f16x8(a + i), _mm256_loadu_ps(b + i), lo);
    hi = _mm256_fmadd_ps(load_f16x8(a + i + 8), _mm256_loadu_ps(b + i + 8), hi);
  }
  if (i < n) {
    uint16_t ta[16] = {};
    float tb[16] = {};
    std::memcpy(ta, a + i, size_t(n - i) * sizeof(uint16_t));
    std::memcpy(tb, b + i, size_t(n - i) * sizeof(float));
    lo = _mm256_fmadd_ps(load_f16x8(ta), _mm256_loadu_ps(tb), lo);
    hi = _mm256_fmadd_ps(load_f16x8(ta + 8), _mm256_loadu_ps(tb + 8), hi);
  }
  return reduce(lo, hi);
}

void axpy_f32(float a, const float* x, float* y, int64_t n) {
  const __m256 av = _mm256_set1_ps(a);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(y + i, _mm256_fmadd_ps(av, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
  for (; i < n; ++i) y[i] += a * x[i];
}

void axpy_f16(float a, const uint16_t* x, float* y, int64_t n) {
  const __m256 av = _mm256_set1_ps(a);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_fmadd_ps(av, load_f16x8(x + i), _mm256_loadu_ps(y + i)));
  if (i < n) {
    uint16_t tx[8] = {};
    float ty[8] = {};
    std::memcpy(tx, x + i, size_t(n - i) * sizeof(uint16_t));
    std::memcpy(ty, y + i, size_t(n - i) * sizeof(float));
    _mm256_storeu_ps(ty, _mm256_fmadd_ps(av, load_f16x8(tx), _mm256_loadu_ps(ty)));
    std::memcpy(y + i, ty, size_t(n - i) * sizeof(float));
  }
}

void scale_f32(float s, float* y, int64_t n) {
  const __m256 sv = _mm256_set1_ps(s);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_mul_ps(sv, _mm256_loadu_ps(y + i)));
  for (; i < n; ++i) y[i] *= s;
}

void to_f16(const float* x, uint16_t* y, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(y + i),
                     _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
  }
  if (i < n) {
    float tx[8] = {};
    uint16_t ty[8];
    std::memcpy(tx, x + i, size_t(n - i) * sizeof(float));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(ty), _mm256_cvtps_ph(_mm256_loadu_ps(tx), _MM_FROUND_TO_NEAREST_INT));
    std::memcpy(y + i, ty, size_t(n - i) * sizeof(uint16_t));
  }
}

const uint8_t* at(const void* x, size_t bytes) {
  return static_cast<const uint8_t*>(x) + bytes;
}

__m256 load8(const float* p) {
  return _mm256_loadu_ps(p);
}
__m256 load8(const uint16_t* p) {
  return load_f16x8(p);
}

// y[i0..i0+32) kept in 4 registers while every x_c is added; the rest by axpy per x_c.
template <typename T>
void accumulate(const void* x, size_t x_stride, int64_t n_x, const float* p, float* y, int64_t n) {
  int64_t i0 = 0;
  for (; i0 + 32 <= n; i0 += 32) {
    __m256 acc[4];
    for (int j = 0; j < 4; ++j) acc[j] = _mm256_loadu_ps(y + i0 + 8 * j);
    for (int64_t c = 0; c < n_x; ++c) {
      const T* xc = reinterpret_cast<const T*>(at(x, size_t(c) * x_stride)) + i0;
      const __m256 pc = _mm256_set1_ps(p[c]);
      for (int j = 0; j < 4; ++j) acc[j] = _mm256_fmadd_ps(pc, load8(xc + 8 * j), acc[j]);
    }
    for (int j = 0; j < 4; ++j) _mm256_storeu_ps(y + i0 + 8 * j, acc[j]);
  }
  if (i0 == n) return;
  for (int64_t c = 0; c < n_x; ++c) {
    const T* xc = reinterpret_cast<const T*>(at(x, size_t(c) * x_stride));
    if constexpr (sizeof(T) == 2) {
      axpy_f16(p[c], xc + i0, y + i0, n - i0);
    } else {
      axpy_f32(p[c], xc + i0, y + i0, n - i0);
    }
  }
}

void accumulate_f32(const void* x, size_t x_stride, int64_t n_x, const float* p, float* y, int64_t n) {
  accumulate<float>(x, x_stride, n_x, p, y, n);
}

void accumulate_f16(const void* x, size_t x_stride, int64_t n_x, const float* p, float* y, int64_t n) {
  accumulate<uint16_t>(x, x_stride, n_x, p, y, n);
}

// exp(x): x = n ln2 + r with |r| <= ln2/2, exp(r) by its Taylor series to r^7 (truncation
// below 6e-9 relative), times 2^n built in the exponent bits; x below -87.3 (the normal range)
// gives 0, above 88 it is taken as 88.
__m256 exp8(__m256 x) {
  const __m256 in_range = _mm256_cmp_ps(x, _mm256_set1_ps(-87.3f), _CMP_GE_OQ);
  x = _mm256_max_ps(_mm256_min_ps(x, _mm256_set1_ps(88.0f)), _mm256_set1_ps(-87.3f));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);  // ln2 in two parts
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.0f / 5040);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 720));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
  p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  const __m256i pow2n = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_and_ps(_mm256_mul_ps(p, _mm256_castsi256_ps(pow2n)), in_range);
}

void exp_shifted(float* x, int64_t n, float shift) {
  const __m256 s = _mm256_set1_ps(shift);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), s)));
  if (i < n) {
    float t[8] = {};
    std::memcpy(t, x + i, size_t(n - i) * sizeof(float));
    _mm256_storeu_ps(t, exp8(_mm256_sub_ps(_mm256_loadu_ps(t), s)));
    std::memcpy(x + i, t, size_t(n - i) * sizeof(float));
  }
}

__m256 silu_mul8(__m256 g, __m256 u) {
  const __m256 e = exp8(_mm256_sub_ps(_mm256_setzero_ps(), g));
  return _mm256_mul_ps(_mm256_div_ps(g, _mm256_add_ps(_mm256_set1_ps(1.0f), e)), u);
}

void silu_mul(const float* g, const float* u, float* out, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, silu_mul8(_mm256_loadu_ps(g + i), _mm256_loadu_ps(u + i)));
  if (i < n) {
    float tg[8] = {}, tu[8] = {}, to[8];
    std::memcpy(tg, g + i, size_t(n - i) * sizeof(float));
    std::memcpy(tu, u + i, size_t(n - i) * sizeof(float));
    _mm256_storeu_ps(to, silu_mul8(_mm256_loadu_ps(tg), _mm256_loadu_ps(tu)));
    std::memcpy(out + i, to, size_t(n - i) * sizeof(float));
  }
}

constexpr OpKernels kAvx2 = {dot_f32, dot_f16,        axpy_f32,       axpy_f16,    scale_f32,
                             to_f16,  accumulate_f32, accumulate_f16, exp_shifted, silu_mul};

}  // namespace

const OpKernels& op_kernels_avx2() {
  return kAvx2;
}

}  // namespace strata::cpu
