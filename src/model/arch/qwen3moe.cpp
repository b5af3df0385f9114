// Qwen3-MoE (Qwen3-30B-A3B, Qwen3-235B-A22B): Qwen3's attention (each query and key head
// RMS-normed before rope, heads of attention.key_length, NEOX rope) and a mixture of experts
// in place of the feed-forward: the router's softmax over all experts, the top
// expert_used_count kept and renormalised (norm_topk_prob; llama.cpp always renormalises),
// each a SwiGLU of expert_feed_forward_length rows. No shared expert.
#include <fmt/format.h>

#include "model/arch/architecture.h"

namespace strata {
namespace {

// GGUF keys: those of llama under qwen3moe.*, with attention.key_length / value_length,
// expert_count, expert_used_count and expert_feed_forward_length (feed_forward_length /
// expert_used_count when absent, as llama.cpp reads it).
void read_config(const MetadataReader& r, ModelConfig& c) {
  read_common_config(r, c, /*rope_neox=*/true);
  c.qk_norm = true;
  const int64_t n_used = r.positive("expert_used_count");
  read_expert_config(r, c, r.positive_or("expert_feed_forward_length", c.n_ff / n_used));
}

// Tensors of blk.N: attn_norm, attn_q, attn_k, attn_v, attn_q_norm, attn_k_norm [head_dim],
// attn_output, ffn_norm, ffn_gate_inp, ffn_gate_exps, ffn_up_exps, ffn_down_exps.
LayerWeights load_layer(const WeightLoader& w, const ModelConfig& c, int64_t il) {
  const std::string p = fmt::format("blk.{}.", il);
  LayerWeights l = load_llama_attention(w, c, il);
  l.q_norm = w.vector(p + "attn_q_norm.weight", c.head_dim());
  l.k_norm = w.vector(p + "attn_k_norm.weight", c.head_dim());
  load_expert_layer(w, c, il, l);
  return l;
}

// x += attention(norm(x)) with normed q, k heads; x += experts(norm(x))
void block(Blocks& b, const LayerWeights& w, int64_t il) {
  b.attention(il, w);
  b.moe_feed_forward(il, w);
}

}  // namespace

const Architecture kQwen3Moe = {
    .name = "qwen3moe", .read_config = read_config, .load_layer = load_layer, .block = block};

}  // namespace strata
