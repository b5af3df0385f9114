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
STARCODER = os.path.join(OUR_VOCAB, "ggml-vocab-starcoder.gguf")  # byte-level, no token for 0xC0, 0xC1, 0xF5-0xFF
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


class InvalidUtf8(TempDirTest):
    """Bytes that are not UTF-8, per tokenizer family: kept where the vocabulary can spell
    them, else U+FFFD or the unknown token with a warning; never dropped."""

    def pieces(self, path, data):
        code, out, err = tokenize_bytes(data, "-m", path, "--no-bos")
        self.assertEqual(code, 0, err)
        return out.decode("utf-8").splitlines(), err

    def test_byte_level_bpe_with_every_byte_keeps_them(self):
        if not os.path.exists(GPT2):
            self.skipTest(f"{GPT2} is missing")
        lines, err = self.pieces(GPT2, b"a\xffb\xc0")
        self.assertEqual([line.split(" ", 1)[1] for line in lines], ["'a'", "'\\xff'", "'b'", "'\\xc0'"])
        self.assertNotIn("warning", err)

    def test_byte_level_bpe_without_the_byte_writes_replacement(self):
        lines, err = self.pieces(STARCODER, b"a\xffb\xfe")
        self.assertEqual([line.split(" ", 1)[1] for line in lines], ["'a'", "'\ufffd'", "'b'", "'\ufffd'"])
        self.assertIn("warning: 2 characters of the input have no token in this vocabulary", err)

    def test_sentencepiece_uses_byte_fallback(self):
        if not os.path.exists(SPM):
            self.skipTest(f"{SPM} is missing")
        lines, err = self.pieces(SPM, b"a\xffb")
        self.assertIn("258 '\\xff'", lines)  # <0xFF>
        self.assertEqual(len(lines), 3)
        self.assertNotIn("warning", err)

    def test_sentencepiece_without_byte_tokens_uses_unknown(self):
        try:
            import gguf
        except ImportError:
            self.skipTest("the gguf Python package is not installed")
        path = self.path("spm-nobytes.gguf")
        w = gguf.GGUFWriter(path, "llama")
        w.add_tokenizer_model("llama")
        w.add_token_list(["<unk>", "<s>", "</s>", "\u2581", "a", "b", "\u2581a"])
        w.add_token_scores([0.0, 0.0, 0.0, -1.0, -2.0, -3.0, -0.5])
        w.add_token_types([2, 3, 3, 1, 1, 1, 1])
        w.add_unk_token_id(0)
        w.add_bos_token_id(1)
        w.add_eos_token_id(2)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        code, out, err = tokenize_bytes(b"a\xffb", "-m", path, "--ids", "--no-bos")
        self.assertEqual(code, 0, err)
        self.assertEqual(out.decode().split(), ["6", "0", "5"])  # \u2581a <unk> b
        self.assertIn("warning: 1 character of the input has no token", err)


if __name__ == "__main__":
    strata_test.main()
