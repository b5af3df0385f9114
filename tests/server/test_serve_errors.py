"""Malformed and refused requests over raw HTTP: each gets OpenAI's error shape with its status
(400 naming the field, 404, 413, 401, 429) and the server keeps serving; SIGINT and SIGTERM end
the server with exit code 0 after the streams in flight have ended properly."""
import http.client
import json
import signal
import time
import unittest

import serve_fixture
from serve_fixture import Server


def read_events(response, n=None):
    """Reads server-sent events (the data of each) from an http.client response; n: at most n."""
    events = []
    buf = b""
    while n is None or len(events) < n:
        line = response.readline()
        if not line:
            break
        buf += line
        if line in (b"\n", b"\r\n"):
            data = buf.strip()
            buf = b""
            if data.startswith(b"data: "):
                events.append(data[6:].decode())
                if events[-1] == "[DONE]":
                    break
    return events


def open_stream(server, body, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    conn.request("POST", "/v1/completions", json.dumps(body), {"Content-Type": "application/json", **(headers or {})})
    return conn, conn.getresponse()


class ErrorsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Server("--max-body", "4096", ctx=512)
        cls.addClassCleanup(cls.server.stop)

    def expect_error(self, status, path, body, code=None, param=None, message_part=None, method="POST"):
        got, err = self.server.request(method, path, body)
        self.assertEqual(got, status, err)
        self.assertIsInstance(err, dict, err)
        e = err["error"]
        self.assertEqual(set(e), {"message", "type", "param", "code"})
        self.assertTrue(e["message"])
        if code is not None:
            self.assertEqual(e["code"], code, e)
        if param is not None:
            self.assertEqual(e["param"], param, e)
        if message_part is not None:
            self.assertIn(message_part, e["message"])
        return e

    def test_malformed_json(self):
        for body in [b"", b"{", b'{"prompt": "x",}', b"\xff\xfe", b"[1, 2]", b"null"]:
            e = self.expect_error(400, "/v1/completions", body)
            self.assertEqual(e["type"], "invalid_request_error")
        self.expect_error(400, "/v1/chat/completions", b'{"messages": [', code="invalid_json")

    def test_wrong_types_name_the_field(self):
        self.expect_error(400, "/v1/completions", {"prompt": "x", "temperature": "hot"}, param="temperature")
        self.expect_error(400, "/v1/completions", {"prompt": "x", "max_tokens": "9"}, param="max_tokens")
        self.expect_error(400, "/v1/completions", {"prompt": "x", "stop": [1]}, param="stop[0]")
        self.expect_error(400, "/v1/completions", {"prompt": "x", "stream": "yes"}, param="stream")
        self.expect_error(400, "/v1/completions", {"prompt": {"a": 1}}, param="prompt")
        self.expect_error(400, "/v1/completions", {"prompt": "x", "n": 2}, param="n")
        self.expect_error(400, "/v1/completions", {"prompt": [1, 99999999]}, param="prompt",
                          message_part="outside the vocabulary")
        self.expect_error(400, "/v1/chat/completions", {"messages": "hi"}, param="messages")
        self.expect_error(400, "/v1/chat/completions", {"messages": [{"role": "assistant", "content": "a"}]},
                          param="messages")
        self.expect_error(400, "/v1/chat/completions",
                          {"messages": [{"role": "user", "content": "a"}], "top_logprobs": 2}, param="top_logprobs")
        self.expect_error(400, "/tokenize", {"content": 5}, param="content")
        self.expect_error(400, "/detokenize", {"tokens": [1, 999999]}, param="tokens[1]")

    def test_unknown_model_and_route(self):
        self.expect_error(404, "/v1/completions", {"model": "gpt-4", "prompt": "x"}, code="model_not_found",
                          param="model")
        self.expect_error(404, "/v1/nothing", {"prompt": "x"})
        self.expect_error(404, "/v1/nothing", None, method="GET")

    def test_prompt_beyond_the_context_names_both_lengths(self):
        e = self.expect_error(400, "/v1/completions", {"prompt": list(range(1, 601))}, code="context_length_exceeded")
        self.assertIn("600 tokens", e["message"])
        self.assertIn("512", e["message"])

    def test_body_too_large(self):
        self.expect_error(413, "/v1/completions", {"prompt": "a" * 5000}, code="request_too_large")

    def test_the_server_keeps_serving(self):
        self.expect_error(400, "/v1/completions", b"{")
        status, body = self.server.request("GET", "/health", timeout=1)
        self.assertEqual((status, body), (200, {"status": "ok"}))
        status, body = self.server.request("POST", "/v1/completions", {"prompt": "x", "max_tokens": 2})
        self.assertEqual(status, 200, body)
        self.assertEqual(body["usage"]["completion_tokens"], 2)


class StartupTest(unittest.TestCase):
    def run_serve(self, *args):
        import subprocess
        return subprocess.run([serve_fixture.STRATA, "serve", *map(str, args)], capture_output=True, text=True,
                              timeout=120)

    def test_bad_arguments_and_a_port_in_use_are_one_error_line(self):
        proc = self.run_serve("-m", serve_fixture.Model.path(), "--port", "70000")
        self.assertEqual(proc.returncode, 1)
        self.assertRegex(proc.stderr, r"^error: .*--port")
        proc = self.run_serve("-m", "/nonexistent/model.gguf", "--port", "0")
        self.assertEqual(proc.returncode, 1)
        self.assertIn("error: ", proc.stderr)
        proc = self.run_serve("-m", serve_fixture.Model.path(), "--port", "0", "--chat-template", "nope")
        self.assertEqual(proc.returncode, 1)
        self.assertIn("unknown format 'nope'", proc.stderr)
        with Server() as server:
            proc = self.run_serve("-m", serve_fixture.Model.path(), "--port", server.port, "-q")
            self.assertEqual(proc.returncode, 1)
            self.assertEqual(proc.stderr, f"error: cannot listen on 127.0.0.1:{server.port} (the address is in use "
                                          f"or not this machine's)\n")
            self.assertEqual(server.request("GET", "/health")[0], 200)

    def test_without_a_chat_template_chat_is_refused_and_completions_work(self):
        with Server(chat_template=None) as server:
            self.assertIn("chat completions are not available", server.stderr())
            status, err = server.request("POST", "/v1/chat/completions", {"messages": [{"role": "user",
                                                                                        "content": "x"}]})
            self.assertEqual(status, 400, err)
            self.assertIn("--chat-template", err["error"]["message"])
            status, body = server.request("POST", "/v1/completions", {"prompt": "x", "max_tokens": 2})
            self.assertEqual(status, 200, body)


class ApiKeyTest(unittest.TestCase):
    def test_a_key_is_needed_except_for_health(self):
        with Server("--api-key", "sesame", "-np", "3") as server:
            self.assertIn("3 in parallel", server.stderr())  # llama.cpp's -np is --parallel
            for headers in [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "sesame"}]:
                status, err = server.request("GET", "/v1/models", headers=headers)
                self.assertEqual(status, 401, err)
                self.assertEqual(err["error"]["code"], "invalid_api_key")
            status, _ = server.request("GET", "/v1/models", headers={"Authorization": "Bearer sesame"})
            self.assertEqual(status, 200)
            self.assertEqual(server.request("GET", "/health")[0], 200)
            import openai
            with self.assertRaises(openai.AuthenticationError):
                server.client(api_key="wrong").models.list()
            self.assertEqual(len(server.client(api_key="sesame").models.list().data), 1)


