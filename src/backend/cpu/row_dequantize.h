// Weight rows to f32 for the fast CPU backend's f32 paths (the f32-activation mode, types
// without kernels): the same floats as the type's reference dequantize, bit for bit, from
// a SIMD path where one exists.
#pragma once

#include "backend/cpu/isa.h"
#include "core/dtype.h"

namespace strata::cpu {

// The row dequantizer of `type` on the best path at or below `isa`; the reference
// (type_traits(type).dequantize, nullptr where the type has none) where no path has one.
DequantizeRowFn dequantize_row_fn(DType type, Isa isa);

}  // namespace strata::cpu
