// The ISA paths of the interleaved kernels (interleaved.h): each returns the tile and to_packed
// kernels of Q4_0, Q8_0 or Q4_K on its path (interleave left unset: the portable code makes the
// layout), nullptr for any other type. Defined in the files compiled with the path's flags;
// called only where the CPU has the path.
#pragma once

#include "backend/cpu/interleaved.h"

namespace strata::cpu {

const InterleavedKernels* interleaved_tiles_avx512_vnni(DType type);
// Q4_0 only on AVX2 (and the avx512 level, which has no VNNI).
const InterleavedKernels* interleaved_tiles_avx2(DType type);
// The same for Q4_K (k_quant_kernels_avx512.cpp, beside the K-quants' other tiles).
const InterleavedKernels* interleaved_k_quant_tiles_avx512_vnni(DType type);

}  // namespace strata::cpu
