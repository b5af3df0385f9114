// The ISA paths of the op primitives (op_kernels.cpp). Defined in the files compiled with
// each path's flags; called only where the CPU has the path.
#pragma once

#include "backend/cpu/op_kernels.h"

namespace strata::cpu {

const OpKernels& op_kernels_avx2();
const OpKernels& op_kernels_avx512();

}  // namespace strata::cpu
