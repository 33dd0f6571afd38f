"""Benchmark: peak memory of whole-library captioning, 1,000 vs 100,000 photos; writes JSON.

python -m tests.benchmarks.library_memory [--sizes 1000 100000] [--uncaptioned 100]
                                           [--weights FILE] [--root runs/library-bench]

Captioning 100,000 photos with the model takes hours on a CPU, so each tree is set up as a
library an earlier run has mostly captioned: every photo has a .txt caption except
``--uncaptioned`` photos spread evenly through the tree. Each measurement runs in a fresh
child process:

- ``scan``: the streaming scan alone (no model, no index);
- ``first``: the real engine with a real, full-size model and a new index: it scans the
  whole tree, reads every photo's store, records every photo in the index (adopting the
  existing captions) and really captions the uncaptioned photos (decode, encoder, beam
  search, sidecar write, index commit);
- ``second``: the same command again: scan, index look-ups and skip logic for every photo.

The uncaptioned count is the same for both sizes, so the model does the same work and any
difference in peak memory comes from the size of the library. Peak RSS is reported two ways:
``ru_maxrss`` (resource.getrusage, the whole process) and ``run_peak_mb`` (Linux VmHWM, reset
after the model is loaded and warmed up, so the model's loading spike cannot hide growth).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

PER_FOLDER = 250  # photos per folder, as a camera import might leave them
PER_TOP = 20  # folders per top-level folder
SOURCES = 4  # distinct JPEGs that every photo is a hard link (or copy) of


def tree_path(n: int) -> tuple[Path, Path]:
    """(folder, relative path) of photo number ``n`` in a generated tree."""
    folder = Path(f"{n // (PER_FOLDER * PER_TOP):03d}") / f"{(n // PER_FOLDER) % PER_TOP:02d}"
    return folder, folder / f"IMG_{n:06d}.jpg"


def uncaptioned_numbers(size: int, uncaptioned: int) -> list[int]:
    step = max(size // uncaptioned, 1)
    return list(range(step // 2, size, step))[:uncaptioned]


def build_tree(root: Path, size: int) -> Path:
    """A tree of ``size`` photos, each with a caption sidecar (cached between runs)."""
    from tests.imagegen import textured_image

    tree = root / f"tree-{size}"
    done = tree / ".complete"
    if done.exists():
        return tree
    if tree.exists():
        shutil.rmtree(tree)
    src = root / "src"
    src.mkdir(parents=True, exist_ok=True)
    sources = []
    for i in range(SOURCES):
        path = src / f"source{i}.jpg"
        if not path.exists():
            textured_image(640, 480, seed=i).save(path, quality=85)
        sources.append(path)
    caption = src / "caption.txt"
    caption.write_text("a photo from an earlier run", encoding="utf-8")
    t = time.perf_counter()
    made: set[Path] = set()
    for n in range(size):
        folder, rel = tree_path(n)
        if folder not in made:
            (tree / folder).mkdir(parents=True, exist_ok=True)
            made.add(folder)
        _link(sources[n % SOURCES], tree / rel)
        _link(caption, (tree / rel).with_suffix(".txt"))
    done.write_text(str(size))
    print(f"built {tree} ({size} photos) in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    return tree


def _link(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def reset_tree(tree: Path, size: int, uncaptioned: int) -> None:
    """Remove the captions of the chosen photos (an earlier benchmark run wrote them)."""
    for n in uncaptioned_numbers(size, uncaptioned):
        _, rel = tree_path(n)
        (tree / rel).with_suffix(".txt").unlink(missing_ok=True)


def make_model(path: Path) -> Path:
    """A full-size caption model with random weights: the shipped model's memory footprint."""
    import torch

    from core.checkpoint import save_checkpoint
    from core.model import CaptionModel, ModelConfig
    from core.vocab import SPECIALS, Vocab

    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    cfg = ModelConfig()
    words = tuple(f"w{i}" for i in range(cfg.vocab_size - len(SPECIALS)))
    vocab = Vocab(SPECIALS + words)
    torch.manual_seed(0)
    save_checkpoint(path, CaptionModel(cfg).eval(), vocab, {"data": "random, for benchmarks"})
    return path


# ---------------------------------------------------------------- the child process


