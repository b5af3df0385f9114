"""Runners for the parity tests: the strata binary, the exact float64 oracle
(tests/oracle/exact_llama.py) and llama.cpp's tools, plus the small helpers they share
(hashing, a detokenizer for reading generated ids as text, greedy/text comparison).

Everything here returns plain dicts and lists so that results can be stored as JSON."""
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "oracle"))
import exact_llama  # noqa: E402

import gguf  # noqa: E402


# Tensor dumps go to memory where the machine has it (writing ~2000 small files a run costs
# half a second of system time on a disk file system).
DUMP_DIR = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None


class ParityError(Exception):
    pass


def run(cmd, input=None, timeout=3600):
    """Runs a command; returns (stdout, stderr) as text, raising ParityError on failure."""
    try:
        proc = subprocess.run([str(c) for c in cmd], input=input, capture_output=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise ParityError(f"{' '.join(map(str, cmd))}: {e}") from e
    out = proc.stdout.decode("utf-8", errors="replace")
    err = proc.stderr.decode("utf-8", errors="replace")
    if proc.returncode != 0:
        raise ParityError(f"{' '.join(map(str, cmd))} exited {proc.returncode}:\n{err[-3000:]}")
    return out, err


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def sha256_ids(ids):
    return hashlib.sha256(",".join(map(str, ids)).encode()).hexdigest()


def python_versions():
    return {"python": sys.version.split()[0], "numpy": np.__version__, "gguf": gguf_version()}


def gguf_version():
    try:
        from importlib.metadata import version
        return version("gguf")
    except Exception:  # pragma: no cover - metadata missing
        return "unknown"


def top2(logits):
    """(argmax id, second id, margin) of a 1-D logit vector."""
    order = np.argsort(np.asarray(logits, dtype=np.float64))[::-1][:2]
    return int(order[0]), int(order[1]), float(logits[order[0]]) - float(logits[order[1]])


# ---- reading ids as text ----

def _byte_decoder():
    """Inverse of the byte-level BPE alphabet: printable Latin-1 bytes stand for themselves,
    the other 68 bytes are shifted to code points 256.. in byte order."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    table, shifted = {}, 0
    for b in range(256):
        if b in keep:
            table[chr(b)] = b
        else:
            table[chr(256 + shifted)] = b
            shifted += 1
    return table


class Detokenizer:
    """Turns generated token ids back into bytes, as a streaming engine prints them: control
    tokens print nothing; SentencePiece pieces turn U+2581 into spaces and <0xXX> into bytes;
    byte-level BPE pieces map their alphabet back to bytes."""

    def __init__(self, model_path):
        reader = gguf.GGUFReader(model_path)
        f = reader.fields
        self.kind = f["tokenizer.ggml.model"].contents()
        self.tokens = f["tokenizer.ggml.tokens"].contents()
        self.types = f["tokenizer.ggml.token_type"].contents() if "tokenizer.ggml.token_type" in f else None
        self._bytes = _byte_decoder()

    def piece(self, token_id):
        t = self.tokens[token_id]
        ttype = self.types[token_id] if self.types is not None else gguf.TokenType.NORMAL
        if ttype in (gguf.TokenType.CONTROL, gguf.TokenType.UNKNOWN):
            return b""
        if ttype == gguf.TokenType.USER_DEFINED:
            return t.encode()
        if self.kind == "llama":
            if ttype == gguf.TokenType.BYTE and re.fullmatch(r"<0x[0-9A-Fa-f]{2}>", t):
                return bytes([int(t[3:5], 16)])
            return t.replace("\u2581", " ").encode()
        if self.kind == "gpt2":
            return bytes(self._bytes.get(c, 0x3F) for c in t)
        raise ParityError(f"detokenizer: tokenizer model '{self.kind}' is not supported")

    def pieces(self, ids):
        return [self.piece(i) for i in ids]


def first_difference(a, b):
    """Index of the first differing byte of two byte strings, or None when equal."""
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return None if len(a) == len(b) else n


def token_at_byte(pieces, offset):
    """Index of the token whose bytes contain byte `offset` of their concatenation (or the
    number of tokens when the offset is at the end)."""
    pos = 0
    for i, p in enumerate(pieces):
        if pos + len(p) > offset:
            return i
        pos += len(p)
    return len(pieces)


# ---- comparisons ----

def compare_greedy(got_ids, ref_steps, near_tie):
    """Compares strata's greedy ids with the oracle's steps ({id, margin, ...}). A step whose
    oracle top-2 margin is below near_tie may go either way: the comparison stops there if the
    ids differ ("near_tie") and goes on if they agree. Returns {status: identical | near_tie |
    mismatch, compared: ids checked, at: step of the divergence, margin: there, near_ties:
    [[step, margin], ...] passed on the way, detail}."""
    seen = []
    for i, step in enumerate(ref_steps):
        tie = step["margin"] < near_tie
        if i >= len(got_ids) or got_ids[i] != step["id"]:
            got = got_ids[i] if i < len(got_ids) else "nothing (it stopped)"
            detail = f"step {i}: strata {got}, oracle {step['id']} (top-2 margin {step['margin']:.4g})"
            return {"status": "near_tie" if tie else "mismatch", "compared": i, "at": i, "margin": step["margin"],
                    "near_ties": seen, "detail": detail}
        if tie:
            seen.append([i, step["margin"]])
    if len(got_ids) > len(ref_steps):
        return {"status": "mismatch", "compared": len(ref_steps), "at": len(ref_steps), "margin": None,
                "near_ties": seen, "detail": f"strata went on past the oracle's {len(ref_steps)} tokens"}
    return {"status": "identical", "compared": len(ref_steps), "at": None, "margin": None, "near_ties": seen}


def rel_diff(a, b):
    return abs(a - b) / abs(b)


# ---- strata ----

class Strata:
    """The strata binary on the reference CPU backend."""

    def __init__(self, exe, backend="cpu_ref", threads=1):
        self.exe, self.backend, self.threads = os.path.abspath(exe), backend, threads

    def _model_args(self, model, kv):
        return ["-m", model, "--backend", self.backend, "-t", self.threads, "--kv-type", kv]

    def tokenize(self, model, text):
        out, _ = run([self.exe, "tokenize", "-m", model, "--ids"], input=text.encode())
        return [int(t) for t in out.split()]

    def perplexity(self, model, text_path, ctx, chunks=None, kv="f32"):
        cmd = [self.exe, "perplexity", *self._model_args(model, kv), "-f", text_path, "-c", ctx, "-q"]
        if chunks:
            cmd += ["--chunks", chunks]
        out, _ = run(cmd)
        return parse_perplexity(out, "strata perplexity")

    def greedy(self, model, prompt, n_predict, kv="f32"):
        """Greedy continuation: ids (argmax of each pass's dumped logits), strata's own top-2
        margins and the text printed on stdout."""
        with tempfile.TemporaryDirectory(prefix="strata-parity-", dir=DUMP_DIR) as d:
            out, _ = run([self.exe, "run", *self._model_args(model, kv), "-p", prompt, "-n", n_predict,
                          "--temp", "0", "-q", "--dump-tensors", d])
            passes = sorted(p for p in os.listdir(d) if p.startswith("pass-"))
            ids, margins = [], []
            for p in passes:
                tok, _, margin = top2(np.load(os.path.join(d, p, "logits.npy"))[-1])
                ids.append(tok)
                margins.append(margin)
        return {"ids": ids, "margins": margins, "text": out[:-1] if out.endswith("\n") else out}  # run adds a newline


def parse_perplexity(out, what):
    """Running values '[1]x,[2]y,...' and 'Final estimate: PPL = z' of strata or llama.cpp."""
    chunk_ppl = [float(v) for v in re.findall(r"\[\d+\]\s*([0-9.]+(?:e[+-]?\d+)?),", out)]
    m = re.search(r"Final estimate: PPL = ([0-9.]+(?:e[+-]?\d+)?)", out)
    if not m:
        raise ParityError(f"{what}: no 'Final estimate' in its output:\n{out[-2000:]}")
    return {"ppl": float(m.group(1)), "chunk_ppl": chunk_ppl, "n_chunks": len(chunk_ppl)}


# ---- the exact oracle ----

class Oracle:
    """exact_llama.ExactModel with the model kept loaded (dequantized weights cached)."""

    def __init__(self, model_path):
        cache_gb = float(os.environ.get("STRATA_ORACLE_CACHE_GB", 4))  # float64 weights when they fit
        self.model = exact_llama.ExactModel(model_path, cache_gb=cache_gb)

    def perplexity(self, ids, ctx, chunks=None):
        r = self.model.perplexity(ids, ctx, chunks)
        return {"ppl": r["ppl"], "err": r["err"], "chunk_ppl": r["chunk_ppl"], "n_chunks": r["n_chunks"],
                "count": r["count"]}

    def greedy(self, prompt_ids, n_predict):
        return [{"id": s["id"], "margin": s["margin"], "second_id": s["second_id"]}
                for s in self.model.greedy(prompt_ids, n_predict)]

    def logits(self, ids):
        """float64 logits of the last token of ids."""
        return self.model.forward(ids, logit_rows=[len(ids) - 1])[-1]


# ---- llama.cpp ----

class LlamaCpp:
    """llama.cpp's tools as built by scripts/build-llama-cpp."""

    def __init__(self, bindir, threads=2):
        self.bindir, self.threads = bindir, threads

    @staticmethod
    def find(explicit=None):
        if explicit:
            return LlamaCpp(explicit)
        try:
            out = subprocess.run([os.path.join(ROOT, "scripts", "build-llama-cpp"), "--path"],
                                 capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            return None
        path = out.stdout.strip().splitlines()[-1] if out.returncode == 0 and out.stdout.strip() else None
        return LlamaCpp(path) if path and os.path.isdir(path) else None

    def tool(self, name):
        return os.path.join(self.bindir, name)

    def version(self):
        """The first lines of bin/VERSION: sdist version, commit, what --version reports, flags."""
        try:
            with open(os.path.join(self.bindir, "VERSION")) as f:
                lines = [ln.strip() for ln in f if ln.strip()]
        except OSError:
            lines = []
        commit = next((ln.split()[2] for ln in lines if ln.startswith("llama.cpp commit")), "unknown")
        return {"commit": commit, "version_file": lines}

    def tokenize(self, model, text_path):
        out, _ = run([self.tool("llama-tokenize"), "-m", model, "-f", text_path, "--ids", "--log-disable"])
        return exact_llama.parse_ids(out)

    def perplexity(self, model, text_path, ctx, chunks=None):
        cmd = [self.tool("llama-perplexity"), "-m", model, "-f", text_path, "-c", ctx, "-t", self.threads]
        if chunks:
            cmd += ["--chunks", chunks]
        out, err = run(cmd)
        return parse_perplexity(out + err, "llama-perplexity")

    def log_probs(self, model, text_path, ctx, chunks):
        """llama.cpp's log-probabilities at the scored positions of the first `chunks` chunks, as
        llama-perplexity --kl-divergence-base stores them: per position a float scale and the
        minimum log-prob, then n_vocab uint16 v (log-prob = min + scale * v; 0 = at or below a
        floor 16 below the top logit). Returns (tokens [n_chunk * ctx], list of float64 rows)."""
        with tempfile.TemporaryDirectory(prefix="strata-parity-") as d:
            path = os.path.join(d, "base.kld")
            run([self.tool("llama-perplexity"), "-m", model, "-f", text_path, "-c", ctx, "-t", self.threads,
                 "--chunks", chunks, "--kl-divergence-base", path])
            with open(path, "rb") as f:
                raw = f.read()
        if raw[:8] != b"_logits_":
            raise ParityError("llama-perplexity --kl-divergence-base: unexpected file header")
        n_ctx, n_vocab, n_chunk = np.frombuffer(raw, np.int32, 3, 8)
        tokens = np.frombuffer(raw, np.int32, n_chunk * n_ctx, 20)
        nv = 2 * ((n_vocab + 1) // 2) + 4
        body = np.frombuffer(raw, np.uint16, offset=20 + 4 * n_chunk * n_ctx).reshape(-1, nv)
        head = body[:, :4].copy().view(np.float32)  # [n_pos, 2]: scale, min log-prob
        rows = head[:, 1:2].astype(np.float64) + head[:, 0:1].astype(np.float64) * body[:, 4:4 + n_vocab]
        rows[body[:, 4:4 + n_vocab] == 0] = -np.inf
        return tokens.tolist(), rows

    def greedy_text(self, model, prompt, n_predict):
        """Greedy continuation as text from llama-completion (--temp 0: argmax)."""
        out, _ = run([self.tool("llama-completion"), "-m", model, "-p", prompt, "-n", n_predict, "--temp", "0",
                      "--repeat-penalty", "1", "-no-cnv", "--no-display-prompt", "-t", self.threads, "-s", "1"])
        # it prints "\n\n" at exit, after " [end of text]\n" when the model ended the text
        out = out[:-2] if out.endswith("\n\n") else out
        end = " [end of text]\n"
        return out[:-len(end)] if out.endswith(end) else out


def load_json(path):
    with open(path) as f:
        return json.load(f)


def save_json(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    text = json.dumps(data, indent=1, ensure_ascii=False)
    # lists of numbers on one line each
    text = re.sub(r"\[\n\s*([-0-9.e+, \n]*?)\n\s*\]",
                  lambda m: "[" + re.sub(r",\s*\n\s*", ", ", m.group(1)) + "]", text)
    with open(path + ".tmp", "w") as f:
        f.write(text + "\n")
    os.replace(path + ".tmp", path)
