"""End-to-end tests of `strata tokenize`: the vocabulary fixtures' cases through the binary
(ids from each model's Hugging Face tokenizer), the output formats, the flags and errors."""
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import strata_test  # noqa: E402
from strata_test import TempDirTest, run_strata  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHARED_VOCAB = os.path.join(REPO, "..", "shared", "fixtures", "vocab")
OUR_VOCAB = os.path.join(REPO, "tests", "data", "tokenizer")
GPT2 = os.path.join(SHARED_VOCAB, "ggml-vocab-gpt-2.gguf")
SPM = os.path.join(SHARED_VOCAB, "ggml-vocab-llama-spm.gguf")
SEP = "\n__ggml_vocab_test__\n"


def read_cases(gguf_path):
    with open(gguf_path + ".inp", encoding="utf-8", newline="") as f:
        inputs = f.read().split(SEP)
    if inputs and inputs[-1] == "":
        inputs.pop()
    with open(gguf_path + ".out", encoding="utf-8") as f:
        outputs = [[int(x) for x in line.split()] for line in f.read().split("\n")]
    return list(zip(inputs, outputs))


def tokenize_bytes(data, *args):
    """Runs `strata tokenize` with raw bytes on stdin; returns (returncode, stdout bytes, stderr)."""
    proc = subprocess.run([strata_test.STRATA, "tokenize", *args], input=data, capture_output=True, timeout=60)
    return proc.returncode, proc.stdout, proc.stderr.decode("utf-8", "replace")


def ids_of(text, *args):
    code, out, err = tokenize_bytes(text.encode("utf-8"), "--ids", *args)
    if code != 0:
        raise AssertionError(f"strata tokenize {args} exited {code}: {err}")
    return [int(x) for x in out.split()]


class FixtureCases(unittest.TestCase):
    def check_file(self, path, limit=None):
        cases = read_cases(path)
        self.assertGreater(len(cases), 0)
        for text, expected in cases[:limit]:
            with self.subTest(vocab=os.path.basename(path), text=text):
                self.assertEqual(ids_of(text, "-m", path, "--no-bos"), expected)

    def test_shared_fixtures_every_case(self):
        if not os.path.isdir(SHARED_VOCAB):
            self.skipTest(f"{SHARED_VOCAB} is missing")
        for name in ("ggml-vocab-gpt-2.gguf", "ggml-vocab-llama-spm.gguf"):
            self.check_file(os.path.join(SHARED_VOCAB, name))

    def test_committed_vocabularies_some_cases(self):
        files = sorted(f for f in os.listdir(OUR_VOCAB) if f.endswith(".gguf"))
        self.assertGreaterEqual(len(files), 5)
        for name in files:
            self.check_file(os.path.join(OUR_VOCAB, name), limit=4)


class Formats(unittest.TestCase):
    def setUp(self):
        if not os.path.exists(GPT2):
            self.skipTest(f"{GPT2} is missing")

    def test_default_output_is_one_token_per_line(self):
        proc = run_strata("tokenize", "-m", GPT2, input="Hello\nworld's \\ 'x'", check=True)
        # Pieces are escaped so that each token stays on its own line.
        self.assertEqual(proc.stdout.splitlines(), [
            "15496 'Hello'", "198 '\\n'", "6894 'world'", "338 '\\'s'", "3467 ' \\\\'", "705 ' \\''",
            "87 'x'", "6 '\\''"])

    def test_ids_output_is_one_line(self):
        proc = run_strata("tokenize", "-m", GPT2, "--ids", input="Hello world", check=True)
        self.assertEqual(proc.stdout, "15496 995\n")

    def test_partial_characters_are_escaped_bytes(self):
        # GPT-2 has no token for the llama emoji: it is written as byte tokens.
        proc = run_strata("tokenize", "-m", GPT2, input="🦙", check=True)
        lines = proc.stdout.splitlines()
        self.assertGreater(len(lines), 1)
        self.assertTrue(all("\\x" in line for line in lines), lines)

    def test_special_tokens_parsed_unless_no_special(self):
        self.assertEqual(ids_of("a<|endoftext|>b", "-m", GPT2), [64, 50256, 65])
        self.assertNotIn(50256, ids_of("a<|endoftext|>b", "-m", GPT2, "--no-special"))

    def test_empty_input(self):
        self.assertEqual(ids_of("", "-m", GPT2), [])


class Flags(unittest.TestCase):
    def setUp(self):
        if not os.path.exists(SPM):
            self.skipTest(f"{SPM} is missing")

    def test_bos_added_unless_no_bos(self):
        with_bos = ids_of("Hello world", "-m", SPM)
        without = ids_of("Hello world", "-m", SPM, "--no-bos")
        self.assertEqual(with_bos[0], 1)  # <s>, the model says add_bos_token
        self.assertEqual(with_bos[1:], without)
        self.assertNotEqual(without[0], 1)


class Errors(TempDirTest):
    def test_missing_file_is_an_error_naming_it(self):
        missing = self.path("nope.gguf")
        code, _, err = tokenize_bytes(b"x", "-m", missing)
        self.assertEqual(code, 1)
        self.assertIn("error:", err)
        self.assertIn(missing, err)

    def test_not_a_gguf_is_an_error(self):
        bad = self.path("bad.gguf")
        with open(bad, "wb") as f:
            f.write(b"not a gguf file at all")
        code, _, err = tokenize_bytes(b"x", "-m", bad)
        self.assertEqual(code, 1)
        self.assertIn("error:", err)

    def test_unknown_pre_tokenizer_is_an_error_naming_it(self):
        try:
            import gguf
        except ImportError:
            self.skipTest("the gguf Python package is not installed")
        path = self.path("odd.gguf")
        w = gguf.GGUFWriter(path, "gpt2")
        w.add_tokenizer_model("gpt2")
        w.add_tokenizer_pre("no-such-pre")
        w.add_token_list(["a", "b", "ab"])
        w.add_token_merges(["a b"])
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        code, _, err = tokenize_bytes(b"ab", "-m", path)
        self.assertEqual(code, 1)
        self.assertIn("'no-such-pre'", err)

    def test_invalid_utf8_input_is_tokenized(self):
        if not os.path.exists(GPT2):
            self.skipTest(f"{GPT2} is missing")
        code, out, err = tokenize_bytes(b"\xff\xfe abc \xc3", "-m", GPT2, "--ids")
        self.assertEqual(code, 0, err)
        self.assertGreater(len(out.split()), 3)


if __name__ == "__main__":
    strata_test.main()
