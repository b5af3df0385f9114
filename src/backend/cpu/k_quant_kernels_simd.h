// What the AVX2 and AVX-512 K-quant kernels share: the super-block scales of each weight
// type decoded into vectors of the common form (k_quant_kernels.cpp):
//   dot = d * dx * sum_g sc[g] * sum_{e in g} q[e] * a[e]  -  dm * dx * sum_g m[g] * bsums[g]
// over the 16 groups g of 16 elements; sc16 and m16 hold sc[g] and m[g] as 16 int16 lanes.
//
// Include only from *_avx2.cpp / *_avx512.cpp files (it needs AVX2 and F16C). Everything
// sits in an anonymous namespace: each ISA file gets its own copy, compiled with its own
// flags, so no linker can hand an AVX-512 copy to a caller on another path.
#pragma once

#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "core/quant_blocks.h"

namespace strata::cpu {
namespace {

struct GroupScales {
  __m256i sc16;
  __m256i m16;
  __m128 d_dm;  // d and dm in lanes 0 and 1
};

// Two f16 values (low half first) as floats in lanes 0 and 1.
inline __m128 halves_to_floats(uint32_t two_halves) {
  return _mm_cvtph_ps(_mm_cvtsi32_si128(int(two_halves)));
}

inline uint32_t load_u32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

inline uint64_t load_u64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

// Q2_K: scales[g] = scale | min << 4; x = d*scale*q - dmin*min.
inline GroupScales group_scales(const BlockQ2_K& b) {
  const __m128i s = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b.scales));
  const __m128i low4 = _mm_set1_epi8(15);
  return {_mm256_cvtepu8_epi16(_mm_and_si128(s, low4)), _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(s, 4), low4)),
          halves_to_floats(uint32_t(b.d) | uint32_t(b.dmin) << 16)};
}

// Q3_K: 6-bit scales stored + 32: low 4 bits of scale g in byte g%8 (nibble g/8), top 2 bits
// in byte 8 + g%4 at bits 2*(g/4). Levels are stored + 4, so m = 4*sc and dm = d.
inline GroupScales group_scales(const BlockQ3_K& b) {
  static_assert(offsetof(BlockQ3_K, scales) == 96 && offsetof(BlockQ3_K, d) == 108 && sizeof(BlockQ3_K) == 110);
  // The block's last 16 bytes: qs[62..63], scales[0..11] in bytes 2..13, d in bytes 14..15.
  const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b.scales - 2));
  const __m128i low_bytes = _mm_shuffle_epi8(x, _mm_setr_epi8(2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5, 6, 7, 8, 9));
  const __m128i low = _mm_and_si128(_mm_blend_epi16(low_bytes, _mm_srli_epi16(low_bytes, 4), 0xf0), _mm_set1_epi8(15));
  const __m128i high_bytes =
      _mm_shuffle_epi8(x, _mm_setr_epi8(10, 11, 12, 13, 10, 11, 12, 13, 10, 11, 12, 13, 10, 11, 12, 13));
  const __m128i high = _mm_and_si128(_mm_srlv_epi32(high_bytes, _mm_setr_epi32(0, 2, 4, 6)), _mm_set1_epi8(3));
  const __m128i stored = _mm_or_si128(low, _mm_slli_epi16(high, 4));
  const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_sub_epi8(stored, _mm_set1_epi8(32)));
  const __m128 d = _mm_cvtph_ps(_mm_shuffle_epi8(x, _mm_set1_epi16(0x0f0e)));
  return {sc16, _mm256_slli_epi16(sc16, 2), d};
}

// Q4_K / Q5_K: 8 six-bit scales and mins, one per 32 elements, packed in 12 bytes (see
// quant_blocks.h); each goes to both of its groups of 16. `head` is the block's first 16
// bytes: d, dmin, scales[12] (the same in both types).
inline GroupScales group_scales_6bit(const uint8_t* head) {
  const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(head));
  // s0..3, s4..7, s8..11, s8..11 -> low 6 bits of scales 0..3 and mins 0..3, low 4 bits of
  // scales 4..7 (low nibbles) and mins 4..7 (high nibbles).
  const __m128i a = _mm_shuffle_epi8(x, _mm_setr_epi8(4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 12, 13, 14, 15));
  const __m128i low = _mm_and_si128(_mm_blend_epi32(a, _mm_srli_epi16(a, 4), 0b1000),
                                    _mm_setr_epi8(63, 63, 63, 63, 63, 63, 63, 63, 15, 15, 15, 15, 15, 15, 15, 15));
  // Top 2 bits of scales 4..7 and mins 4..7: bits 6..7 of s0..3 and s4..7, moved to bits 4..5.
  const __m128i b = _mm_shuffle_epi8(x, _mm_setr_epi8(-1, -1, -1, -1, -1, -1, -1, -1, 4, 5, 6, 7, 8, 9, 10, 11));
  const __m128i high = _mm_and_si128(_mm_srli_epi16(b, 2), _mm_set1_epi8(0x30));
  const __m128i v = _mm_or_si128(low, high);  // scales 0..3, mins 0..3, scales 4..7, mins 4..7
  const __m128i scales = _mm_shuffle_epi8(v, _mm_setr_epi8(0, 0, 1, 1, 2, 2, 3, 3, 8, 8, 9, 9, 10, 10, 11, 11));
  const __m128i mins = _mm_shuffle_epi8(v, _mm_setr_epi8(4, 4, 5, 5, 6, 6, 7, 7, 12, 12, 13, 13, 14, 14, 15, 15));
  return {_mm256_cvtepu8_epi16(scales), _mm256_cvtepu8_epi16(mins), _mm_cvtph_ps(x)};  // d, dmin first
}

inline GroupScales group_scales(const BlockQ4_K& b) {
  static_assert(offsetof(BlockQ4_K, scales) == 4);
  return group_scales_6bit(reinterpret_cast<const uint8_t*>(&b));
}

inline GroupScales group_scales(const BlockQ5_K& b) {
  static_assert(offsetof(BlockQ5_K, scales) == 4);
  return group_scales_6bit(reinterpret_cast<const uint8_t*>(&b));
}

// Q6_K: int8 scales; levels stored + 32, so m = 32*sc and dm = d.
inline GroupScales group_scales(const BlockQ6_K& b) {
  const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b.scales)));
  return {sc16, _mm256_slli_epi16(sc16, 5), halves_to_floats(uint32_t(b.d) * 0x10001u)};
}

}  // namespace
}  // namespace strata::cpu
