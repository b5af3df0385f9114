#include "backend/cpu/type_kernels.h"

#include "backend/cpu/kernel_groups.h"

namespace strata::cpu {

const TypeKernels* type_kernels(DType type, Isa isa) {
  for (auto group : {float_kernels, legacy_kernels, k_quant_kernels}) {
    if (const TypeKernels* k = group(type, isa)) return k;
  }
  return nullptr;
}

}  // namespace strata::cpu
