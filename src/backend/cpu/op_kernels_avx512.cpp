// The AVX-512 path of the op primitives: 16 lanes in one register of fused multiply-adds,
// f16 through the AVX-512 conversions, the last partial chunk loaded and stored under a mask.
// Internal linkage only (the ODR rule of the per-ISA files): the one export is
// op_kernels_avx512.
// GCC 12's AVX-512 intrinsics pass _mm512_undefined_ps() (a self-initialized variable) as
// the unused source of their unmasked forms, and GCC 12 then reports it as uninitialized.
#if defined(__GNUC__) && !defined(__clang__)  // clang (the fuzz build) has neither warning
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include <cstdint>

#include "backend/cpu/op_kernels_isa.h"

namespace strata::cpu {
namespace {

// The same tree as the portable path: lanes (0..7) + (8..15), then halves in turn.
float reduce(__m512 v) {
  const __m256 s8 = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

__mmask16 tail_mask(int64_t left) {
  return left >= 16 ? __mmask16(0xffff) : __mmask16((1u << left) - 1);
}

__m512 load_f16x16(const uint16_t* p, __mmask16 m) {
  return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p));
}

float dot_f32(const float* a, const float* b, int64_t n) {
  __m512 acc = _mm512_setzero_ps();
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), acc);
  }
  return reduce(acc);
}

float dot_f16(const uint16_t* a, const float* b, int64_t n) {
  __m512 acc = _mm512_setzero_ps();
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    acc = _mm512_fmadd_ps(load_f16x16(a + i, m), _mm512_maskz_loadu_ps(m, b + i), acc);
  }
  return reduce(acc);
}

void axpy_f32(float a, const float* x, float* y, int64_t n) {
  const __m512 av = _mm512_set1_ps(a);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    _mm512_mask_storeu_ps(y + i, m,
                          _mm512_fmadd_ps(av, _mm512_maskz_loadu_ps(m, x + i), _mm512_maskz_loadu_ps(m, y + i)));
  }
}

void axpy_f16(float a, const uint16_t* x, float* y, int64_t n) {
  const __m512 av = _mm512_set1_ps(a);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    _mm512_mask_storeu_ps(y + i, m, _mm512_fmadd_ps(av, load_f16x16(x + i, m), _mm512_maskz_loadu_ps(m, y + i)));
  }
}

void scale_f32(float s, float* y, int64_t n) {
  const __m512 sv = _mm512_set1_ps(s);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    _mm512_mask_storeu_ps(y + i, m, _mm512_mul_ps(sv, _mm512_maskz_loadu_ps(m, y + i)));
  }
}

void to_f16(const float* x, uint16_t* y, int64_t n) {
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    _mm256_mask_storeu_epi16(y + i, m, _mm512_cvtps_ph(_mm512_maskz_loadu_ps(m, x + i), _MM_FROUND_TO_NEAREST_INT));
  }
}

const uint8_t* at(const void* x, size_t bytes) {
  return static_cast<const uint8_t*>(x) + bytes;
}

__m512 load16(const float* p, __mmask16 m) {
  return _mm512_maskz_loadu_ps(m, p);
}
__m512 load16(const uint16_t* p, __mmask16 m) {
  return load_f16x16(p, m);
}

// y in blocks of up to 64 floats (4 registers, the last block under masks), each kept in
// registers while every x_c is added.
template <typename T>
void accumulate(const void* x, size_t x_stride, int64_t n_x, const float* p, float* y, int64_t n) {
  for (int64_t i0 = 0; i0 < n; i0 += 64) {
    __mmask16 m[4];
    __m512 acc[4];
    for (int j = 0; j < 4; ++j) {
      const int64_t left = n - i0 - 16 * j;
      m[j] = left <= 0 ? __mmask16(0) : tail_mask(left);
      acc[j] = _mm512_maskz_loadu_ps(m[j], y + i0 + 16 * j);
    }
    for (int64_t c = 0; c < n_x; ++c) {
      const T* xc = reinterpret_cast<const T*>(at(x, size_t(c) * x_stride)) + i0;
      const __m512 pc = _mm512_set1_ps(p[c]);
      for (int j = 0; j < 4; ++j) acc[j] = _mm512_fmadd_ps(pc, load16(xc + 16 * j, m[j]), acc[j]);
    }
    for (int j = 0; j < 4; ++j) _mm512_mask_storeu_ps(y + i0 + 16 * j, m[j], acc[j]);
  }
}

void accumulate_f32(const void* x, size_t x_stride, int64_t n_x, const float* p, float* y, int64_t n) {
  accumulate<float>(x, x_stride, n_x, p, y, n);
}

void accumulate_f16(const void* x, size_t x_stride, int64_t n_x, const float* p, float* y, int64_t n) {
  accumulate<uint16_t>(x, x_stride, n_x, p, y, n);
}

// exp(x): x = n ln2 + r with |r| <= ln2/2, exp(r) by its Taylor series to r^7 (truncation
// below 6e-9 relative), times 2^n by scalef; x below -104 gives 0, above 88.7 infinity.
__m512 exp16(__m512 x) {
  x = _mm512_max_ps(_mm512_min_ps(x, _mm512_set1_ps(88.7f)), _mm512_set1_ps(-104.0f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);  // ln2 in two parts
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.0f / 5040);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  return _mm512_scalef_ps(p, n);
}

void exp_shifted(float* x, int64_t n, float shift) {
  const __m512 s = _mm512_set1_ps(shift);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    _mm512_mask_storeu_ps(x + i, m, exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), s)));
  }
}

void silu_mul(const float* g, const float* u, float* out, int64_t n) {
  const __m512 one = _mm512_set1_ps(1.0f);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    const __m512 gv = _mm512_maskz_loadu_ps(m, g + i);
    const __m512 silu = _mm512_div_ps(gv, _mm512_add_ps(one, exp16(_mm512_sub_ps(_mm512_setzero_ps(), gv))));
    _mm512_mask_storeu_ps(out + i, m, _mm512_mul_ps(silu, _mm512_maskz_loadu_ps(m, u + i)));
  }
}

constexpr OpKernels kAvx512 = {dot_f32, dot_f16,        axpy_f32,       axpy_f16,    scale_f32,
                               to_f16,  accumulate_f32, accumulate_f16, exp_shifted, silu_mul};

}  // namespace

const OpKernels& op_kernels_avx512() {
  return kAvx512;
}

}  // namespace strata::cpu
