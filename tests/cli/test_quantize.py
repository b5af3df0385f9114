"""End-to-end tests of `strata quantize`, checked against the `gguf` Python package:
(1) our dequantization of random blocks of every type equals gguf.quants.dequantize bit for bit,
(2) files we quantize decode with gguf exactly as with Strata, and legacy types equal gguf's
reference quantizer byte for byte, (3) the per-tensor type mixes, (4) errors."""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import strata_test  # noqa: E402
from strata_test import TempDirTest, run_strata  # noqa: E402

import gguf  # noqa: E402
from gguf import GGMLQuantizationType as Q  # noqa: E402

# Byte offsets of the f16 scale fields in each block (the rest of a block may be random).
SCALE_OFFSETS = {
    Q.Q4_0: [0], Q.Q4_1: [0, 2], Q.Q5_0: [0], Q.Q5_1: [0, 2], Q.Q8_0: [0],
    Q.Q2_K: [80, 82], Q.Q3_K: [108], Q.Q4_K: [0, 2], Q.Q5_K: [0, 2], Q.Q6_K: [208],
    Q.IQ4_NL: [0], Q.IQ4_XS: [0],
}
N_LAYER = 8
N_EMBD = 256
N_FF = 96  # not a multiple of 256: ffn_down needs a fallback type under the K-quants
N_VOCAB = 64