class QueueAndSignalsTest(unittest.TestCase):
    LONG = {"prompt": "Once upon a time", "max_tokens": 3000, "ignore_eos": True, "stream": True}

    def test_a_full_queue_answers_429_and_cut_streams_free_their_blocks(self):
        with Server("--queue", "1", ctx=4096, parallel=1) as server:
            a_conn, a = open_stream(server, self.LONG)  # runs
            self.assertEqual(a.status, 200)
            self.assertEqual(len(read_events(a, 1)), 1)
            b_conn, b = open_stream(server, self.LONG)  # waits
            self.assertEqual(b.status, 200)
            status, err = server.request("POST", "/v1/completions", {"prompt": "x", "max_tokens": 2})
            self.assertEqual(status, 429, err)
            self.assertEqual(err["error"]["code"], "queue_full")
            a_conn.close()
            b_conn.close()
            self.assertEqual(server.request("GET", "/health", timeout=1)[0], 200)
            m = server.wait_idle()  # the server notices the disconnects within its poll interval
            status, body = server.request("POST", "/v1/completions", {"prompt": "x", "max_tokens": 2})
            self.assertEqual(status, 200, body)
            self.assertEqual(m["strata_client_disconnects_total"], 2)
            self.assertGreaterEqual(m['strata_http_responses_total{status="4xx"}'], 1)

    def test_a_client_leaving_a_whole_response_cancels_it(self):
        with Server(ctx=4096, parallel=1) as server:
            body = dict(self.LONG, stream=False, max_tokens=4000)
            conn, response = open_stream(server, body)
            self.assertEqual(response.status, 200)
            time.sleep(0.2)
            self.assertEqual(server.metrics()["strata_requests_running"], 1)
            conn.close()
            m = server.wait_idle()
            self.assertEqual(m["strata_client_disconnects_total"], 1)

    def test_sigint_and_sigterm_end_the_streams_and_exit_0(self):
        for sig in [signal.SIGINT, signal.SIGTERM]:
            server = Server(ctx=4096, parallel=2)
            try:
                conn, stream = open_stream(server, self.LONG)
                self.assertEqual(len(read_events(stream, 1)), 1)
                server.proc.send_signal(sig)
                rest = read_events(stream)
                self.assertEqual(rest[-1], "[DONE]")
                self.assertEqual(json.loads(rest[-2])["choices"][0]["finish_reason"], "length")
                conn.close()
                self.assertEqual(server.stop(), 0, server.stderr())
            finally:
                server.stop(signal.SIGKILL)


if __name__ == "__main__":
    serve_fixture.main()
