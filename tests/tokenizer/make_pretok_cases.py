#!/usr/bin/env python3
"""Expected ids for every supported tokenizer.ggml.pre value, produced by Hugging Face
`tokenizers` (an independent implementation: Rust, Oniguruma regexes) and committed as
tests/data/tokenizer/pretok/{cases.inp, <pre>.out}.

Each pre-tokenizer is configured as the model's tokenizer.json does it (Split/Digits/
Punctuation/ByteLevel pre-tokenizers; ignore_merges for Llama 3 and Tekken) on top of one
byte-level BPE vocabulary, GPT-2's (the shared fixture ggml-vocab-gpt-2.gguf), so that the
only thing that differs between the .out files is the pre-tokenizer. The cases are the
llama.cpp fixture strings, hand-written edge cases and seeded random Unicode text.

Run by hand when cases or pre-tokenizers change:
    pip install tokenizers gguf
    python3 tests/tokenizer/make_pretok_cases.py [--vocab PATH/ggml-vocab-gpt-2.gguf]
"""
import argparse
import os
import random
import sys

import gguf
import tokenizers
from tokenizers import AddedToken, Regex, Tokenizer, models
from tokenizers import pre_tokenizers as P

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
OUT_DIR = os.path.join(REPO, "tests", "data", "tokenizer", "pretok")
SEP = "\n__ggml_vocab_test__\n"

# Regular expressions as written in the models' tokenizer.json files.
GPT2 = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
LLAMA3 = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
QWEN2 = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
QWEN35 = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
SEED_CODER = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1}| ?[^\s\p{L}\p{N}\r\n]+|\s*[\r\n]+|\s+(?!\S)|\s+"
TEKKEN = (r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|[^\r\n\p{L}\p{N}]?"
          r"[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+")
GPT4O = (r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|"
         r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|"
         r"\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+")
CJK = r"[\x{4E00}-\x{9FA5}\x{800}-\x{4E00}\x{AC00}-\x{D7FF}]+"
DEEPSEEK_LLM_LETTERS = (
    r"\s?[A-Za-z\x{B5}\x{C0}-\x{D6}\x{D8}-\x{F6}\x{F8}-\x{1BA}\x{1BC}-\x{1BF}\x{1C4}-\x{293}\x{295}-"
    r"\x{2AF}\x{370}-\x{373}\x{376}\x{377}\x{37B}-\x{37D}\x{37F}\x{386}\x{388}-\x{38A}\x{38C}\x{38E}-"
    r"\x{3A1}\x{3A3}-\x{3F5}\x{3F7}-\x{481}\x{48A}-\x{52F}\x{531}-\x{556}\x{10A0}-\x{10C5}\x{13A0}-"
    r"\x{13F5}\x{13F8}-\x{13FD}\x{1C90}-\x{1CBA}\x{1CBD}-\x{1CBF}\x{1D00}-\x{1D2B}\x{1D6B}-\x{1D77}"
    r"\x{1D79}-\x{1D9A}\x{1E00}-\x{1F15}\x{1F18}-\x{1F1D}\x{1F20}-\x{1F45}\x{1F48}-\x{1F4D}\x{1F50}-"
    r"\x{1F57}\x{1F59}\x{1F5B}\x{1F5D}\x{1F5F}-\x{1F7D}\x{1F80}-\x{1FB4}\x{1FB6}-\x{1FBC}\x{1FBE}\x{1FC2}-"
    r"\x{1FC4}\x{1FC6}-\x{1FCC}\x{1FD0}-\x{1FD3}\x{1FD6}-\x{1FDB}\x{1FE0}-\x{1FEC}\x{1FF2}-\x{1FF4}"
    r"\x{1FF6}-\x{1FFC}\x{2102}\x{2107}\x{210A}-\x{2113}\x{2115}\x{2119}-\x{211D}\x{2124}\x{2126}\x{2128}"
    r"\x{212A}-\x{212D}\x{212F}-\x{2134}\x{2139}\x{213C}-\x{213F}\x{2145}-\x{2149}\x{214E}\x{2183}\x{2184}"
    r"\x{2C00}-\x{2C7B}\x{2C7E}-\x{2CE4}\x{2CEB}-\x{2CEE}\x{2CF2}\x{2CF3}\x{A640}-\x{A66D}\x{A680}-"
    r"\x{A69B}\x{A722}-\x{A76F}\x{A771}-\x{A787}\x{A78B}-\x{A78E}\x{AB70}-\x{ABBF}\x{FB00}-\x{FB06}"
    r"\x{FB13}-\x{FB17}\x{FF21}-\x{FF3A}\x{FF41}-\x{FF5A}\x{10400}-\x{1044F}\x{104B0}-\x{104D3}\x{104D8}-"
    r"\x{104FB}\x{10C80}-\x{10CB2}\x{10CC0}-\x{10CF2}\x{118A0}-\x{118DF}\x{1E900}-\x{1E943}]+")
