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

#include <cstdint>
#include <cstring>

#include "core/quant_blocks.h"

namespace strata::cpu {
namespace {

struct GroupScales {
  __m256i sc16;
  __m256i m16;
  float d;
  float dm;
};

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
          _cvtsh_ss(b.d), _cvtsh_ss(b.dmin)};
}

// Q3_K: 6-bit scales stored + 32: low 4 bits of scale g in byte g%8 (nibble g/8), top 2 bits
// in byte 8 + g%4 at bits 2*(g/4). Levels are stored + 4, so m = 4*sc and dm = d.
inline GroupScales group_scales(const BlockQ3_K& b) {
  const uint64_t low = load_u64(b.scales);
  const uint32_t high = load_u32(b.scales + 8);
  constexpr uint64_t kNibbles = 0x0f0f0f0f0f0f0f0full;
  constexpr uint32_t kPairs = 0x03030303u;
  // Bytes g = 0..7 (first) and 8..15 (second): low 4 bits | top 2 bits << 4.
  const uint64_t high_first = (high & kPairs) | uint64_t((high >> 2) & kPairs) << 32;
  const uint64_t high_second = ((high >> 4) & kPairs) | uint64_t((high >> 6) & kPairs) << 32;
  const uint64_t first = (low & kNibbles) | high_first << 4;
  const uint64_t second = ((low >> 4) & kNibbles) | high_second << 4;
  const __m128i stored = _mm_set_epi64x(int64_t(second), int64_t(first));
  const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_sub_epi8(stored, _mm_set1_epi8(32)));
  const float d = _cvtsh_ss(b.d);
  return {sc16, _mm256_slli_epi16(sc16, 2), d, d};
}

// Q4_K / Q5_K: 8 six-bit scales and mins, one per 32 elements, packed in 12 bytes (see
// quant_blocks.h); each goes to both of its groups of 16.
inline GroupScales group_scales_6bit(const uint8_t* s, uint16_t d, uint16_t dmin) {
  const uint32_t a = load_u32(s), b = load_u32(s + 4), c = load_u32(s + 8);
  constexpr uint32_t k6 = 0x3f3f3f3fu, k4 = 0x0f0f0f0fu, kTop = 0x30303030u;
  const uint32_t scales_low = a & k6;                         // sub-blocks 0..3
  const uint32_t mins_low = b & k6;                           //
  const uint32_t scales_high = (c & k4) | ((a >> 2) & kTop);  // sub-blocks 4..7
  const uint32_t mins_high = ((c >> 4) & k4) | ((b >> 2) & kTop);
  const __m128i v = _mm_set_epi32(int(mins_high), int(mins_low), int(scales_high), int(scales_low));
  return {_mm256_cvtepu8_epi16(_mm_unpacklo_epi8(v, v)), _mm256_cvtepu8_epi16(_mm_unpackhi_epi8(v, v)), _cvtsh_ss(d),
          _cvtsh_ss(dmin)};
}

inline GroupScales group_scales(const BlockQ4_K& b) {
  return group_scales_6bit(b.scales, b.d, b.dmin);
}

inline GroupScales group_scales(const BlockQ5_K& b) {
  return group_scales_6bit(b.scales, b.d, b.dmin);
}

// Q6_K: int8 scales; levels stored + 32, so m = 32*sc and dm = d.
inline GroupScales group_scales(const BlockQ6_K& b) {
  const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b.scales)));
  const float d = _cvtsh_ss(b.d);
  return {sc16, _mm256_slli_epi16(sc16, 5), d, d};
}

}  // namespace
}  // namespace strata::cpu
