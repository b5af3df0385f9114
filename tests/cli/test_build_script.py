"""scripts/build: configures build/ once (CUDA only where a GPU is present, or as STRATA_CUDA
says) and builds the `strata` target only, not the tests and benchmarks. Run on a copy of the
script with stand-ins for setup-deps, cmake and nvidia-smi that record how they were called."""
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import strata_test  # noqa: E402
from strata_test import TempDirTest  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

FAKE_CMAKE = """#!/usr/bin/env bash
echo "$*" >> "$CALLS"
if [ "$1" = "-S" ]; then mkdir -p build && touch build/CMakeCache.txt; fi
"""
FAKE_SMI = """#!/usr/bin/env bash
echo "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-0)"
"""


class BuildScript(TempDirTest):
    def setUp(self):
        super().setUp()
        self.repo = self.path("repo")
        os.makedirs(os.path.join(self.repo, "scripts"))
        shutil.copy(os.path.join(ROOT, "scripts", "build"), os.path.join(self.repo, "scripts", "build"))
        self.write(os.path.join(self.repo, "scripts", "setup-deps"), "#!/usr/bin/env bash\necho /usr/bin/python3\n")
        self.bin = self.path("bin")
        os.makedirs(self.bin)
        self.write(os.path.join(self.bin, "cmake"), FAKE_CMAKE)
        self.calls = self.path("calls.txt")

    def write(self, path, text):
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o755)

    def build(self, gpu, **env):
        if gpu:
            self.write(os.path.join(self.bin, "nvidia-smi"), FAKE_SMI)
        elif os.path.exists(os.path.join(self.bin, "nvidia-smi")):
            os.remove(os.path.join(self.bin, "nvidia-smi"))
        # PATH: the stand-ins, then only what bash itself needs (no real nvidia-smi or cmake).
        tools = self.path("tools")
        os.makedirs(tools, exist_ok=True)
        for tool in ("bash", "dirname", "tail", "grep", "nproc", "mkdir", "touch"):
            src = shutil.which(tool)
            if src and not os.path.exists(os.path.join(tools, tool)):
                os.symlink(src, os.path.join(tools, tool))
        proc = subprocess.run([shutil.which("bash"), os.path.join(self.repo, "scripts", "build")], capture_output=True, text=True,
                              env={"PATH": f"{self.bin}:{tools}", "CALLS": self.calls, **env}, timeout=60)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        with open(self.calls) as f:
            return f.read().splitlines()

    def test_builds_only_the_strata_target_and_configures_once(self):
        calls = self.build(gpu=False)
        self.assertEqual(len(calls), 2, calls)
        self.assertIn("-DSTRATA_CUDA=OFF", calls[0])
        self.assertIn("-DCMAKE_BUILD_TYPE=Release", calls[0])
        self.assertTrue(calls[1].startswith("--build build"), calls[1])
        self.assertTrue(calls[1].endswith("--target strata"), calls[1])
        calls = self.build(gpu=False)
        self.assertEqual(len(calls), 3, calls)  # configured already: only the build
        self.assertIn("--target strata", calls[2])

    def test_cuda_with_a_gpu_or_when_asked(self):
        self.assertIn("-DSTRATA_CUDA=ON", self.build(gpu=True)[0])
        os.remove(os.path.join(self.repo, "build", "CMakeCache.txt"))
        self.assertIn("-DSTRATA_CUDA=ON", self.build(gpu=False, STRATA_CUDA="ON")[2])


if __name__ == "__main__":
    strata_test.main()
