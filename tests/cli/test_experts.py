"""End-to-end tests of the mixture-of-experts architectures from the command line: small
synthetic Mixtral (a llama file with expert_count) and Qwen3-MoE models, made by
scripts/make-synthetic-model, run greedily the same way twice, and `strata verify` of the fast
CPU backend against cpu_ref passes layer by layer (routing near-ties, if any, reported)."""
import os
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import strata_test  # noqa: E402
from strata_test import run_strata  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
VOCAB = os.path.join(ROOT, "..", "shared", "fixtures", "vocab", "ggml-vocab-llama-spm.gguf")
PROMPT = "The quick brown fox jumps over the lazy dog, and then it"


class Experts(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not os.path.exists(VOCAB):
            raise unittest.SkipTest(f"no fixture vocabulary {VOCAB}")
        cls._dir = tempfile.TemporaryDirectory(prefix="strata-experts-")
        cls.models = {}
        for arch in ("mixtral", "qwen3moe"):
            path = os.path.join(cls._dir.name, f"tiny-{arch}.gguf")
            subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "make-synthetic-model"), "-o", path,
                            "--shape", "small", "--arch", arch, "--type", "q8_0", "--vocab-from", VOCAB,
                            "--n-embd", "128", "--n-layer", "2", "--n-head", "4", "--n-head-kv", "2",
                            "--head-dim", "32", "--n-ff", "128", "--n-expert", "8", "--n-expert-used", "2",
                            "--n-ctx", "256", "--seed", "5", "-q"], check=True, capture_output=True, text=True)
            cls.models[arch] = path

    @classmethod
    def tearDownClass(cls):
        cls._dir.cleanup()

    def test_greedy_runs_are_deterministic(self):
        for arch, m in self.models.items():
            a = run_strata("run", "-m", m, "-p", PROMPT, "-n", "8", "--temp", "0", "--backend", "cpu", check=True)
            b = run_strata("run", "-m", m, "-p", PROMPT, "-n", "8", "--temp", "0", "--backend", "cpu", check=True)
            self.assertEqual(a.stdout, b.stdout, arch)
            self.assertIn("generation: 8 tokens", a.stderr, arch)

    def test_verify_cpu_against_cpu_ref(self):
        for arch, m in self.models.items():
            proc = run_strata("verify", "-m", m, "--backend", "cpu", "--reference", "cpu_ref", "-p", PROMPT,
                              "--tokens", "8", "-t", "2")
            self.assertEqual(proc.returncode, 0, f"{arch}: {proc.stdout[-3000:]} {proc.stderr}")
            self.assertIn(" 0 failed", proc.stdout, arch)
            for name in ("blk.1.ffn_moe_logits", "blk.1.ffn_moe_weights", "blk.1.ffn_moe_down", "blk.1.ffn_out"):
                self.assertIn(name, proc.stdout, arch)


if __name__ == "__main__":
    strata_test.main()
