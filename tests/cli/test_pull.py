"""End-to-end tests of `strata pull` and `strata list` against a local HTTP server that the
test starts on 127.0.0.1 (with range requests, an ETag holding the SHA-256, and a mode that
cuts the connection half-way): a real file over real HTTP, a download interrupted and resumed,
checksums, a server that is not there, and the cache listing."""
import hashlib
import http.server
import os
import socket
import subprocess
import sys
import threading

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import strata_test  # noqa: E402
from strata_test import TempDirTest  # noqa: E402

import gguf  # noqa: E402


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        srv = self.server
        srv.ranges_seen.append(self.headers.get("Range"))
        path = os.path.join(srv.root, self.path.lstrip("/"))
        if not os.path.isfile(path):
            self.send_error(404)
            return
        with open(path, "rb") as f:
            data = f.read()
        start = 0
        rng = self.headers.get("Range")
        if rng:
            start = int(rng.split("=")[1].split("-")[0])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        if srv.etag is not None:
            self.send_header("ETag", f'"{srv.etag}"')
        self.end_headers()
        if srv.cut_after is not None:
            self.wfile.write(body[:srv.cut_after])
            self.wfile.flush()
            srv.cut_after = None
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class Pull(TempDirTest):
    def setUp(self):
        super().setUp()
        self.root = self.path("www")
        os.makedirs(self.root)
        self.model = os.path.join(self.root, "tiny.gguf")
        w = gguf.GGUFWriter(self.model, "llama")
        rng = np.random.default_rng(1)
        w.add_tensor("blk.0.attn_q.weight", rng.standard_normal((256, 256)).astype(np.float16))
        w.add_tensor("blk.0.attn_norm.weight", np.ones(256, dtype=np.float32))
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        with open(self.model, "rb") as f:
            self.data = f.read()
        self.sha = hashlib.sha256(self.data).hexdigest()
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.root = self.root
        self.server.ranges_seen = []
        self.server.etag = None
        self.server.cut_after = None
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/tiny.gguf"
        self.cache = self.path("cache")

    def tearDown(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)
        super().tearDown()

    def strata(self, *args):
        env = dict(os.environ, STRATA_CACHE=self.cache)
        return subprocess.run([strata_test.STRATA, *args], capture_output=True, text=True, env=env, timeout=120)

    def cached(self, name="tiny.gguf"):
        return os.path.join(self.cache, "models", name)

    def assert_error(self, proc, *fragments):
        self.assertEqual(proc.returncode, 1, proc.stdout + proc.stderr)
        lines = proc.stderr.splitlines()
        self.assertEqual(len(lines), 1, proc.stderr)
        self.assertTrue(lines[0].startswith("error: "), lines[0])
        for f in fragments:
            self.assertIn(f, lines[0])

    def test_pull_then_list(self):
        proc = self.strata("pull", self.url)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertEqual(proc.stdout.strip(), self.cached())
        with open(self.cached(), "rb") as f:
            self.assertEqual(f.read(), self.data)
        self.assertIn(f"sha256 {self.sha} (not checked", proc.stderr)
        self.assertFalse(os.path.exists(self.cached() + ".part"))
        listing = self.strata("list")
        self.assertEqual(listing.returncode, 0, listing.stderr)
        row = [line for line in listing.stdout.splitlines() if line.startswith("tiny.gguf")]
        self.assertEqual(len(row), 1, listing.stdout)
        self.assertEqual(row[0].split()[-2:], ["llama", "f16"])
        self.assertIn("1 model in", listing.stderr)
        self.assert_error(self.strata("pull", self.url), "already in the cache")

    def test_interrupted_download_resumes_with_a_range_request(self):
        self.server.cut_after = len(self.data) // 2
        proc = self.strata("pull", self.url, "-q")
        self.assert_error(proc, "interrupted", "run the same pull again to resume")
        part = self.cached() + ".part"
        self.assertEqual(os.path.getsize(part), len(self.data) // 2)
        self.assertFalse(os.path.exists(self.cached()))
        proc = self.strata("pull", self.url, "--sha256", self.sha.upper())
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertEqual(self.server.ranges_seen, [None, f"bytes={len(self.data) // 2}-"])
        with open(self.cached(), "rb") as f:
            self.assertEqual(f.read(), self.data)
        self.assertIn("(checked)", proc.stderr)

    def test_checksum_from_option_or_etag(self):
        self.assert_error(self.strata("pull", self.url, "--sha256", "0" * 64), "does not match", "deleted")
        self.assertFalse(os.path.exists(self.cached()))
        self.assertFalse(os.path.exists(self.cached() + ".part"))
        self.server.etag = "1" * 64
        self.assert_error(self.strata("pull", self.url), "does not match the expected " + "1" * 64)
        self.server.etag = self.sha
        proc = self.strata("pull", self.url, "-o", "named.gguf")
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertIn("(checked)", proc.stderr)
        self.assertTrue(os.path.exists(self.cached("named.gguf")))

    def test_errors(self):
        self.assert_error(self.strata("pull", self.url.replace("tiny", "absent")), "HTTP status 404")
        with socket.socket() as s:  # a port nothing listens on
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.assert_error(self.strata("pull", f"http://127.0.0.1:{port}/x.gguf"), "cannot download", "offline")
        self.assert_error(self.strata("pull", "ftp://example.com/x.gguf"), "expected an http:// or https:// URL")
        self.assert_error(self.strata("pull", "hf://only-org"), "expected hf://ORG/REPO/FILE.gguf")
        self.assert_error(self.strata("pull", self.url, "-o", "../x.gguf"), "a file name, not a path")
        with open(os.path.join(self.root, "text.gguf"), "w") as f:
            f.write("not a model")
        self.assert_error(self.strata("pull", self.url.replace("tiny", "text")), "not a usable GGUF file")
        self.assertFalse(os.path.exists(self.cached("text.gguf")))


if __name__ == "__main__":
    strata_test.main()
