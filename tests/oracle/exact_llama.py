#!/usr/bin/env python3
"""The exact oracle: an independent float64 forward pass of `llama`, `qwen2`, `qwen3` and `gemma3`
GGUF models.

Weights are read with gguf.GGUFReader and dequantized with gguf.quants.dequantize (the values
every engine multiplies by, converted exactly to float64); everything after that is float64
numpy: embeddings, RMSNorm, Q/K/V projections (+ biases where the file has them), RoPE
("normal" adjacent pairs for llama, NEOX halves for qwen2, as llama.cpp's rope type per
architecture), freq_base, linear scaling and rope_freqs.weight frequency factors (Llama 3.1),
GQA attention with a causal mask, SwiGLU FFN, final norm, output (or tied token_embd).
qwen3: RMSNorm of each query and key head (attn_q_norm, attn_k_norm) before rope, NEOX rope.
gemma3: embeddings times sqrt(n_embd), q/k head norms, NEOX rope, sliding-window attention
(a key at s is seen from position p when p - s < attention.sliding_window) on the layers il
with il % 6 < 5, whose rope base is 10000 and scale 1 (the global layers use rope.freq_base and
the scaling), post-norms of the attention and feed-forward outputs (post_attention_norm,
post_ffw_norm) before the residual, GeGLU with the tanh GELU, final_logit_softcapping when set.
phi3: q, k, v rows of attn_qkv, gate then up rows of ffn_up, NEOX rope (no long-context factors).
llama with attention.sliding_window (Mistral 7B v0.1): every layer attends within the window,
with the model's rope (llama.cpp ignores the key for llama files).
Mixture of experts (llama with expert_count: Mixtral; qwen3moe: qwen3's attention): the router
ffn_gate_inp gives each token's logits over the experts; their softmax over all experts, the
expert_used_count largest kept (equal logits: lower index first) and renormalised to sum 1,
weight each chosen expert's SwiGLU (ffn_gate_exps, ffn_up_exps, ffn_down_exps [expert, ...],
rows of expert_feed_forward_length, or feed_forward_length for llama); their sum is ffn_out.
Tokens are given as ids; tokenization is not the oracle's job.

Commands:
  exact_llama.py logits MODEL --tokens 1,2,3 [--all] [--out logits.npy] [--dump DIR]
  exact_llama.py greedy MODEL --tokens 1,2,3 -n 32 [--json out.json]
  exact_llama.py perplexity MODEL --tokens-file ids.txt -c 128 [--chunks N] [--json out.json]

Named intermediates (--dump DIR, one .npy per name, numpy order [n_tokens, features], f32 by
default, --dump-dtype f64 for the exact values): inp_embd, then per layer N
  blk.N.attn_norm  blk.N.q  blk.N.k  blk.N.v          (q/k after projection+bias, before rope)
  blk.N.q_rope  blk.N.k_rope                           (after rope; heads flattened)
  blk.N.attn_out (attention output before attn_output)  blk.N.attn_proj  blk.N.ffn_inp
  blk.N.ffn_norm  blk.N.ffn_gate  blk.N.ffn_up  blk.N.ffn_act (silu(gate)*up)  blk.N.ffn_out
  (experts: blk.N.ffn_moe_logits [n_tokens, n_expert] and blk.N.ffn_moe_weights [n_tokens,
  n_expert_used] in place of ffn_gate, ffn_up, ffn_act)
  (gemma3: blk.N.attn_post_norm after attn_proj, blk.N.ffn_post_norm after ffn_out)
  blk.N.out (layer output)
then result_norm and logits.

As a library: `ExactModel(path).forward(tokens)` -> float64 logits [n_tokens, n_vocab].
Memory: dequantized weights are cached once per process, as float64 when they fit in
--cache-gb (default 4 GiB), otherwise as float32 and widened per use (same values).
"""
import argparse
import json
import math
import os
import sys

import numpy as np

try:
    import gguf
    from gguf import GGMLQuantizationType as QT
