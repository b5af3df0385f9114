// The ISA paths of the float kernel group (float_kernels.cpp): each returns the kernels of
// F32, F16 or BF16 weights on its path, nullptr for any other type. Defined in the files
// compiled with the path's flags; called only where the CPU has the path.
#pragma once

#include "backend/cpu/type_kernels.h"

namespace strata::cpu {

const TypeKernels* float_kernels_avx2(DType type);
const TypeKernels* float_kernels_avx512(DType type);

}  // namespace strata::cpu
