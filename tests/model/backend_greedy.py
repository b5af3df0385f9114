#!/usr/bin/env python3
"""Greedy continuations of the parity prompts on two backends of strata (issue 5: CUDA against
cpu_ref on the real model). Each prompt is run on both with `strata run --temp 0` (on CUDA this
is the recorded-graph decode path); where the texts differ, both are run again with logit dumps
to find the first step whose token differs and the reference's top-2 margin there.

  backend_greedy.py --strata build/bin/strata -m MODEL [--backend cuda] [--reference cpu_ref]
                    [-n 32] [--near-tie 0.1]

Prints one line per prompt and exits 1 if a continuation differs at a step whose margin is at
least --near-tie (the issue's bound for a near-tie between CUDA and the CPU)."""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from parity import CHAT_PROMPTS, PROMPTS  # noqa: E402
from parity_tools import Strata, run  # noqa: E402


def text_of(strata, backend, model, prompt, n):
    out, _ = run([strata, "run", "-m", model, "--backend", backend, "-p", prompt, "-n", n, "--temp", "0", "-q"])
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--strata", required=True)
    p.add_argument("-m", "--model", required=True)
    p.add_argument("--backend", default="cuda")
    p.add_argument("--reference", default="cpu_ref")
    p.add_argument("-n", type=int, default=32)
    p.add_argument("--near-tie", type=float, default=0.1)
    a = p.parse_args()
    prompts = PROMPTS + [("chat-chatml", CHAT_PROMPTS["chatml"])]
    bad = 0
    for name, prompt in prompts:
        got = text_of(a.strata, a.backend, a.model, prompt, a.n)
        want = text_of(a.strata, a.reference, a.model, prompt, a.n)
        if got == want:
            print(f"{name:14s} identical ({a.n} tokens)")
            continue
        test = Strata(a.strata, a.backend).greedy(a.model, prompt, a.n, kv="f16")
        ref = Strata(a.strata, a.reference).greedy(a.model, prompt, a.n, kv="f16")
        step = next((i for i, (x, y) in enumerate(zip(test["ids"], ref["ids"])) if x != y), None)
        if step is None:
            print(f"{name:14s} DIFFERENT TEXT with the same token ids: {got!r} vs {want!r}")
            bad += 1
            continue
        margin = ref["margins"][step]
        near = margin < a.near_tie
        bad += 0 if near else 1
        print(f"{name:14s} {'near-tie' if near else 'MISMATCH'} at step {step}: {a.reference} top-2 margin "
              f"{margin:.4g} ({a.backend} {test['margins'][step]:.4g})")
    print(f"{len(prompts) - bad} of {len(prompts)} prompts identical or departing at a near-tie")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
