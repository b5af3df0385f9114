"""End-to-end tests of strata run, perplexity, verify and compare on a tiny synthetic Llama
model (made by scripts/make-synthetic-model with the Llama SentencePiece fixture vocabulary),
and of the errors a user gets for bad models, prompts and flags."""
import os
import re
import subprocess
import sys
import tempfile
import unittest

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import strata_test  # noqa: E402
from strata_test import TempDirTest, run_strata  # noqa: E402

import gguf  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
VOCAB = os.path.join(ROOT, "..", "shared", "fixtures", "vocab", "ggml-vocab-llama-spm.gguf")
_models = {}
_model_dir = None


def tiny_model(arch="llama", type_="f32"):
    """A 2-layer model (n_embd 64, 4 heads, 2 KV heads) with the Llama SPM vocabulary, made
    once per process."""
    global _model_dir
    if not os.path.exists(VOCAB):
        raise unittest.SkipTest("the shared vocabulary fixture is missing")
    if _model_dir is None:
        _model_dir = tempfile.TemporaryDirectory(prefix="strata-run-")
    key = (arch, type_)
    if key not in _models:
        path = os.path.join(_model_dir.name, f"tiny-{arch}-{type_}.gguf")
        subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "make-synthetic-model"), "-o", path,
                        "--shape", "small", "--arch", arch, "--type", type_, "--vocab-from", VOCAB,
                        "--n-embd", "64", "--n-layer", "2", "--n-head", "4", "--n-head-kv", "2", "--n-ff", "96",
                        "--n-ctx", "256", "--seed", "3", "-q", "--strata", strata_test.STRATA],
                       check=True, capture_output=True, text=True)
        _models[key] = path
    return _models[key]


ModelDir = TempDirTest


class Run(ModelDir):
    def test_greedy_is_deterministic_and_streams_text(self):
        m = tiny_model()
        a = run_strata("run", "-m", m, "-p", "Once upon a time", "-n", "12", "--temp", "0", check=True)
        b = run_strata("run", "-m", m, "-p", "Once upon a time", "-n", "12", "--temp", "0", check=True)
        self.assertEqual(a.stdout, b.stdout)
        self.assertGreater(len(a.stdout.strip()), 0)
        self.assertIn("generation: 12 tokens", a.stderr)
        self.assertIn("stop: token limit", a.stderr)

    def test_seed_reproduces_sampling(self):
        m = tiny_model()
        args = ["run", "-m", m, "-p", "Hello", "-n", "16", "--temp", "1.0", "--top-k", "0", "--top-p", "1",
                "--min-p", "0", "-q"]
        a = run_strata(*args, "--seed", "42", check=True)
        b = run_strata(*args, "--seed", "42", check=True)
        c = run_strata(*args, "--seed", "43", check=True)
        self.assertEqual(a.stdout, b.stdout)
        self.assertNotEqual(a.stdout, c.stdout)
        self.assertEqual(a.stderr, "")

    def test_prompt_longer_than_context(self):
        m = tiny_model()
        proc = run_strata("run", "-m", m, "-p", "one two three four five six seven eight nine ten", "-c", "8")
        self.assertEqual(proc.returncode, 1)
        self.assertRegex(proc.stderr, r"error: the prompt is \d+ tokens, the context holds 8")

    def test_generation_stops_at_end_of_context(self):
        m = tiny_model()
        proc = run_strata("run", "-m", m, "-p", "Hi", "-c", "10", "-n", "100", "--temp", "0", check=True)
        self.assertIn("context of 10 tokens is full", proc.stderr)
        self.assertIn("stop: context full", proc.stderr)

    def test_f32_kv_cache_and_bad_kv_type(self):
        m = tiny_model()
        run_strata("run", "-m", m, "-p", "Hi", "-n", "2", "--kv-type", "f32", "-q", check=True)
        proc = run_strata("run", "-m", m, "-p", "Hi", "--kv-type", "q4_0")
        self.assertEqual(proc.returncode, 1)
        self.assertIn("--kv-type must be f16 or f32", proc.stderr)

    def test_prompt_of_invalid_utf8_is_kept(self):
        # The SentencePiece vocabulary has <0xXX> byte tokens: the bytes become those, no warning.
        m = tiny_model()
        proc = subprocess.run([strata_test.STRATA, "run", "-m", m, "-p", b"\xff\xfe", "-n", "1", "--temp", "0"],
                              capture_output=True, timeout=120)
        err = proc.stderr.decode("utf-8", "replace")
        self.assertEqual(proc.returncode, 0, err)
        self.assertRegex(err, r"prompt: [3-9] tokens")  # BOS, maybe a space, then <0xFF> <0xFE>
        self.assertNotIn("warning", err)

    def test_bad_sampling_flag(self):
        m = tiny_model()
        proc = run_strata("run", "-m", m, "-p", "Hi", "--top-p", "1.5")
        self.assertEqual(proc.returncode, 1)
        self.assertIn("--top-p must be in (0, 1], got 1.5", proc.stderr)

    def test_qwen2_and_quantized_models_run(self):
        for arch, type_ in [("qwen2", "f32"), ("llama", "q4_k_m"), ("llama", "q8_0")]:
            with self.subTest(arch=arch, type=type_):
                m = tiny_model(arch, type_)
                run_strata("run", "-m", m, "-p", "Hi", "-n", "3", "--temp", "0", "-q", check=True)


