#include "model/blocks.h"

#include <fmt/format.h>

namespace strata {

Activations::Activations(Backend& backend, const ModelConfig& c, int64_t n) : n_tokens(n) {
  auto alloc = [&](int64_t ne0, int64_t ne1, const char* name) { return backend.alloc(DType::F32, {ne0, ne1}, name); };
  x = alloc(c.n_embd, n, "x");
  cur = alloc(c.n_embd, n, "cur");
  q = alloc(c.n_embd_q(), n, "q");
  k = alloc(c.n_embd_kv(), n, "k");
  v = alloc(c.n_embd_kv(), n, "v");
  if (c.qk_norm) {
    q_raw = alloc(c.n_embd_q(), n, "q_raw");
    k_raw = alloc(c.n_embd_kv(), n, "k_raw");
  }
  att = alloc(c.n_embd_q(), n, "att");
  proj = alloc(c.n_embd, n, "proj");
  gate = alloc(c.n_ff, n, "gate");
  up = alloc(c.n_ff, n, "up");
  act = alloc(c.n_ff, n, "act");
  down = alloc(c.n_embd, n, "down");
  if (c.n_expert > 0) {
    const int64_t k = c.n_expert_used;
    router = alloc(c.n_expert, n, "router");
    expert_ids = backend.alloc(DType::I32, {k, n}, "expert_ids");
    expert_weights = alloc(k, n, "expert_weights");
    gate_exps = backend.alloc(DType::F32, {c.n_ff_exp, k, n}, "gate_exps");
    up_exps = backend.alloc(DType::F32, {c.n_ff_exp, k, n}, "up_exps");
    act_exps = backend.alloc(DType::F32, {c.n_ff_exp, k, n}, "act_exps");
    down_exps = backend.alloc(DType::F32, {c.n_embd, k, n}, "down_exps");
  }
  last = alloc(c.n_vocab, 1, "logits");
}

Activations Activations::columns(int64_t n) const {
  if (n == n_tokens) return *this;
  Activations a = *this;
  a.n_tokens = n;
  for (Tensor* t :
       {&a.x, &a.cur, &a.q, &a.k, &a.v, &a.q_raw, &a.k_raw, &a.att, &a.proj, &a.gate, &a.up, &a.act, &a.down})
    if (t->n_elements() > 0) *t = t->slice(1, 0, n);
  for (Tensor* t : {&a.router, &a.expert_ids, &a.expert_weights})  // [.., n]
    if (t->n_elements() > 0) *t = t->slice(1, 0, n);
  for (Tensor* t : {&a.gate_exps, &a.up_exps, &a.act_exps, &a.down_exps})  // [.., n_expert_used, n]
    if (t->n_elements() > 0) *t = t->slice(2, 0, n);
  return a;
}

Blocks::Blocks(const ModelConfig& config, Backend& backend, Activations& act, const KvLayout& kv, KvCache& cache,
               const Tap& tap, bool unfused)
    : config_(config), backend_(backend), act_(act), kv_(kv), cache_(cache), tap_(tap), unfused_(unfused) {}

void Blocks::run(const FusedMatmul& op) {
  if (unfused_) {
    backend_.Backend::matmul_fused(op);  // the plain ops it stands for, one by one
  } else {
    backend_.matmul_fused(op);
  }
}

void Blocks::emit(int64_t il, std::string_view name, const Tensor& value) const {
  if (!tap_) return;
  if (il < 0) {
    tap_(name, value);
  } else {
    tap_(fmt::format("blk.{}.{}", il, name), value);
  }
}

namespace {

const Tensor* present(const Tensor& t) {
  return t.n_elements() > 0 ? &t : nullptr;
}

}  // namespace

void Blocks::project_qkv(int64_t il, const LayerWeights& w, const RopeConfig& rope) {
  const ModelConfig& c = config_;
  Activations& a = act_;
  // cur = norm(x); q, k, v = w cur (+ bias); q, k roped; k, v stored where kv_ says
  const MatmulJob qkv[] = {{.w = &w.wq, .out = &a.q, .bias = present(w.bq), .rope = true},
                           {.w = &w.wk, .out = &a.k, .bias = present(w.bk), .rope = true, .store = &cache_.k(il)},
                           {.w = &w.wv, .out = &a.v, .bias = present(w.bv), .store = &cache_.v(il)}};
  run({.x = &a.cur,
       .prologue = FusedMatmul::Prologue::rms_norm,
       .norm_input = &a.x,
       .norm_weight = &w.attn_norm,
       .norm_eps = c.rms_eps,
       .kv = &kv_,
       .jobs = qkv,
       .head_dim = c.head_dim(),
       .rope = &rope,
       .positions = kv_.positions});
}

void Blocks::project_qkv_head_norm(int64_t il, const LayerWeights& w, const RopeConfig& rope) {
  const ModelConfig& c = config_;
  Activations& a = act_;
  // cur = norm(x); q_raw, k_raw, v = w cur (+ bias); v stored where kv_ says
  const MatmulJob qkv[] = {{.w = &w.wq, .out = &a.q_raw, .bias = present(w.bq)},
                           {.w = &w.wk, .out = &a.k_raw, .bias = present(w.bk)},
                           {.w = &w.wv, .out = &a.v, .bias = present(w.bv), .store = &cache_.v(il)}};
  run({.x = &a.cur,
       .prologue = FusedMatmul::Prologue::rms_norm,
       .norm_input = &a.x,
       .norm_weight = &w.attn_norm,
       .norm_eps = c.rms_eps,
       .kv = &kv_,
       .jobs = qkv,
       .head_dim = c.head_dim()});
  // q = rope(rms_norm(q_raw) per head), k likewise; k stored where kv_ says
  Tensor q = split_heads(a.q, c.head_dim());  // [head_dim, n_head, n]
  Tensor k = split_heads(a.k, c.head_dim());  // [head_dim, n_head_kv, n]
  backend_.rms_norm(split_heads(a.q_raw, c.head_dim()), w.q_norm, c.rms_eps, q);
  backend_.rms_norm(split_heads(a.k_raw, c.head_dim()), w.k_norm, c.rms_eps, k);
  backend_.rope(q, kv_.positions, rope);
  backend_.rope(k, kv_.positions, rope);
  backend_.store_kv(k, cache_.k(il), kv_);
}

void Blocks::add_post_normed(int64_t il, const Tensor& out, const Tensor& post_norm, const char* name) {
  Activations& a = act_;
  backend_.rms_norm(out, post_norm, config_.rms_eps, a.cur);
  backend_.add(a.x, a.cur, a.x);
  emit(il, name, a.cur);
}

void Blocks::attention(int64_t il, const LayerWeights& w, const AttentionOptions& o) {
  const ModelConfig& c = config_;
  Activations& a = act_;
  const RopeConfig& rope = o.rope != nullptr ? *o.rope : c.rope;
  if (c.qk_norm) {
    project_qkv_head_norm(il, w, rope);
  } else {
    project_qkv(il, w, rope);
  }
  emit(il, "attn_norm", a.cur);
  emit(il, "q_rope", a.q);
  emit(il, "k_rope", a.k);
  emit(il, "v", a.v);

  // att = attention(q, cache); proj = wo att; x += proj (or its post-norm)
  const Tensor q = a.q.reshape({c.head_dim(), c.n_head, a.n_tokens});  // [head_dim, n_head, n]
  const bool post_norm = w.attn_post_norm.n_elements() > 0;
  const MatmulJob out[] = {{.w = &w.wo, .out = &a.proj, .residual = post_norm ? nullptr : &a.x}};
  run({.x = &a.att,
       .prologue = FusedMatmul::Prologue::attention,
       .q = &q,
       .k_cache = &cache_.k(il),
       .v_cache = &cache_.v(il),
       .kv = &kv_,
       .scale = c.attn_scale,
       .window = o.window,
       .jobs = out});
  emit(il, "attn_out", a.att);
  emit(il, "attn_proj", a.proj);
  if (post_norm) add_post_normed(il, a.proj, w.attn_post_norm, "attn_post_norm");
  emit(il, "ffn_inp", a.x);
}

void Blocks::feed_forward(int64_t il, const LayerWeights& w, FeedForwardActivation f) {
  Activations& a = act_;
  // cur = norm(x); gate = w_gate cur, up = w_up cur, act = f(gate) * up
  const MatmulJob gate_up[] = {{.w = &w.ffn_gate, .out = &a.gate}, {.w = &w.ffn_up, .out = &a.up}};
  run({.x = &a.cur,
       .prologue = FusedMatmul::Prologue::rms_norm,
       .norm_input = &a.x,
       .norm_weight = &w.ffn_norm,
       .norm_eps = config_.rms_eps,
       .jobs = gate_up,
       .gate = f == FeedForwardActivation::silu ? FusedMatmul::Gate::swiglu : FusedMatmul::Gate::geglu,
       .gated = &a.act});
  emit(il, "ffn_norm", a.cur);
  emit(il, "ffn_gate", a.gate);
  emit(il, "ffn_up", a.up);
  emit(il, "ffn_act", a.act);
  // down = w_down act; x += down (or its post-norm)
  const bool post_norm = w.ffn_post_norm.n_elements() > 0;
  const MatmulJob down[] = {{.w = &w.ffn_down, .out = &a.down, .residual = post_norm ? nullptr : &a.x}};
  run({.x = &a.act, .jobs = down});
  emit(il, "ffn_out", a.down);
  if (post_norm) add_post_normed(il, a.down, w.ffn_post_norm, "ffn_post_norm");
  emit(il, "out", a.x);
}

void Blocks::moe_feed_forward(int64_t il, const LayerWeights& w) {
  const ModelConfig& c = config_;
  Activations& a = act_;
  // cur = norm(x); router = w_gate_inp cur
  const MatmulJob route[] = {{.w = &w.ffn_gate_inp, .out = &a.router}};
  run({.x = &a.cur,
       .prologue = FusedMatmul::Prologue::rms_norm,
       .norm_input = &a.x,
       .norm_weight = &w.ffn_norm,
       .norm_eps = c.rms_eps,
       .jobs = route});
  emit(il, "ffn_norm", a.cur);
  emit(il, "ffn_moe_logits", a.router);
  backend_.route_top_k(a.router, a.expert_ids, a.expert_weights);
  emit(il, "ffn_moe_weights", a.expert_weights);
  // each token's experts: act = silu(gate cur) * (up cur); down = w_down act
  const Tensor cur = a.cur.reshape({c.n_embd, 1, a.n_tokens});  // [n_embd, 1, n]: one column for every slot
  backend_.matmul_experts(w.ffn_gate_exps, cur, a.expert_ids, a.gate_exps);
  backend_.matmul_experts(w.ffn_up_exps, cur, a.expert_ids, a.up_exps);
  backend_.swiglu(a.gate_exps, a.up_exps, a.act_exps);
  backend_.matmul_experts(w.ffn_down_exps, a.act_exps, a.expert_ids, a.down_exps);
  emit(il, "ffn_moe_gate", a.gate_exps);
  emit(il, "ffn_moe_up", a.up_exps);
  emit(il, "ffn_moe_act", a.act_exps);
  emit(il, "ffn_moe_down", a.down_exps);
  // down = sum over the experts by weight; x += down
  backend_.sum_experts(a.down_exps, a.expert_weights, a.down);
  backend_.add(a.x, a.down, a.x);
  emit(il, "ffn_out", a.down);
  emit(il, "out", a.x);
}

}  // namespace strata
