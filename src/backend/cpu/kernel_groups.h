// The groups of kernels that make up the type table (type_kernels.cpp). Each returns the
// kernels of `type` on the best path at or below `isa`, or nullptr where the group does not
// cover the type. A group's ISA-specific code lives in files named *_avx2.cpp / *_avx512.cpp,
// compiled with that path's flags (CMakeLists.txt) and called only when the CPU has it.
#pragma once

#include "backend/cpu/type_kernels.h"

namespace strata::cpu {

const TypeKernels* float_kernels(DType type, Isa isa);    // F32, F16, BF16
const TypeKernels* legacy_kernels(DType type, Isa isa);   // Q4_0, Q4_1, Q5_0, Q5_1, Q8_0
const TypeKernels* k_quant_kernels(DType type, Isa isa);  // Q2_K, Q3_K, Q4_K, Q5_K, Q6_K

}  // namespace strata::cpu
