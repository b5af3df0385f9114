#!/usr/bin/env python3
"""Self-checks of the exact oracle (exact_llama.py) and the synthetic-model generator
(scripts/make-synthetic-model): the oracle against a naive loop-by-loop implementation on tiny
models, RoPE and attention identities, perplexity of a uniform model, and generator properties.
Exits 77 (CTest: skipped) when numpy or gguf is missing."""
import math
import os
import subprocess
import sys
import tempfile
import unittest

try:
    import numpy as np
    import gguf
except ImportError as e:  # pragma: no cover
    print(f"skipped: {e}")
    sys.exit(77)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
GENERATOR = os.path.join(ROOT, "scripts", "make-synthetic-model")
VOCAB_FIXTURE = os.path.join(ROOT, "..", "shared", "fixtures", "vocab", "ggml-vocab-llama-spm.gguf")
sys.path.insert(0, HERE)
import exact_llama as ex  # noqa: E402

TINY = ["--n-embd", "16", "--n-layer", "2", "--n-head", "4", "--n-head-kv", "2", "--n-ff", "24",
        "--n-vocab", "300", "--n-ctx", "64", "-q"]


def generate(path, *extra):
    subprocess.run([sys.executable, GENERATOR, "-o", path, *extra], check=True)
    return path


# ---- a naive reference: scalar loops over plain Python floats ----