except ImportError as e:  # pragma: no cover - depends on the environment
    sys.exit(f"exact_llama: {e}; run with the Python that scripts/setup-deps prints")

ROPE_STYLE = {"llama": "norm", "qwen2": "neox", "qwen3": "neox", "gemma3": "neox", "phi3": "neox",
              "qwen3moe": "neox"}
GEMMA3_SWA_PATTERN = 6  # default: layers il % 6 < 5 attend within the sliding window
GEMMA3_SWA_ROPE_BASE = 10000.0  # default rope base of those layers (rope.freq_base_swa)


class OracleError(Exception):
    pass


def rope(x, positions, n_rot, base, freq_scale=1.0, freq_factors=None, style="norm"):
    """Rotates x [n_tokens, n_heads, head_dim] by positions [n_tokens] (float64).

    theta(p, i) = p * freq_scale * base^(-2i/n_rot) / freq_factors[i], i < n_rot/2.
    "norm" rotates adjacent pairs (x[2i], x[2i+1]); "neox" rotates (x[i], x[i + n_rot/2]).
    Dimensions past n_rot pass through unchanged."""
    x = np.asarray(x, dtype=np.float64)
    half = n_rot // 2
    inv_freq = freq_scale * base ** (-2.0 * np.arange(half, dtype=np.float64) / n_rot)  # [half]
    if freq_factors is not None:
        inv_freq = inv_freq / np.asarray(freq_factors, dtype=np.float64)
    theta = np.asarray(positions, dtype=np.float64)[:, None] * inv_freq[None, :]  # [n_tokens, half]
    cos = np.cos(theta)[:, None, :]
    sin = np.sin(theta)[:, None, :]
    out = x.copy()
    if style == "norm":
        x0, x1 = x[..., 0:n_rot:2], x[..., 1:n_rot:2]
        out[..., 0:n_rot:2] = x0 * cos - x1 * sin
        out[..., 1:n_rot:2] = x0 * sin + x1 * cos
    elif style == "neox":
        x0, x1 = x[..., :half], x[..., half:n_rot]
        out[..., :half] = x0 * cos - x1 * sin
        out[..., half:n_rot] = x0 * sin + x1 * cos
    else:
        raise OracleError(f"unknown rope style {style}")
    return out


def rms_norm(x, weight, eps):
    """x [n, d] / sqrt(mean(x^2) + eps) * weight [d]."""
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * weight


def silu(x):
    with np.errstate(over="ignore"):
        return x / (1.0 + np.exp(-x))


def gelu_tanh(x):
    """GELU, tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))."""
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def softmax(x, axis=-1):
    m = np.max(x, axis=axis, keepdims=True)
    e = np.exp(x - m)
    return e / np.sum(e, axis=axis, keepdims=True)


def log_softmax(x, axis=-1):
    m = np.max(x, axis=axis, keepdims=True)
    return x - m - np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True))