class Memory(ModelDir):
    def test_context_larger_than_memory_is_refused_before_allocating(self):
        # 128 layers of n_embd 64: an f32 KV cache of 64 KiB per token, 1 TiB for 2^24 tokens.
        deep = self.path("deep.gguf")
        subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "make-synthetic-model"), "-o", deep,
                        "--shape", "small", "--vocab-from", VOCAB, "--n-embd", "64", "--n-layer", "128",
                        "--n-head", "4", "--n-head-kv", "4", "--n-ff", "64", "--n-ctx", "256", "--tied",
                        "--seed", "1", "-q"], check=True, capture_output=True, text=True)
        proc = run_strata("run", "-m", deep, "-p", "Hello", "-n", "2", "-c", "16777216", "--kv-type", "f32",
                          "--backend", "cpu_ref")
        self.assertEqual(proc.returncode, 1, proc.stderr)
        line = proc.stderr.splitlines()[-1]
        self.assertRegex(line, r"^error: a context of 16777216 tokens needs [0-9.]+ GiB of memory: 1024\.0 GiB "
                               r"of KV cache \(f32, 64\.0 KiB per token\)")
        self.assertRegex(line, r"[0-9.]+ [GM]iB is available in host memory \(MemAvailable\)")
        largest = re.search(r"The largest context that fits is (\d+) \(-c \1\)", line)
        self.assertIsNotNone(largest, line)
        self.assertLess(int(largest.group(1)), 16777216)
        self.assertEqual(int(largest.group(1)) % 256, 0)


class DumpsAndCompare(ModelDir):
    def test_dump_tensors_then_compare(self):
        m = tiny_model()
        dump = self.path("dump")
        run_strata("run", "-m", m, "-p", "Hello world", "-n", "2", "--temp", "0", "-q", "--dump-tensors", dump,
                   check=True)
        passes = sorted(os.listdir(dump))
        self.assertEqual(passes, ["pass-000", "pass-001"])  # the prompt, then one decode step
        names = open(os.path.join(dump, "pass-000", "index.txt")).read().split()
        self.assertEqual(names[0], "inp_embd")
        self.assertEqual(names[-1], "logits")
        self.assertIn("blk.1.ffn_out", names)
        q = np.load(os.path.join(dump, "pass-000", "blk.0.q_rope.npy"))  # the fused q/k/v matmul's q
        self.assertEqual(q.shape[1], 64)
        self.assertEqual(np.load(os.path.join(dump, "pass-001", "blk.0.q_rope.npy")).shape, (1, 64))

        same = run_strata("compare", dump, dump)
        self.assertEqual(same.returncode, 0, same.stdout + same.stderr)
        self.assertIn(" 0 failed", same.stdout)

        broken = self.path("broken")
        run_strata("run", "-m", m, "-p", "Hello world", "-n", "2", "--temp", "0", "-q", "--dump-tensors", broken,
                   check=True)
        path = os.path.join(broken, "pass-000", "blk.1.attn_norm.npy")
        x = np.load(path)
        x[0, 0] += 1.0
        np.save(path, x)
        proc = run_strata("compare", broken, dump)
        self.assertEqual(proc.returncode, 1)
        self.assertIn("first failure: pass-000/blk.1.attn_norm", proc.stdout)

    def test_compare_thresholds_do_not_depend_on_the_folder_level(self):
        m = tiny_model()
        ref = self.path("ref")
        run_strata("run", "-m", m, "-p", "Hello world", "-n", "2", "--temp", "0", "-q", "--dump-tensors", ref,
                   check=True)
        test = self.path("test")
        run_strata("run", "-m", m, "-p", "Hello world", "-n", "2", "--temp", "0", "-q", "--dump-tensors", test,
                   check=True)
        # logits off by an NMSE of about 1e-5: within a product's 5e-4, far above an elementwise 1e-7
        path = os.path.join(test, "pass-001", "logits.npy")
        x = np.load(path)
        noise = np.random.default_rng(0).standard_normal(x.shape).astype(x.dtype)
        np.save(path, x + noise * np.sqrt(1e-5 * np.mean(x.astype(np.float64) ** 2)))

        def row(out, name):
            line = next(line for line in out.splitlines() if line.split()[0] == name)
            return line.split()[-2:]  # threshold, result

        top = run_strata("compare", test, ref)
        one = run_strata("compare", os.path.join(test, "pass-001"), os.path.join(ref, "pass-001"))
        self.assertEqual(row(top.stdout, "pass-001/logits"), row(one.stdout, "logits"))
        self.assertEqual(row(one.stdout, "logits"), ["5.00e-04", "ok"])
        self.assertEqual(top.returncode, 0, top.stdout)
        # the first tensor of a pass has its own op's threshold, not the previous pass's budget
        self.assertEqual(row(top.stdout, "pass-001/inp_embd"), row(one.stdout, "inp_embd"))

    def test_compare_errors(self):
        proc = run_strata("compare", self.path("nope"), self.path("nope2"))
        self.assertEqual(proc.returncode, 1)
        self.assertIn("not a directory", proc.stderr)


