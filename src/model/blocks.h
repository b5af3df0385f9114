// The blocks architectures are made of (attention, gated feed-forward, norms), written once
// against the Backend op interface, and the activations of one forward pass they work on.
// Every intermediate passes through the tap under a stable name (design principle 2), read
// from the tensors the fused ops write, so a tap observes the path that ships.
#pragma once

#include <functional>
#include <span>
#include <string_view>

#include "model/config.h"
#include "model/kv_cache.h"
#include "model/weights.h"

namespace strata {

// Called with each named intermediate (a backend tensor, [features, n_tokens]).
using Tap = std::function<void(std::string_view name, const Tensor& value)>;

// Activations of one forward pass of n tokens; a pass of fewer tokens works on the first
// columns of each (columns()).
struct Activations {
  Activations() = default;
  Activations(Backend& backend, const ModelConfig& c, int64_t n);
  // The same buffers seen as n <= n_tokens columns (logits and last as they are).
  Activations columns(int64_t n) const;

  int64_t n_tokens = 0;
  Tensor x;       // [n_embd, n]    residual stream
  Tensor cur;     // [n_embd, n]    normed input of a block
  Tensor q;       // [n_embd_q, n]
  Tensor k;       // [n_embd_kv, n]
  Tensor v;       // [n_embd_kv, n]
  Tensor q_raw;   // [n_embd_q, n]  q before its head norm (qk_norm only)
  Tensor k_raw;   // [n_embd_kv, n] k before its head norm (qk_norm only)
  Tensor att;     // [n_embd_q, n]  attention output before the projection
  Tensor proj;    // [n_embd, n]
  Tensor gate;    // [n_ff, n]
  Tensor up;      // [n_ff, n]
  Tensor act;     // [n_ff, n]
  Tensor down;    // [n_embd, n]
  Tensor logits;  // [n_vocab, n]   (all tokens; allocated by the first pass that asks for them)
  Tensor last;    // [n_vocab, 1]   (last token only)

  // mixture of experts (n_expert > 0 only)
  Tensor router;          // [n_expert, n]           router logits
  Tensor expert_ids;      // [n_expert_used, n] i32  the experts of each token
  Tensor expert_weights;  // [n_expert_used, n]
  Tensor gate_exps;       // [n_ff_exp, n_expert_used, n]
  Tensor up_exps;         // [n_ff_exp, n_expert_used, n]
  Tensor act_exps;        // [n_ff_exp, n_expert_used, n]
  Tensor down_exps;       // [n_embd, n_expert_used, n]
};

// The activation of a gated feed-forward: act = f(gate) * up (silu: SwiGLU; gelu_tanh: GeGLU).
enum class FeedForwardActivation { silu, gelu_tanh };

// What differs between the attention layers of one model.
struct AttentionOptions {
  int64_t window = 0;                // sliding window (Backend::attention); 0: every past key
  const RopeConfig* rope = nullptr;  // nullptr: the model's (config.rope)
};

// The shared blocks of one forward pass over a batch's tokens, whose positions, sequences and
// cache rows `kv` gives (backend.h: KvLayout); their keys and values go to `cache`.
class Blocks {
public:
  // unfused: every FusedMatmul runs as the plain ops it stands for (Backend's default).
  Blocks(const ModelConfig& config, Backend& backend, Activations& act, const KvLayout& kv, KvCache& cache,
         const Tap& tap, bool unfused);

  const ModelConfig& config() const { return config_; }
  Backend& backend() const { return backend_; }
  Activations& act() const { return act_; }

  // Self-attention with pre-norm, grouped KV heads and rope, added to the residual stream:
  //   cur = rms_norm(x, w.attn_norm); q, k, v = w.wq cur, w.wk cur, w.wv cur (+ w.bq, w.bk, w.bv
  //   where present); each head of q, k normed by w.q_norm, w.k_norm where present (config
  //   qk_norm); q, k roped; k, v stored in the cache; proj = w.wo attention(q, cache, window);
  //   x += proj, or x += rms_norm(proj, w.attn_post_norm) where that is present.
  // Taps blk.N.{attn_norm,q_rope,k_rope,v,attn_out,attn_proj,[attn_post_norm,]ffn_inp}.
  void attention(int64_t il, const LayerWeights& w, const AttentionOptions& o = {});
  // Gated feed-forward with pre-norm, added to the residual stream:
  //   cur = rms_norm(x, w.ffn_norm); act = f(w.ffn_gate cur) * (w.ffn_up cur); out = w.ffn_down act;
  //   x += out, or x += rms_norm(out, w.ffn_post_norm) where that is present.
  // Taps blk.N.{ffn_norm,ffn_gate,ffn_up,ffn_act,ffn_out,[ffn_post_norm,]out}.
  void feed_forward(int64_t il, const LayerWeights& w, FeedForwardActivation f);
  // Mixture of experts with pre-norm, added to the residual stream:
  //   cur = rms_norm(x, w.ffn_norm); router = w.ffn_gate_inp cur;
  //   ids, weights = route_top_k(router)  (n_expert_used experts per token, softmax over them);
  //   for each chosen expert e: act_e = silu(w.ffn_gate_exps[e] cur) * (w.ffn_up_exps[e] cur),
  //   down_e = w.ffn_down_exps[e] act_e;  x += sum_e weight_e down_e.
  // Taps blk.N.{ffn_norm,ffn_moe_logits,ffn_moe_weights,ffn_moe_gate,ffn_moe_up,ffn_moe_act,
  // ffn_moe_down,ffn_out,out}.
  void moe_feed_forward(int64_t il, const LayerWeights& w);

  // The ops of one fused matmul (fused or, unfused, op by op).
  void run(const FusedMatmul& op);
  // Passes `value` to the tap as "blk.<il>.<name>" (il >= 0) or "<name>".
  void emit(int64_t il, std::string_view name, const Tensor& value) const;

private:
  // q, k, v of cur: projected, biased, roped, k and v stored (one fused op).
  void project_qkv(int64_t il, const LayerWeights& w, const RopeConfig& rope);
  // The same with each head of q and k normed before rope (the norm sits between the matmul
  // and rope, where the fused op has no step: plain ops after it).
  void project_qkv_head_norm(int64_t il, const LayerWeights& w, const RopeConfig& rope);
  // x += rms_norm(out, post_norm), through cur; tapped as blk.N.<name>.
  void add_post_normed(int64_t il, const Tensor& out, const Tensor& post_norm, const char* name);

  const ModelConfig& config_;
  Backend& backend_;
  Activations& act_;
  const KvLayout& kv_;
  KvCache& cache_;
  const Tap& tap_;
  bool unfused_;
};

}  // namespace strata
