"""The CUDA check: the suite's inference and storage tests on the GPU, then the benchmark there.

python tests/benchmarks/gpu_check.py [--out tests/benchmarks/results_gpu.json] [--images 32]

Without a CUDA device it says so and exits 0. Otherwise it runs the tests with ``--device
cuda`` (every Captioner they make runs on the GPU, and JPEGs are decoded there in batches),
then ``python -m tests.benchmarks.inference --device cuda``, and writes what both printed to
``--out``. Exits with pytest's status (0 when every test passed).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
TESTS = [
    "tests/core/test_inference.py",
    "tests/core/test_images.py",
    "tests/core/test_engine.py",
    "tests/core/test_storage_embedded.py",
    "tests/core/test_storage_sidecars.py",
]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, default=ROOT / "tests/benchmarks/results_gpu.json")
    ap.add_argument("--images", type=int, default=32)
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        print("No CUDA device on this machine: nothing to check (exit 0).")
        return 0

    started = time.time()
    tests = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            *TESTS,
            "--device",
            "cuda",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    print(tests.stdout[-4000:], tests.stderr[-2000:], sep="\n")
    summary = (tests.stdout.strip().splitlines() or [""])[-1]

    with tempfile.TemporaryDirectory() as tmp:
        bench_json = Path(tmp) / "bench.json"
        bench = subprocess.run(
            [
                sys.executable,
                "-m",
                "tests.benchmarks.inference",
                "--device",
                "cuda",
                "--images",
                str(args.images),
                "--out",
                str(bench_json),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        print(bench.stdout[-6000:], bench.stderr[-3000:], sep="\n")
        benchmark = json.loads(bench_json.read_text()) if bench_json.is_file() else None

    report = {
        "gpu": torch.cuda.get_device_name(0),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
        "tests": {
            "command": ["pytest", *TESTS, "--device", "cuda"],
            "exit_code": tests.returncode,
            "summary": summary,
        },
        "benchmark": benchmark,
        "benchmark_exit_code": bench.returncode,
        "benchmark_stderr_tail": bench.stderr[-2000:] if bench.returncode else "",
        "seconds": round(time.time() - started, 1),
    }
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.out}")
    return tests.returncode or bench.returncode


if __name__ == "__main__":
    sys.exit(main())