def naive_logits(path, tokens):
    """Logits [n_tokens][n_vocab] of an f32 llama/qwen2 file, one scalar at a time."""
    r = gguf.GGUFReader(path)
    md = {k: f.contents() for k, f in r.fields.items() if not k.startswith("tokenizer.")}
    arch = md["general.architecture"]
    W = {t.name: np.array(t.data, dtype=np.float64).reshape([int(d) for d in reversed(t.shape)]).tolist()
         for t in r.tensors}
    n_embd, n_head = md[f"{arch}.embedding_length"], md[f"{arch}.attention.head_count"]
    n_kv, n_layer = md[f"{arch}.attention.head_count_kv"], md[f"{arch}.block_count"]
    eps, base = md[f"{arch}.attention.layer_norm_rms_epsilon"], md[f"{arch}.rope.freq_base"]
    hd = n_embd // n_head
    n_rot = md.get(f"{arch}.rope.dimension_count", hd)
    freq_scale = 1.0 / md[f"{arch}.rope.scaling.factor"] if f"{arch}.rope.scaling.factor" in md else 1.0
    factors = W.get("rope_freqs.weight", [1.0] * (n_rot // 2))
    neox = arch == "qwen2"

    def matvec(name, x, bias=None):
        out = []
        for j, row in enumerate(W[name]):
            s = 0.0
            for i, w in enumerate(row):
                s += w * x[i]
            out.append(s + (W[bias][j] if bias in W else 0.0))
        return out

    def norm(x, name):
        ms = sum(v * v for v in x) / len(x)
        return [v / math.sqrt(ms + eps) * w for v, w in zip(x, W[name])]

    def rotate(vec, pos):
        vec = list(vec)
        for i in range(n_rot // 2):
            theta = pos * freq_scale * base ** (-2.0 * i / n_rot) / factors[i]
            a, b = (i, i + n_rot // 2) if neox else (2 * i, 2 * i + 1)
            va, vb = vec[a], vec[b]
            vec[a] = va * math.cos(theta) - vb * math.sin(theta)
            vec[b] = va * math.sin(theta) + vb * math.cos(theta)
        return vec

    kcache = [[] for _ in range(n_layer)]
    vcache = [[] for _ in range(n_layer)]
    out_name = "output.weight" if "output.weight" in W else "token_embd.weight"
    all_logits = []
    for pos, tok in enumerate(tokens):
        x = list(W["token_embd.weight"][tok])
        for il in range(n_layer):
            p = f"blk.{il}."
            h = norm(x, p + "attn_norm.weight")
            q = matvec(p + "attn_q.weight", h, p + "attn_q.bias")
            k = matvec(p + "attn_k.weight", h, p + "attn_k.bias")
            v = matvec(p + "attn_v.weight", h, p + "attn_v.bias")
            qh = [rotate(q[i * hd:(i + 1) * hd], pos) for i in range(n_head)]
            kcache[il].append([rotate(k[i * hd:(i + 1) * hd], pos) for i in range(n_kv)])
            vcache[il].append([v[i * hd:(i + 1) * hd] for i in range(n_kv)])
            attn = []
            for hh in range(n_head):
                g = hh // (n_head // n_kv)
                scores = [sum(a * b for a, b in zip(qh[hh], kcache[il][t][g])) / math.sqrt(hd) for t in range(pos + 1)]
                m = max(scores)
                e = [math.exp(s - m) for s in scores]
                z = sum(e)
                attn += [sum(e[t] / z * vcache[il][t][g][d] for t in range(pos + 1)) for d in range(hd)]
            o = matvec(p + "attn_output.weight", attn)
            x = [a + b for a, b in zip(x, o)]
            h = norm(x, p + "ffn_norm.weight")
            gate = matvec(p + "ffn_gate.weight", h)
            up = matvec(p + "ffn_up.weight", h)
            act = [gv / (1.0 + math.exp(-gv)) * uv for gv, uv in zip(gate, up)]
            x = [a + b for a, b in zip(x, matvec(p + "ffn_down.weight", act))]
        all_logits.append(matvec(out_name, norm(x, "output_norm.weight")))
    return np.array(all_logits)


class OracleTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls._tmp = tempfile.TemporaryDirectory(prefix="strata-oracle-")
        d = cls._tmp.name
        cls.llama = generate(os.path.join(d, "llama.gguf"), "--type", "f32", "--seed", "3", *TINY)
        cls.llama3 = generate(os.path.join(d, "llama3.gguf"), "--type", "f32", "--rope-scaling", "llama3",
                              "--rope-base", "500000", *TINY)
        cls.qwen2 = generate(os.path.join(d, "qwen2.gguf"), "--type", "f32", "--arch", "qwen2", "--tied",
                             "--rope-scaling", "linear:2", *TINY)
        cls.tokens = [1, 77, 5, 299, 123, 77, 42]

    @classmethod
    def tearDownClass(cls):
        cls._tmp.cleanup()

    def assert_close(self, a, b, tol=1e-9):
        a, b = np.asarray(a), np.asarray(b)
        self.assertEqual(a.shape, b.shape)
        err = np.max(np.abs(a - b)) / max(1e-30, np.max(np.abs(b)))
        self.assertLess(err, tol, f"relative max error {err}")

    def check_against_naive(self, path):
        model = ex.ExactModel(path)
        expected = naive_logits(path, self.tokens)
        self.assertGreater(np.std(expected), 0.1)  # a real signal, not all zeros
        self.assert_close(model.forward(self.tokens), expected)
        # The same through the KV cache, one token at a time and in two batches.
        cache = model.new_cache()
        stepwise = np.concatenate([model.forward([t], cache) for t in self.tokens])
        self.assert_close(stepwise, expected)
        cache = model.new_cache()
        split = np.concatenate([model.forward(self.tokens[:3], cache), model.forward(self.tokens[3:], cache)])
        self.assert_close(split, expected)

    def test_llama_matches_naive(self):
        self.check_against_naive(self.llama)

    def test_llama3_rope_factors_match_naive(self):
        self.assertTrue(ex.ExactModel(self.llama3).has("rope_freqs.weight"))
        self.check_against_naive(self.llama3)

    def test_qwen2_tied_neox_biases_linear_scaling_match_naive(self):
        model = ex.ExactModel(self.qwen2)
        self.assertEqual(model.cfg.rope_style, "neox")
        self.assertEqual(model.output_name, "token_embd.weight")
        self.assertAlmostEqual(model.cfg.freq_scale, 0.5)
        self.assertTrue(model.has("blk.0.attn_q.bias"))
        self.check_against_naive(self.qwen2)

    def test_experts_match_naive(self):
        """The mixture of experts of Mixtral and Qwen3-MoE files against a per-token loop:
        softmax over all router logits, the top n_used, renormalised, each expert's SwiGLU."""
        for arch, used, ff_exp in (("mixtral", 2, []), ("qwen3moe", 3, ["--n-ff-exp", "8"])):
            path = generate(os.path.join(self._tmp.name, f"{arch}.gguf"), "--type", "f32", "--arch", arch,
                            "--n-expert", "6", "--n-expert-used", str(used), "--head-dim", "4", *ff_exp, *TINY)
            model = ex.ExactModel(path)
            self.assertEqual((model.cfg.n_expert, model.cfg.n_expert_used), (6, used))
            self.assertEqual(model.cfg.n_ff_exp, 24 if arch == "mixtral" else 8)
            dump = {}
            model.forward(self.tokens, dump=dump)
            p = "blk.1."
            cur = dump[p + "ffn_norm"]
            w_inp, gate, up, down = (model.weight(p + n + ".weight")
                                     for n in ("ffn_gate_inp", "ffn_gate_exps", "ffn_up_exps", "ffn_down_exps"))
            want = np.zeros_like(cur)
            for t in range(len(self.tokens)):
                logits = [float(np.dot(w_inp[e], cur[t])) for e in range(6)]
                probs = [math.exp(v - max(logits)) for v in logits]
                probs = [q / sum(probs) for q in probs]
                chosen = sorted(range(6), key=lambda e: -logits[e])[:used]
                norm = sum(probs[e] for e in chosen)
                for e in chosen:
                    g, u = gate[e] @ cur[t], up[e] @ cur[t]
                    want[t] += probs[e] / norm * (down[e] @ (g / (1 + np.exp(-g)) * u))
            self.assert_close(dump[p + "ffn_out"], want)
            self.assertEqual(dump[p + "ffn_moe_weights"].shape, (len(self.tokens), used))
            # The KV cache path gives the same logits.
            cache = model.new_cache()
            self.assert_close(np.concatenate([model.forward([t], cache) for t in self.tokens]),
                              model.forward(self.tokens))

    def test_expert_files(self):
        path = generate(os.path.join(self._tmp.name, "mx.gguf"), "--type", "q8_0", "--arch", "mixtral", "--n-embd",
                        "64", "--n-layer", "1", "--n-head", "4", "--n-head-kv", "2", "--n-ff", "64", "--n-vocab",
                        "300", "-q")
        r = gguf.GGUFReader(path)
        md = {k: f.contents() for k, f in r.fields.items()}
        self.assertEqual(md["general.architecture"], "llama")  # Mixtral files are llama files with experts
        self.assertEqual((md["llama.expert_count"], md["llama.expert_used_count"]), (8, 2))
        types = {t.name: t.tensor_type for t in r.tensors}
        shapes = {t.name: [int(d) for d in t.shape] for t in r.tensors}
        self.assertEqual(shapes["blk.0.ffn_gate_exps.weight"], [64, 64, 8])  # GGUF order: [n_embd, n_ff, n_expert]
        self.assertEqual(shapes["blk.0.ffn_down_exps.weight"], [64, 64, 8])
        self.assertEqual(shapes["blk.0.ffn_gate_inp.weight"], [64, 8])
        self.assertEqual(types["blk.0.ffn_gate_inp.weight"], gguf.GGMLQuantizationType.F32)
        self.assertEqual(types["blk.0.ffn_up_exps.weight"], gguf.GGMLQuantizationType.Q8_0)
        self.assertNotIn("blk.0.ffn_gate.weight", types)
        q = generate(os.path.join(self._tmp.name, "q.gguf"), "--type", "f16", "--arch", "qwen3moe", *TINY)
        md = {k: f.contents() for k, f in gguf.GGUFReader(q).fields.items()}
        self.assertEqual((md["qwen3moe.expert_count"], md["qwen3moe.expert_used_count"]), (16, 4))
        self.assertEqual(md["qwen3moe.expert_feed_forward_length"], 256)

    def test_rope_identities(self):
        rng = np.random.default_rng(0)
        x = rng.standard_normal((5, 3, 8))
        for style in ("norm", "neox"):
            y = ex.rope(x, np.arange(5) * 7, 8, 10000.0, style=style)
            np.testing.assert_allclose(np.linalg.norm(y, axis=-1), np.linalg.norm(x, axis=-1), rtol=1e-12)
            np.testing.assert_array_equal(ex.rope(x, np.zeros(5), 8, 10000.0, style=style), x)
            # Scores depend only on the distance: <R(m)q, R(n)k> == <R(m+d)q, R(n+d)k>.
            q, k = x[0:1], x[1:2]
            a = np.sum(ex.rope(q, [9], 8, 1e4, style=style) * ex.rope(k, [4], 8, 1e4, style=style))
            b = np.sum(ex.rope(q, [30], 8, 1e4, style=style) * ex.rope(k, [25], 8, 1e4, style=style))
            self.assertAlmostEqual(a, b, places=10)
            self.assertGreater(abs(a - np.sum(q * k)), 1e-6)  # and rope does rotate
        # The two styles pair different elements.
        y_norm = ex.rope(x, [3] * 5, 8, 1e4, style="norm")
        y_neox = ex.rope(x, [3] * 5, 8, 1e4, style="neox")
        self.assertGreater(np.max(np.abs(y_norm - y_neox)), 1e-3)
        # Partial rotation leaves the tail alone.
        np.testing.assert_array_equal(ex.rope(x, [5] * 5, 4, 1e4)[..., 4:], x[..., 4:])

    def test_single_token_attention_is_v(self):
        model = ex.ExactModel(self.llama)
        dump = {}
        model.forward([42], dump=dump)
        group = model.cfg.n_head // model.cfg.n_head_kv
        for il in range(model.cfg.n_layer):
            v = dump[f"blk.{il}.v"].reshape(1, model.cfg.n_head_kv, -1)
            expected = np.repeat(v, group, axis=1).reshape(1, -1)
            np.testing.assert_allclose(dump[f"blk.{il}.attn_out"], expected, rtol=1e-12, atol=1e-14)

    def test_dump_names_and_shapes(self):
        model = ex.ExactModel(self.llama)
        dump = {}
        model.forward(self.tokens, dump=dump)
        n, c = len(self.tokens), model.cfg
        expect = {"inp_embd": c.n_embd, "result_norm": c.n_embd, "logits": model.n_vocab}
        for il in range(c.n_layer):
            for name, width in [("attn_norm", c.n_embd), ("q", c.n_embd), ("k", 8), ("v", 8), ("q_rope", c.n_embd),
                                ("k_rope", 8), ("attn_out", c.n_embd), ("attn_proj", c.n_embd),
                                ("ffn_inp", c.n_embd), ("ffn_norm", c.n_embd), ("ffn_gate", c.n_ff),
                                ("ffn_up", c.n_ff), ("ffn_act", c.n_ff), ("ffn_out", c.n_embd), ("out", c.n_embd)]:
                expect[f"blk.{il}.{name}"] = width
        self.assertEqual(set(dump), set(expect))
        for name, width in expect.items():
            self.assertEqual(dump[name].shape, (n, width), name)
        np.testing.assert_allclose(dump["blk.0.ffn_inp"], dump["inp_embd"] + dump["blk.0.attn_proj"], rtol=1e-12)
        np.testing.assert_allclose(dump["blk.1.out"], dump["blk.1.ffn_inp"] + dump["blk.1.ffn_out"], rtol=1e-12)

    def test_uniform_model_perplexity_is_vocab_size(self):
        path = os.path.join(self._tmp.name, "uniform.gguf")
        generate(path, "--type", "f32", *TINY)
        r = gguf.GGUFReader(path, "r+")
        out = next(t for t in r.tensors if t.name == "output.weight")
        out.data[...] = 0  # logits are all 0: every token has probability 1/n_vocab
        out.data.flush() if hasattr(out.data, "flush") else None
        del r
        model = ex.ExactModel(path)
        tokens = list(np.random.default_rng(1).integers(0, 300, 40))
        result = model.perplexity(tokens, 16)
        self.assertEqual(result["n_chunks"], 2)
        self.assertEqual(result["count"], 2 * (16 - 8 - 1))
        self.assertAlmostEqual(result["ppl"], 300.0, places=8)

    def test_perplexity_method(self):
        model = ex.ExactModel(self.llama)
        rng = np.random.default_rng(2)
        tokens = [int(t) for t in rng.integers(3, 300, 50)]
        r = model.perplexity(tokens, 16)
        self.assertEqual(r["n_chunks"], 3)  # 50 // 16, the tail is dropped
        # By hand: each chunk starts with BOS; positions 8..14 predict tokens 9..15.
        nll = []
        for i in range(3):
            chunk = [1] + tokens[i * 16 + 1:(i + 1) * 16]
            logits = model.forward(chunk)
            for pos in range(8, 15):
                z = logits[pos] - logits[pos].max()
                nll.append(math.log(np.exp(z).sum()) - z[chunk[pos + 1]])
        self.assertEqual(len(nll), r["count"])
        self.assertAlmostEqual(r["ppl"], math.exp(sum(nll) / len(nll)), places=9)
        mean = sum(nll) / len(nll)
        var = sum(v * v for v in nll) / len(nll) - mean * mean
        self.assertAlmostEqual(r["err"], math.sqrt(var / (len(nll) - 1)) * r["ppl"], places=6)
        self.assertEqual(len(r["chunk_ppl"]), 3)
        with self.assertRaises(ex.OracleError):
            model.perplexity(tokens[:31], 16)

    def test_greedy_margins(self):
        model = ex.ExactModel(self.llama)
        steps = model.greedy(self.tokens, 5, stop_at_eog=False)
        self.assertEqual(len(steps), 5)
        seq = list(self.tokens)
        for s in steps:
            logits = model.forward(seq)[-1]
            order = np.argsort(logits)[::-1]
            self.assertEqual(s["id"], order[0])
            self.assertAlmostEqual(s["margin"], logits[order[0]] - logits[order[1]], places=9)
            seq.append(s["id"])

    def test_cli(self):
        d = self._tmp.name
        ids = os.path.join(d, "ids.txt")
        with open(ids, "w") as f:  # the format of llama-tokenize --ids
            f.write("[" + ", ".join(str(t) for t in np.random.default_rng(3).integers(3, 300, 40)) + "]\n")
        self.assertEqual(ex.parse_ids("[1, 2,3]\n4 5"), [1, 2, 3, 4, 5])
        script = os.path.join(HERE, "exact_llama.py")
        out = subprocess.run([sys.executable, script, "perplexity", self.llama, "--tokens-file", ids, "-c", "16"],
                             check=True, capture_output=True, text=True).stdout
        self.assertRegex(out, r"\[1\][0-9.]+,\[2\][0-9.]+,")
        self.assertRegex(out, r"Final estimate: PPL = [0-9.]+ \+/- [0-9.]+")
        dump = os.path.join(d, "dump")
        npy = os.path.join(d, "logits.npy")
        subprocess.run([sys.executable, script, "logits", self.llama, "--tokens", "1,2,3", "--dump", dump,
                        "--out", npy, "--all"], check=True, capture_output=True)
        self.assertEqual(np.load(npy).shape, (3, 300))
        self.assertEqual(np.load(os.path.join(dump, "blk.1.ffn_act.npy")).shape, (3, 24))
        bad = subprocess.run([sys.executable, script, "logits", self.llama, "--tokens", "1,300"],
                             capture_output=True, text=True)
        self.assertNotEqual(bad.returncode, 0)
        self.assertIn("out of range", bad.stderr)


class GeneratorTest(unittest.TestCase):
    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="strata-gen-")
        self.d = self._tmp.name

    def tearDown(self):
        self._tmp.cleanup()

    def path(self, name):
        return os.path.join(self.d, name)

    def test_deterministic_and_seeded(self):
        a = generate(self.path("a.gguf"), "--type", "f16", "--seed", "5", *TINY)
        b = generate(self.path("b.gguf"), "--type", "f16", "--seed", "5", "--threads", "1", *TINY)
        c = generate(self.path("c.gguf"), "--type", "f16", "--seed", "6", *TINY)
        with open(a, "rb") as fa, open(b, "rb") as fb, open(c, "rb") as fc:
            da, db, dc = fa.read(), fb.read(), fc.read()
        self.assertEqual(da, db)
        self.assertNotEqual(da, dc)

    def test_metadata_and_tensors(self):
        path = generate(self.path("m.gguf"), "--type", "q8_0", "--n-embd", "64", "--n-layer", "2", "--n-head", "4",
                        "--n-head-kv", "1", "--n-ff", "96", "--n-vocab", "320", "--output-type", "f16", "-q")
        r = gguf.GGUFReader(path)
        md = {k: f.contents() for k, f in r.fields.items()}
        self.assertEqual(md["general.architecture"], "llama")
        self.assertEqual(md["llama.embedding_length"], 64)
        self.assertEqual(md["llama.attention.head_count_kv"], 1)
        self.assertEqual(md["llama.rope.dimension_count"], 16)
        self.assertEqual(md["general.file_type"], int(gguf.LlamaFileType.MOSTLY_Q8_0))
        self.assertEqual(len(md["tokenizer.ggml.tokens"]), 320)
        types = {t.name: t.tensor_type for t in r.tensors}
        shapes = {t.name: [int(d) for d in t.shape] for t in r.tensors}
        self.assertEqual(types["blk.1.ffn_down.weight"], gguf.GGMLQuantizationType.Q8_0)
        self.assertEqual(types["output.weight"], gguf.GGMLQuantizationType.F16)
        self.assertEqual(types["blk.0.attn_norm.weight"], gguf.GGMLQuantizationType.F32)
        self.assertEqual(shapes["token_embd.weight"], [64, 320])  # GGUF order: [n_embd, n_vocab]
        self.assertEqual(shapes["blk.0.attn_k.weight"], [64, 16])
        self.assertEqual(shapes["blk.0.ffn_down.weight"], [96, 64])
        self.assertEqual(len(r.tensors), 1 + 2 * 9 + 2)

    def test_quantized_file_holds_the_same_weights(self):
        f32 = generate(self.path("f32.gguf"), "--type", "f32", "--n-embd", "64", "--n-head", "4", "--n-head-kv",
                       "2", "--n-ff", "128", "--n-layer", "1", "--n-vocab", "300", "-q")
        q4 = generate(self.path("q4.gguf"), "--type", "q4_0", "--n-embd", "64", "--n-head", "4", "--n-head-kv",
                      "2", "--n-ff", "128", "--n-layer", "1", "--n-vocab", "300", "-q")
        a, b = ex.ExactModel(f32), ex.ExactModel(q4)
        for name in ("blk.0.ffn_up.weight", "token_embd.weight"):
            wa, wb = a.weight(name), b.weight(name)
            rel = np.sqrt(np.mean((wa - wb) ** 2) / np.mean(wa ** 2))
            self.assertLess(rel, 0.15, name)  # q4_0's error, not different weights
            self.assertGreater(rel, 1e-4, name)  # and it really is quantized
        # Scale: rows of W have std ~ 1/sqrt(cols), with per-row variation.
        w = a.weight("blk.0.ffn_up.weight")
        self.assertAlmostEqual(float(np.std(w)) * 8, 1.0, delta=0.15)
        self.assertGreater(np.std(np.std(w, axis=1)) / np.mean(np.std(w, axis=1)), 0.1)
        np.testing.assert_array_equal(a.weight("blk.0.attn_norm.weight"), b.weight("blk.0.attn_norm.weight"))

    def test_rejects_unachievable_types(self):
        for extra in (["--type", "q4_k_m"], ["--type", "q4_0", "--output-type", "q6_k"], ["--type", "nope"]):
            r = subprocess.run([sys.executable, GENERATOR, "-o", self.path("x.gguf"), *TINY, *extra],
                               capture_output=True, text=True)
            self.assertNotEqual(r.returncode, 0, extra)
            self.assertIn("make-synthetic-model:", r.stderr)
            self.assertFalse(os.path.exists(self.path("x.gguf")))

    @unittest.skipUnless(os.path.exists(VOCAB_FIXTURE), "shared vocab fixture not present")
    def test_vocab_from(self):
        path = generate(self.path("v.gguf"), "--type", "f32", "--vocab-from", VOCAB_FIXTURE,
                        *[a for a in TINY if a not in ("--n-vocab", "300")])
        src = gguf.GGUFReader(VOCAB_FIXTURE)
        dst = gguf.GGUFReader(path)
        for name, f in src.fields.items():
            if name.startswith("tokenizer."):
                self.assertIn(name, dst.fields)
                self.assertEqual(dst.fields[name].types, f.types, name)
                self.assertEqual(dst.fields[name].contents(), f.contents(), name)
        n = len(src.fields["tokenizer.ggml.tokens"].data)
        self.assertEqual(ex.ExactModel(path).n_vocab, n)


if __name__ == "__main__":
    result = unittest.main(exit=False, verbosity=2).result
    failed = len(result.failures) + len(result.errors)
    print(f"{result.testsRun - failed - len(result.skipped)} passed, {failed} failed, {len(result.skipped)} skipped")
    sys.exit(1 if failed else 0)
