// Llama (Llama 1-3, TinyLlama, SmolLM, Mistral 7B, ...): pre-norm blocks of grouped-query
// attention with rope on adjacent pairs, and a SwiGLU feed-forward. Files that set
// attention.sliding_window (Mistral 7B v0.1: 4096) attend within it on every layer.
// Mixtral is the same architecture with a mixture of experts in place of the feed-forward
// (expert_count > 0): each token goes to expert_used_count SwiGLU experts of
// feed_forward_length rows, weighted by the softmax of their router logits.
#include <fmt/format.h>

#include "model/arch/architecture.h"

namespace strata {
namespace {

// GGUF keys: llama.{embedding_length, block_count, feed_forward_length, context_length,
// attention.{head_count, head_count_kv, key_length, layer_norm_rms_epsilon},
// rope.{dimension_count, freq_base, scaling.type, scaling.factor}, attention.sliding_window,
// expert_count, expert_used_count}.
void read_config(const MetadataReader& r, ModelConfig& c) {
  read_common_config(r, c, /*rope_neox=*/false);
  if (r.positive_or("expert_count", 0) > 0) read_expert_config(r, c, c.n_ff);
  c.sliding_window = r.positive_or("attention.sliding_window", 0);
}

// Mixtral's tensors of blk.N: those of llama without ffn_gate, ffn_up and ffn_down, and
// ffn_gate_inp, ffn_gate_exps, ffn_up_exps, ffn_down_exps.
LayerWeights load_layer(const WeightLoader& w, const ModelConfig& c, int64_t il) {
  if (c.n_expert == 0) return load_llama_layer(w, c, il);
  LayerWeights l = load_llama_attention(w, c, il);
  load_expert_layer(w, c, il, l);
  return l;
}

// x += attention(norm(x)) (within the sliding window where the file sets one);
// x += swiglu_ffn(norm(x)), or the experts' (Mixtral)
void block(Blocks& b, const LayerWeights& w, int64_t il) {
  b.attention(il, w, {.window = b.config().sliding_window});
  if (b.config().n_expert > 0) {
    b.moe_feed_forward(il, w);
  } else {
    b.feed_forward(il, w, FeedForwardActivation::silu);
  }
}

}  // namespace

// Tensors of blk.N: attn_norm, attn_q, attn_k, attn_v, attn_output, ffn_norm.
LayerWeights load_llama_attention(const WeightLoader& w, const ModelConfig& c, int64_t il) {
  const std::string p = fmt::format("blk.{}.", il);
  LayerWeights l;
  l.attn_norm = w.vector(p + "attn_norm.weight", c.n_embd);
  l.wq = w.matrix(p + "attn_q.weight", c.n_embd, c.n_embd_q());
  l.wk = w.matrix(p + "attn_k.weight", c.n_embd, c.n_embd_kv());
  l.wv = w.matrix(p + "attn_v.weight", c.n_embd, c.n_embd_kv());
  l.wo = w.matrix(p + "attn_output.weight", c.n_embd_q(), c.n_embd);
  l.ffn_norm = w.vector(p + "ffn_norm.weight", c.n_embd);
  return l;
}

// Tensors of blk.N: those of the attention, and ffn_gate, ffn_up, ffn_down.
LayerWeights load_llama_layer(const WeightLoader& w, const ModelConfig& c, int64_t il) {
  const std::string p = fmt::format("blk.{}.", il);
  LayerWeights l = load_llama_attention(w, c, il);
  l.ffn_gate = w.matrix(p + "ffn_gate.weight", c.n_embd, c.n_ff);
  l.ffn_up = w.matrix(p + "ffn_up.weight", c.n_embd, c.n_ff);
  l.ffn_down = w.matrix(p + "ffn_down.weight", c.n_ff, c.n_embd);
  return l;
}

void read_expert_config(const MetadataReader& r, ModelConfig& c, int64_t n_ff_exp) {
  c.n_expert = r.positive("expert_count");
  c.n_expert_used = r.positive("expert_used_count");
  if (c.n_expert_used > c.n_expert) {
    r.fail_with(fmt::format("{} = {} is more than {} = {}", r.full_key("expert_used_count"), c.n_expert_used,
                            r.full_key("expert_count"), c.n_expert));
  }
  c.n_ff_exp = n_ff_exp;
}

void load_expert_layer(const WeightLoader& w, const ModelConfig& c, int64_t il, LayerWeights& l) {
  const std::string p = fmt::format("blk.{}.", il);
  l.ffn_gate_inp = w.matrix(p + "ffn_gate_inp.weight", c.n_embd, c.n_expert);
  l.ffn_gate_exps = w.experts(p + "ffn_gate_exps.weight", c.n_embd, c.n_ff_exp, c.n_expert);
  l.ffn_up_exps = w.experts(p + "ffn_up_exps.weight", c.n_embd, c.n_ff_exp, c.n_expert);
  l.ffn_down_exps = w.experts(p + "ffn_down_exps.weight", c.n_ff_exp, c.n_embd, c.n_expert);
}

const Architecture kLlama = {.name = "llama", .read_config = read_config, .load_layer = load_layer, .block = block};

}  // namespace strata
