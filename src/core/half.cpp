#include "core/half.h"

#include <bit>
#include <cstring>

namespace strata {

float f16_to_f32(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0x1f) {  // inf or NaN: keep the payload
    bits = sign | 0x7f800000u | (mant << 13);
  } else if (exp != 0) {  // normal
    bits = sign | ((exp + 112) << 23) | (mant << 13);
  } else if (mant == 0) {  // signed zero
    bits = sign;
  } else {  // subnormal: normalise the mantissa
    int e = -1;
    do {
      ++e;
      mant <<= 1;
    } while ((mant & 0x400u) == 0);
    bits = sign | uint32_t(112 - e) << 23 | ((mant & 0x3ffu) << 13);
  }
  return std::bit_cast<float>(bits);
}

uint16_t f32_to_f16(float f) {
  const uint32_t x = std::bit_cast<uint32_t>(f);
  const uint16_t sign = uint16_t((x >> 16) & 0x8000u);
  const uint32_t abs = x & 0x7fffffffu;
  if (abs >= 0x7f800000u) {  // inf or NaN (keep NaN a NaN: set the quiet bit)
    return abs > 0x7f800000u ? uint16_t(sign | 0x7e00u | ((abs >> 13) & 0x3ffu)) : uint16_t(sign | 0x7c00u);
  }
  if (abs >= 0x477ff000u) {  // rounds to >= 65520: overflow to inf
    return uint16_t(sign | 0x7c00u);
  }
  const int exp = int(abs >> 23) - 127;
  if (exp < -25) {  // below half the smallest subnormal: signed zero
    return sign;
  }
  uint32_t mant = (abs & 0x7fffffu) | 0x800000u;  // 24-bit significand with hidden bit
  // Number of low bits of `mant` to drop: 13 for normals, more for subnormals.
  const int shift = exp < -14 ? 13 + (-14 - exp) : 13;
  const uint32_t half_ulp = 1u << (shift - 1);
  const uint32_t rest = mant & ((1u << shift) - 1);
  uint32_t q = mant >> shift;
  if (rest > half_ulp || (rest == half_ulp && (q & 1u))) {
    ++q;  // may carry into the exponent, which the addition below handles
  }
  if (exp < -14) {
    return uint16_t(sign | q);  // subnormal (q may become the smallest normal)
  }
  return uint16_t(sign | ((uint32_t(exp + 15) << 10) + (q - 0x400u)));
}

float bf16_to_f32(uint16_t h) { return std::bit_cast<float>(uint32_t(h) << 16); }

uint16_t f32_to_bf16(float f) {
  const uint32_t x = std::bit_cast<uint32_t>(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) {
    return uint16_t((x >> 16) | 0x40u);  // quiet NaN
  }
  const uint32_t rounding = 0x7fffu + ((x >> 16) & 1u);
  return uint16_t((x + rounding) >> 16);
}

}  // namespace strata
