// Argument checks and row access shared by the reference kernels.
//
// A "flat row" index r walks the rows of a tensor in storage order: (i1, i2, i3) with i1
// fastest, so a [k, m] matrix has rows 0..m-1 and a [d, h, t] tensor has rows h + t * n_h.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "core/tensor.h"

namespace strata::cpu_ref {

// ---- checks: each throws strata::Error "<op>: <role> <tensor description>: <problem>" ----

// f32 with packed rows (nb0 == 4); row strides may be anything.
void check_f32(std::string_view op, std::string_view role, const Tensor& t);
// The output of an op: f32 with packed rows, and writable.
void check_f32_output(std::string_view op, std::string_view role, const Tensor& t);
// A type with a reference dequantize in the type table.
void check_dequantizable(std::string_view op, std::string_view role, const Tensor& t);
// Exactly the shape `ne` (trailing 1s implied).
void check_shape(std::string_view op, std::string_view role, const Tensor& t, const Tensor::Dims& ne);
// The same shape as `ref`.
void check_same_shape(std::string_view op, std::string_view role, const Tensor& t, std::string_view ref_role,
                      const Tensor& ref);
// At most `n` dims (ne[i] == 1 for i >= n).
void check_max_dims(std::string_view op, std::string_view role, const Tensor& t, int n);
// `out` and `in` do not share any byte (for ops whose output must not alias an input).
void check_no_alias(std::string_view op, std::string_view out_role, const Tensor& out, std::string_view in_role,
                    const Tensor& in);
// For ops whose output may alias an input: `out` is `in` itself (same memory and strides)
// or does not overlap it at all.
void check_same_or_no_alias(std::string_view op, std::string_view out_role, const Tensor& out, std::string_view in_role,
                            const Tensor& in);

// ---- row access ----------------------------------------------------------------------

// Pointers to every flat row of an f32 tensor (checked with check_f32 first).
std::vector<const float*> f32_rows(const Tensor& t);
std::vector<float*> mutable_f32_rows(const Tensor& t);

// Row (i1, i2, i3) for a flat row index.
void flat_row_index(const Tensor& t, int64_t r, int64_t& i1, int64_t& i2, int64_t& i3);
// Flat row r of a tensor of any dequantizable type as ne0 floats in `dst`.
void dequantize_flat_row(const Tensor& t, int64_t r, float* dst);

}  // namespace strata::cpu_ref
