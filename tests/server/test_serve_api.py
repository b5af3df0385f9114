"""`strata serve` through the official openai client: chat and completions, streamed and not,
stop sequences, finish reasons, usage against the tokenizer's counts, seeds, logprobs, and
batching that changes nothing."""
import math
import threading
import unittest

import serve_fixture
from serve_fixture import Server

PROMPTS = ["Once upon a time", "The capital of France is", "def main():", "1, 2, 3,", "Hello", "A B C D",
           "In the beginning", "The quick brown fox"]


class ApiTest(unittest.TestCase):
    server = None

    @classmethod
    def setUpClass(cls):
        cls.server = Server(parallel=4)
        cls.addClassCleanup(cls.server.stop)
        cls.client = cls.server.client()

    def tokenize(self, text, add_special=True):
        status, body = self.server.request("POST", "/tokenize", {"content": text, "add_special": add_special})
        self.assertEqual(status, 200, body)
        return body["tokens"]

    def complete(self, prompt, **kw):
        kw.setdefault("temperature", 0)
        return self.client.completions.create(model="tiny.gguf", prompt=prompt, **kw)

    def test_models_lists_the_served_model(self):
        models = self.client.models.list()
        self.assertEqual([m.id for m in models.data], ["tiny.gguf"])

    def test_completion_hits_the_token_limit_with_the_tokenizers_counts(self):
        r = self.complete("Once upon a time", max_tokens=8)
        self.assertEqual(r.object, "text_completion")
        self.assertEqual(r.choices[0].finish_reason, "length")
        self.assertEqual(r.usage.completion_tokens, 8)
        self.assertEqual(r.usage.prompt_tokens, len(self.tokenize("Once upon a time")))
        self.assertEqual(r.usage.total_tokens, r.usage.prompt_tokens + 8)
        self.assertTrue(r.choices[0].text)

    def test_streamed_completion_equals_the_whole_one(self):
        whole = self.complete("The quick brown fox", max_tokens=12)
        chunks = list(self.complete("The quick brown fox", max_tokens=12, stream=True,
                                    stream_options={"include_usage": True}))
        text = "".join(c.choices[0].text for c in chunks if c.choices)
        self.assertEqual(text, whole.choices[0].text)
        finishing = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
        self.assertEqual(finishing, ["length"])
        self.assertIsNotNone(chunks[-1].usage)
        self.assertEqual(chunks[-1].usage.completion_tokens, 12)
        self.assertEqual(chunks[-1].usage.prompt_tokens, whole.usage.prompt_tokens)

    def test_chat_whole_and_streamed_agree_and_count_the_templates_tokens(self):
        messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello."}]
        whole = self.client.chat.completions.create(model="tiny.gguf", messages=messages, max_tokens=10, temperature=0)
        self.assertEqual(whole.object, "chat.completion")
        self.assertEqual(whole.choices[0].message.role, "assistant")
        self.assertEqual(whole.choices[0].finish_reason, "length")
        status, body = self.server.request("POST", "/apply-template", {"messages": messages})
        self.assertEqual(status, 200, body)
        self.assertTrue(body["prompt"].startswith("<|im_start|>system\nBe brief.<|im_end|>"), body)
        self.assertEqual(whole.usage.prompt_tokens, len(self.tokenize(body["prompt"])))
        self.assertEqual(whole.usage.completion_tokens, 10)
        stream = self.client.chat.completions.create(model="tiny.gguf", messages=messages, max_tokens=10,
                                                     temperature=0, stream=True)
        chunks = list(stream)
        self.assertEqual(chunks[0].choices[0].delta.role, "assistant")
        text = "".join(c.choices[0].delta.content or "" for c in chunks)
        self.assertEqual(text, whole.choices[0].message.content)
        self.assertEqual(chunks[-1].choices[0].finish_reason, "length")

    def test_stop_sequence_ends_the_text_before_it(self):
        full = self.complete("In the beginning", max_tokens=24).choices[0].text
        # A piece of the text from its middle, at its first occurrence.
        start = next(i for i in range(len(full) // 3, len(full) - 3) if full.find(full[i:i + 3]) == i)
        stop = full[start:start + 3]
        r = self.complete("In the beginning", max_tokens=24, stop=[stop, "never-there"])
        self.assertEqual(r.choices[0].text, full[:start])
        self.assertEqual(r.choices[0].finish_reason, "stop")
        streamed = list(self.complete("In the beginning", max_tokens=24, stop=stop, stream=True))
        self.assertEqual("".join(c.choices[0].text for c in streamed), full[:start])
        self.assertEqual(streamed[-1].choices[0].finish_reason, "stop")

    def test_a_seed_gives_the_same_text(self):
        kw = dict(max_tokens=24, temperature=1.0, top_k=0, top_p=1.0, min_p=0.0)
        a = self.complete("Hello", seed=7, extra_body=kw).choices[0].text
        b = self.complete("Hello", seed=7, extra_body=kw).choices[0].text
        c = self.complete("Hello", seed=8, extra_body=kw).choices[0].text
        self.assertEqual(a, b)
        self.assertNotEqual(a, c)

    def test_chat_logprobs(self):
        r = self.client.chat.completions.create(model="tiny.gguf", messages=[{"role": "user", "content": "Hi"}],
                                                max_tokens=6, temperature=0, logprobs=True, top_logprobs=3)
        content = r.choices[0].logprobs.content
        self.assertEqual(len(content), r.usage.completion_tokens)
        for entry in content:
            tops = [t.logprob for t in entry.top_logprobs]
            self.assertEqual(len(tops), 3)
            self.assertEqual(tops, sorted(tops, reverse=True))
            self.assertLessEqual(sum(math.exp(x) for x in tops), 1.0 + 1e-5)
            # Greedy: the token taken is the most likely one.
            self.assertAlmostEqual(entry.logprob, tops[0], places=5)
            self.assertEqual(bytes(entry.bytes), bytes(entry.top_logprobs[0].bytes))

    def test_completion_logprobs(self):
        r = self.complete("1, 2, 3,", max_tokens=5, logprobs=2)
        lp = r.choices[0].logprobs
        self.assertEqual(len(lp.tokens), 5)
        self.assertEqual(len(lp.token_logprobs), 5)
        self.assertEqual([len(t) <= 2 for t in lp.top_logprobs], [True] * 5)
        self.assertEqual(lp.text_offset, sorted(lp.text_offset))
        self.assertTrue(all(x <= 0 for x in lp.token_logprobs))

    def test_tokenize_and_detokenize(self):
        ids = self.tokenize("Hello, world", add_special=False)
        self.assertEqual(ids, [15496, 11, 995])
        status, body = self.server.request("POST", "/detokenize", {"tokens": ids})
        self.assertEqual((status, body), (200, {"content": "Hello, world"}))
        status, body = self.server.request("POST", "/tokenize", {"content": "Hello", "with_pieces": True})
        self.assertEqual(body, {"tokens": [{"id": 15496, "piece": "Hello"}]})

    def test_batched_requests_give_what_they_give_alone(self):
        alone = [self.complete(p, max_tokens=16).choices[0].text for p in PROMPTS]
        together = [None] * len(PROMPTS)

        def run(i):
            together[i] = self.complete(PROMPTS[i], max_tokens=16).choices[0].text

        threads = [threading.Thread(target=run, args=(i,)) for i in range(len(PROMPTS))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(together, alone)

    def test_a_repeated_prompt_reuses_its_cached_blocks(self):
        prompt = "Cached prefix test: " + " ".join(f"w{i}" for i in range(40))
        n_prompt = len(self.tokenize(prompt))
        body = {"model": "tiny.gguf", "prompt": prompt, "max_tokens": 6, "temperature": 0}
        status, first = self.server.request("POST", "/v1/completions", body)
        self.assertEqual(status, 200, first)
        status, again = self.server.request("POST", "/v1/completions", body)
        self.assertEqual(status, 200, again)
        self.assertEqual(again["choices"][0]["text"], first["choices"][0]["text"])
        self.assertEqual(first["usage"]["prompt_tokens_details"]["cached_tokens"], 0)
        # Whole blocks of 16 before the prompt's last token.
        self.assertEqual(again["usage"]["prompt_tokens_details"]["cached_tokens"], (n_prompt - 1) // 16 * 16)
        # Once the engine has given the blocks back (after the response), they stay cached.
        self.assertGreater(self.server.wait_idle()["strata_kv_blocks_cached"], 0)


if __name__ == "__main__":
    serve_fixture.main()