DEEPSEEK_LLM_PUNCT = r"\s?[!-/:-~\x{FF01}-\x{FF0F}\x{FF1A}-\x{FF5E}\x{2018}-\x{201F}\x{3000}-\x{3002}]+"
DEEPSEEK_V3 = (r"[!\"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*"
               r"|\s*[\r\n]+|\s+(?!\S)|\s+")
BLOOM = " ?[^(\\s|.,!?…。，、।۔،)]+"


def split(pattern):
    return P.Split(Regex(pattern), "isolated")


def byte_level(use_regex):
    return P.ByteLevel(add_prefix_space=False, use_regex=use_regex)


def seq(*items):
    return P.Sequence(list(items))


# pre value -> (pre-tokenizer, ignore_merges)
def configs():
    gpt2 = lambda: (byte_level(True), False)
    starcoder = lambda: (seq(P.Digits(individual_digits=True), byte_level(True)), False)
    split_then_bytes = lambda pattern, ignore=False: (seq(split(pattern), byte_level(False)), ignore)
    out = {
        # llama.cpp's own set for files without a known pre-tokenizer
        "default": (seq(split(r"[\p{P}\$\+<=>\^~\|]+"), split(GPT2), split(r"\p{N}+"), split("[0-9][0-9][0-9]"),
                        byte_level(False)), False),
        # Digits(individual_digits=false) of falcon's tokenizer.json is left out: with falcon's own
        # vocabulary it changes nothing (no token mixes digits with other characters).
        "falcon": (seq(P.Punctuation("contiguous"), byte_level(True), split("[0-9][0-9][0-9]")), False),
        "deepseek-llm": (seq(split("[\r\n]"), split(DEEPSEEK_LLM_LETTERS), split(DEEPSEEK_LLM_PUNCT), split(r"\s+$"),
                             split(CJK), split(r"\p{N}+"), byte_level(False)), False),
        "deepseek-coder": (seq(split("[\r\n]"), split(r"\s?\p{L}+"), split(r"\s?\p{P}+"), split(CJK),
                               P.Digits(individual_digits=True), byte_level(False)), False),
        "deepseek-v3": (seq(split(r"\p{N}{1,3}"), split(r"[\x{4E00}-\x{9FA5}\x{3040}-\x{309F}\x{30A0}-\x{30FF}]+"), split(DEEPSEEK_V3), byte_level(False)), False),
        "bloom": split_then_bytes(BLOOM),
        "viking": (seq(split(BLOOM), P.Digits(individual_digits=True), byte_level(False)), False),
        "llama-bpe": split_then_bytes(LLAMA3, True),
        "dbrx": split_then_bytes(LLAMA3),
        "qwen2": split_then_bytes(QWEN2),
        "stablelm2": split_then_bytes(QWEN2),
        "qwen35": split_then_bytes(QWEN35),
        "seed-coder": split_then_bytes(SEED_CODER),
        "tekken": split_then_bytes(TEKKEN, True),
        "gpt-4o": split_then_bytes(GPT4O),
    }
    for name in ["gpt-2", "phi-2", "mpt", "olmo", "gpt-neox", "jina-es", "jina-de", "jina-v1-en", "jina-v2-es",
                 "jina-v2-de", "jina-v2-code"]:
        out[name] = gpt2()
    for name in ["starcoder", "refact", "smollm", "command-r"]:
        out[name] = starcoder()
    return out


HAND_CASES = [
    "I'M here, YOU'RE there; it's IT'S we'Ll they'VE she'D o'clock 'tis",
    "it'ſ a ſtrange caſe, the 'K (Kelvin) and 'k",
    "tab\there\x0bvt\x0cff\rcr\r\nlf nel\x85x nbsp\xa0x ogham\u1680x en\u2000x hair\u200ax ls\u2028x ps\u2029x "
    "nnbsp\u202fx mmsp\u205fx ideo\u3000x mvs\u180ex zwsp\u200bx fs\x1cx us\x1fx",
    "1234567 12.5 3.14159265358979 1,000,000 ½ ¼ ²³¹ ١٢٣٤ ①②③ ⅫⅦ 0x1F 1e-9",
    "日本語のテキストです。カタカナ、ひらがな。 한국어 텍스트입니다. 中文文本，包括标点符号！",
    "é vs e\u0301 naïve Ångström नमस्ते दुनिया สวัสดีครับ مرحبا بالعالم שלום",
    "def foo(x):\n\treturn x**2  # comment\n\n\nclass Bar:\n    pass\n",
    "HelloWorld camelCase XMLHttpRequest ÉCOLE ǅungla ABCdef abcDEF",
    "a  \n\n  b\t\t c    \r\n d  ",
    "   leading and trailing   ",
    "🇯🇵 👍🏽 👩‍👩‍👧‍👦 🏳️‍🌈 ❤️",
    "...!!!???---===''''\"\"\"```~~~$$$^^^|||<<>>++",
    "https://example.com/path?q=1&x=2#frag user@mail.org C:\\Windows\\path",
    "Hello<|endoftext|> world<|endoftext|><|endoftext|>\n<|endoftext|>",
    "ⅰⅱ ﬁne ＦＵＬＬＷＩＤＴＨ ｆｕｌｌ １２３ 〜「引用」",
    "x" * 300 + " " + "9" * 40 + " " + "\n" * 10 + "!" * 50,
    "Ελληνικά κείμενα και Ρωσικά: Привет, как дела? Ўзбек ҚАЗАҚ",
]

