// What TensorParallelBackend keeps of each tensor (Held) and of each tensor argument of an op
// (Operand): shared by its files (tensor_parallel_backend.cpp: tensors and moving them between
// whole and parts; tensor_parallel_ops.cpp: the plain ops; tensor_parallel_fused.cpp: the fused
// matmul). Internal to the backend.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "backend/tensor_parallel/shard_layout.h"
#include "backend/tensor_parallel/tensor_parallel_backend.h"

namespace strata {

// What a tensor of this backend is on the parts. Its proxy Tensor is a device tensor whose
// keep-alive is this record, so a view of the proxy finds its record, and whose address is a
// range of its own (never dereferenced; ranges of tensors never overlap, as op checks expect),
// so a view tells where in the whole it starts.
struct TensorParallelBackend::Held {
  DType type = DType::F32;
  Tensor::Dims base{};   // the whole tensor's shape
  Tensor::Strides nb{};  // its packed strides
  std::string name;
  int split_dim = 0;            // parts are ranges of this dim
  bool split_for_good = false;  // a split weight or KV cache: only parts exist
  std::vector<Tensor> whole;    // per part: the whole tensor (empty until needed: zeros)
  std::vector<Tensor> parts;    // per part: its range (empty until needed)
  bool whole_valid = true;
  bool parts_valid = false;

  uintptr_t first = 0;  // the proxy's address

  const uint8_t* address() const { return reinterpret_cast<const uint8_t*>(first); }
  bool splittable(int64_t k) const {
    return split_for_good || (type == DType::F32 && base[size_t(split_dim)] % k == 0);
  }
  Tensor::Dims part_shape(int64_t k) const {
    Tensor::Dims ne = base;
    ne[size_t(split_dim)] /= k;
    return ne;
  }
  // The split as rows: each of `outer` steps of the dims above the split dim holds K rows of
  // `row` elements, one per part.
  int64_t row(int64_t k) const {
    int64_t n = base[size_t(split_dim)] / k;
    for (int d = 0; d < split_dim; ++d) n *= base[size_t(d)];
    return n;
  }
  int64_t outer() const {
    int64_t n = 1;
    for (int d = split_dim + 1; d < kMaxDims; ++d) n *= base[size_t(d)];
    return n;
  }
};

// One tensor argument of an op: its record, where it lies in the whole, and the view of it
// within each part where it maps onto the parts (divided_dim >= 0).
struct TensorParallelBackend::Operand {
  Held* h = nullptr;
  ViewGeometry g;
  bool whole_view = false;
  std::optional<PartView> pv;
  int divided_dim = -1;
};

template <typename F>
void TensorParallelBackend::each_part(F&& f) {
  for (int r = 0; r < n_parts(); ++r) {
    parts_[size_t(r)]->make_current();
    f(r, *parts_[size_t(r)]);
  }
}

}  // namespace strata
