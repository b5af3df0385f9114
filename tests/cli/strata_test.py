"""Shared set-up of the end-to-end tests in tests/cli: each test_*.py is run by CTest as
`python3 test_x.py --strata PATH/TO/strata` and uses unittest; STRATA is the binary."""
import argparse
import os
import subprocess
import sys
import tempfile
import unittest

STRATA = None


def run_strata(*args, input=None, check=False, timeout=300):
    """Runs the strata binary; returns CompletedProcess with text stdout/stderr."""
    proc = subprocess.run([STRATA, *map(str, args)], input=input, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"strata {' '.join(map(str, args))} exited {proc.returncode}: {proc.stderr}")
    return proc


class TempDirTest(unittest.TestCase):
    """A test case with a fresh temporary directory in self.tmp."""

    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="strata-test-")
        self.tmp = self._tmp.name

    def tearDown(self):
        self._tmp.cleanup()

    def path(self, name):
        return os.path.join(self.tmp, name)


def main():
    global STRATA
    parser = argparse.ArgumentParser()
    parser.add_argument("--strata", required=True, help="path of the strata executable")
    args, rest = parser.parse_known_args()
    STRATA = os.path.abspath(args.strata)
    result = unittest.main(argv=[sys.argv[0], *rest], exit=False, verbosity=2).result
    failed = len(result.failures) + len(result.errors)
    passed = result.testsRun - failed - len(result.skipped)
    print(f"{passed} passed, {failed} failed, {len(result.skipped)} skipped")
    sys.exit(1 if failed else 0)
