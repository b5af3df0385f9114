"""End-to-end tests of `strata chat`: a scripted two-turn conversation with the default model
(SmolLM2-135M-Instruct; skipped when it is not fetched) checked against `strata run` on the
whole conversation formatted by Python jinja2 from the model's own template, cache reuse, EOF,
Ctrl-C (during an answer and at the prompt), the terminal prompt, a full context, and models
without a chat template (a small synthetic model from scripts/make-synthetic-model)."""
import os
import pty
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import strata_test
from strata_test import run_strata

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")

TURN_RE = re.compile(r"turn (\d+): (\d+) new tokens evaluated \([0-9.]+ tok/s\), (\d+) reused from the cache(.*?); "
                     r"answer: (\d+) tokens \([0-9.]+ tok/s, ([a-z ]+)\); context (\d+)/(\d+)")


def default_model():
    try:
        out = subprocess.run([os.path.join(ROOT, "scripts", "fetch-model"), "--path"], capture_output=True,
                             text=True, timeout=60)
    except OSError:
        return None
    path = out.stdout.strip()
    return path if out.returncode == 0 and path and os.path.exists(path) else None


def turns(stderr):
    """The per-turn log lines of --verbose: a list of dicts."""
    keys = ["turn", "new", "reused", "rewound", "generated", "stop", "context", "n_ctx"]
    result = []
    for m in TURN_RE.finditer(stderr):
        d = dict(zip(keys, m.groups()))
        for k in ["turn", "new", "reused", "generated", "context", "n_ctx"]:
            d[k] = int(d[k])
        result.append(d)
    return result


class Synthetic:
    """A small random Llama model with a SentencePiece-style vocab and no chat template."""
    tmp = None
    path = None

    @classmethod
    def get(cls):
        if cls.path is None:
            cls.tmp = tempfile.TemporaryDirectory(prefix="strata-chat-")
            cls.path = os.path.join(cls.tmp.name, "synthetic.gguf")
            subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "make-synthetic-model"), "--shape", "small",
                            "--type", "f32", "--n-vocab", "1024", "--n-ctx", "8192", "-o", cls.path],
                           check=True, capture_output=True, timeout=300)
        return cls.path