class Verify(ModelDir):
    def test_cpu_ref_against_f64_passes(self):
        m = tiny_model("llama", "q4_0")
        proc = run_strata("verify", "-m", m, "-p", "The quick brown fox", "--tokens", "4", "-q")
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
        self.assertIn("result_norm", proc.stdout)
        self.assertRegex(proc.stdout, r"logits top-1 agreement: (\d+) of \1 positions")
        self.assertIn(" 0 failed", proc.stdout)
        # 4 greedy tokens are predicted at the last 4 positions of the sequence
        match = re.search(r"nearest tie among the greedy tokens: position (\d+), top-2 margin ([0-9.]+)", proc.stdout)
        self.assertIsNotNone(match, proc.stdout)
        n_prompt = int(re.search(r"(\d+) prompt tokens \+ 4 greedy tokens", proc.stdout).group(1))
        self.assertIn(int(match.group(1)), range(n_prompt - 1, n_prompt + 3))
        self.assertGreaterEqual(float(match.group(2)), 0.0)

    def test_decode_steps_are_compared_fused_and_unfused(self):
        # the prompt in one pass, then one decode step per greedy token: taps of every pass
        for arch in ("llama", "qwen2"):
            m = tiny_model(arch, "q8_0")
            for extra in ([], ["--unfused"]):
                with self.subTest(arch=arch, unfused=bool(extra)):
                    proc = run_strata("verify", "-m", m, "-p", "The quick brown fox", "--tokens", "3", "-q",
                                      "--backend", "cpu_ref", *extra)
                    self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
                    for name in ("blk.0.q_rope", "blk.1.ffn_out#3", "logits#3"):
                        self.assertRegex(proc.stdout, rf"(?m)^{re.escape(name)}\s+\[", name)
                    self.assertNotIn("logits#4", proc.stdout)
                    self.assertIn(" 0 failed", proc.stdout)

    def test_same_backend_twice_is_an_error(self):
        m = tiny_model()
        proc = run_strata("verify", "-m", m, "-p", "x", "--backend", "cpu_ref64")
        self.assertEqual(proc.returncode, 1)
        self.assertIn("both 'cpu_ref64'", proc.stderr)


