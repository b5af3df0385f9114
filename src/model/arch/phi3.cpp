// Phi-3 (mini 4k): Llama's block with the Q, K and V projections in one tensor (attn_qkv) and
// the gate and up projections in one (ffn_up: gate rows first), NEOX rope. The long-context
// rope scaling of the 128k models (rope_factors_short / rope_factors_long by context length,
// rope.scaling.attn_factor) is refused for now, naming the tensor. llama.cpp ignores Phi-3's
// attention.sliding_window (its converters set it wrongly), and so does this file.
#include <fmt/format.h>

#include "model/arch/architecture.h"

namespace strata {
namespace {

// GGUF keys: those of llama under phi3.*.
void read_config(const MetadataReader& r, ModelConfig& c) {
  read_common_config(r, c, /*rope_neox=*/true);
  for (const char* t : {"rope_factors_long.weight", "rope_factors_short.weight"}) {
    if (r.file().find_tensor(t) != nullptr) {
      r.fail_with(fmt::format("tensor '{}': Phi-3's long-context rope scaling is not supported yet", t));
    }
  }
}

// Tensors of blk.N: attn_norm, attn_qkv [n_embd, n_embd_q + 2 n_embd_kv] (q, k, v rows),
// attn_output, ffn_norm, ffn_up [n_embd, 2 n_ff] (gate, up rows), ffn_down.
LayerWeights load_layer(const WeightLoader& w, const ModelConfig& c, int64_t il) {
  const std::string p = fmt::format("blk.{}.", il);
  const int64_t q = c.n_embd_q(), kv = c.n_embd_kv(), qkv = q + 2 * kv;
  LayerWeights l;
  l.attn_norm = w.vector(p + "attn_norm.weight", c.n_embd);
  l.wq = w.matrix_rows(p + "attn_qkv.weight", c.n_embd, qkv, 0, q);
  l.wk = w.matrix_rows(p + "attn_qkv.weight", c.n_embd, qkv, q, kv);
  l.wv = w.matrix_rows(p + "attn_qkv.weight", c.n_embd, qkv, q + kv, kv);
  l.wo = w.matrix(p + "attn_output.weight", c.n_embd_q(), c.n_embd);
  l.ffn_norm = w.vector(p + "ffn_norm.weight", c.n_embd);
  l.ffn_gate = w.matrix_rows(p + "ffn_up.weight", c.n_embd, 2 * c.n_ff, 0, c.n_ff);
  l.ffn_up = w.matrix_rows(p + "ffn_up.weight", c.n_embd, 2 * c.n_ff, c.n_ff, c.n_ff);
  l.ffn_down = w.matrix(p + "ffn_down.weight", c.n_ff, c.n_embd);
  return l;
}

// x += attention(norm(x)); x += swiglu_ffn(norm(x))
void block(Blocks& b, const LayerWeights& w, int64_t il) {
  b.attention(il, w);
  b.feed_forward(il, w, FeedForwardActivation::silu);
}

}  // namespace

const Architecture kPhi3 = {.name = "phi3", .read_config = read_config, .load_layer = load_layer, .block = block};

}  // namespace strata
