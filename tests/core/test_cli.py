"""The photoscribe command: output formats, errors and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from core.cli import main


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_caption_text_output(capsys, tiny_checkpoint: Path, photo_dir: Path) -> None:
    code, out, err = run(capsys, "caption", str(photo_dir), "--weights", str(tiny_checkpoint))
    assert code == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == 3
    for line, name in zip(lines, ["photo0.jpg", "photo1.jpg", "photo2.jpg"], strict=True):
        path, caption = line.split("\t")
        assert Path(path).name == name and caption


def test_caption_jsonl_output(capsys, tiny_checkpoint: Path, photo_dir: Path) -> None:
    photo = str(photo_dir / "photo1.jpg")
    code, out, _ = run(
        capsys,
        "caption",
        photo,
        "--weights",
        str(tiny_checkpoint),
        "--format",
        "jsonl",
        "--beam",
        "2",
    )
    assert code == 0
    rec = json.loads(out)
    assert (
        rec["path"] == photo and isinstance(rec["caption"], str) and isinstance(rec["score"], float)
    )


def test_some_failed_exits_1_and_names_the_file(
    capsys, tiny_checkpoint: Path, photo_dir: Path
) -> None:
    (photo_dir / "zzz_broken.jpg").write_bytes(b"")
    code, out, err = run(capsys, "caption", str(photo_dir), "--weights", str(tiny_checkpoint))
    assert code == 1
    assert len(out.strip().splitlines()) == 3  # the good photos are still captioned
    assert "zzz_broken.jpg" in err and "empty" in err


def test_missing_path_is_reported(capsys, tiny_checkpoint: Path, tmp_path: Path) -> None:
    code, _, err = run(
        capsys, "caption", str(tmp_path / "nope.jpg"), "--weights", str(tiny_checkpoint)
    )
    assert code == 1 and "nope.jpg" in err and "not found" in err


def test_recursive_flag(capsys, tiny_checkpoint: Path, photo_dir: Path) -> None:
    sub = photo_dir / "sub"
    sub.mkdir()
    (sub / "deep.jpg").write_bytes((photo_dir / "photo0.jpg").read_bytes())
    _, flat, _ = run(
        capsys, "caption", str(photo_dir), "--weights", str(tiny_checkpoint), "--beam", "1"
    )
    _, deep, _ = run(
        capsys, "caption", str(photo_dir), "-r", "--weights", str(tiny_checkpoint), "--beam", "1"
    )
    assert "deep.jpg" not in flat and "deep.jpg" in deep


@pytest.mark.parametrize(
    "args",
    [
        ["caption"],
        ["caption", "x.jpg", "--beam", "many"],
        ["caption", "x.jpg", "--device", "tpu"],
        ["bogus-flag-only", "x", "y"],
    ],
)
def test_usage_errors_exit_2(capsys, args: list[str]) -> None:
    code, _, _ = run(capsys, *args)
    assert code == 2


def test_bad_weights_file_exits_2_with_message(capsys, tmp_path: Path, photo_dir: Path) -> None:
    bad = tmp_path / "w.safetensors"
    bad.write_bytes(b"garbage" * 10)
    code, out, err = run(capsys, "caption", str(photo_dir), "--weights", str(bad))
    assert code == 2 and out == "" and "w.safetensors" in err


def test_no_model_installed_says_so(capsys, monkeypatch, tmp_path: Path, photo_dir: Path) -> None:
    import core.inference as inference

    monkeypatch.setattr(inference, "DEFAULT_WEIGHTS", tmp_path / "absent.safetensors")
    code, out, err = run(capsys, "caption", str(photo_dir))
    assert code == 2 and out == ""
    assert "no trained caption model is installed" in err


def test_version(capsys) -> None:
    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.startswith("photoscribe ")


def test_console_script_runs_as_a_process(tiny_checkpoint: Path, photo_dir: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "core.cli",
            "caption",
            str(photo_dir / "photo0.jpg"),
            "--weights",
            str(tiny_checkpoint),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(str(photo_dir / "photo0.jpg") + "\t")
