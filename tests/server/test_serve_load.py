"""Load and faults: 64 concurrent streams, 16 of them cut mid-stream by their clients, with
malformed requests in between. Every completed stream must equal what its prompt gives alone;
afterwards /health answers within 1 s and no KV block stays in use."""
import threading
import unittest

import serve_fixture
from serve_fixture import Server

PROMPTS = ["Once upon a time", "The capital of France is", "def main():", "1, 2, 3,", "Hello", "A B C D",
           "In the beginning", "The quick brown fox"]
N_STREAMS = 64
N_CUT = 16
N_TOKENS = 16


class LoadTest(unittest.TestCase):
    def test_64_streams_with_16_cut(self):
        with Server(ctx=512, parallel=8) as server:
            client = server.client()

            def complete(prompt):
                return client.completions.create(model="tiny.gguf", prompt=prompt, max_tokens=N_TOKENS, temperature=0)

            expected = [complete(p).choices[0].text for p in PROMPTS]
            results = [None] * N_STREAMS
            errors = []

            def stream(i):
                try:
                    cut = i % (N_STREAMS // N_CUT) == 0
                    # A cut stream would run long: it is surely still generating when its client leaves.
                    extra = {"max_tokens": 400, "extra_body": {"ignore_eos": True}} if cut else {"max_tokens": N_TOKENS}
                    s = client.completions.create(model="tiny.gguf", prompt=PROMPTS[i % len(PROMPTS)], temperature=0,
                                                  stream=True, **extra)
                    text, finish = "", None
                    for n, chunk in enumerate(s):
                        text += chunk.choices[0].text
                        finish = chunk.choices[0].finish_reason or finish
                        if cut and n == 2:
                            s.close()  # the connection closes mid-stream
                            results[i] = "cut"
                            return
                    results[i] = (text, finish)
                except Exception as e:  # reported by the main thread
                    errors.append(f"stream {i}: {e!r}")

            def malformed():
                for body in [b"{", b'{"prompt": 5}', b'{"prompt": "x", "top_p": 7}']:
                    status, err = server.request("POST", "/v1/completions", body)
                    if status != 400 or "error" not in err:
                        errors.append(f"malformed {body!r}: {status} {err}")

            threads = [threading.Thread(target=stream, args=(i,)) for i in range(N_STREAMS)]
            threads.append(threading.Thread(target=malformed))
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=300)
            self.assertEqual(errors, [])
            self.assertTrue(all(not t.is_alive() for t in threads), "a client thread did not end")
            self.assertEqual(sum(r == "cut" for r in results), N_CUT)
            for i, r in enumerate(results):
                if r != "cut":
                    self.assertEqual(r, (expected[i % len(PROMPTS)], "length"), f"stream {i}")

            status, body = server.request("GET", "/health", timeout=1)
            self.assertEqual((status, body), (200, {"status": "ok"}))
            m = server.wait_idle()
            self.assertEqual(m["strata_client_disconnects_total"], N_CUT)
            self.assertEqual(m["strata_kv_blocks_used"], 0)
            self.assertEqual(m["strata_requests_finished_total"], len(PROMPTS) + N_STREAMS)
            self.assertEqual(server.stop(), 0, server.stderr())


if __name__ == "__main__":
    serve_fixture.main()