def random_blocks(rng, qtype, n_rows, ne0):
    """Random bytes for n_rows rows of a quantized type, with finite, moderate f16 scales."""
    block, size = gguf.GGML_QUANT_SIZES[qtype]
    n_blocks = n_rows * ne0 // block
    raw = rng.integers(0, 256, size=(n_blocks, size), dtype=np.uint8)
    for off in SCALE_OFFSETS.get(qtype, []):
        scales = (rng.uniform(-2.0, 2.0, size=n_blocks) * 2.0 ** rng.integers(-12, 2, size=n_blocks)).astype(np.float16)
        raw[:, off:off + 2] = scales.view(np.uint8).reshape(n_blocks, 2)
    return raw.reshape(n_rows, ne0 // block * size)


def write_model(path, tensors, arch="llama"):
    """tensors: list of (name, ndarray) with f32/f16 data, or (name, raw uint8, qtype)."""
    w = gguf.GGUFWriter(path, arch)
    w.add_block_count(N_LAYER)
    w.add_head_count(4)
    w.add_head_count_kv(2)
    w.add_embedding_length(N_EMBD)
    for t in tensors:
        if len(t) == 2:
            w.add_tensor(t[0], t[1])
        else:
            w.add_tensor(t[0], t[1], raw_dtype=t[2])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def read_tensors(path):
    """name -> (qtype, dequantized f32 array in numpy order [.., ne0])."""
    out = {}
    for t in gguf.GGUFReader(path).tensors:
        shape = tuple(int(x) for x in reversed(t.shape))
        qtype = Q(t.tensor_type)
        if qtype == Q.F32:
            values = np.asarray(t.data, dtype=np.float32).reshape(shape)
        elif qtype == Q.F16:
            values = np.asarray(t.data, dtype=np.float16).astype(np.float32).reshape(shape)
        else:
            values = gguf.quants.dequantize(np.asarray(t.data, dtype=np.uint8), qtype).reshape(shape)
        out[t.name] = (qtype, np.ascontiguousarray(values, dtype=np.float32))
    return out


def llama_model(rng):
    """A tiny llama-shaped f32 model."""
    def w(*shape):
        return (rng.standard_normal(shape) * 0.05).astype(np.float32)
    tensors = [("token_embd.weight", w(N_VOCAB, N_EMBD))]
    for i in range(N_LAYER):
        p = f"blk.{i}."
        tensors += [
            (p + "attn_norm.weight", 1 + w(N_EMBD)),
            (p + "attn_q.weight", w(N_EMBD, N_EMBD)),
            (p + "attn_k.weight", w(N_EMBD // 2, N_EMBD)),
            (p + "attn_v.weight", w(N_EMBD // 2, N_EMBD)),
            (p + "attn_output.weight", w(N_EMBD, N_EMBD)),
            (p + "ffn_norm.weight", 1 + w(N_EMBD)),
            (p + "ffn_gate.weight", w(N_FF, N_EMBD)),
            (p + "ffn_up.weight", w(N_FF, N_EMBD)),
            (p + "ffn_down.weight", w(N_EMBD, N_FF)),
        ]
    tensors += [("output_norm.weight", 1 + w(N_EMBD)), ("output.weight", w(N_VOCAB, N_EMBD))]
    return tensors


def bits_equal(a, b):
    return a.shape == b.shape and np.array_equal(a.view(np.uint32), b.view(np.uint32))


class DequantizeMatchesGguf(TempDirTest):
    def test_every_type_bit_exact(self):
        rng = np.random.default_rng(1234)
        tensors = []
        for qtype in SCALE_OFFSETS:
            tensors.append((f"{qtype.name.lower()}.weight", random_blocks(rng, qtype, 3, 512), qtype))
        tensors.append(("f16.weight", rng.standard_normal((3, 512)).astype(np.float16)))
        bf16_bits = rng.integers(0, 1 << 16, size=(3, 512), dtype=np.uint16)
        bf16_bits[(bf16_bits & 0x7F80) == 0x7F80] &= 0xBFFF  # keep values finite
        tensors.append(("bf16.weight", bf16_bits.view(np.uint8).reshape(3, 1024), Q.BF16))
        src = self.path("random.gguf")
        write_model(src, tensors)
        out = self.path("f32.gguf")
        run_strata("quantize", src, out, "f32", "-q", check=True)
        expected = read_tensors(src)
        ours = read_tensors(out)
        for name, (qtype, values) in expected.items():
            with self.subTest(type=qtype.name):
                self.assertEqual(ours[name][0], Q.F32)
                self.assertTrue(bits_equal(ours[name][1], values), f"{qtype.name}: dequantized values differ from gguf")


class QuantizedFilesMatchGguf(TempDirTest):
    def setUp(self):
        super().setUp()
        self.src = self.path("model-f32.gguf")
        self.original = {name: data for name, data in llama_model(np.random.default_rng(7))}
        write_model(self.src, list(self.original.items()))

    def quantize(self, preset):
        out = self.path(f"model-{preset}.gguf")
        run_strata("quantize", self.src, out, preset, "-q", "-t", "2", check=True)
        back = self.path(f"model-{preset}-f32.gguf")
        run_strata("quantize", out, back, "f32", "-q", check=True)
        return read_tensors(out), read_tensors(back)

    # Worst per-tensor NMSE against the f32 original allowed per preset: about 1.5x what the
    # reference quantizers reach on these Gaussian weights (q4_0 0.0075, q2_k 0.083, q6_k 3.2e-4,
    # ...), so a quantizer that gets worse fails here.
    MAX_NMSE = {"q8_0": 5e-5, "q4_0": 0.012, "q4_1": 0.01, "q5_0": 0.003, "q5_1": 0.0025, "q2_k": 0.12,
                "q3_k_m": 0.035, "q4_k_s": 0.008, "q4_k_m": 0.008, "q5_k_s": 0.0025, "q5_k_m": 0.0025,
                "q6_k": 5e-4, "f16": 1e-7, "bf16": 5e-6}

    def test_gguf_decodes_our_files_as_we_do(self):
        for preset, max_nmse in self.MAX_NMSE.items():
            with self.subTest(preset=preset):
                quantized, ours = self.quantize(preset)
                for name, (qtype, values) in quantized.items():
                    self.assertTrue(bits_equal(ours[name][1], values), f"{preset} {name} ({qtype.name})")
                    orig = self.original[name]
                    nmse = float(np.sum((values - orig) ** 2) / np.sum(orig ** 2))
                    self.assertLess(nmse, max_nmse, f"{preset} {name} ({qtype.name}) is far from the original")

    def test_legacy_types_equal_gguf_reference_quantizer(self):
        for preset, qtype in [("q8_0", Q.Q8_0), ("q4_0", Q.Q4_0), ("q4_1", Q.Q4_1), ("q5_0", Q.Q5_0),
                              ("q5_1", Q.Q5_1), ("bf16", Q.BF16)]:
            out = self.path(f"model-{preset}.gguf")
            run_strata("quantize", self.src, out, preset, "-q", check=True)
            reader = gguf.GGUFReader(out)
            for t in reader.tensors:
                if Q(t.tensor_type) != qtype:
                    continue
                with self.subTest(preset=preset, tensor=t.name):
                    expected = gguf.quants.quantize(self.original[t.name], qtype)
                    self.assertTrue(np.array_equal(np.asarray(t.data).reshape(-1).view(np.uint8),
                                                   expected.reshape(-1).view(np.uint8)))

    def test_mixes(self):
        types, _ = self.quantize("q4_k_m")
        t = {name: q for name, (q, _) in types.items()}
        self.assertEqual(t["output.weight"], Q.Q6_K)
        self.assertEqual(t["token_embd.weight"], Q.Q4_K)
        self.assertEqual(t["blk.0.attn_norm.weight"], Q.F32)
        self.assertEqual(t["blk.0.attn_q.weight"], Q.Q4_K)
        # use_more_bits: first and last eighth and every third layer between get Q6_K.
        more = [i for i in range(N_LAYER) if i < N_LAYER // 8 or i >= 7 * N_LAYER // 8 or (i - N_LAYER // 8) % 3 == 2]
        for i in range(N_LAYER):
            self.assertEqual(t[f"blk.{i}.attn_v.weight"], Q.Q6_K if i in more else Q.Q4_K, f"layer {i}")
            # rows of 96 do not hold 256-element blocks: Q6_K falls back to Q8_0, Q4_K to Q5_0
            self.assertEqual(t[f"blk.{i}.ffn_down.weight"], Q.Q8_0 if i in more else Q.Q5_0, f"layer {i}")
        types, _ = self.quantize("q4_0")
        t = {name: q for name, (q, _) in types.items()}
        self.assertEqual(t["output.weight"], Q.Q6_K)
        self.assertEqual(t["blk.3.ffn_down.weight"], Q.Q4_0)
        file_type = gguf.GGUFReader(self.path("model-q4_0.gguf")).fields["general.file_type"]
        self.assertEqual(int(file_type.parts[-1][0]), 2)

    def test_tied_embeddings_get_output_type(self):
        src = self.path("tied.gguf")
        write_model(src, [(n, d) for n, d in self.original.items() if n != "output.weight"])
        out = self.path("tied-q4_0.gguf")
        run_strata("quantize", src, out, "q4_0", "-q", check=True)
        types = read_tensors(out)
        self.assertEqual(types["token_embd.weight"][0], Q.Q6_K)


class QuantizeErrors(TempDirTest):
    def test_unknown_type(self):
        src = self.path("m.gguf")
        write_model(src, [("a.weight", np.ones((2, 32), dtype=np.float32))])
        proc = run_strata("quantize", src, self.path("o.gguf"), "q7_z")
        self.assertEqual(proc.returncode, 1)
        self.assertIn("unknown quantization type 'q7_z'", proc.stderr)
        self.assertIn("q4_k_m", proc.stderr)
        self.assertFalse(os.path.exists(self.path("o.gguf")))

    def test_missing_input(self):
        proc = run_strata("quantize", self.path("absent.gguf"), self.path("o.gguf"), "q4_0")
        self.assertEqual(proc.returncode, 1)
        self.assertTrue(proc.stderr.startswith("error: "), proc.stderr)
        self.assertIn("absent.gguf", proc.stderr)

    def test_type_strata_cannot_compute(self):
        src = self.path("iq2.gguf")
        raw = np.zeros((2, 66), dtype=np.uint8)  # two IQ2_XXS blocks of 256
        write_model(src, [("blk.0.attn_q.weight", raw, Q.IQ2_XXS)])
        out = self.path("o.gguf")
        proc = run_strata("quantize", src, out, "q4_0")
        self.assertEqual(proc.returncode, 1)
        self.assertIn("blk.0.attn_q.weight", proc.stderr)
        self.assertIn("iq2_xxs", proc.stderr)
        self.assertFalse(os.path.exists(out))
        self.assertFalse(os.path.exists(out + ".tmp"))

    def test_unwritable_output(self):
        src = self.path("m.gguf")
        write_model(src, [("a.weight", np.ones((2, 32), dtype=np.float32))])
        proc = run_strata("quantize", src, self.path("no/such/dir/o.gguf"), "q8_0")
        self.assertEqual(proc.returncode, 1)
        self.assertIn("o.gguf", proc.stderr)

    def test_requantizing_needs_allow_requantize(self):
        src = self.path("q.gguf")
        rng = np.random.default_rng(5)
        write_model(src, [("blk.0.attn_q.weight", random_blocks(rng, Q.Q4_0, 4, 64), Q.Q4_0),
                          ("blk.0.attn_norm.weight", np.ones(64, dtype=np.float32))])
        out = self.path("o.gguf")
        proc = run_strata("quantize", src, out, "q8_0")
        self.assertEqual(proc.returncode, 1)
        self.assertEqual(len(proc.stderr.splitlines()), 1, proc.stderr)
        self.assertIn("already quantized ('blk.0.attn_q.weight' is q4_0)", proc.stderr)
        self.assertIn("--allow-requantize", proc.stderr)
        self.assertFalse(os.path.exists(out))
        run_strata("quantize", src, out, "q8_0", "--allow-requantize", "-q", check=True)
        self.assertEqual(read_tensors(out)["blk.0.attn_q.weight"][0], Q.Q8_0)
        run_strata("quantize", src, self.path("f32.gguf"), "f32", "-q", check=True)  # exact: no flag needed

    def test_fallbacks_are_one_line_per_kind(self):
        src = self.path("m.gguf")
        write_model(src, llama_model(np.random.default_rng(3)))
        proc = run_strata("quantize", src, self.path("o.gguf"), "q4_k_m", "-v", check=True)
        warnings = [line for line in proc.stderr.splitlines() if line.startswith("warning: ")]
        per_tensor = [line for line in proc.stderr.splitlines() if "  # " in line]  # -v: each with its reason
        self.assertGreaterEqual(len(per_tensor), N_LAYER)  # ffn_gate/up/down rows of 96 or 256 per layer
        self.assertLess(len(warnings), len(per_tensor))
        counts = [int(line.split()[1]) for line in warnings]
        self.assertEqual(sum(counts), len(per_tensor))
        notes = {line.split("  # ")[1] for line in per_tensor}
        self.assertEqual(len(warnings), len(notes))
        for line in warnings:
            self.assertRegex(line, r"^warning: \d+ tensors? \(")

    def test_summary_and_quiet(self):
        src = self.path("m.gguf")
        write_model(src, [("a.weight", np.ones((2, 32), dtype=np.float32))])
        proc = run_strata("quantize", src, self.path("o.gguf"), "q8_0", check=True)
        self.assertIn("quantize: 1 tensors (1 converted)", proc.stderr)
        self.assertEqual(proc.stdout, "")
        proc = run_strata("quantize", src, self.path("o2.gguf"), "q8_0", "-q", check=True)
        self.assertEqual(proc.stderr, "")


if __name__ == "__main__":
    strata_test.main()
