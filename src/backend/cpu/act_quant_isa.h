// The ISA paths of quantize_act (act_quant.cpp), each defined in the file compiled with its
// flags (act_quant_avx2.cpp) and called only where the CPU has that path. Each writes the
// same bytes as the portable path for every input.
#pragma once

#include <cstdint>

namespace strata::cpu {

// k f32 values (k a multiple of 32) -> k / 32 ActQ8_32 blocks.
void quantize_q8_32_avx2(const float* x, int64_t k, void* out);
// k f32 values (k a multiple of 256) -> k / 256 BlockQ8_K, equal to quantize_row_q8_k's.
void quantize_q8_256_avx2(const float* x, int64_t k, void* out);

}  // namespace strata::cpu
