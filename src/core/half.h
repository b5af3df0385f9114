// IEEE 754 binary16 (f16) and bfloat16 conversions. Exact for every value: subnormals,
// infinities and NaN are kept; f32 -> half rounds to nearest, ties to even.
#pragma once

#include <cstdint>

namespace strata {

float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);
float bf16_to_f32(uint16_t h);
uint16_t f32_to_bf16(float f);

}  // namespace strata