POOL = (
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    "        \t\n\n\r'''\"!?.,;:-_()[]{}<>/\\|@#$%^&*+=~`"
    "éèêëàâäôöüçñßÉÀÇÑæøåÆØÅłŁžŽčČ ſ K"
    "αβγδεζηθΑΒΓΔЖжЩщЫыюЮ"
    "日本語中文字汉漢한국어가힣ひらがなカタカナ〜、。，！？"
    "½¼²³١٢٣①⅓"
    "\u0301\u0308\u0327\u093f\u0e31"
    "\u00a0\u0085\u2000\u2028\u3000\u200b\u200d\ufeff"
    "🦙🚀😀👍🏽❤️✅"
)


def random_cases(n, seed=1234):
    rng = random.Random(seed)
    cases = []
    for _ in range(n):
        length = rng.randint(1, 60)
        cases.append("".join(rng.choice(POOL) for _ in range(length)))
    return cases


def read_fixture_cases(vocab_path):
    text = open(vocab_path + ".inp", encoding="utf-8", newline="").read()
    cases = text.split(SEP)
    if cases and cases[-1] == "":
        cases.pop()
    return cases


def load_vocab(path):
    reader = gguf.GGUFReader(path)

    def strings(key):
        field = reader.fields[key]
        return [bytes(field.parts[i]).decode("utf-8") for i in field.data]

    field = reader.fields["tokenizer.ggml.token_type"]
    types = [int(field.parts[i][0]) for i in field.data]
    return strings("tokenizer.ggml.tokens"), strings("tokenizer.ggml.merges"), types


def build(tokens, merges, types, pre, ignore_merges):
    vocab = {t: i for i, t in enumerate(tokens)}
    pairs = [tuple(m.split(" ", 1)) for m in merges]
    tk = Tokenizer(models.BPE(vocab=vocab, merges=pairs, ignore_merges=ignore_merges))
    tk.pre_tokenizer = pre
    # Control (3) and user-defined (4) tokens are added tokens, matched before pre-tokenizing.
    tk.add_tokens([AddedToken(t, special=(types[i] == 3), normalized=False)
                   for i, t in enumerate(tokens) if types[i] in (3, 4)])
    return tk


def main():
    default_vocab = os.path.join(REPO, "..", "shared", "fixtures", "vocab", "ggml-vocab-gpt-2.gguf")
    parser = argparse.ArgumentParser()
    parser.add_argument("--vocab", default=default_vocab)
    args = parser.parse_args()

    tokens, merges, types = load_vocab(args.vocab)
    cases = read_fixture_cases(args.vocab) + HAND_CASES + random_cases(200)
    for c in cases:
        assert SEP not in c
    os.makedirs(OUT_DIR, exist_ok=True)
    with open(os.path.join(OUT_DIR, "cases.inp"), "w", encoding="utf-8", newline="") as f:
        f.write("".join(c + SEP for c in cases))
    for name, (pre, ignore_merges) in sorted(configs().items()):
        tk = build(tokens, merges, types, pre, ignore_merges)
        with open(os.path.join(OUT_DIR, name + ".out"), "w", encoding="utf-8", newline="") as f:
            for c in cases:
                f.write(" ".join(map(str, tk.encode(c, add_special_tokens=False).ids)) + "\n")
    with open(os.path.join(OUT_DIR, "README.md"), "w", encoding="utf-8") as f:
        f.write(f"""# Pre-tokenizer cases

Generated by tests/tokenizer/make_pretok_cases.py with Hugging Face tokenizers {tokenizers.__version__}
(Python {sys.version.split()[0]}): the ids each pre-tokenizer gives, on GPT-2's byte-level BPE
vocabulary (../shared/fixtures/vocab/ggml-vocab-gpt-2.gguf), for the {len(cases)} cases of cases.inp
(separated by "\\n__ggml_vocab_test__\\n"). Checked by tests/tokenizer/pretok_hf_test.cpp.
""")
    print(f"{len(configs())} pre-tokenizers x {len(cases)} cases written to {OUT_DIR}")


if __name__ == "__main__":
    main()
