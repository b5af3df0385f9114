// Row access shared by the reference kernels, and their type check.
//
// A "flat row" index r walks the rows of a tensor in storage order: (i1, i2, i3) with i1
// fastest, so a [k, m] matrix has rows 0..m-1 and a [d, h, t] tensor has rows h + t * n_h.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "backend/op_checks.h"
#include "core/tensor.h"

namespace strata::cpu_ref {

// The argument checks shared by all backends (check_f32, check_no_alias, check_<op>_args, ...)
// live in backend/op_checks.h; only the cpu_ref backend's own type check is here.

// A type with a reference dequantize in the type table.
void check_dequantizable(std::string_view op, std::string_view role, const Tensor& t);

// ---- row access ----------------------------------------------------------------------

// Pointers to every flat row of an f32 tensor (checked with check_f32 first).
std::vector<const float*> f32_rows(const Tensor& t);
std::vector<float*> mutable_f32_rows(const Tensor& t);

// Row (i1, i2, i3) for a flat row index.
void flat_row_index(const Tensor& t, int64_t r, int64_t& i1, int64_t& i2, int64_t& i3);
// Flat row r of a tensor of any dequantizable type as ne0 floats in `dst`.
void dequantize_flat_row(const Tensor& t, int64_t r, float* dst);

}  // namespace strata::cpu_ref
