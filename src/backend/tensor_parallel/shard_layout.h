// Where a view of a split tensor lies in each part. A tensor of shape `base` (packed) is split
// along dim `dim` into K equal parts; part r holds the packed tensor of shape base with
// base[dim] / K, the elements r * base[dim] / K .. of that dim. A view of the whole (offset and
// byte strides of a slice, reshape or permute of it) maps to the same view of each part when it
// covers the split dim whole: its dims over the split dim tile it, and the outermost of them
// gets divided by K. [n_embd_q, n] split along dim 0, viewed as [head_dim, n_head, n], maps to
// [head_dim, n_head / K, n] in each part.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>

#include "core/tensor.h"

namespace strata {

struct SplitLayout {
  Tensor::Dims base;  // the whole tensor's shape
  int dim = 0;        // the split dim
  int64_t parts = 1;  // K: base[dim] % parts == 0
};

// A view's shape, byte strides and byte offset (from the first element of the tensor it views).
struct ViewGeometry {
  Tensor::Dims ne;
  Tensor::Strides nb;
  size_t offset = 0;
};

struct PartView {
  ViewGeometry geometry;  // the same view within each part (the offset from the part's first element)
  int divided_dim = 0;    // the view's dim whose extent was divided by K
};

// The view of each part that `view` of the whole is, for a tensor of elements of `elem_bytes`
// bytes (plain types); nullopt when the view does not cover the split dim whole or mixes it
// with other dims.
std::optional<PartView> part_view(const SplitLayout& split, size_t elem_bytes, const ViewGeometry& view);

// The geometry of tensor `t` viewing a tensor whose first element is at `base_data`.
ViewGeometry geometry_of(const Tensor& t, const uint8_t* base_data);

// The view of packed tensor `base` (a plain type) with geometry `g`, made by the view ops of
// Tensor (a slice of the flat elements, reshaped, sliced per dim and permuted). Fails for a
// geometry those cannot make (overlapping dims, strides that do not nest, more than 4 levels).
Tensor view_with(const Tensor& base, const ViewGeometry& g);

}  // namespace strata
