// Qwen3 (dense): Llama's block with each query and key head RMS-normed before rope, heads of
// attention.key_length (128) whatever n_embd / n_head is, and rope on NEOX halves.
#include <fmt/format.h>

#include "model/arch/architecture.h"

namespace strata {
namespace {

// GGUF keys: those of llama under qwen3.*, with attention.key_length / value_length.
void read_config(const MetadataReader& r, ModelConfig& c) {
  read_common_config(r, c, /*rope_neox=*/true);
  c.qk_norm = true;
}

// Tensors of blk.N: those of llama, and attn_q_norm, attn_k_norm [head_dim].
LayerWeights load_layer(const WeightLoader& w, const ModelConfig& c, int64_t il) {
  const std::string p = fmt::format("blk.{}.", il);
  LayerWeights l = load_llama_layer(w, c, il);
  l.q_norm = w.vector(p + "attn_q_norm.weight", c.head_dim());
  l.k_norm = w.vector(p + "attn_k_norm.weight", c.head_dim());
  return l;
}

// x += attention(norm(x)) with normed q, k heads; x += swiglu_ffn(norm(x))
void block(Blocks& b, const LayerWeights& w, int64_t il) {
  b.attention(il, w);
  b.feed_forward(il, w, FeedForwardActivation::silu);
}

}  // namespace

const Architecture kQwen3 = {.name = "qwen3", .read_config = read_config, .load_layer = load_layer, .block = block};

}  // namespace strata
