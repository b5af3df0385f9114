"""Shared set-up of the `strata serve` tests (tests/server/test_*.py), run by CTest as
`python3 test_x.py --strata PATH/TO/strata`: a small synthetic model (GPT-2's vocabulary, so
text round-trips through byte-level BPE) and a server on a free localhost port that is always
stopped, whatever happens to the test. Exits 77 (skipped) without the `openai`, numpy or gguf
packages (scripts/setup-deps installs them in its virtual environment)."""
import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VOCAB = os.path.join(ROOT, "..", "shared", "fixtures", "vocab", "ggml-vocab-gpt-2.gguf")
STRATA = None

try:
    import openai  # noqa: F401
    import numpy  # noqa: F401
    import gguf  # noqa: F401
    HAVE_PACKAGES = True
except ImportError as e:
    HAVE_PACKAGES = False
    MISSING = str(e)


class Model:
    """The synthetic model, made once per process."""
    _tmp = None
    _path = None

    @classmethod
    def path(cls):
        if cls._path is None:
            cls._tmp = tempfile.TemporaryDirectory(prefix="strata-serve-")
            cls._path = os.path.join(cls._tmp.name, "tiny.gguf")
            subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "make-synthetic-model"), "--shape", "small",
                            "--type", "q8_0", "--vocab-from", VOCAB, "--n-embd", "64", "--n-head", "4", "--n-head-kv",
                            "2", "--n-ff", "256", "--n-layer", "2", "--n-ctx", "4096", "-q", "-o", cls._path],
                           check=True, capture_output=True, timeout=300)
        return cls._path


class Server:
    """`strata serve` on a free port (--port 0; the port is read from its first stdout line).
    Use as a context manager, or call stop(): the process is always ended."""

    def __init__(self, *args, ctx=512, parallel=4, chat_template="chatml", start_timeout=120):
        self.args = [STRATA, "serve", "-m", Model.path(), "--port", "0", "-c", str(ctx), "--parallel", str(parallel),
                     "--backend", "cpu", "-t", "2", *map(str, args)]
        if chat_template:
            self.args += ["--chat-template", chat_template]
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.stderr_lines = []
        self._err_thread = threading.Thread(target=self._pump_stderr, daemon=True)
        self._err_thread.start()
        self.port = None
        deadline = time.time() + start_timeout
        line = ""
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            m = re.match(r"listening on http://[^:]+:(\d+)", line)
            if m:
                self.port = int(m.group(1))
                break
        if self.port is None:
            self.stop()
            raise AssertionError(f"strata serve did not start: {line!r}\n{self.stderr()}")
        self.base = f"http://127.0.0.1:{self.port}"

    def _pump_stderr(self):
        for line in self.proc.stderr:
            self.stderr_lines.append(line)

    def stderr(self):
        return "".join(self.stderr_lines)

    def client(self, **kwargs):
        import openai
        kwargs.setdefault("api_key", "none")
        return openai.OpenAI(base_url=self.base + "/v1", max_retries=0, timeout=120, **kwargs)

    def request(self, method, path, body=None, headers=None, timeout=60):
        """Raw HTTP: (status, parsed JSON or text). `body` may be bytes, str or a JSON value."""
        if body is not None and not isinstance(body, (bytes, str)):
            body = json.dumps(body)
        if isinstance(body, str):
            body = body.encode()
        req = urllib.request.Request(self.base + path, data=body, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                status, data, ctype = r.status, r.read(), r.headers.get("Content-Type", "")
        except urllib.error.HTTPError as e:
            status, data, ctype = e.code, e.read(), e.headers.get("Content-Type", "")
        text = data.decode("utf-8", errors="replace")
        return status, (json.loads(text) if "json" in ctype else text)

    def metrics(self):
        status, text = self.request("GET", "/metrics")
        assert status == 200, (status, text)
        return {m.group(1): float(m.group(2)) for m in re.finditer(r"^(strata_\w+(?:\{[^}]*\})?) (\S+)$", text, re.M)}

    def wait_idle(self, timeout=10):
        """The metrics once nothing runs or waits and no KV block is in use (fails after `timeout` s)."""
        deadline = time.time() + timeout
        while True:
            m = self.metrics()
            if m["strata_kv_blocks_used"] == 0 and m["strata_requests_running"] == 0 and \
                    m["strata_requests_queued"] == 0:
                return m
            if time.time() > deadline:
                raise AssertionError(f"the server is not idle {timeout} s later: {m}")
            time.sleep(0.05)

    def stop(self, sig=signal.SIGTERM, timeout=30):
        """Ends the server with `sig`; returns its exit code (killing it if it does not end)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"strata serve did not exit {timeout} s after signal {sig}")
        self._err_thread.join(timeout=5)
        self.proc.stdout.close()
        self.proc.stderr.close()
        return self.proc.returncode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def main():
    global STRATA
    parser = argparse.ArgumentParser()
    parser.add_argument("--strata", required=True, help="path of the strata executable")
    args, rest = parser.parse_known_args()
    STRATA = os.path.abspath(args.strata)
    if not HAVE_PACKAGES:
        print(f"skipped: {MISSING} (run scripts/setup-deps and use its Python)")
        sys.exit(77)
    if not os.path.exists(VOCAB):
        print(f"skipped: no vocabulary fixture {VOCAB}")
        sys.exit(77)
    result = unittest.main(argv=[sys.argv[0], *rest], exit=False, verbosity=2).result
    failed = len(result.failures) + len(result.errors)
    passed = result.testsRun - failed - len(result.skipped)
    print(f"{passed} passed, {failed} failed, {len(result.skipped)} skipped")
    sys.exit(1 if failed else 0)
