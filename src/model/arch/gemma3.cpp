// Gemma 3 (270M to 27B, text): embeddings scaled by sqrt(n_embd); attention with RMS-normed
// query and key heads, and an RMS norm of its output before the residual add; the same
// post-norm around a GeGLU feed-forward (tanh GELU); 5 of every 6 layers attend within a
// sliding window (attention.sliding_window) with their own rope (base 10000, unscaled), the
// sixth attends to everything with rope.freq_base and the file's rope scaling. NEOX rope. The
// norm weights in GGUF files already hold Gemma's (1 + w).
#include <fmt/format.h>

#include <cmath>

#include "model/arch/architecture.h"

namespace strata {
namespace {

constexpr int64_t kSwaPattern = 6;        // default: layers il with il % 6 < 5 use the sliding window
constexpr float kSwaRopeBase = 10000.0f;  // default: the local layers' rope base
constexpr int64_t kLayers27B = 62;        // Gemma 3 27B scales queries by n_embd / n_head

// GGUF keys: those of llama under gemma3.*, with attention.key_length / value_length,
// attention.sliding_window, attention.sliding_window_pattern (a period n: layers il % n < n - 1
// are local; 6 when absent) and rope.freq_base_swa (10000 when absent).
void read_config(const MetadataReader& r, ModelConfig& c) {
  read_common_config(r, c, /*rope_neox=*/true);
  c.qk_norm = true;
  c.embd_scale = std::sqrt(float(c.n_embd));
  c.sliding_window = r.positive_or("attention.sliding_window", 0);
  c.swa_pattern = r.positive_or("attention.sliding_window_pattern", kSwaPattern);
  c.rope_swa = c.rope;
  c.rope_swa.freq_base = r.real_or("rope.freq_base_swa", kSwaRopeBase);
  c.rope_swa.freq_scale = 1.0f;
  if (r.has("final_logit_softcapping")) {
    r.fail_with(
        fmt::format("{} is set: the final logit soft-cap is not supported yet", r.full_key("final_logit_softcapping")));
  }
  if (c.n_layer == kLayers27B) c.attn_scale = 1.0f / std::sqrt(float(c.n_embd / c.n_head));
}

// Tensors of blk.N: attn_norm, attn_q, attn_k, attn_v, attn_q_norm, attn_k_norm, attn_output,
// post_attention_norm, ffn_norm, ffn_gate, ffn_up, ffn_down, post_ffw_norm.
LayerWeights load_layer(const WeightLoader& w, const ModelConfig& c, int64_t il) {
  const std::string p = fmt::format("blk.{}.", il);
  LayerWeights l = load_llama_layer(w, c, il);
  l.q_norm = w.vector(p + "attn_q_norm.weight", c.head_dim());
  l.k_norm = w.vector(p + "attn_k_norm.weight", c.head_dim());
  l.attn_post_norm = w.vector(p + "post_attention_norm.weight", c.n_embd);
  l.ffn_post_norm = w.vector(p + "post_ffw_norm.weight", c.n_embd);
  return l;
}

// x += post_norm(attention(norm(x))) (local: windowed, base-10000 rope);
// x += post_norm(geglu_ffn(norm(x)))
void block(Blocks& b, const LayerWeights& w, int64_t il) {
  const ModelConfig& c = b.config();
  const bool local = c.sliding_window > 0 && il % c.swa_pattern < c.swa_pattern - 1;
  if (local) {
    b.attention(il, w, {.window = c.sliding_window, .rope = &c.rope_swa});
  } else {
    b.attention(il, w);
  }
  b.feed_forward(il, w, FeedForwardActivation::gelu_tanh);
}

}  // namespace

const Architecture kGemma3 = {.name = "gemma3", .read_config = read_config, .load_layer = load_layer, .block = block};

}  // namespace strata
