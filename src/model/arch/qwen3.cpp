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
  LayerWeights l;
  l.attn_norm = w.vector(p + "attn_norm.weight", c.n_embd);
  l.wq = w.matrix(p + "attn_q.weight", c.n_embd, c.n_embd_q());
  l.wk = w.matrix(p + "attn_k.weight", c.n_embd, c.n_embd_kv());
  l.wv = w.matrix(p + "attn_v.weight", c.n_embd, c.n_embd_kv());
  l.q_norm = w.vector(p + "attn_q_norm.weight", c.head_dim());
  l.k_norm = w.vector(p + "attn_k_norm.weight", c.head_dim());
  l.wo = w.matrix(p + "attn_output.weight", c.n_embd_q(), c.n_embd);
  l.ffn_norm = w.vector(p + "ffn_norm.weight", c.n_embd);
  l.ffn_gate = w.matrix(p + "ffn_gate.weight", c.n_embd, c.n_ff);
  l.ffn_up = w.matrix(p + "ffn_up.weight", c.n_embd, c.n_ff);
  l.ffn_down = w.matrix(p + "ffn_down.weight", c.n_ff, c.n_embd);
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