class Perplexity(ModelDir):
    def test_prints_running_and_final_estimate(self):
        m = tiny_model()
        text = self.path("text.txt")
        with open(text, "w") as f:
            f.write("The cat sat on the mat and looked at the dog. " * 20)
        proc = run_strata("perplexity", "-m", m, "-f", text, "-c", "32", "--chunks", "3", "-q", check=True)
        self.assertRegex(proc.stdout, r"\[1\][0-9.]+,\[2\][0-9.]+,\[3\][0-9.]+,")
        self.assertRegex(proc.stdout, r"Final estimate: PPL = [0-9.]+ \+/- [0-9.]+")

    def test_text_too_short(self):
        m = tiny_model()
        text = self.path("short.txt")
        with open(text, "w") as f:
            f.write("too short")
        proc = run_strata("perplexity", "-m", m, "-f", text, "-c", "32")
        self.assertEqual(proc.returncode, 1)
        self.assertIn("needs at least 2 * 32 (-c) tokens", proc.stderr)


class ModelErrors(ModelDir):
    def write(self, name, arch, tensors, **kv):
        path = self.path(name)
        w = gguf.GGUFWriter(path, arch)
        for k, v in kv.items():
            w.add_uint32(k, v)
        for n, t in tensors:
            w.add_tensor(n, t)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        return path

    def test_missing_model_file(self):
        proc = run_strata("run", "-m", self.path("absent.gguf"), "-p", "x")
        self.assertEqual(proc.returncode, 1)
        self.assertTrue(proc.stderr.startswith("error: "))
        self.assertIn("absent.gguf", proc.stderr)

    def test_unsupported_architecture(self):
        m = self.write("gpt2.gguf", "gpt2", [("token_embd.weight", np.zeros((4, 8), np.float32))])
        proc = run_strata("run", "-m", m, "-p", "x")
        self.assertEqual(proc.returncode, 1)
        self.assertIn("architecture 'gpt2' is not supported", proc.stderr)
        self.assertRegex(proc.stderr, r"\(supported: [a-z0-9, ]*llama[a-z0-9, ]*qwen2")  # the list, sorted

    def test_missing_and_misshapen_tensors(self):
        kv = {"llama.embedding_length": 8, "llama.block_count": 1, "llama.attention.head_count": 2,
              "llama.feed_forward_length": 16}
        m = self.write("missing.gguf", "llama", [("token_embd.weight", np.zeros((4, 8), np.float32)),
                                                 ("output_norm.weight", np.ones(8, np.float32))], **kv)
        proc = run_strata("run", "-m", m, "-p", "x")
        self.assertEqual(proc.returncode, 1)
        self.assertIn("missing tensor 'blk.0.attn_norm.weight'", proc.stderr)
        m = self.write("shape.gguf", "llama", [("token_embd.weight", np.zeros((4, 8), np.float32)),
                                               ("output_norm.weight", np.ones(7, np.float32))], **kv)
        proc = run_strata("run", "-m", m, "-p", "x")
        self.assertEqual(proc.returncode, 1)
        self.assertIn("tensor 'output_norm.weight' has shape [7], expected [8]", proc.stderr)

    def test_gemma3_logit_softcap_refused(self):
        kv = {"gemma3.embedding_length": 8, "gemma3.block_count": 1, "gemma3.attention.head_count": 2,
              "gemma3.feed_forward_length": 16, "gemma3.final_logit_softcapping": 30}
        m = self.write("softcap.gguf", "gemma3", [("token_embd.weight", np.zeros((4, 8), np.float32))], **kv)
        proc = run_strata("run", "-m", m, "-p", "x")
        self.assertEqual(proc.returncode, 1)
        self.assertIn("gemma3.final_logit_softcapping is set: the final logit soft-cap is not supported", proc.stderr)

    def test_mixtral_expert_keys_checked(self):
        kv = {"llama.embedding_length": 8, "llama.block_count": 1, "llama.attention.head_count": 2,
              "llama.feed_forward_length": 16, "llama.expert_count": 2, "llama.expert_used_count": 3}
        m = self.write("mixtral.gguf", "llama", [("token_embd.weight", np.zeros((4, 8), np.float32))], **kv)
        proc = run_strata("run", "-m", m, "-p", "x")
        self.assertEqual(proc.returncode, 1)
        self.assertIn("llama.expert_used_count = 3 is more than llama.expert_count = 2", proc.stderr)
        del kv["llama.expert_used_count"]
        m = self.write("mixtral-no-used.gguf", "llama", [("token_embd.weight", np.zeros((4, 8), np.float32))], **kv)
        proc = run_strata("run", "-m", m, "-p", "x")
        self.assertEqual(proc.returncode, 1)
        self.assertIn("missing metadata key 'llama.expert_used_count'", proc.stderr)

if __name__ == "__main__":
    strata_test.main()
