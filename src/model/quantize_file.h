// `strata quantize`: reads a GGUF model, converts each tensor to the type its QuantizePlan
// chooses (dequantize to f32, quantize with the reference quantizer, rows split over
// threads) and streams the result into a new GGUF file.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "model/quantize_plan.h"

namespace strata {

struct QuantizeOptions {
  QuantPreset preset;
  int threads = 1;
  // Called after each tensor: bytes of input done, total input bytes, name of the tensor.
  std::function<void(uint64_t done, uint64_t total, std::string_view tensor)> progress;
};

struct QuantizedTensor {
  std::string name;
  DType from;
  DType to;
  std::string note;  // why `to` differs from the preset's base type
};

struct QuantizeReport {
  std::vector<QuantizedTensor> tensors;
  uint64_t input_bytes = 0;   // tensor data only
  uint64_t output_bytes = 0;
  uint64_t n_elements = 0;
};

// Writes `output_path` (through a temporary file renamed at the end, so a failure leaves no
// half-written output). Throws strata::Error naming the tensor that could not be converted.
QuantizeReport quantize_file(const std::string& input_path, const std::string& output_path,
                             const QuantizeOptions& options);

}  // namespace strata
