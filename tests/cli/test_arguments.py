"""End-to-end tests of the command line itself: the error contract (one `error:` line and exit
1 for any bad argument, help and version on stdout with exit 0), the command word, argument
validation, --seed, and llama.cpp's flags (rewritten to strata's or refused naming what to use)."""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import strata_test  # noqa: E402
from strata_test import TempDirTest, run_strata  # noqa: E402
from test_run import tiny_model  # noqa: E402

COMMANDS = ["inspect", "quantize", "tokenize", "run", "chat", "perplexity", "verify", "compare", "bench", "serve"]


class Contract(TempDirTest):
    def assert_error(self, proc, *fragments):
        """Exit 1 and exactly one stderr line, `error: ...` containing each fragment."""
        self.assertEqual(proc.returncode, 1, proc.stdout + proc.stderr)
        lines = proc.stderr.splitlines()
        self.assertEqual(len(lines), 1, proc.stderr)
        self.assertTrue(lines[0].startswith("error: "), lines[0])
        for f in fragments:
            self.assertIn(f, lines[0])
        return lines[0]


class CommandWord(Contract):
    def test_no_command(self):
        line = self.assert_error(run_strata(), "a command is required")
        for c in COMMANDS:
            self.assertIn(c, line)

    def test_unknown_command_names_the_commands(self):
        self.assert_error(run_strata("serv"), "unknown command 'serv'", "run, chat", "serve")

    def test_options_before_the_command(self):
        self.assert_error(run_strata("-m", "x.gguf", "-p", "hi"), "the command comes first", "strata run -m")

    def test_help_and_version_exit_0(self):
        for args in (["--help"], ["help"], ["run", "--help"], ["perplexity", "-h"]):
            with self.subTest(args=args):
                proc = run_strata(*args)
                self.assertEqual(proc.returncode, 0, proc.stderr)
                self.assertIn("Usage: strata", proc.stdout)
                self.assertEqual(proc.stderr, "")
        proc = run_strata("--version")
        self.assertEqual(proc.returncode, 0)
        self.assertRegex(proc.stdout, r"^strata \d+\.\d+\.\d+ \(backends: cpu")

    def test_help_states_the_documented_defaults(self):
        self.assertIn("cpu_ref64", run_strata("run", "--help").stdout)
        self.assertRegex(run_strata("perplexity", "--help").stdout, r"tokens per chunk; 0 = 512")


class ParseErrors(Contract):
    def test_unknown_flag_and_bad_values_are_one_error_line(self):
        self.assert_error(run_strata("run", "--no-such-flag"), "--no-such-flag")
        self.assert_error(run_strata("run", "--top-k", "x"), "--top-k")
        self.assert_error(run_strata("run", "-c", "-1"), "--ctx-size")
        self.assert_error(run_strata("quantize", "a.gguf"), "output")
        self.assert_error(run_strata("inspect"), "file")

    def test_out_of_range_counts_are_refused_before_loading(self):
        absent = self.path("absent.gguf")  # the checks come before the model is opened
        self.assert_error(run_strata("run", "-m", absent, "-p", "x", "-n", "-5"), "-n must be -1", "got -5")
        self.assert_error(run_strata("chat", "-m", absent, "-n", "-2"), "-n must be -1", "got -2")
        self.assert_error(run_strata("perplexity", "-m", absent, "-f", absent, "--chunks", "0"),
                          "--chunks must be -1 (all) or a count >= 1, got 0")
        self.assert_error(run_strata("perplexity", "-m", absent, "-f", absent, "--chunks", "-3"), "got -3")

    def test_seed_out_of_range(self):
        for bad in ("-5", "18446744073709551616", "12abc", "1.5"):
            with self.subTest(seed=bad):
                self.assert_error(run_strata("run", "-p", "x", "--seed", bad), "--seed must be -1 (random)",
                                  f"got '{bad}'")


class Seed(Contract):
    def test_minus_one_is_random_and_printed_and_reproducible(self):
        m = tiny_model()
        args = ["run", "-m", m, "-p", "Hello", "-n", "12", "--temp", "1.5", "--top-k", "0", "--top-p", "1",
                "--min-p", "0"]
        seeds = []
        outputs = []
        for _ in range(2):
            proc = run_strata(*args, "--seed", "-1", check=True)
            seeds.append(int(re.search(r"seed (\d+)", proc.stderr).group(1)))
            outputs.append(proc.stdout)
        self.assertNotEqual(seeds[0], seeds[1])  # drawn at random (equal with probability 2^-32)
        again = run_strata(*args, "--seed", str(seeds[0]), check=True)
        self.assertEqual(again.stdout, outputs[0])
        self.assertIn(f"seed {seeds[0]}", again.stderr)

    def test_repeated_flag_takes_the_last(self):
        m = tiny_model()
        proc = run_strata("run", "-m", m, "-p", "Hi", "-n", "50", "-n", "2", "--temp", "0", check=True)
        self.assertIn("generation: 2 tokens", proc.stderr)


class LlamaCppFlags(Contract):
    def test_refused_flags_name_what_to_use(self):
        self.assert_error(run_strata("run", "-hf", "org/repo"), "-hf", "-m FILE")
        self.assert_error(run_strata("run", "--hf-repo=org/repo"), "--hf-repo", "-m FILE")
        self.assert_error(run_strata("run", "-cnv"), "strata chat")
        self.assert_error(run_strata("run", "-fa"), "-fa")
        self.assert_error(run_strata("bench", "-b", "512"), "-b")
        self.assert_error(run_strata("run", "-ctk", "f16", "-ctv", "f32"), "--kv-type")

    def test_gpu_layers_pick_the_backend(self):
        m = tiny_model()
        proc = run_strata("run", "-m", m, "-p", "Hi", "-n", "1", "--temp", "0", "-ngl", "0", check=True)
        self.assertIn("on backend cpu", proc.stderr)
        proc = run_strata("run", "-m", m, "-p", "Hi", "-n", "1", "--temp", "0", "--n-gpu-layers=99")
        # cuda: runs there, or (a build without CUDA or a machine without a GPU) says why not
        if proc.returncode == 0:
            self.assertIn("on backend cuda", proc.stderr)
        else:
            self.assert_error(proc, "cuda")
        self.assert_error(run_strata("run", "-ngl", "all"), "-ngl takes a number of layers")

    def test_rewritten_and_dropped_flags(self):
        m = tiny_model()
        proc = run_strata("run", "-m", m, "-p", "Hi", "-n", "1", "--temp", "0", "-ctk", "f32", "-ctv", "f32",
                          "-no-cnv", "--no-display-prompt", check=True)
        self.assertIn("KV cache f32", proc.stderr)
        proc = run_strata("run", "-m", m, "-p", "Hi", "-n", "1", "--temp", "0", "--log-disable", check=True)
        self.assertEqual(proc.stderr, "")
        proc = run_strata("run", "-m", m, "-p", "Hi", "-n", "1", "--temp", "0", "-sys", "Be brief.",
                          "--chat-template", "chatml", "-r", "never", check=True)
        self.assertIn("chat template: chatml", proc.stderr)


if __name__ == "__main__":
    strata_test.main()
