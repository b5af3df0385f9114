"""End-to-end tests of the everyday options of `strata run` (--stop, --json, --ignore-eos, -e,
-f, --chat/--system) and perplexity's progress line, on the tiny synthetic model of test_run
and, where a chat template or an end-of-generation token is needed, the default model."""
import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import strata_test  # noqa: E402
from strata_test import TempDirTest, run_strata  # noqa: E402
from test_chat import default_model  # noqa: E402
from test_run import tiny_model  # noqa: E402

GREEDY = ["--temp", "0", "-q"]


class RunOptions(TempDirTest):
    def greedy(self, *args):
        return run_strata("run", "-m", tiny_model(), *GREEDY, *args, check=True).stdout

    def test_stop_strings_end_the_text_before_them(self):
        full = self.greedy("-p", "Once upon a time", "-n", "24").rstrip("\n")
        self.assertGreater(len(full), 12, full)
        stop = full[8:12]
        expected = full[:full.index(stop)]
        proc = run_strata("run", "-m", tiny_model(), "--temp", "0", "-p", "Once upon a time", "-n", "24",
                          "--stop", "no such text", "--stop", stop, check=True)
        self.assertEqual(proc.stdout, expected + "\n")
        self.assertIn("stop: stop string", proc.stderr)

    def test_json_holds_text_tokens_stop_seed_and_timings(self):
        text = self.greedy("-p", "Hello", "-n", "6").rstrip("\n")
        out = run_strata("run", "-m", tiny_model(), *GREEDY, "-p", "Hello", "-n", "6", "--json", "--seed", "5",
                         check=True).stdout
        self.assertEqual(len(out.splitlines()), 1)
        j = json.loads(out)
        self.assertEqual(j["text"], text)
        self.assertEqual(len(j["tokens"]), 6)
        self.assertEqual(j["generated_tokens"], 6)
        self.assertGreater(j["prompt_tokens"], 0)
        self.assertEqual(j["stop"], "token limit")
        self.assertEqual(j["seed"], 5)
        for key in ("prompt_seconds", "prompt_tokens_per_second", "generation_seconds",
                    "generation_tokens_per_second"):
            self.assertGreaterEqual(j["timings"][key], 0)

    def test_escapes_with_e(self):
        plain = run_strata("run", "-m", tiny_model(), "--temp", "0", "-n", "4", "-p", "a\nb\tc", check=True)
        escaped = run_strata("run", "-m", tiny_model(), "--temp", "0", "-n", "4", "-e", "-p", "a\\nb\\tc",
                             check=True)
        raw = run_strata("run", "-m", tiny_model(), "--temp", "0", "-n", "4", "-p", "a\\nb\\tc\\x41\\x42",
                         check=True)
        hex_ = run_strata("run", "-m", tiny_model(), "--temp", "0", "-n", "4", "-e", "-p", "a\\nb\\tc\\x41\\x42",
                          check=True)
        self.assertEqual(escaped.stdout, plain.stdout)
        def n_prompt(proc):
            return int(proc.stderr.split("\nprompt: ")[1].split()[0])
        self.assertEqual(n_prompt(escaped), n_prompt(plain))
        self.assertGreater(n_prompt(raw), n_prompt(hex_))  # without -e the backslashes are text

    def test_prompt_file(self):
        path = self.path("prompt.txt")
        with open(path, "w") as f:
            f.write("Once upon a time")
        self.assertEqual(self.greedy("-f", path, "-n", "5"), self.greedy("-p", "Once upon a time", "-n", "5"))
        proc = run_strata("run", "-m", tiny_model(), "-f", self.tmp)
        self.assertEqual(proc.returncode, 1)
        self.assertEqual(proc.stderr, f"error: {self.tmp}: is a directory; -f takes a text file with the prompt\n")


class DefaultModel(TempDirTest):
    @classmethod
    def setUpClass(cls):
        cls.model = default_model()
        if cls.model is None:
            raise unittest.SkipTest("the default model is not fetched (scripts/fetch-model)")

    def run_(self, *args):
        return run_strata("run", "-m", self.model, "--temp", "0", *args, check=True)

    def test_chat_and_system_apply_the_template(self):
        plain = self.run_("-p", "Say hi.", "-n", "1")
        chat = self.run_("-p", "Say hi.", "-n", "1", "--chat")
        system = self.run_("-p", "Say hi.", "-n", "1", "--system", "You are a pirate.")
        self.assertIn("chat template: chatml", chat.stderr)
        n = [int(p.stderr.split("prompt: ")[1].split()[0]) for p in (plain, chat, system)]
        self.assertLess(n[0], n[1])  # the template's turns around the message
        self.assertNotEqual(n[1], n[2])  # the default system message replaced by ours

    def test_ignore_eos_generates_to_the_limit(self):
        ended = self.run_("-p", "Say hi.", "--chat", "-n", "64")
        self.assertIn("stop: end of generation", ended.stderr)
        forced = self.run_("-p", "Say hi.", "--chat", "-n", "64", "--ignore-eos")
        self.assertIn("generation: 64 tokens", forced.stderr)
        self.assertIn("stop: token limit", forced.stderr)


class PerplexityProgress(TempDirTest):
    def test_progress_with_rate_and_eta(self):
        text = self.path("text.txt")
        with open(text, "w") as f:
            f.write("The cat sat on the mat and looked at the dog. " * 20)
        proc = run_strata("perplexity", "-m", tiny_model(), "-f", text, "-c", "32", "--chunks", "3", check=True)
        self.assertRegex(proc.stderr, r"perplexity: [0-9.]+ s per chunk \([0-9.]+ tok/s\), 3 chunks: ETA [0-9.]+ s")
        self.assertRegex(proc.stderr, r"perplexity: 3 chunks of 32 tokens in [0-9.]+ s \([0-9.]+ tok/s\)")
        quiet = run_strata("perplexity", "-m", tiny_model(), "-f", text, "-c", "32", "--chunks", "3", "-q",
                           check=True)
        self.assertEqual(quiet.stderr, "")


if __name__ == "__main__":
    strata_test.main()
