// The AVX2 path of quantize_act (act_quant_isa.h): the same bytes as the portable path.
// Compiled with -mavx2 -mfma -mf16c: everything here has internal linkage except the two
// entry points, and no header templates are instantiated (the ODR hazard of cpu-common).
#include <immintrin.h>
#include <math.h>

#include <cstring>

#include "backend/cpu/act_quant_isa.h"
#include "backend/cpu/type_kernels.h"
#include "core/quant.h"

namespace strata::cpu {
namespace {

constexpr float kTinyBlock = 1e-30f;  // as act_quant.cpp

__m256 abs_ps(__m256 v) {
  return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), v);
}

float hmax(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_movehdup_ps(m));
  return _mm_cvtss_f32(m);
}

int hsum_epi32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
  return _mm_cvtsi128_si32(s);
}

// 32 int32 levels (4 x 8, element order) -> 32 int8 in element order.
__m256i pack_levels(__m256i q0, __m256i q1, __m256i q2, __m256i q3) {
  const __m256i q01 = _mm256_packs_epi32(q0, q1);  // lanes interleaved per 128 bits
  const __m256i q23 = _mm256_packs_epi32(q2, q3);
  const __m256i q = _mm256_packs_epi16(q01, q23);
  return _mm256_permutevar8x32_epi32(q, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

void quantize_q8_32_block(const float* x, ActQ8_32& out) {
  __m256 v[4];
  __m256 amax = _mm256_setzero_ps();
  for (int j = 0; j < 4; ++j) {
    v[j] = _mm256_loadu_ps(x + 8 * j);
    amax = _mm256_max_ps(abs_ps(v[j]), amax);  // a NaN in the first operand yields the second
  }
  const float a = hmax(amax);
  if (!(a >= kTinyBlock)) {
    std::memset(&out, 0, sizeof(out));
    return;
  }
  const float d = a / 127.0f;
  const __m256 id = _mm256_set1_ps(1.0f / d);
  __m256i q[4];
  __m256i sum = _mm256_setzero_si256();
  for (int j = 0; j < 4; ++j) {
    __m256 s = _mm256_max_ps(_mm256_mul_ps(v[j], id), _mm256_set1_ps(-127.0f));  // NaN -> -127
    s = _mm256_min_ps(s, _mm256_set1_ps(127.0f));
    q[j] = _mm256_cvtps_epi32(s);  // round half to even (the default MXCSR mode)
    sum = _mm256_add_epi32(sum, q[j]);
  }
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(out.qs), pack_levels(q[0], q[1], q[2], q[3]));
  out.d = d;
  out.s = d * float(hsum_epi32(sum));
}

// One BlockQ8_K as quantize_row_q8_k makes it, for a block whose values are all finite and
// below kLarge in magnitude (the caller sends any other block to the reference).
constexpr float kLarge = 1e30f;

// Whether every |x| < kLarge (false for inf and NaN).
bool all_moderate(const float* x) {
  __m256 ok = _mm256_castsi256_ps(_mm256_set1_epi32(-1));
  for (int j = 0; j < QK_K / 8; ++j) {
    ok = _mm256_and_ps(ok, _mm256_cmp_ps(abs_ps(_mm256_loadu_ps(x + 8 * j)), _mm256_set1_ps(kLarge), _CMP_LT_OQ));
  }
  return _mm256_movemask_ps(ok) == 0xff;
}

// The first element of largest magnitude, with its sign (the reference's signed_max).
float signed_max(const float* x) {
  __m256 amax = _mm256_setzero_ps();
  for (int j = 0; j < QK_K / 8; ++j) amax = _mm256_max_ps(amax, abs_ps(_mm256_loadu_ps(x + 8 * j)));
  const float a = hmax(amax);
  const __m256 av = _mm256_set1_ps(a);
  for (int j = 0; j < QK_K / 8; ++j) {
    const int mask = _mm256_movemask_ps(_mm256_cmp_ps(abs_ps(_mm256_loadu_ps(x + 8 * j)), av, _CMP_EQ_OQ));
    if (mask != 0) return x[8 * j + __builtin_ctz(unsigned(mask))];
  }
  return 0.0f;
}

void quantize_q8_256_block(const float* x, BlockQ8_K& b) {
  std::memset(&b, 0, sizeof(b));
  const float max = signed_max(x);
  const float inv_scale = max != 0.0f ? -127.0f / max : 0.0f;
  if (!__builtin_isfinite(inv_scale) || inv_scale == 0.0f) return;  // zero (or subnormal) block
  b.d = 1.0f / inv_scale;
  const __m256 inv = _mm256_set1_ps(inv_scale);
  for (int j = 0; j < QK_K / 32; ++j) {
    __m256i q[4];
    for (int i = 0; i < 4; ++i) q[i] = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 32 * j + 8 * i), inv));
    const __m256i q8 = pack_levels(q[0], q[1], q[2], q[3]);  // |x * inv| <= 127 (|x| <= |max|)
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(b.qs + 32 * j), q8);
    // bsums of the two groups of 16: int16 sums of the 32 bytes, pairwise then per group.
    const __m256i s16 = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(1), q8), _mm256_set1_epi16(1));
    const __m128i lo = _mm256_castsi256_si128(s16), hi = _mm256_extracti128_si256(s16, 1);
    const __m128i lo2 = _mm_add_epi32(lo, _mm_shuffle_epi32(lo, 0x4e));
    const __m128i hi2 = _mm_add_epi32(hi, _mm_shuffle_epi32(hi, 0x4e));
    b.bsums[2 * j] = int16_t(_mm_cvtsi128_si32(lo2) + _mm_extract_epi32(lo2, 1));
    b.bsums[2 * j + 1] = int16_t(_mm_cvtsi128_si32(hi2) + _mm_extract_epi32(hi2, 1));
  }
}

}  // namespace

void quantize_q8_32_avx2(const float* x, int64_t k, void* out) {
  auto* blocks = static_cast<ActQ8_32*>(out);
  for (int64_t b = 0; b < k / 32; ++b) quantize_q8_32_block(x + 32 * b, blocks[b]);
}

void quantize_q8_256_avx2(const float* x, int64_t k, void* out) {
  auto* blocks = static_cast<BlockQ8_K*>(out);
  for (int64_t b = 0; b < k / QK_K; ++b) {
    const float* xb = x + QK_K * b;
    if (all_moderate(xb)) {
      quantize_q8_256_block(xb, blocks[b]);
    } else {
      quantize_row_q8_k(xb, &blocks[b], QK_K);
    }
  }
}

}  // namespace strata::cpu
