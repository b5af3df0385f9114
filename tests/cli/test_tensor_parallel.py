"""End-to-end tests of --tensor-parallel N (-tp N) with the CPU simulation: a TinyLlama-shaped
synthetic model (n_embd 2048, 32 heads, 4 KV heads, n_ff 5632; 2 layers and a vocabulary of
512 to keep it fast) split over 2 and 4 in-process cpu_ref parts (and 2 of the fast cpu backend)
passes `strata verify` against one cpu_ref with 0 failed tensors; the load log names the parts and the bytes of weights each
holds; `run -tp 2` gives the unsplit model's greedy tokens; and the refusals are one error line
naming the sizes: parts that do not divide the heads, more parts than KV heads,
--tensor-parallel 0, and (in a build with CUDA but without enough GPUs) too few GPUs."""
import os
import re
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import strata_test  # noqa: E402
from strata_test import run_strata  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PROMPT = "Once upon a time"


class TensorParallel(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="strata-tp-")
        cls.model = os.path.join(cls.tmp.name, "tinyllama-2l.gguf")
        proc = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "make-synthetic-model"), "--shape",
                               "tinyllama", "--n-layer", "2", "--n-vocab", "512", "--type", "q4_0", "-q", "-o",
                               cls.model], capture_output=True, text=True, timeout=300)
        if proc.returncode != 0:
            raise unittest.SkipTest(f"make-synthetic-model failed: {proc.stderr.strip()}")

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def verify(self, parts, backend="cpu_ref"):
        proc = run_strata("verify", "-m", self.model, "--backend", backend, "--tensor-parallel", parts,
                          "--reference", "cpu_ref", "-p", PROMPT, "--tokens", "2", "-t", "1")
        self.assertEqual(proc.returncode, 0, proc.stdout[-3000:] + proc.stderr)
        self.assertRegex(proc.stdout, r"\n\d+ tensors compared, 0 failed\n")
        self.assertRegex(proc.stderr, rf"on backend {parts} x {backend}\b.* \(tensor parallel, in-process\)")
        return proc

    def test_verify_parts_of_the_fast_cpu_backend(self):
        self.verify(2, backend="cpu")

    def test_verify_split_over_2_and_4_parts(self):
        for parts in (2, 4):
            with self.subTest(parts=parts):
                proc = self.verify(parts)
                # The weights per part: the split ones' share (q4_0: 18 bytes per 32 weights of the
                # 2 layers' 7 matrices and the 512-word output) and the whole ones (embeddings, norms).
                split = 2 * (2048 * 2048 * 2 + 2048 * 256 * 2 + 3 * 2048 * 5632) + 2048 * 512
                match = re.search(r"tensor parallel: (\d+) parts, weights per part: ([0-9.]+) MiB split \+ "
                                  r"([0-9.]+) MiB whole", proc.stderr)
                self.assertIsNotNone(match, proc.stderr)
                self.assertEqual(int(match.group(1)), parts)
                self.assertAlmostEqual(float(match.group(2)), split * 18 / 32 / parts / 2**20, places=1)

    def test_run_gives_the_unsplit_tokens(self):
        one = run_strata("run", "-m", self.model, "--backend", "cpu_ref", "-p", PROMPT, "-n", "6", "--temp", "0",
                         "-t", "1", "-q", check=True)
        two = run_strata("run", "-m", self.model, "--backend", "cpu_ref", "-tp", "2", "-p", PROMPT, "-n", "6",
                         "--temp", "0", "-t", "1", "-q", check=True)
        self.assertEqual(two.stdout, one.stdout)

    def assert_error(self, args, message):
        proc = run_strata("run", "-m", self.model, "-p", "x", "-n", "1", *args)
        self.assertEqual(proc.returncode, 1, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        self.assertEqual(lines[-1], "error: " + message)

    def test_parts_that_do_not_divide_the_heads(self):
        self.assert_error(["--backend", "cpu_ref", "--tensor-parallel", "3"],
                          "tensor parallel over 3 parts: tensor 'blk.0.attn_q.weight' q4_0 [2048, 2048] has 32 "
                          "heads of 64, which do not split evenly over 3 parts")

    def test_more_parts_than_kv_heads(self):
        self.assert_error(["--backend", "cpu_ref", "-tp", "8"],
                          "tensor parallel over 8 parts: tensor 'blk.0.attn_k.weight' q4_0 [2048, 256] has 4 heads "
                          "of 64, which do not split evenly over 8 parts")

    def test_zero_parts(self):
        self.assert_error(["--tensor-parallel", "0"], "--tensor-parallel must be 1 or more, got 0")

    def test_too_few_gpus(self):
        proc = run_strata("run", "-m", self.model, "-p", "x", "-n", "1", "--backend", "cuda", "-tp", "64")
        self.assertEqual(proc.returncode, 1, proc.stderr)
        last = proc.stderr.strip().splitlines()[-1]
        if "no CUDA backend" in last:
            self.skipTest("a build without CUDA")
        self.assertRegex(last, r"^error: --tensor-parallel 64 needs 64 GPUs, \d+ present$")


if __name__ == "__main__":
    strata_test.main()
