// The ISA paths of the legacy kernel group (legacy_kernels.cpp): each returns the kernels of
// Q4_0, Q4_1, Q5_0, Q5_1 or Q8_0 weights on its path, nullptr for any other type. Defined in
// the files compiled with the path's flags; called only where the CPU has the path.
#pragma once

#include "backend/cpu/packed_gemm.h"
#include "backend/cpu/type_kernels.h"

namespace strata::cpu {

const TypeKernels* legacy_kernels_avx2(DType type);
// Row dequantizers of the same types that write the reference's floats bit for bit.
DequantizeRowFn legacy_dequantize_avx2(DType type);
// The packed prompt kernels (packed_gemm.h) of Q4_0, Q4_1, Q5_0 and Q5_1 (nullptr for Q8_0).
const PackedKernels* legacy_packed_kernels_avx2(DType type);
const TypeKernels* legacy_kernels_avx512_vnni(DType type);
// The packed prompt kernels (packed_gemm.h) of the same types.
const PackedKernels* legacy_packed_kernels_avx512_vnni(DType type);

}  // namespace strata::cpu
