// Qwen2 (Qwen2, Qwen2.5): Llama's block with biases on the Q, K and V projections and rope on
// NEOX halves (pairs i, i + n_rot/2).
#include <fmt/format.h>

#include "model/arch/architecture.h"

namespace strata {
namespace {

// GGUF keys: those of llama under qwen2.*.
void read_config(const MetadataReader& r, ModelConfig& c) {
  read_common_config(r, c, /*rope_neox=*/true);
  c.qkv_bias = true;
}

// Tensors of blk.N: those of llama, and attn_q.bias, attn_k.bias, attn_v.bias.
LayerWeights load_layer(const WeightLoader& w, const ModelConfig& c, int64_t il) {
  const std::string p = fmt::format("blk.{}.", il);
  LayerWeights l = load_llama_layer(w, c, il);
  l.bq = w.vector(p + "attn_q.bias", c.n_embd_q());
  l.bk = w.vector(p + "attn_k.bias", c.n_embd_kv());
  l.bv = w.vector(p + "attn_v.bias", c.n_embd_kv());
  return l;
}

// x += attention(norm(x)) with biased q, k, v; x += swiglu_ffn(norm(x))
void block(Blocks& b, const LayerWeights& w, int64_t il) {
  b.attention(il, w);
  b.feed_forward(il, w, FeedForwardActivation::silu);
}

}  // namespace

const Architecture kQwen2 = {.name = "qwen2", .read_config = read_config, .load_layer = load_layer, .block = block};

}  // namespace strata
