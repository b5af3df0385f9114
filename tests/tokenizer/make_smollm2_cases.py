#!/usr/bin/env python3
"""Expected ids of the default model's tokenizer (SmolLM2-135M-Instruct) on our own cases,
from Hugging Face `tokenizers` set up as that model's tokenizer.json is: byte-level BPE with
the GGUF's vocabulary and merges, pre-tokenizer Sequence[Digits(individual_digits=true),
ByteLevel(add_prefix_space=false, use_regex=true)], its 17 control tokens as special added
tokens. Written to tests/data/tokenizer/smollm2.{inp,out,nospecial.out} (.out: special tokens
parsed; .nospecial.out: special-token text tokenized as text). No BOS (the model adds none).

If a llama.cpp `llama-tokenize` binary is given (--llama-tokenize PATH), every case is also
tokenized by llama.cpp and must agree: two independent implementations behind each id list.

    python3 tests/tokenizer/make_smollm2_cases.py [--model PATH] [--llama-tokenize PATH]
"""
import argparse
import os
import subprocess
import sys

import gguf
import tokenizers
from tokenizers import AddedToken, Tokenizer, models
from tokenizers import pre_tokenizers as P

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
OUT = os.path.join(REPO, "tests", "data", "tokenizer", "smollm2")
SEP = "\n__ggml_vocab_test__\n"

CASES = [
    "Hello, world!",
    "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
    "The year 2024 had 366 days; pi is about 3.14159, and 1,000,000 > 999999.",
    "def fibonacci(n):\n    if n < 2:\n        return n\n    return fibonacci(n - 1) + fibonacci(n - 2)\n",
    "  leading spaces, inner   runs, and trailing   ",
    "Ünïcödé — “quotes” and ‘apostrophes’ … and emoji 🤗🦙👩‍💻",
    "日本語のテキストと中文和한국어",
    "I'm sure you'll see they've done it. DON'T SHOUT, it's RUDE'S",
    "\n\n\nMultiple\n\nnewlines\r\nand\ttabs\t\t",
    "<|endoftext|> appears inside text<|im_end|>and<repo_name>here",
    "https://huggingface.co/HuggingFaceTB/SmolLM2-135M-Instruct?x=1&y=2#top",
    "Ελληνικά, русский, العربية, עברית, हिन्दी",
    "Once upon a time, there was a little girl named Lily. She loved to play outside in the park "
    "with her friends. One day, she found a shiny red ball under a big oak tree.",
    "<|im_start|><|im_start|>user<|im_end|>",
    "x=[1,2,3]; y={'a': 0x1F, \"b\": -4.5e-3}",
]


def load_vocab(path):
    reader = gguf.GGUFReader(path)

    def strings(key):
        field = reader.fields[key]
        return [bytes(field.parts[i]).decode("utf-8") for i in field.data]

    field = reader.fields["tokenizer.ggml.token_type"]
    types = [int(field.parts[i][0]) for i in field.data]
    return strings("tokenizer.ggml.tokens"), strings("tokenizer.ggml.merges"), types


def build(tokens, merges, types, special):
    tk = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(tokens)},
                              merges=[tuple(m.split(" ", 1)) for m in merges]))
    tk.pre_tokenizer = P.Sequence([P.Digits(individual_digits=True),
                                   P.ByteLevel(add_prefix_space=False, use_regex=True)])
    if special:
        tk.add_special_tokens([AddedToken(t, special=True, normalized=False)
                               for i, t in enumerate(tokens) if types[i] == 3])
    return tk


def llama_tokenize(binary, model, text, parse_special):
    args = [binary, "-m", model, "--stdin", "--ids", "--log-disable", "--no-bos", "--no-escape"]
    if not parse_special:
        args.append("--no-parse-special")
    out = subprocess.run(args, input=text.encode("utf-8"), capture_output=True, check=True).stdout.decode()
    return [int(x) for x in out.strip().strip("[]").split(",") if x.strip()]


def main():
    default_model = os.path.join(os.environ.get("STRATA_MODEL_DIR", os.path.expanduser("~/.cache/strata/models")),
                                 "SmolLM2-135M-Instruct.Q4_1.gguf")
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=default_model)
    parser.add_argument("--llama-tokenize", help="a llama.cpp llama-tokenize binary to cross-check with")
    args = parser.parse_args()

    tokens, merges, types = load_vocab(args.model)
    results = {}
    for special in (True, False):
        tk = build(tokens, merges, types, special)
        results[special] = [tk.encode(c, add_special_tokens=False).ids for c in CASES]
        if args.llama_tokenize:
            for case, ids in zip(CASES, results[special]):
                other = llama_tokenize(args.llama_tokenize, args.model, case, special)
                if other != ids:
                    sys.exit(f"llama.cpp disagrees (parse_special={special}) on {case!r}:\n  hf    {ids}\n  llama {other}")

    with open(OUT + ".inp", "w", encoding="utf-8", newline="") as f:
        f.write("".join(c + SEP for c in CASES))
    for special, suffix in ((True, ".out"), (False, ".nospecial.out")):
        with open(OUT + suffix, "w", encoding="utf-8") as f:
            f.write("".join(" ".join(map(str, ids)) + "\n" for ids in results[special]))
    checked = " and agree with llama.cpp's llama-tokenize" if args.llama_tokenize else ""
    print(f"{len(CASES)} cases written to {OUT}.* with tokenizers {tokenizers.__version__}{checked}")


if __name__ == "__main__":
    main()
