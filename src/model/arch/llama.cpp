// Llama (Llama 2/3, SmolLM2, TinyLlama, Mistral 7B, ...): pre-norm blocks of grouped-query
// attention with rope on adjacent pairs, and a SwiGLU feed-forward. Files that set
// attention.sliding_window (Mistral 7B v0.1: 4096) attend within it on every layer.
#include <fmt/format.h>

#include "model/arch/architecture.h"

namespace strata {
namespace {

// GGUF keys: llama.{embedding_length, block_count, feed_forward_length, context_length,
// attention.{head_count, head_count_kv, key_length, layer_norm_rms_epsilon},
// rope.{dimension_count, freq_base, scaling.type, scaling.factor}, attention.sliding_window};
// expert_count (Mixtral) is refused.
void read_config(const MetadataReader& r, ModelConfig& c) {
  read_common_config(r, c, /*rope_neox=*/false);
  if (const int64_t n_expert = r.positive_or("expert_count", 0); n_expert > 0) {
    r.fail_with(fmt::format("{} = {}: mixture-of-experts models (Mixtral) are not supported yet",
                            r.full_key("expert_count"), n_expert));
  }
  c.sliding_window = r.positive_or("attention.sliding_window", 0);
}

// x += attention(norm(x)) (within the sliding window where the file sets one);
// x += swiglu_ffn(norm(x))
void block(Blocks& b, const LayerWeights& w, int64_t il) {
  b.attention(il, w, {.window = b.config().sliding_window});
  b.feed_forward(il, w, FeedForwardActivation::silu);
}

}  // namespace

// Tensors of blk.N: attn_norm, attn_q, attn_k, attn_v, attn_output, ffn_norm, ffn_gate, ffn_up, ffn_down.
LayerWeights load_llama_layer(const WeightLoader& w, const ModelConfig& c, int64_t il) {
  const std::string p = fmt::format("blk.{}.", il);
  LayerWeights l;
  l.attn_norm = w.vector(p + "attn_norm.weight", c.n_embd);
  l.wq = w.matrix(p + "attn_q.weight", c.n_embd, c.n_embd_q());
  l.wk = w.matrix(p + "attn_k.weight", c.n_embd, c.n_embd_kv());
  l.wv = w.matrix(p + "attn_v.weight", c.n_embd, c.n_embd_kv());
  l.wo = w.matrix(p + "attn_output.weight", c.n_embd_q(), c.n_embd);
  l.ffn_norm = w.vector(p + "ffn_norm.weight", c.n_embd);
  l.ffn_gate = w.matrix(p + "ffn_gate.weight", c.n_embd, c.n_ff);
  l.ffn_up = w.matrix(p + "ffn_up.weight", c.n_embd, c.n_ff);
  l.ffn_down = w.matrix(p + "ffn_down.weight", c.n_ff, c.n_embd);
  return l;
}

const Architecture kLlama = {
    .name = "llama", .read_config = read_config, .load_layer = load_llama_layer, .block = block};

}  // namespace strata
