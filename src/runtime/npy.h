// NumPy .npy files (format version 1.0, little-endian f32) for tensor dumps, so that dumps
// load with numpy.load and can be compared with dumps made by other tools.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace strata {

struct NpyArray {
  std::vector<int64_t> shape;  // numpy order: shape.back() is the contiguous dimension
  std::vector<float> values;   // C order
};

// Writes a host f32 tensor; the numpy shape is the tensor's ne reversed (e.g. [n_embd, n_tokens]
// becomes (n_tokens, n_embd)), with at least `min_dims` dimensions (so one token's activations
// stay (1, n_embd)).
void write_npy(const std::string& path, const Tensor& host_f32, int min_dims = 1);
// Reads float32 or float64 (converted) C-order arrays; anything else throws naming the file.
NpyArray read_npy(const std::string& path);

}  // namespace strata