class Config:
    """Hyperparameters from GGUF metadata."""

    def __init__(self, reader, path):
        self.path = path
        fields = reader.fields

        def get(key, default=None, required=False):
            f = fields.get(key)
            if f is None:
                if required:
                    raise OracleError(f"{path}: missing metadata key {key}")
                return default
            return f.contents()

        self.arch = get("general.architecture", required=True)
        if self.arch not in ROPE_STYLE:
            raise OracleError(f"{path}: unsupported architecture '{self.arch}' ({', '.join(sorted(ROPE_STYLE))})")
        a = self.arch
        self.n_embd = int(get(f"{a}.embedding_length", required=True))
        self.n_layer = int(get(f"{a}.block_count", required=True))
        self.n_head = int(get(f"{a}.attention.head_count", required=True))
        self.n_head_kv = int(get(f"{a}.attention.head_count_kv", self.n_head))
        self.n_ff = int(get(f"{a}.feed_forward_length", required=True))
        self.head_dim = int(get(f"{a}.attention.key_length", self.n_embd // self.n_head))
        self.head_dim_v = int(get(f"{a}.attention.value_length", self.head_dim))
        self.n_rot = int(get(f"{a}.rope.dimension_count", self.head_dim))
        self.rms_eps = float(get(f"{a}.attention.layer_norm_rms_epsilon", required=True))
        self.rope_base = float(get(f"{a}.rope.freq_base", 10000.0))
        self.rope_style = ROPE_STYLE[a]
        scaling = get(f"{a}.rope.scaling.type", "none")
        factor = float(get(f"{a}.rope.scaling.factor", 0.0))
        self.freq_scale = 1.0
        if scaling == "linear" and factor > 0:
            self.freq_scale = 1.0 / factor
        elif scaling not in ("none", "linear"):
            raise OracleError(f"{path}: rope scaling '{scaling}' is not supported by the oracle")
        self.attn_scale = float(get(f"{a}.attention.scale", 0.0)) or 1.0 / math.sqrt(self.head_dim)
        self.n_ctx_train = int(get(f"{a}.context_length", 0))
        self.sliding_window = int(get(f"{a}.attention.sliding_window", 0))
        self.logit_softcap = float(get(f"{a}.final_logit_softcapping", 0.0))
        self.swa_pattern = int(get(f"{a}.attention.sliding_window_pattern", GEMMA3_SWA_PATTERN))
        self.swa_rope_base = float(get(f"{a}.rope.freq_base_swa", GEMMA3_SWA_ROPE_BASE))
        self.embd_scale = math.sqrt(self.n_embd) if a == "gemma3" else 1.0
        self.n_expert = int(get(f"{a}.expert_count", 0))
        self.n_expert_used = int(get(f"{a}.expert_used_count", 0))
        if a == "qwen3moe" and (self.n_expert == 0 or self.n_expert_used == 0):
            raise OracleError(f"{path}: qwen3moe needs {a}.expert_count and {a}.expert_used_count")
        if self.n_expert and not 1 <= self.n_expert_used <= self.n_expert:
            raise OracleError(f"{path}: {a}.expert_used_count = {self.n_expert_used} of {self.n_expert} experts")
        default_ff_exp = self.n_ff if a == "llama" else self.n_ff // max(self.n_expert_used, 1)
        self.n_ff_exp = int(get(f"{a}.expert_feed_forward_length", default_ff_exp))
        tokens = fields.get("tokenizer.ggml.tokens")
        self.n_vocab_tokenizer = len(tokens.data) if tokens is not None else None
        self.bos_id = get("tokenizer.ggml.bos_token_id")
        self.eog_ids = {int(v) for v in (get("tokenizer.ggml.eos_token_id"), get("tokenizer.ggml.eot_token_id"))
                        if v is not None}
        add_bos = get("tokenizer.ggml.add_bos_token")
        if add_bos is None:  # llama.cpp's default: SentencePiece vocabs add BOS
            add_bos = get("tokenizer.ggml.model") == "llama"
        self.add_bos = bool(add_bos)


class ExactModel:
    """A GGUF llama/qwen2 model evaluated in float64."""

    def __init__(self, path, cache_gb=4.0):
        self.path = path
        self.reader = gguf.GGUFReader(path)
        self.cfg = Config(self.reader, path)
        self.tensors = {t.name: t for t in self.reader.tensors}
        self._cache = {}
        total = sum(int(t.n_elements) for t in self.reader.tensors)
        self._cache_dtype = np.float64 if total * 8 <= cache_gb * (1 << 30) else np.float32
        self._check_tensors()
        out = "output.weight" if "output.weight" in self.tensors else "token_embd.weight"
        self.output_name = out
        self.n_vocab = self._shape("token_embd.weight")[0]

    # ---- weights ----
    def _shape(self, name):
        return tuple(int(d) for d in reversed(self.tensors[name].shape))  # numpy order

    def has(self, name):
        return name in self.tensors

    def _check_tensors(self):
        c = self.cfg
        q_dim, kv_dim = c.n_head * c.head_dim, c.n_head_kv * c.head_dim
        kv_dim_v, q_dim_v = c.n_head_kv * c.head_dim_v, c.n_head * c.head_dim_v
        need = {"token_embd.weight": None, "output_norm.weight": (c.n_embd,)}
        for i in range(c.n_layer):
            p = f"blk.{i}."
            need.update({p + "attn_norm.weight": (c.n_embd,), p + "attn_output.weight": (c.n_embd, q_dim_v),
                         p + "ffn_norm.weight": (c.n_embd,)})
            if c.n_expert:
                e, f = c.n_expert, c.n_ff_exp
                need.update({p + "attn_q.weight": (q_dim, c.n_embd), p + "attn_k.weight": (kv_dim, c.n_embd),
                             p + "attn_v.weight": (kv_dim_v, c.n_embd), p + "ffn_gate_inp.weight": (e, c.n_embd),
                             p + "ffn_gate_exps.weight": (e, f, c.n_embd), p + "ffn_up_exps.weight": (e, f, c.n_embd),
                             p + "ffn_down_exps.weight": (e, c.n_embd, f)})
            elif c.arch == "phi3":
                need.update({p + "attn_qkv.weight": (q_dim + kv_dim + kv_dim_v, c.n_embd),
                             p + "ffn_up.weight": (2 * c.n_ff, c.n_embd), p + "ffn_down.weight": (c.n_embd, c.n_ff)})
            else:
                need.update({p + "attn_q.weight": (q_dim, c.n_embd), p + "attn_k.weight": (kv_dim, c.n_embd),
                             p + "attn_v.weight": (kv_dim_v, c.n_embd), p + "ffn_gate.weight": (c.n_ff, c.n_embd),
                             p + "ffn_up.weight": (c.n_ff, c.n_embd), p + "ffn_down.weight": (c.n_embd, c.n_ff)})
            if c.arch in ("qwen3", "gemma3", "qwen3moe"):
                need.update({p + "attn_q_norm.weight": (c.head_dim,), p + "attn_k_norm.weight": (c.head_dim,)})
            if c.arch == "gemma3":
                need.update({p + "post_attention_norm.weight": (c.n_embd,), p + "post_ffw_norm.weight": (c.n_embd,)})
        for name, shape in need.items():
            if name not in self.tensors:
                raise OracleError(f"{self.path}: missing tensor '{name}'")
            if shape is not None and self._shape(name) != shape:
                raise OracleError(f"{self.path}: tensor '{name}' has shape {self._shape(name)}, expected {shape}")
        emb = self._shape("token_embd.weight")
        if len(emb) != 2 or emb[1] != c.n_embd:
            raise OracleError(f"{self.path}: token_embd.weight has shape {emb}, expected [n_vocab, {c.n_embd}]")
        if "output.weight" in self.tensors and self._shape("output.weight") != emb:
            raise OracleError(f"{self.path}: output.weight has shape {self._shape('output.weight')}, expected {emb}")

    def weight(self, name):
        """The dequantized tensor as float64, numpy order ([rows, cols] for matrices)."""
        w = self._cache.get(name)
        if w is None:
            t = self.tensors[name]
            if t.tensor_type in (QT.F32, QT.F64):
                w = np.array(t.data, dtype=self._cache_dtype)
            else:
                w = gguf.quants.dequantize(t.data, t.tensor_type).astype(self._cache_dtype)
            w = w.reshape(self._shape(name))
            self._cache[name] = w
        return w.astype(np.float64, copy=False)

    def optional(self, name):
        return self.weight(name) if name in self.tensors else None

    def linear(self, x, name, bias=None):
        """x [n, in] @ W[out, in]^T (+ bias [out]) -> [n, out], float64."""
        y = x @ self.weight(name).T
        if bias is not None and bias in self.tensors:
            y = y + self.weight(bias)
        return y

    # ---- forward ----
    def new_cache(self):
        return {"pos": 0, "k": [None] * self.cfg.n_layer, "v": [None] * self.cfg.n_layer}

    def forward(self, tokens, cache=None, dump=None, logit_rows=None):
        """Runs tokens [n] at positions cache.pos.. and returns float64 logits [n, n_vocab]
        (only the rows logit_rows of the batch, if given). dump: dict filled with named
        intermediates [n, features]."""
        c = self.cfg
        tokens = np.asarray(tokens, dtype=np.int64)
        if tokens.ndim != 1 or len(tokens) == 0:
            raise OracleError("forward needs a non-empty list of token ids")
        if tokens.min() < 0 or tokens.max() >= self.n_vocab:
            raise OracleError(f"token id out of range [0, {self.n_vocab})")
        if cache is None:
            cache = self.new_cache()
        n = len(tokens)
        p0 = cache["pos"]
        positions = np.arange(p0, p0 + n)
        tap = (lambda name, v: dump.__setitem__(name, v)) if dump is not None else (lambda name, v: None)
        freq_factors = self.optional("rope_freqs.weight")

        x = self.weight("token_embd.weight")[tokens] * c.embd_scale  # [n, n_embd]
        tap("inp_embd", x)
        for il in range(c.n_layer):
            p = f"blk.{il}."
            swa = self.layer_is_swa(il)
            gemma_local = swa and c.arch == "gemma3"
            base, freq_scale = (c.swa_rope_base, 1.0) if gemma_local else (c.rope_base, c.freq_scale)
            cur = rms_norm(x, self.weight(p + "attn_norm.weight"), c.rms_eps)
            tap(p + "attn_norm", cur)
            if c.arch == "phi3":  # rows q, k, v of one tensor
                qkv = self.linear(cur, p + "attn_qkv.weight")
                nq, nk = c.n_head * c.head_dim, c.n_head_kv * c.head_dim
                q, k, v = qkv[:, :nq], qkv[:, nq:nq + nk], qkv[:, nq + nk:]
            else:
                q = self.linear(cur, p + "attn_q.weight", p + "attn_q.bias")  # [n, n_head*head_dim]
                k = self.linear(cur, p + "attn_k.weight", p + "attn_k.bias")  # [n, n_head_kv*head_dim]
                v = self.linear(cur, p + "attn_v.weight", p + "attn_v.bias")  # [n, n_head_kv*head_dim_v]
            tap(p + "q", q)
            tap(p + "k", k)
            tap(p + "v", v)
            q = q.reshape(n, c.n_head, c.head_dim)
            k = k.reshape(n, c.n_head_kv, c.head_dim)
            if self.has(p + "attn_q_norm.weight"):  # qwen3, gemma3: RMSNorm of each head
                q = rms_norm(q, self.weight(p + "attn_q_norm.weight"), c.rms_eps)
                k = rms_norm(k, self.weight(p + "attn_k_norm.weight"), c.rms_eps)
            q = rope(q, positions, c.n_rot, base, freq_scale, freq_factors, c.rope_style)
            k = rope(k, positions, c.n_rot, base, freq_scale, freq_factors, c.rope_style)
            tap(p + "q_rope", q.reshape(n, -1))
            tap(p + "k_rope", k.reshape(n, -1))
            v = v.reshape(n, c.n_head_kv, c.head_dim_v)
            if cache["k"][il] is not None:
                k = np.concatenate([cache["k"][il], k])
                v = np.concatenate([cache["v"][il], v])
            cache["k"][il], cache["v"][il] = k, v
            attn = self.attention(q, k, v, positions, c.sliding_window if swa else 0)  # [n, n_head*head_dim_v]
            tap(p + "attn_out", attn)
            attn = self.linear(attn, p + "attn_output.weight", p + "attn_output.bias")
            tap(p + "attn_proj", attn)
            if self.has(p + "post_attention_norm.weight"):
                attn = rms_norm(attn, self.weight(p + "post_attention_norm.weight"), c.rms_eps)
                tap(p + "attn_post_norm", attn)
            x = x + attn
            tap(p + "ffn_inp", x)
            cur = rms_norm(x, self.weight(p + "ffn_norm.weight"), c.rms_eps)
            tap(p + "ffn_norm", cur)
            if c.n_expert:
                ffn = self.experts(cur, p, tap)
            elif c.arch == "phi3":  # rows gate, up of one tensor
                gate_up = self.linear(cur, p + "ffn_up.weight")  # [n, 2 n_ff]
                gate, up = gate_up[:, :c.n_ff], gate_up[:, c.n_ff:]
            else:
                gate = self.linear(cur, p + "ffn_gate.weight")  # [n, n_ff]
                up = self.linear(cur, p + "ffn_up.weight")  # [n, n_ff]
            if not c.n_expert:
                tap(p + "ffn_gate", gate)
                tap(p + "ffn_up", up)
                act = (gelu_tanh(gate) if c.arch == "gemma3" else silu(gate)) * up
                tap(p + "ffn_act", act)
                ffn = self.linear(act, p + "ffn_down.weight")  # [n, n_embd]
            tap(p + "ffn_out", ffn)
            if self.has(p + "post_ffw_norm.weight"):
                ffn = rms_norm(ffn, self.weight(p + "post_ffw_norm.weight"), c.rms_eps)
                tap(p + "ffn_post_norm", ffn)
            x = x + ffn
            tap(p + "out", x)
        cache["pos"] = p0 + n
        x = rms_norm(x, self.weight("output_norm.weight"), c.rms_eps)
        tap("result_norm", x)
        if logit_rows is not None:
            x = x[logit_rows]
        logits = x @ self.weight(self.output_name).T  # [n, n_vocab]
        if c.logit_softcap > 0:
            logits = c.logit_softcap * np.tanh(logits / c.logit_softcap)
        tap("logits", logits)
        return logits

    def route(self, logits):
        """logits [n, n_expert] -> the chosen experts [n, n_used] (largest first, equal logits
        in index order) and their weights [n, n_used]: the softmax over all experts, renormalised
        over the chosen ones."""
        k = self.cfg.n_expert_used
        chosen = np.argsort(-logits, axis=-1, kind="stable")[:, :k]
        probs = np.take_along_axis(softmax(logits, axis=-1), chosen, axis=-1)
        return chosen, probs / np.sum(probs, axis=-1, keepdims=True)

    def experts(self, cur, p, tap):
        """The mixture of experts of layer prefix p on cur [n, n_embd] -> [n, n_embd]."""
        logits = self.linear(cur, p + "ffn_gate_inp.weight")  # [n, n_expert]
        tap(p + "ffn_moe_logits", logits)
        chosen, weights = self.route(logits)
        tap(p + "ffn_moe_weights", weights)
        gate, up, down = (self.weight(p + f"ffn_{w}_exps.weight") for w in ("gate", "up", "down"))
        out = np.zeros_like(cur)
        for e in np.unique(chosen):
            rows, slots = np.nonzero(chosen == e)  # the tokens routed to e, and in which slot
            x = cur[rows]
            act = silu(x @ gate[e].T) * (x @ up[e].T)  # [r, n_ff_exp]
            out[rows] += weights[rows, slots][:, None] * (act @ down[e].T)
        return out

    def layer_is_swa(self, il):
        """Whether layer il attends within the sliding window (gemma3: 5 of every 6 layers; llama:
        every layer where the file sets one)."""
        if self.cfg.sliding_window <= 0:
            return False
        return self.cfg.arch != "gemma3" or il % self.cfg.swa_pattern < self.cfg.swa_pattern - 1

    def attention(self, q, k, v, positions, window=0):
        """q [n, n_head, d] at positions [n]; k [T, n_head_kv, d], v [T, n_head_kv, dv] at
        positions 0..T-1. Causal softmax(q k^T * scale) v per head, head h using KV head
        h // (n_head / n_head_kv); window > 0: a key at s is seen from p only when p - s < window.
        Returns [n, n_head*dv]."""
        c = self.cfg
        n, T = q.shape[0], k.shape[0]
        group = c.n_head // c.n_head_kv
        kh = np.repeat(k, group, axis=1)  # [T, n_head, d]
        vh = np.repeat(v, group, axis=1)  # [T, n_head, dv]
        scores = np.einsum("nhd,thd->hnt", q, kh) * c.attn_scale  # [n_head, n, T]
        mask = np.arange(T)[None, :] > positions[:, None]  # [n, T]: key after the query
        if window > 0:
            mask |= positions[:, None] - np.arange(T)[None, :] >= window  # key outside the window
        scores = np.where(mask[None], -np.inf, scores)
        probs = softmax(scores, axis=-1)
        out = np.einsum("hnt,thd->nhd", probs, vh)  # [n, n_head, dv]
        return out.reshape(n, -1)

    # ---- tasks ----
    def greedy(self, tokens, n_predict, stop_at_eog=True):
        """Greedy continuation: list of dicts {id, logit, second_id, margin} per step."""
        cache = self.new_cache()
        logits = self.forward(tokens, cache, logit_rows=[len(tokens) - 1])[-1]
        steps = []
        for _ in range(n_predict):
            order = np.argsort(logits)[::-1][:2]
            tok, second = int(order[0]), int(order[1])
            steps.append({"id": tok, "logit": float(logits[tok]), "second_id": second,
                          "margin": float(logits[tok] - logits[second])})
            if stop_at_eog and tok in self.cfg.eog_ids:
                break
            logits = self.forward([tok], cache)[-1]
        return steps

    def perplexity(self, tokens, n_ctx, n_chunks=None, progress=None):
        """llama.cpp's perplexity method: chunks of n_ctx tokens (the first replaced by BOS when
        the vocab adds BOS); the logits at positions n_ctx/2 .. n_ctx-2 score the next token.
        Returns dict(ppl, err, nll per scored token, ppl after each chunk)."""
        tokens = list(tokens)
        if len(tokens) < 2 * n_ctx:
            raise OracleError(f"need at least {2 * n_ctx} tokens for a context of {n_ctx}, got {len(tokens)}")
        n_chunk = len(tokens) // n_ctx
        if n_chunks is not None and n_chunks >= 0:
            n_chunk = min(n_chunk, n_chunks)
        first = n_ctx // 2
        nlls, running = [], []
        for i in range(n_chunk):
            chunk = tokens[i * n_ctx:(i + 1) * n_ctx]
            if self.cfg.add_bos:
                if self.cfg.bos_id is None:
                    raise OracleError("the vocab adds BOS but has no tokenizer.ggml.bos_token_id")
                chunk[0] = int(self.cfg.bos_id)
            rows = np.arange(first, n_ctx - 1)
            logits = self.forward(chunk, logit_rows=rows)  # [n_ctx - 1 - first, n_vocab]
            targets = np.asarray(chunk[first + 1:n_ctx])
            lp = log_softmax(logits)[np.arange(len(targets)), targets]
            nlls.extend((-lp).tolist())
            running.append(math.exp(sum(nlls) / len(nlls)))
            if progress:
                progress(i, running[-1])
        nll = np.asarray(nlls)
        count = len(nll)
        mean = nll.mean()
        var = (nll * nll).mean() - mean * mean
        ppl = math.exp(mean)
        err = math.sqrt(var / (count - 1)) * ppl if var > 0 else float("nan")
        return {"ppl": ppl, "err": err, "n_chunks": n_chunk, "n_ctx": n_ctx, "count": count,
                "chunk_ppl": running, "nll": nll.tolist()}


# ---- CLI ----

def parse_ids(text):
    """Token ids separated by spaces, commas or newlines; [brackets] as llama-tokenize --ids prints."""
    return [int(t) for t in text.replace(",", " ").replace("[", " ").replace("]", " ").split()]


def save_dump(dump, directory, dtype):
    os.makedirs(directory, exist_ok=True)
    for name, value in dump.items():
        np.save(os.path.join(directory, name + ".npy"), np.asarray(value, dtype=dtype))


def cmd_logits(model, args):
    dump = {} if args.dump else None
    logits = model.forward(parse_ids(args.tokens), dump=dump)
    if args.dump:
        save_dump(dump, args.dump, np.float32 if args.dump_dtype == "f32" else np.float64)
    last = logits[-1]
    order = np.argsort(last)[::-1][:args.top]
    print(f"n_tokens {len(logits)}  n_vocab {logits.shape[1]}  top-2 margin {last[order[0]] - last[order[1]]:.6g}")
    for rank, tok in enumerate(order):
        print(f"{rank:3d}  id {tok:7d}  logit {last[tok]: .10f}")
    if args.out:
        np.save(args.out, logits if args.all else last)


def cmd_greedy(model, args):
    steps = model.greedy(parse_ids(args.tokens), args.n_predict, stop_at_eog=not args.ignore_eos)
    for i, s in enumerate(steps):
        flag = "  NEAR-TIE" if s["margin"] < args.near_tie else ""
        print(f"{i:3d}  id {s['id']:7d}  logit {s['logit']: .6f}  second {s['second_id']:7d}  "
              f"margin {s['margin']:.6g}{flag}")
    print("ids: " + ",".join(str(s["id"]) for s in steps))
    print(f"min margin: {min(s['margin'] for s in steps):.6g}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"model": os.path.basename(args.model), "prompt": parse_ids(args.tokens), "steps": steps}, f,
                      indent=1)


def cmd_perplexity(model, args):
    with open(args.tokens_file) as f:
        tokens = parse_ids(f.read())

    def progress(i, ppl):
        print(f"[{i + 1}]{ppl:.4f},", end="", flush=True)

    r = model.perplexity(tokens, args.ctx, args.chunks, progress)
    print()
    print(f"Final estimate: PPL = {r['ppl']:.4f} +/- {r['err']:.5f}")
    print(f"exact: ppl {r['ppl']!r} over {r['count']} tokens in {r['n_chunks']} chunks of {r['n_ctx']}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"model": os.path.basename(args.model), **r}, f)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--cache-gb", type=float, default=float(os.environ.get("STRATA_ORACLE_CACHE_GB", 4)),
                   help="keep dequantized weights as float64 when they fit in this many GiB")
    sub = p.add_subparsers(dest="cmd", required=True)
    lg = sub.add_parser("logits", help="logits of the given tokens")
    lg.add_argument("model")
    lg.add_argument("--tokens", required=True, help="comma-separated token ids")
    lg.add_argument("--all", action="store_true", help="--out saves all positions [n_tokens, n_vocab]")
    lg.add_argument("--out", help="save the last token's logits (float64 .npy)")
    lg.add_argument("--top", type=int, default=10)
    lg.add_argument("--dump", metavar="DIR", help="write named intermediates as .npy")
    lg.add_argument("--dump-dtype", choices=["f32", "f64"], default="f32")
    gr = sub.add_parser("greedy", help="greedy continuation with the top-2 margin of each step")
    gr.add_argument("model")
    gr.add_argument("--tokens", required=True)
    gr.add_argument("-n", "--n-predict", type=int, default=32)
    gr.add_argument("--ignore-eos", action="store_true", help="do not stop at EOS/EOT")
    gr.add_argument("--near-tie", type=float, default=1e-3, help="flag steps with a margin below this")
    gr.add_argument("--json", help="write steps as JSON")
    pp = sub.add_parser("perplexity", help="llama.cpp-style perplexity over a token-id file")
    pp.add_argument("model")
    pp.add_argument("--tokens-file", required=True, help="token ids separated by spaces, commas or newlines (llama-tokenize --ids output works)")
    pp.add_argument("-c", "--ctx", type=int, default=128)
    pp.add_argument("--chunks", type=int, default=None)
    pp.add_argument("--json", help="write the result (with per-token NLL) as JSON")
    args = p.parse_args(argv)
    try:
        model = ExactModel(args.model, cache_gb=args.cache_gb)
        {"logits": cmd_logits, "greedy": cmd_greedy, "perplexity": cmd_perplexity}[args.cmd](model, args)
    except (OracleError, OSError, ValueError) as e:
        sys.exit(f"exact_llama: error: {e}")


if __name__ == "__main__":
    main()
