#include "model/transformer.h"

#include <fmt/format.h>

#include <cmath>
#include <numeric>

#include "core/error.h"

namespace strata {

// Activations of one forward pass of n tokens, reused while the batch size stays the same.
struct Transformer::Buffers {
  int64_t n_tokens = 0;
  Tensor x;       // [n_embd, n]    residual stream
  Tensor cur;     // [n_embd, n]    normed input of a block
  Tensor q;       // [n_embd, n]
  Tensor k;       // [n_embd_kv, n]
  Tensor v;       // [n_embd_kv, n]
  Tensor att;     // [n_embd, n]    attention output before the projection
  Tensor proj;    // [n_embd, n]
  Tensor gate;    // [n_ff, n]
  Tensor up;      // [n_ff, n]
  Tensor act;     // [n_ff, n]
  Tensor down;    // [n_embd, n]
  Tensor logits;  // [n_vocab, n]   (all tokens)
  Tensor last;    // [n_vocab, 1]   (last token only)
  // Decode steps recorded by the backend (n == 1), for logits into `logits` / `last`, and the
  // cache they wrote into (a step for another cache is recorded anew).
  StepRecording steps[2];
  uint64_t steps_cache_id = 0;
};

Transformer::Transformer(const ModelConfig& config, const ModelWeights& weights, Backend& backend, bool unfused)
    : config_(config), weights_(weights), backend_(backend), unfused_(unfused) {}

Transformer::Buffers& Transformer::buffers_for(int64_t n) {
  // One token (decode) keeps its own buffers, so that its recorded steps outlive prompts.
  std::shared_ptr<Buffers>& slot = n == 1 ? step_buffers_ : buffers_;
  if (slot && slot->n_tokens == n) return *slot;
  const ModelConfig& c = config_;
  auto b = std::make_shared<Buffers>();
  auto alloc = [&](int64_t ne0, int64_t ne1, const char* name) { return backend_.alloc(DType::F32, {ne0, ne1}, name); };
  b->n_tokens = n;
  b->x = alloc(c.n_embd, n, "x");
  b->cur = alloc(c.n_embd, n, "cur");
  b->q = alloc(c.n_embd, n, "q");
  b->k = alloc(c.n_embd_kv(), n, "k");
  b->v = alloc(c.n_embd_kv(), n, "v");
  b->att = alloc(c.n_embd, n, "att");
  b->proj = alloc(c.n_embd, n, "proj");
  b->gate = alloc(c.n_ff, n, "gate");
  b->up = alloc(c.n_ff, n, "up");
  b->act = alloc(c.n_ff, n, "act");
  b->down = alloc(c.n_embd, n, "down");
  b->logits = alloc(c.n_vocab, n, "logits");
  b->last = alloc(c.n_vocab, 1, "logits");
  slot = std::move(b);
  return *slot;
}

void Transformer::run(const FusedMatmul& op) {
  if (unfused_) {
    backend_.Backend::matmul_fused(op);  // the plain ops it stands for, one by one
  } else {
    backend_.matmul_fused(op);
  }
}

void Transformer::attention_block(int64_t il, Buffers& b, std::span<const int32_t> positions, int64_t n_past,
                                  KvCache& cache, const Tap& tap) {
  const ModelConfig& c = config_;
  const LayerWeights& w = weights_.layers[size_t(il)];
  const std::string p = fmt::format("blk.{}.", il);
  const int64_t n = b.n_tokens;
  auto emit = [&](const char* name, const Tensor& t) {
    if (tap) tap(p + name, t);
  };
  auto bias = [&](const Tensor& t) { return c.qkv_bias ? &t : nullptr; };

  // cur = norm(x); q, k, v = w cur (+ bias); q, k roped; k, v stored at n_past..
  const MatmulJob qkv[] = {{.w = &w.wq, .out = &b.q, .bias = bias(w.bq), .rope = true},
                           {.w = &w.wk, .out = &b.k, .bias = bias(w.bk), .rope = true, .store = &cache.k(il)},
                           {.w = &w.wv, .out = &b.v, .bias = bias(w.bv), .store = &cache.v(il)}};
  run({.x = &b.cur,
       .prologue = FusedMatmul::Prologue::rms_norm,
       .norm_input = &b.x,
       .norm_weight = &w.attn_norm,
       .norm_eps = c.rms_eps,
       .jobs = qkv,
       .head_dim = c.head_dim(),
       .rope = &c.rope,
       .positions = positions,
       .kv_pos = n_past});
  emit("attn_norm", b.cur);
  emit("q_rope", b.q);
  emit("k_rope", b.k);
  emit("v", b.v);

  // att = attention(q, cache); proj = wo att; x += proj
  const Tensor q = b.q.reshape({c.head_dim(), c.n_head, n});  // [head_dim, n_head, n]
  const MatmulJob out[] = {{.w = &w.wo, .out = &b.proj, .residual = &b.x}};
  run({.x = &b.att,
       .prologue = FusedMatmul::Prologue::attention,
       .q = &q,
       .k_cache = &cache.k(il),
       .v_cache = &cache.v(il),
       .n_past = n_past,
       .scale = 1.0f / std::sqrt(float(c.head_dim())),
       .jobs = out});
  emit("attn_out", b.att);
  emit("attn_proj", b.proj);
  emit("ffn_inp", b.x);
}

void Transformer::ffn_block(int64_t il, Buffers& b, const Tap& tap) {
  const LayerWeights& w = weights_.layers[size_t(il)];
  const std::string p = fmt::format("blk.{}.", il);
  auto emit = [&](const char* name, const Tensor& t) {
    if (tap) tap(p + name, t);
  };
  // cur = norm(x); gate = w_gate cur, up = w_up cur, act = silu(gate) * up
  const MatmulJob gate_up[] = {{.w = &w.ffn_gate, .out = &b.gate}, {.w = &w.ffn_up, .out = &b.up}};
  run({.x = &b.cur,
       .prologue = FusedMatmul::Prologue::rms_norm,
       .norm_input = &b.x,
       .norm_weight = &w.ffn_norm,
       .norm_eps = config_.rms_eps,
       .jobs = gate_up,
       .gate = FusedMatmul::Gate::swiglu,
       .gated = &b.act});
  emit("ffn_norm", b.cur);
  emit("ffn_gate", b.gate);
  emit("ffn_up", b.up);
  emit("ffn_act", b.act);
  // down = w_down act; x += down
  const MatmulJob down[] = {{.w = &w.ffn_down, .out = &b.down, .residual = &b.x}};
  run({.x = &b.act, .jobs = down});
  emit("ffn_out", b.down);
  emit("out", b.x);
}

const Tensor& Transformer::forward(std::span<const int32_t> tokens, int64_t n_past, KvCache& cache, bool all_logits,
                                   const Tap& tap) {
  const int64_t n = int64_t(tokens.size());
  if (n == 0) fail("forward: no tokens");
  if (n_past < 0 || n_past + n > cache.n_ctx()) {
    fail("forward: {} tokens at position {} do not fit the context of {}", n, n_past, cache.n_ctx());
  }
  Buffers& b = buffers_for(n);
  Tensor& out = all_logits ? b.logits : b.last;
  if (n > 1 || tap) {
    queue_forward(b, tokens, n_past, cache, out, tap);
    return out;
  }
  if (b.steps_cache_id != cache.id()) {
    for (StepRecording& r : b.steps) r = {};
    b.steps_cache_id = cache.id();
  }
  // Two pointers: small enough for std::function to keep without a heap allocation per token.
  struct Args {
    Buffers& b;
    std::span<const int32_t> tokens;
    int64_t n_past;
    KvCache& cache;
    Tensor& out;
  } args{b, tokens, n_past, cache, out};
  backend_.run_step(b.steps[all_logits ? 0 : 1], tokens[0], n_past,
                    [this, &args] { queue_forward(args.b, args.tokens, args.n_past, args.cache, args.out, {}); });
  return out;
}

void Transformer::queue_forward(Buffers& b, std::span<const int32_t> tokens, int64_t n_past, KvCache& cache,
                                Tensor& out, const Tap& tap) {
  const int64_t n = b.n_tokens;
  std::vector<int32_t> positions(static_cast<size_t>(n));
  std::iota(positions.begin(), positions.end(), int32_t(n_past));

  backend_.get_rows(weights_.token_embd, tokens, b.x);
  if (tap) tap("inp_embd", b.x);
  for (int64_t il = 0; il < config_.n_layer; ++il) {
    attention_block(il, b, positions, n_past, cache, tap);
    ffn_block(il, b, tap);
  }
  // result_norm = norm(x) (the last column only, unless all logits); logits = output result_norm
  Tensor x = out.ne(1) == n ? b.x : b.x.slice(1, n - 1, 1);           // [n_embd, n or 1]
  Tensor normed = out.ne(1) == n ? b.cur : b.cur.slice(1, n - 1, 1);  // [n_embd, n or 1]
  const MatmulJob logits[] = {{.w = &weights_.output, .out = &out}};
  run({.x = &normed,
       .prologue = FusedMatmul::Prologue::rms_norm,
       .norm_input = &x,
       .norm_weight = &weights_.output_norm,
       .norm_eps = config_.rms_eps,
       .jobs = logits});
  if (tap) tap("result_norm", normed);
  if (tap) tap("logits", out);
}

}  // namespace strata