class Chat:
    """`strata chat` run in the background with pipes; its output is collected by threads."""

    def __init__(self, *args, stdin=subprocess.PIPE):
        self.proc = subprocess.Popen([strata_test.STRATA, "chat", *map(str, args)], stdin=stdin,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.out = bytearray()
        self.err = bytearray()
        self.threads = [threading.Thread(target=self._pump, args=(self.proc.stdout, self.out), daemon=True),
                        threading.Thread(target=self._pump, args=(self.proc.stderr, self.err), daemon=True)]
        for t in self.threads:
            t.start()

    @staticmethod
    def _pump(stream, buf):
        for chunk in iter(lambda: stream.read1(4096), b""):
            buf.extend(chunk)

    def send(self, text):
        self.proc.stdin.write(text.encode())
        self.proc.stdin.flush()

    def wait_for(self, predicate, what, timeout=240):
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError(f"timed out waiting for {what}; stdout {bytes(self.out)!r}, stderr "
                                     f"{bytes(self.err).decode(errors='replace')}")
            if self.proc.poll() is not None and not predicate():
                time.sleep(0.2)  # let the pumps catch up
                if not predicate():
                    raise AssertionError(f"strata chat exited {self.proc.returncode} before {what}: "
                                         f"{bytes(self.err).decode(errors='replace')}")
            time.sleep(0.05)

    def stderr(self):
        return bytes(self.err).decode(errors="replace")

    def finish(self, timeout=240):
        if self.proc.stdin:
            self.proc.stdin.close()
        rc = self.proc.wait(timeout=timeout)
        self.close()
        return rc

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.close()

    def close(self):
        for t in self.threads:
            t.join(timeout=10)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream and not stream.closed:
                stream.close()


class SlashCommands(unittest.TestCase):
    """Lines starting with '/' are commands for strata chat, never sent to the model."""

    def chat(self, lines):
        return run_strata("chat", "-m", Synthetic.get(), "--chat-template", "chatml", "--temp", 0, "-n", 3, "-v",
                          input="".join(line + "\n" for line in lines), timeout=300)

    def test_exit_ends_the_chat_before_the_next_line(self):
        proc = self.chat(["Hello", "/exit", "never sent"])
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertEqual(len(turns(proc.stderr)), 1, proc.stderr)
        for word in ("/quit", "/bye"):
            proc = self.chat([word, "never sent"])
            self.assertEqual(proc.returncode, 0, proc.stderr)
            self.assertEqual(turns(proc.stderr), [])

    def test_help_and_unknown_commands_go_to_stderr(self):
        proc = self.chat(["/help", "/frobnicate"])
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertIn("/system TEXT", proc.stderr)
        self.assertIn("unknown command /frobnicate (/help lists them)", proc.stderr)
        self.assertEqual(turns(proc.stderr), [])

    def test_clear_and_system_start_a_new_conversation(self):
        proc = self.chat(["Hello", "Again", "/clear", "Hello", "/system Be brief.", "Hello"])
        self.assertEqual(proc.returncode, 0, proc.stderr)
        log = turns(proc.stderr)
        self.assertEqual(len(log), 4, proc.stderr)
        self.assertGreater(log[1]["reused"], 0)
        self.assertEqual(log[2]["reused"], 0)  # after /clear: nothing reused
        self.assertEqual(log[2]["new"], log[0]["new"])  # the same first turn again
        self.assertEqual(log[3]["reused"], 0)
        self.assertGreater(log[3]["new"], log[0]["new"])  # now with a system message
        self.assertIn("[conversation cleared]", proc.stderr)
        self.assertIn("[new system message; conversation cleared]", proc.stderr)

    def test_double_slash_sends_a_line_starting_with_slash(self):
        proc = self.chat(["//exit is not a command"])
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertEqual(len(turns(proc.stderr)), 1, proc.stderr)


class DefaultModelChatTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.model = default_model()
        if cls.model is None:
            raise unittest.SkipTest("the default model is not fetched (scripts/fetch-model)")

    def test_two_turns_reuse_the_cache_and_match_a_run_of_the_whole_conversation(self):
        questions = ["What is the capital of France?", "And of Italy?"]
        n = 6
        proc = run_strata("chat", "-m", self.model, "--temp", 0, "-n", n, "-v", input="\n".join(questions) + "\n",
                          timeout=900)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        log = turns(proc.stderr)
        self.assertEqual(len(log), 2, proc.stderr)
        self.assertIn("chat template: chatml (the template's default system message)", proc.stderr)
        first, second = log
        self.assertEqual(first["reused"], 0)
        self.assertGreater(first["generated"], 0)
        self.assertGreater(second["generated"], 0)
        self.assertEqual(first["rewound"], "")
        # Turn 2 evaluates only its own text: the whole of turn 1 stays in the cache.
        self.assertEqual(second["reused"], first["context"])
        self.assertEqual(second["rewound"], "")
        self.assertLess(second["new"], first["new"])
        answers = proc.stdout.split("\n")
        self.assertEqual(len(answers), 3, f"expected two one-line answers: {proc.stdout!r}")
        self.assertEqual(answers[2], "")
        self.assertTrue(answers[0] and answers[1], proc.stdout)

        # The same conversation, formatted by the model's own Jinja template, run in one go.
        try:
            import jinja2.sandbox
        except ImportError:
            self.skipTest("jinja2 is not installed")
        meta = run_strata("inspect", "--json", self.model, check=True).stdout
        import json
        template = json.loads(meta)["metadata"]["tokenizer.chat_template"]
        env = jinja2.sandbox.ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        messages = [{"role": "user", "content": questions[0]}, {"role": "assistant", "content": answers[0]},
                    {"role": "user", "content": questions[1]}]
        prompt = env.from_string(template).render(messages=messages, add_generation_prompt=True)
        run = run_strata("run", "-m", self.model, "--temp", 0, "-n", n, "-p", prompt, timeout=900)
        self.assertEqual(run.returncode, 0, run.stderr)
        self.assertEqual(run.stdout.strip(), answers[1])

    def test_a_system_message_and_end_of_input(self):
        proc = run_strata("chat", "-m", self.model, "--temp", 0, "-n", 2, "-v", "--system", "Answer in French.",
                          input="Hi", timeout=600)  # a last line without a newline is a turn too
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertNotIn("default system message", proc.stderr)
        self.assertEqual(len(turns(proc.stderr)), 1, proc.stderr)


class SyntheticChatTest(unittest.TestCase):
    """Mechanics that do not need a sensible model: a fast synthetic one with a forced format."""

    @classmethod
    def setUpClass(cls):
        try:
            cls.model = Synthetic.get()
        except subprocess.CalledProcessError as e:
            raise unittest.SkipTest(f"make-synthetic-model failed: {e.stderr.decode(errors='replace')[-300:]}")

    def chat_args(self, *extra):
        return ["-m", self.model, "--chat-template", "zephyr", "--temp", 0, "-v", *extra]

    def test_no_chat_template_is_an_error(self):
        proc = run_strata("chat", "-m", self.model, input="hi\n")
        self.assertEqual(proc.returncode, 1)
        self.assertEqual(proc.stdout, "")
        self.assertRegex(proc.stderr, r"error: .*synthetic\.gguf: the model has no chat template "
                                      r"\(tokenizer\.chat_template\); choose a format with --chat-template NAME "
                                      r"\(chatml, llama2, llama3, mistral, zephyr, phi3, gemma\)")

    def test_unknown_format_name_is_an_error(self):
        proc = run_strata("chat", "-m", self.model, "--chat-template", "vicuna", input="hi\n")
        self.assertEqual(proc.returncode, 1)
        self.assertIn("--chat-template: unknown format 'vicuna'", proc.stderr)

    def test_eof_at_once_exits_cleanly(self):
        proc = run_strata("chat", *self.chat_args(), input="")
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertEqual(proc.stdout, "")
        self.assertEqual(turns(proc.stderr), [])

    def test_turns_evaluate_only_their_new_text(self):
        proc = run_strata("chat", *self.chat_args("-n", 4), input="hello\n\nhow are you\nbye\n")
        self.assertEqual(proc.returncode, 0, proc.stderr)
        log = turns(proc.stderr)
        self.assertEqual([t["turn"] for t in log], [1, 2, 3], proc.stderr)  # the empty line is no turn
        self.assertEqual(log[0]["reused"], 0)
        for before, after in zip(log, log[1:]):
            if after["rewound"]:
                self.assertLess(after["reused"], before["context"])
            else:
                self.assertEqual(after["reused"], before["context"])
        for t in log:  # the answer's tokens are in the cache, but for the last at the token limit (kept for later)
            self.assertIn(t["context"], [t["reused"] + t["new"] + t["generated"] - d for d in (0, 1)], proc.stderr)

    def test_a_context_that_fills_during_an_answer_ends_the_conversation(self):
        proc = run_strata("chat", *self.chat_args("-c", 40, "-n", -1), input="hello there\n" * 5)
        self.assertEqual(proc.returncode, 1, proc.stderr)
        self.assertEqual(turns(proc.stderr)[-1]["stop"], "context full", proc.stderr)
        self.assertTrue(proc.stderr.endswith("error: the context of 40 tokens is full (--ctx-size): the conversation "
                                             "ends here\n"), proc.stderr)

    def test_a_turn_that_does_not_fit_ends_the_conversation(self):
        proc = run_strata("chat", *self.chat_args("-c", 100, "-n", 5), input="hi\n" * 20)
        self.assertEqual(proc.returncode, 1, proc.stderr)
        log = turns(proc.stderr)
        self.assertGreaterEqual(len(log), 1, proc.stderr)
        self.assertRegex(proc.stderr, r"error: the context is full: this turn needs \d+ more tokens, "
                                      rf"{log[-1]['context']} of 100 are used \(--ctx-size\); the conversation ends "
                                      r"here\n$")

    def test_ignore_eos_answers_run_to_the_token_limit(self):
        proc = run_strata("chat", *self.chat_args("-n", 24, "--ignore-eos"), input="hi\nand again\n")
        self.assertEqual(proc.returncode, 0, proc.stderr)
        log = turns(proc.stderr)
        self.assertEqual([(t["generated"], t["stop"]) for t in log], [(24, "token limit")] * 2, proc.stderr)

    def test_ctrl_c_stops_the_answer_and_the_chat_goes_on(self):
        # --ignore-eos: where Ctrl-C lands decides the next turn's context, and a random model's
        # greedy answer may end at once at an end-of-generation token before the signal comes.
        chat = Chat(*self.chat_args("-n", -1, "--ignore-eos"))
        try:
            for turn in (1, 2):
                before = len(chat.out)
                chat.send(f"question {turn}\n")
                chat.wait_for(lambda: len(chat.out) > before + 8, f"the answer of turn {turn}")
                chat.proc.send_signal(signal.SIGINT)
                chat.wait_for(lambda: len(turns(chat.stderr())) == turn, f"the end of turn {turn}")
                self.assertEqual(turns(chat.stderr())[-1]["stop"], "interrupted", chat.stderr())
            rc = chat.finish()
        finally:
            chat.kill()
        self.assertEqual(rc, 0, chat.stderr())
        self.assertEqual(chat.stderr().count("[answer stopped]"), 2, chat.stderr())
        log = turns(chat.stderr())
        self.assertEqual(log[1]["reused"], log[0]["context"])

    def test_two_ctrl_c_at_the_prompt_exit(self):
        chat = Chat(*self.chat_args("-n", 2))
        try:
            chat.send("hello\n")
            chat.wait_for(lambda: len(turns(chat.stderr())) == 1, "the first answer")
            chat.proc.send_signal(signal.SIGINT)
            chat.wait_for(lambda: "Ctrl-C again to exit" in chat.stderr(), "the hint")
            self.assertIsNone(chat.proc.poll())
            chat.proc.send_signal(signal.SIGINT)
            rc = chat.proc.wait(timeout=60)
        finally:
            chat.kill()
        self.assertEqual(rc, 130, chat.stderr())

    def test_a_terminal_gets_a_prompt_and_ctrl_d_exits(self):
        master, slave = pty.openpty()
        try:
            chat = Chat(*self.chat_args("-n", 2), stdin=slave)
            os.close(slave)
            slave = None
            try:
                chat.wait_for(lambda: chat.out.startswith(b"> "), "the prompt")
                os.write(master, b"hello\n")
                chat.wait_for(lambda: len(turns(chat.stderr())) == 1, "the answer")
                chat.wait_for(lambda: chat.out.endswith(b"\n> "), "the next prompt")
                os.write(master, b"\x04")  # Ctrl-D at the start of a line: end of input
                rc = chat.proc.wait(timeout=60)
            finally:
                chat.kill()
        finally:
            os.close(master)
            if slave is not None:
                os.close(slave)
        self.assertEqual(rc, 0, chat.stderr())
        self.assertIn("Ctrl-C stops an answer", chat.stderr())


if __name__ == "__main__":
    strata_test.main()
