#include "model/quantize_plan.h"

#include <algorithm>
#include <array>
#include <cctype>

#include "core/error.h"

namespace strata {
namespace {

constexpr std::array kPresets = {
    QuantPreset{"f32", FileType::ALL_F32, DType::F32},
    QuantPreset{"f16", FileType::MOSTLY_F16, DType::F16},
    QuantPreset{"bf16", FileType::MOSTLY_BF16, DType::BF16},
    QuantPreset{"q8_0", FileType::MOSTLY_Q8_0, DType::Q8_0},
    QuantPreset{"q4_0", FileType::MOSTLY_Q4_0, DType::Q4_0},
    QuantPreset{"q4_1", FileType::MOSTLY_Q4_1, DType::Q4_1},
    QuantPreset{"q5_0", FileType::MOSTLY_Q5_0, DType::Q5_0},
    QuantPreset{"q5_1", FileType::MOSTLY_Q5_1, DType::Q5_1},
    QuantPreset{"q2_k", FileType::MOSTLY_Q2_K, DType::Q2_K},
    QuantPreset{"q3_k_m", FileType::MOSTLY_Q3_K_M, DType::Q3_K},
    QuantPreset{"q4_k_s", FileType::MOSTLY_Q4_K_S, DType::Q4_K},
    QuantPreset{"q4_k_m", FileType::MOSTLY_Q4_K_M, DType::Q4_K},
    QuantPreset{"q5_k_s", FileType::MOSTLY_Q5_K_S, DType::Q5_K},
    QuantPreset{"q5_k_m", FileType::MOSTLY_Q5_K_M, DType::Q5_K},
    QuantPreset{"q6_k", FileType::MOSTLY_Q6_K, DType::Q6_K},
};

bool contains(std::string_view s, std::string_view part) { return s.find(part) != std::string_view::npos; }
bool ends_with(std::string_view s, std::string_view tail) { return s.ends_with(tail); }

// The block index of "blk.N.xxx", or -1.
int layer_of(std::string_view name) {
  if (!name.starts_with("blk.")) return -1;
  int layer = 0;
  size_t i = 4;
  if (i >= name.size() || !std::isdigit(uint8_t(name[i]))) return -1;
  for (; i < name.size() && std::isdigit(uint8_t(name[i])); ++i) {
    layer = layer * 10 + (name[i] - '0');
    if (layer > 1'000'000) return -1;
  }
  return i < name.size() && name[i] == '.' ? layer : -1;
}

// Layers that the K-quant "_m" mixes give more bits: the first and last eighth, and every
// third layer in between.
bool use_more_bits(int layer, int n_layer) {
  return layer < n_layer / 8 || layer >= 7 * n_layer / 8 || (layer - n_layer / 8) % 3 == 2;
}

// Weight matrices are quantized; norms, biases, 1-D tensors and routing tables are not.
bool is_quantizable(const gguf::TensorInfo& t) {
  const std::string& n = t.name;
  return t.shape.size() >= 2 && ends_with(n, "weight") && !contains(n, "_norm.weight") &&
         !contains(n, "ffn_gate_inp.weight") && n != "position_embd.weight" && n != "token_types.weight";
}

bool is_float(DType t) { return t == DType::F32 || t == DType::F16 || t == DType::BF16; }

// Types used when a row length is not a multiple of a K-quant's 256-element block.
DType fallback_for(DType type) {
  switch (type) {
    case DType::Q2_K:
    case DType::Q3_K: return DType::Q4_0;
    case DType::Q4_K: return DType::Q5_0;
    case DType::Q5_K: return DType::Q5_1;
    case DType::Q6_K: return DType::Q8_0;
    default: return DType::F16;
  }
}

}  // namespace

std::span<const QuantPreset> quant_presets() { return kPresets; }

std::optional<QuantPreset> find_quant_preset(std::string_view name) {
  for (const auto& p : kPresets) {
    if (std::ranges::equal(p.name, name, [](char a, char b) { return a == std::tolower(uint8_t(b)); })) return p;
  }
  return std::nullopt;
}

std::string quant_preset_names() {
  std::string names;
  for (const auto& p : kPresets) {
    if (!names.empty()) names += ", ";
    names += p.name;
  }
  return names;
}

QuantizePlan::QuantizePlan(const QuantPreset& preset, const gguf::File& input) : preset_(preset) {
  for (const auto& t : input.tensors()) {
    if (t.name == "output.weight") has_output_ = true;
    n_layer_ = std::max(n_layer_, layer_of(t.name) + 1);
  }
  const gguf::Value* arch = input.find("general.architecture");
  if (arch != nullptr && arch->type() == gguf::ValueType::STRING) {
    const std::string& a = arch->as_string("general.architecture");
    const gguf::Value* heads = input.find(a + ".attention.head_count");
    const gguf::Value* kv_heads = input.find(a + ".attention.head_count_kv");
    if (heads != nullptr && kv_heads != nullptr && heads->type() != gguf::ValueType::ARRAY &&
        kv_heads->type() != gguf::ValueType::ARRAY) {
      const int64_t h = heads->as_int("head_count");
      const int64_t kv = kv_heads->as_int("head_count_kv");
      if (h > 0 && kv > 0) n_gqa_ = int(h / kv);
    }
  }
}

// The type of a weight matrix under the preset's mix, before row-size checks.
DType QuantizePlan::mix_type(const std::string& name, int layer) const {
  const DType base = preset_.base;
  const FileType ft = preset_.file_type;
  const bool is_output = name == "output.weight" || (!has_output_ && name == "token_embd.weight");
  if (is_output) return base == DType::Q8_0 ? DType::Q8_0 : DType::Q6_K;

  const int i = std::max(layer, 0);
  const int n = std::max(n_layer_, 1);
  if (contains(name, "attn_v.weight")) {
    switch (ft) {
      case FileType::MOSTLY_Q2_K: return n_gqa_ >= 4 ? DType::Q4_K : DType::Q3_K;
      case FileType::MOSTLY_Q3_K_M: return i < 2 ? DType::Q5_K : DType::Q4_K;
      case FileType::MOSTLY_Q4_K_M:
      case FileType::MOSTLY_Q5_K_M: return use_more_bits(i, n) ? DType::Q6_K : base;
      case FileType::MOSTLY_Q4_K_S: return i < 4 ? DType::Q5_K : base;
      default: return base;
    }
  }
  if (contains(name, "ffn_down")) {
    switch (ft) {
      case FileType::MOSTLY_Q2_K: return DType::Q3_K;
      case FileType::MOSTLY_Q3_K_M: return i < n / 16 ? DType::Q5_K : DType::Q4_K;
      case FileType::MOSTLY_Q4_K_M:
      case FileType::MOSTLY_Q5_K_M: return use_more_bits(i, n) ? DType::Q6_K : base;
      case FileType::MOSTLY_Q4_K_S: return i < n / 8 ? DType::Q5_K : base;
      default: return base;
    }
  }
  if (contains(name, "attn_output.weight")) {
    if (ft == FileType::MOSTLY_Q2_K) return DType::Q3_K;
    if (ft == FileType::MOSTLY_Q3_K_M) return DType::Q4_K;
  }
  if (contains(name, "attn_qkv.weight")) {
    if (ft == FileType::MOSTLY_Q3_K_M) return DType::Q4_K;
    if (ft == FileType::MOSTLY_Q4_K_M) return DType::Q5_K;
    if (ft == FileType::MOSTLY_Q5_K_M) return DType::Q6_K;
  }
  return base;
}

// A row must hold whole blocks; otherwise fall back as llama.cpp's quantizer does.
DType QuantizePlan::fit_row(const gguf::TensorInfo& tensor, DType type, std::string& note) const {
  const int64_t ne0 = tensor.shape[0];
  if (ne0 % type_traits(type).block_size == 0) return type;
  DType fallback = fallback_for(type);
  if (ne0 % type_traits(fallback).block_size != 0) fallback = DType::F16;
  note = fmt::format("row of {} is not a multiple of {}'s block of {}: {} instead", ne0, dtype_name(type),
                     type_traits(type).block_size, dtype_name(fallback));
  return fallback;
}

QuantizePlan::Choice QuantizePlan::choose(const gguf::TensorInfo& tensor) const {
  const TypeTraits& in = type_traits(tensor.type);
  const bool float_input = is_float(tensor.type) || in.is_quantized;
  if (!float_input) return {tensor.type, ""};  // integer tensors are copied as they are
  if (!is_quantizable(tensor)) return {DType::F32, ""};
  if (is_float(preset_.base)) return {preset_.base, ""};

  Choice choice{mix_type(tensor.name, layer_of(tensor.name)), ""};
  choice.type = fit_row(tensor, choice.type, choice.note);
  return choice;
}

}  // namespace strata