def _vm(field: str) -> float:
    """A VmXXX value of /proc/self/status in MB (Linux), else 0."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM (Linux >= 4.0)
        return True
    except OSError:
        return False


def child(args: argparse.Namespace) -> None:
    result: dict[str, object] = {"phase": args.phase, "size": args.size}
    t = time.perf_counter()
    if args.phase == "setup":  # heavy imports stay out of the parent (see main)
        if not args.weights.exists():
            make_model(args.weights)
        build_tree(args.tree.parent, args.size)
        reset_tree(args.tree, args.size, args.uncaptioned)
        print(json.dumps(result))
        return
    if args.phase == "scan":
        from core.library import FoundPhoto, scan_library

        _reset_peak()
        n = sum(isinstance(i, FoundPhoto) for i in scan_library([args.tree], True))
        result.update(photos=n)
    else:
        import torch

        from core.datatypes import CaptionSettings
        from core.engine import LibraryEngine, LibraryJob
        from core.inference import Captioner, warm_up

        torch.set_num_threads(1)  # share the machine fairly; also makes timings repeatable
        captioner = Captioner(args.weights, device="cpu")
        warm_up(captioner)
        result["model_loaded_rss_mb"] = round(_vm("VmRSS"), 1)
        result["peak_reset"] = _reset_peak()
        t = time.perf_counter()
        job = LibraryJob(
            roots=(args.tree,),
            recursive=True,
            store="txt",
            settings=CaptionSettings(beam_size=args.beam, batch_size=8),
        )
        summary = LibraryEngine(captioner, args.index).run(job)
        result.update(
            captioned=summary.captioned,
            skipped=summary.skipped,
            failed=summary.failed,
            images_per_second=round(summary.images_per_second, 2),
        )
    result["seconds"] = round(time.perf_counter() - t, 1)
    result["run_peak_mb"] = round(_vm("VmHWM"), 1)
    result["ru_maxrss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(result))


def measure(phase: str, size: int, tree: Path, index: Path, args: argparse.Namespace) -> dict:
    command = [
        sys.executable,
        "-m",
        "tests.benchmarks.library_memory",
        "--child",
        "--phase",
        phase,
        "--size",
        str(size),
        "--tree",
        str(tree),
        "--index",
        str(index),
        "--weights",
        str(args.weights),
        "--beam",
        str(args.beam),
        "--uncaptioned",
        str(args.uncaptioned),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"child failed ({phase}, {size}):\n{proc.stderr}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    print(json.dumps(result), file=sys.stderr)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 100_000])
    parser.add_argument("--uncaptioned", type=int, default=100)
    parser.add_argument("--beam", type=int, default=3)
    parser.add_argument("--weights", type=Path, default=None)
    parser.add_argument("--root", type=Path, default=Path("runs/library-bench"))
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--phase", choices=("setup", "scan", "first", "second"), help=argparse.SUPPRESS
    )
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--tree", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--index", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    # This process imports neither torch nor Pillow: Linux carries ru_maxrss over fork and
    # exec, so a heavy parent would inflate every child's number.
    args.root = args.root.resolve()
    args.root.mkdir(parents=True, exist_ok=True)
    args.weights = (args.weights or args.root / "full-size-random.safetensors").resolve()
    results = []
    for size in args.sizes:
        tree = args.root / f"tree-{size}"
        index = args.root / f"index-{size}.sqlite3"
        for stale in args.root.glob(f"index-{size}.sqlite3*"):
            stale.unlink()
        measure("setup", size, tree, index, args)
        for phase in ("scan", "first", "second"):
            results.append(measure(phase, size, tree, index, args))
    by = {(r["phase"], r["size"]): r for r in results}
    small, large = min(args.sizes), max(args.sizes)
    report = {
        "benchmark": "library_memory",
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "weights": str(args.weights),
        "uncaptioned_per_tree": args.uncaptioned,
        "beam": args.beam,
        "results": results,
        "peak_difference_mb": {
            phase: round(by[(phase, large)]["run_peak_mb"] - by[(phase, small)]["run_peak_mb"], 1)
            for phase in ("scan", "first", "second")
        },
        "ru_maxrss_difference_mb": {
            phase: round(by[(phase, large)]["ru_maxrss_mb"] - by[(phase, small)]["ru_maxrss_mb"], 1)
            for phase in ("scan", "first", "second")
        },
    }
    out = args.out or args.root / "results.json"
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(report["peak_difference_mb"]), f"-> {out}")


if __name__ == "__main__":
    main()
