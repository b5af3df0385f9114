#!/usr/bin/env python3
"""Parity acceptance tests: strata (reference CPU backend) against the exact float64 oracle
and llama.cpp, by perplexity over tests/data/text/apache-2.0.txt (-c 128) and greedy
continuations of varied prompts. The oracles' figures are committed in tests/data/parity/;
the models are regenerated from seeds, and where a model's sha256 differs from the committed
one the exact oracle runs live. See tests/model/parity.py and docs/parity.md.

  python3 test_parity.py --strata build/bin/strata                        # label parity (CI)
  STRATA_PARITY_SLOW=1 python3 test_parity.py --strata ... --label parity_slow  # TinyLlama shapes

Environment: STRATA_PARITY_JOBS (parallel models, default: the number of cores),
STRATA_PARITY_CHUNKS / STRATA_PARITY_N_PREDICT (override the per-label defaults of parity.py).
Exits 77 (skipped) without numpy and gguf, or for parity_slow without STRATA_PARITY_SLOW=1."""
import argparse
import os
import sys
import tempfile
import time
import unittest
from concurrent.futures import ThreadPoolExecutor

try:
    import numpy  # noqa: F401
    import gguf  # noqa: F401
except ImportError as e:
    print(f"skipped: {e} (run with the Python that scripts/setup-deps prints)")
    sys.exit(77)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import parity  # noqa: E402

ARGS = None


def env_int(name):
    v = os.environ.get(name)
    return int(v) if v else None


class Parity(unittest.TestCase):
    """One test per model; the models are evaluated in parallel once, in setUpClass."""
    results = {}

    @classmethod
    def setUpClass(cls):
        cls._tmp = tempfile.TemporaryDirectory(prefix="strata-parity-")
        specs = parity.select(ARGS.label)
        jobs = env_int("STRATA_PARITY_JOBS") or os.cpu_count() or 1
        start = time.time()

        def one(spec):
            t0 = time.time()
            r = parity.check_model(spec, ARGS.strata, cls._tmp.name, env_int("STRATA_PARITY_CHUNKS"),
                                   env_int("STRATA_PARITY_N_PREDICT"))
            print(parity.summary_line(r) + f"  [{time.time() - t0:.0f} s]", flush=True)
            return r

        with ThreadPoolExecutor(max_workers=jobs) as pool:
            for r in pool.map(one, specs):
                cls.results[r["model"]] = r
        print(f"parity: {len(specs)} models in {time.time() - start:.0f} s with {jobs} jobs", flush=True)

    @classmethod
    def tearDownClass(cls):
        cls._tmp.cleanup()


def make_test(name):
    def test(self):
        r = self.results[name]
        if "skipped" in r:
            self.skipTest(r["skipped"])
        for note in r["notes"]:
            print(f"note: {name}: {note}")
        self.assertEqual(r["failures"], [], "\n".join(r["failures"]))
    return test


def main():
    global ARGS
    p = argparse.ArgumentParser()
    p.add_argument("--strata", required=True)
    p.add_argument("--label", default="parity", choices=["parity", "parity_slow"])
    ARGS, rest = p.parse_known_args()
    ARGS.strata = os.path.abspath(ARGS.strata)
    if ARGS.label == "parity_slow" and os.environ.get("STRATA_PARITY_SLOW") != "1":
        print("skipped: the TinyLlama-shaped parity models run only with STRATA_PARITY_SLOW=1")
        sys.exit(77)
    for spec in parity.select(ARGS.label):
        setattr(Parity, "test_" + spec.name.replace("-", "_").replace(".", "_"), make_test(spec.name))
    result = unittest.main(argv=[sys.argv[0], *rest], exit=False, verbosity=2).result
    failed = len(result.failures) + len(result.errors)
    print(f"{result.testsRun - failed - len(result.skipped)} passed, {failed} failed, {len(result.skipped)} skipped")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
