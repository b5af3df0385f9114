// Which type each tensor of a model gets when `strata quantize` writes a file: the presets
// users know from llama.cpp's quantizer (q4_0, q4_k_m, ...) and their per-tensor mixes.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "core/dtype.h"
#include "gguf/reader.h"

namespace strata {

// The value written to `general.file_type` (llama.cpp's llama_ftype numbering).
enum class FileType : uint32_t {
  ALL_F32 = 0,
  MOSTLY_F16 = 1,
  MOSTLY_Q4_0 = 2,
  MOSTLY_Q4_1 = 3,
  MOSTLY_Q8_0 = 7,
  MOSTLY_Q5_0 = 8,
  MOSTLY_Q5_1 = 9,
  MOSTLY_Q2_K = 10,
  MOSTLY_Q3_K_M = 12,
  MOSTLY_Q4_K_S = 14,
  MOSTLY_Q4_K_M = 15,
  MOSTLY_Q5_K_S = 16,
  MOSTLY_Q5_K_M = 17,
  MOSTLY_Q6_K = 18,
  MOSTLY_BF16 = 32,
};

struct QuantPreset {
  std::string_view name;  // as typed on the command line: "q4_k_m"
  FileType file_type;
  DType base;             // the type of most weight matrices
};

std::span<const QuantPreset> quant_presets();
std::optional<QuantPreset> find_quant_preset(std::string_view name);  // case-insensitive
std::string quant_preset_names();                                     // "f32, f16, ..." for messages

// Chooses the output type of each tensor of one input file.
class QuantizePlan {
public:
  QuantizePlan(const QuantPreset& preset, const gguf::File& input);

  struct Choice {
    DType type;
    std::string note;  // why it differs from the preset's base type ("" if it does not)
  };
  Choice choose(const gguf::TensorInfo& tensor) const;

  const QuantPreset& preset() const { return preset_; }

private:
  DType mix_type(const std::string& name, int layer) const;
  DType fit_row(const gguf::TensorInfo& tensor, DType type, std::string& note) const;

  QuantPreset preset_;
  bool has_output_ = false;  // false: token_embd doubles as the output matrix
  int n_layer_ = 0;          // number of transformer blocks (from the blk.N. names)
  int n_gqa_ = 1;            // query heads per KV head
};

}  // namespace strata
