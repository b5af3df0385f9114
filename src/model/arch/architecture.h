// What one architecture file provides, registered by its general.architecture name: its
// metadata keys, its tensor table and its block, over the shared blocks (model/blocks.h).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "model/blocks.h"
#include "model/config.h"
#include "model/weights.h"

namespace strata {

struct Architecture {
  std::string_view name;  // general.architecture
  // The architecture's own keys and features, after read_common_config (which it calls).
  void (*read_config)(const MetadataReader& r, ModelConfig& c);
  // The tensors of layer `il`, named "blk.<il>.<name>".
  LayerWeights (*load_layer)(const WeightLoader& w, const ModelConfig& c, int64_t il);
  // One block: x [n_embd, n_tokens] in b.act().x updated in place.
  void (*block)(Blocks& b, const LayerWeights& w, int64_t il);
};

// Llama's tensors of layer `il` (attn_norm, attn_q/k/v/output, ffn_norm, ffn_gate/up/down),
// which the Llama-family architectures extend with their own (biases, head norms, post norms).
LayerWeights load_llama_layer(const WeightLoader& w, const ModelConfig& c, int64_t il);

// Llama's attention tensors and ffn_norm of layer `il`: load_llama_layer without the dense
// feed-forward (for the mixture-of-experts architectures).
LayerWeights load_llama_attention(const WeightLoader& w, const ModelConfig& c, int64_t il);
// The mixture-of-experts keys: expert_count, expert_used_count (1..expert_count), and
// n_ff_exp, the rows of one expert's gate and up projections.
void read_expert_config(const MetadataReader& r, ModelConfig& c, int64_t n_ff_exp);
// The expert tensors of layer `il` into l: ffn_gate_inp [n_embd, n_expert], ffn_gate_exps and
// ffn_up_exps [n_embd, n_ff_exp, n_expert], ffn_down_exps [n_ff_exp, n_embd, n_expert].
void load_expert_layer(const WeightLoader& w, const ModelConfig& c, int64_t il, LayerWeights& l);

// The architecture named `name`, or nullptr.
const Architecture* find_architecture(std::string_view name);
// Every supported name, sorted ("llama, qwen2, ...").
std::string supported_architectures();

// The architectures (one file each in src/model/arch/).
extern const Architecture kLlama;
extern const Architecture kQwen2;
extern const Architecture kQwen3;
extern const Architecture kGemma3;
extern const Architecture kPhi3;
extern const Architecture kQwen3Moe;

}  // namespace strata
