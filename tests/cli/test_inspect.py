"""End-to-end tests of `strata inspect FILE [--json]`: files made by the `gguf` Python package
(an independent writer and reader), the committed malformed set (tests/data/gguf/malformed)
and a 7 GB sparse file whose data must not be read."""
import json
import os
import subprocess

import numpy as np

import strata_test
from strata_test import TempDirTest, run_strata

import gguf

HERE = os.path.dirname(os.path.abspath(__file__))
MALFORMED = os.path.join(HERE, "..", "data", "gguf", "malformed")

LONG_TEMPLATE = "{% for message in messages %}" + "x" * 500 + "{% endfor %}"
TOKENS = [f"tok{i}" for i in range(100)] + ["\u2581h\u00e9llo", "<0x0A>"]


def make_model(path):
    """A small file with every kind of metadata and a few tensors; returns the tensors (numpy order)."""
    w = gguf.GGUFWriter(path, "llama")
    w.add_name("inspect test")
    w.add_uint32("llama.context_length", 2048)
    w.add_float32("llama.attention.layer_norm_rms_epsilon", 1e-5)
    w.add_bool("tokenizer.ggml.add_bos_token", True)
    w.add_int64("test.i64", -(2**40))
    w.add_uint64("test.u64", 2**63 + 1)
    w.add_float64("test.f64", 0.1)
    w.add_string("tokenizer.chat_template", LONG_TEMPLATE)
    w.add_array("tokenizer.ggml.tokens", TOKENS)
    w.add_array("tokenizer.ggml.scores", [float(-i) for i in range(len(TOKENS))])
    w.add_array("test.short", [1, 2, 3])
    w.add_array("test.nested", [[1, 2], [3]])
    tensors = {
        "token_embd.weight": np.arange(64 * 3, dtype=np.float32).reshape(3, 64),
        "blk.0.attn_q.weight": np.ones((4, 64), dtype=np.float16),
        "output_norm.weight": np.ones(64, dtype=np.float32),
    }
    for name, t in tensors.items():
        w.add_tensor(name, t)
    q8 = np.zeros((2, 2 * 34), dtype=np.uint8)  # 2 rows of 64 q8_0 values = 2 blocks each
    w.add_tensor("blk.0.ffn_down.weight", q8, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return tensors


def read_manifest():
    cases = []
    with open(os.path.join(MALFORMED, "expected.txt")) as f:
        for line in f:
            line = line.rstrip("\n")
            if line and not line.startswith("#"):
                name, expected = line.split("\t", 1)
                cases.append((name, expected))
    return cases


class InspectTest(TempDirTest):
    def test_text_output(self):
        path = self.path("model.gguf")
        make_model(path)
        proc = run_strata("inspect", path)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        out = proc.stdout
        self.assertIn("GGUF version 3", out)
        self.assertIn("alignment 32", out)
        self.assertIn('"inspect test"', out)
        self.assertRegex(out, r"llama\.context_length\s+u32\s+2048\n")
        self.assertRegex(out, r"tokenizer\.ggml\.add_bos_token\s+bool\s+true\n")
        self.assertRegex(out, r"test\.i64\s+i64\s+-1099511627776\n")
        self.assertRegex(out, r"test\.u64\s+u64\s+9223372036854775809\n")
        # Long arrays are summarised: type, count, the first few items.
        self.assertRegex(out, r"tokenizer\.ggml\.tokens\s+arr\s+")
        self.assertIn('[str; 102] "tok0", "tok1", "tok2", "tok3", "tok4", ...', out)
        self.assertNotIn("tok50", out)
        self.assertIn("[f32; 102] 0, -1, -2, -3, -4, ...", out)
        self.assertIn("[i32; 3] 1, 2, 3", out)
        self.assertIn("[arr; 2] [1, 2], [3]", out)
        # Long strings are cut and say how long they were.
        self.assertIn(f"... ({len(LONG_TEMPLATE)} bytes)", out)
        self.assertNotIn("x" * 100, out)
        # The tensor table: name, type, shape (ne0 first), bytes.
        self.assertRegex(out, r"token_embd\.weight\s+f32\s+\[64, 3\]\s+768\n")
        self.assertRegex(out, r"blk\.0\.attn_q\.weight\s+f16\s+\[64, 4\]\s+512\n")
        self.assertRegex(out, r"blk\.0\.ffn_down\.weight\s+q8_0\s+\[64, 2\]\s+136\n")
        self.assertRegex(out, r"output_norm\.weight\s+f32\s+\[64\]\s+256\n")
        params = 64 * 3 + 64 * 4 + 64 * 2 + 64
        nbytes = 768 + 512 + 136 + 256
        self.assertIn(f"totals: 4 tensors (1 f16, 2 f32, 1 q8_0), {params} parameters", out)
        self.assertIn(f"({nbytes} bytes), {8 * nbytes / params:.2f} bits per weight", out)
        self.assertEqual(proc.stderr, "")

    def test_json_output_matches_the_gguf_reader(self):
        path = self.path("model.gguf")
        make_model(path)
        proc = run_strata("inspect", path, "--json")
        self.assertEqual(proc.returncode, 0, proc.stderr)
        doc = json.loads(proc.stdout)  # one document
        self.assertEqual(doc["version"], 3)
        meta = doc["metadata"]
        self.assertEqual(meta["general.architecture"], "llama")
        self.assertEqual(meta["general.name"], "inspect test")
        self.assertEqual(meta["llama.context_length"], 2048)
        self.assertAlmostEqual(meta["llama.attention.layer_norm_rms_epsilon"], 1e-5, places=10)
        self.assertIs(meta["tokenizer.ggml.add_bos_token"], True)
        self.assertEqual(meta["test.i64"], -(2**40))
        self.assertEqual(meta["test.u64"], 2**63 + 1)
        self.assertEqual(meta["test.f64"], 0.1)
        self.assertEqual(meta["tokenizer.chat_template"], LONG_TEMPLATE)  # in full
        self.assertEqual(meta["tokenizer.ggml.tokens"], TOKENS)  # arrays in full
        self.assertEqual(meta["tokenizer.ggml.scores"], [float(-i) for i in range(len(TOKENS))])
        self.assertEqual(meta["test.nested"], [[1, 2], [3]])
        self.assertEqual(list(meta)[0], "general.architecture")  # file order

        reader = gguf.GGUFReader(path)
        self.assertEqual(len(doc["tensors"]), len(reader.tensors))
        for ours, theirs in zip(doc["tensors"], reader.tensors):
            self.assertEqual(ours["name"], theirs.name)
            self.assertEqual(ours["type"].lower(), theirs.tensor_type.name.lower())
            self.assertEqual(ours["shape"], [int(x) for x in theirs.shape])
            self.assertEqual(ours["bytes"], int(theirs.n_bytes))
            self.assertEqual(doc["data_offset"] + ours["offset"], int(theirs.data_offset))
        self.assertEqual(doc["totals"]["parameters"], sum(int(t.n_elements) for t in reader.tensors))
        self.assertEqual(doc["totals"]["bytes"], sum(int(t.n_bytes) for t in reader.tensors))

    def test_malformed_files_exit_1_with_one_error_line(self):
        cases = read_manifest()
        self.assertGreaterEqual(len(cases), 50)
        for name, expected in cases:
            with self.subTest(file=name):
                for extra in ([], ["--json"]):
                    proc = run_strata("inspect", os.path.join(MALFORMED, name), *extra)
                    self.assertEqual(proc.returncode, 1, proc.stderr)
                    self.assertEqual(proc.stdout, "")
                    lines = proc.stderr.splitlines()
                    self.assertEqual(len(lines), 1, proc.stderr)
                    self.assertTrue(lines[0].startswith("error: "), lines[0])
                    self.assertIn(name, lines[0])
                    self.assertIn(expected, lines[0])

    def test_missing_file_and_directory(self):
        for target, expected in [(self.path("absent.gguf"), "cannot open"), (self.tmp, "not a regular file")]:
            proc = run_strata("inspect", target)
            self.assertEqual(proc.returncode, 1)
            lines = proc.stderr.splitlines()
            self.assertEqual(len(lines), 1, proc.stderr)
            self.assertTrue(lines[0].startswith("error: "))
            self.assertIn(expected, lines[0])

    def test_no_file_argument_is_a_usage_error(self):
        proc = run_strata("inspect")
        self.assertNotEqual(proc.returncode, 0)

    def test_big_sparse_file_is_not_read(self):
        """A 7 GB file (sparse: a header written by GGUFWriter, then extended with truncate)."""
        path = self.path("big.gguf")
        w = gguf.GGUFWriter(path, "llama")
        n_embd, n_ff, n_layers = 4096, 11008, 32
        total = 0
        for il in range(n_layers):
            for name, shape in [("attn_q", (n_embd, n_embd)), ("attn_k", (n_embd, n_embd)),
                                ("attn_v", (n_embd, n_embd)), ("attn_output", (n_embd, n_embd)),
                                ("ffn_gate", (n_ff, n_embd)), ("ffn_up", (n_ff, n_embd)),
                                ("ffn_down", (n_embd, n_ff))]:
                nbytes = shape[0] * shape[1] // 32 * 34
                w.add_tensor_info(f"blk.{il}.{name}.weight", shape, np.dtype(np.float16), nbytes,
                                  raw_dtype=gguf.GGMLQuantizationType.Q8_0)
                total += (nbytes + 31) // 32 * 32
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_ti_data_to_file()
        w.close()
        data_offset = (os.path.getsize(path) + 31) // 32 * 32
        os.truncate(path, data_offset + total)
        self.assertGreater(os.path.getsize(path), 6.5e9)
        proc = run_strata("inspect", path, timeout=60)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertIn(f"totals: {7 * n_layers} tensors ({7 * n_layers} q8_0)", proc.stdout)
        self.assertIn("8.50 bits per weight", proc.stdout)


if __name__ == "__main__":
    strata_test.main()
