"""End-to-end tests of the fast CPU backend from the command line: `strata run --backend cpu`
on the default model, on every ISA path this CPU has (--cpu-isa), in the f32-activation mode
(--cpu-f32-act) gives cpu_ref's greedy tokens, and with 8-bit activations (the default) it
runs on every path and names it; the model line names the path and the threads; an unknown
or unsupported path is one error line naming the paths the CPU has.

8-bit activations move this model's logits by up to ~0.3 (docs/benchmarks.md), enough to
turn greedy choices whose top-2 margin is 0.2 on this prompt, so their tokens are not
compared here."""
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
PROMPT = "The capital of France is"
N_TOKENS = 8


def default_model():
    try:
        out = subprocess.run([os.path.join(ROOT, "scripts", "fetch-model"), "--path"], capture_output=True,
                             text=True, timeout=60)
    except OSError:
        return None
    path = out.stdout.strip()
    return path if out.returncode == 0 and path and os.path.exists(path) else None


def cpu_paths(model):
    """The ISA paths this CPU has, as the error for an unknown path lists them."""
    proc = run_strata("run", "-m", model, "--backend", "cpu", "--cpu-isa", "no-such-path", "-p", "x", "-n", "1")
    match = re.search(r"this CPU has: ([a-z0-9, -]+)\)", proc.stderr)
    if match is None:
        raise AssertionError(f"no list of paths in: {proc.stderr}")
    return match.group(1).split(", ")


class CpuBackendRun(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.model = default_model()
        if cls.model is None:
            raise unittest.SkipTest("the default model is not fetched (scripts/fetch-model)")
        cls.reference = cls.greedy("--backend", "cpu_ref").stdout

    @classmethod
    def greedy(cls, *args):
        return run_strata("run", "-m", cls.model, "-p", PROMPT, "-n", N_TOKENS, "--temp", 0, "-t", 2, *args,
                          check=True)

    def test_every_path_gives_cpu_refs_greedy_tokens_with_f32_activations(self):
        paths = cpu_paths(self.model)
        self.assertEqual(paths[0], "portable")
        for path in paths:
            with self.subTest(path=path):
                proc = self.greedy("--backend", "cpu", "--cpu-isa", path, "--cpu-f32-act")
                self.assertEqual(proc.stdout, self.reference)
                self.assertIn(f"on backend cpu ({path}, f32 activations, 2 threads)", proc.stderr)

    def test_every_path_runs_with_its_default_activations(self):
        for path in cpu_paths(self.model):
            with self.subTest(path=path):
                proc = self.greedy("--backend", "cpu", "--cpu-isa", path)
                self.assertTrue(proc.stdout.startswith(" Paris"), proc.stdout)
                self.assertIn(f"on backend cpu ({path}, 2 threads)", proc.stderr)
                self.assertIn(f"generation: {N_TOKENS} tokens", proc.stderr)

    def test_one_term_8_bit_activations_are_named_and_run(self):
        proc = self.greedy("--backend", "cpu", "--cpu-q8-act")
        self.assertTrue(proc.stdout.startswith(" Paris"), proc.stdout)
        self.assertRegex(proc.stderr, r"on backend cpu \([a-z0-9-]+, 8-bit activations, 2 threads\)")

    def test_unknown_path_is_an_error_naming_the_cpus_paths(self):
        proc = run_strata("run", "-m", self.model, "--backend", "cpu", "--cpu-isa", "sse9", "-p", "x", "-n", "1")
        self.assertEqual(proc.returncode, 1)
        self.assertRegex(proc.stderr, r"^error: --cpu-isa: unknown CPU path 'sse9' \(this CPU has: portable[a-z0-9, -]*\)\n$")

    def test_path_above_the_cpu_is_an_error(self):
        paths = cpu_paths(self.model)
        if paths[-1] == "avx512-vnni":
            self.skipTest("this CPU has every path")
        proc = run_strata("run", "-m", self.model, "--backend", "cpu", "--cpu-isa", "avx512-vnni", "-p", "x", "-n", "1")
        self.assertEqual(proc.returncode, 1)
        self.assertIn("cannot run the 'avx512-vnni' path", proc.stderr)


class InterleavedWeights(unittest.TestCase):
    """Matrices are copied into the interleaved layout (src/backend/cpu/interleaved.h) where the
    path has kernels for it: Q4_0, Q8_0, Q4_K and Q6_K on avx512-vnni, Q4_0 on avx2 and
    avx512; the load log counts them and their memory. The portable path, the f32-activation
    mode and cpu_ref make no copy."""

    COPIED = r"weights: (\d+) matri(?:x|ces) copied into the layout of the backend's matmul kernels, " \
             r"([0-9.]+) MiB \(their pages of the file released\)"

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="strata-cpu-")
        cls.models = {}
        for dtype in ("q4_0", "q8_0"):
            path = os.path.join(cls.tmp.name, f"{dtype}.gguf")
            subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "make-synthetic-model"), "--shape", "small",
                            "--type", dtype, "--n-vocab", "512", "-o", path], check=True, capture_output=True,
                           timeout=300)
            cls.models[dtype] = path
        cls.paths = cpu_paths(cls.models["q4_0"])

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def run_model(self, dtype, *args):
        return run_strata("run", "-m", self.models[dtype], "-p", "hello", "-n", 4, "--temp", 0, *args, check=True)

    def test_the_avx512_vnni_path_copies_every_q8_0_and_q4_0_matrix(self):
        if "avx512-vnni" not in self.paths:
            self.skipTest("this CPU has no avx512-vnni path")
        for dtype in ("q4_0", "q8_0"):
            with self.subTest(dtype=dtype):
                proc = self.run_model(dtype, "--backend", "cpu", "--cpu-isa", "avx512-vnni")
                match = re.search(self.COPIED, proc.stderr)
                self.assertIsNotNone(match, proc.stderr)
                layers = int(re.search(r"(\d+) layers", proc.stderr).group(1))
                self.assertEqual(int(match.group(1)), 7 * layers + 1, proc.stderr)  # q k v o gate up down, output
                self.assertGreater(float(match.group(2)), 0)
                self.assertIn("generation: 4 tokens", proc.stderr)

    def test_avx2_and_avx512_copy_q4_0_only(self):
        for path in [p for p in self.paths if p in ("avx2", "avx512")]:
            with self.subTest(path=path):
                proc = self.run_model("q4_0", "--backend", "cpu", "--cpu-isa", path)
                match = re.search(self.COPIED, proc.stderr)
                self.assertIsNotNone(match, proc.stderr)
                layers = int(re.search(r"(\d+) layers", proc.stderr).group(1))
                self.assertGreaterEqual(int(match.group(1)), 7 * layers, proc.stderr)
                proc = self.run_model("q8_0", "--backend", "cpu", "--cpu-isa", path)
                self.assertNotIn("copied into the layout", proc.stderr)

    def test_no_copy_elsewhere(self):
        for args in [("--backend", "cpu_ref"), ("--backend", "cpu", "--cpu-f32-act"),
                     ("--backend", "cpu", "--cpu-isa", "portable")]:
            with self.subTest(args=args):
                proc = self.run_model("q4_0", *args)
                self.assertNotIn("copied into the layout", proc.stderr)


if __name__ == "__main__":
    strata_test.main()
