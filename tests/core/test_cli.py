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


# ---------------------------------------------------------------- saving and exporting


def test_write_txt_then_skip_and_overwrite(capsys, tiny_checkpoint: Path, photo_dir: Path) -> None:
    w = ["--weights", str(tiny_checkpoint), "--beam", "1"]
    code, out, _ = run(capsys, "caption", str(photo_dir), "--write", "txt", *w)
    assert code == 0
    first = {Path(line.split("\t")[0]).name: line.split("\t")[1] for line in out.splitlines()}
    assert (photo_dir / "photo0.txt").read_text(encoding="utf-8").strip() == first["photo0.jpg"]

    (photo_dir / "photo0.txt").write_text("my own words", encoding="utf-8")
    code, out, err = run(capsys, "caption", str(photo_dir), "--write", "txt", *w)
    assert code == 0 and out == ""  # all three already captioned: nothing redone
    assert "--overwrite" in err
    assert (photo_dir / "photo0.txt").read_text(encoding="utf-8") == "my own words"

    code, out, _ = run(
        capsys, "caption", str(photo_dir / "photo0.jpg"), "--write", "txt", "--overwrite", *w
    )
    assert code == 0
    assert (photo_dir / "photo0.txt").read_text(encoding="utf-8").strip() == first["photo0.jpg"]


def test_skip_captioned_looks_in_every_store(
    capsys, tiny_checkpoint: Path, photo_dir: Path
) -> None:
    (photo_dir / "photo1.txt").write_text("already described", encoding="utf-8")
    code, out, err = run(
        capsys, "caption", str(photo_dir), "--skip-captioned", "--weights", str(tiny_checkpoint)
    )
    assert code == 0
    names = {Path(line.split("\t")[0]).name for line in out.splitlines()}
    assert names == {"photo0.jpg", "photo2.jpg"}
    assert "skipped 1" in err


def test_write_embed_keeps_pixels(capsys, tiny_checkpoint: Path, photo_dir: Path) -> None:
    from core.storage import make_store

    def scan(path: Path) -> bytes:  # JPEG entropy-coded data: from the SOS marker to the end
        data = path.read_bytes()
        return data[data.index(b"\xff\xda") :]

    photo = photo_dir / "photo2.jpg"
    before = scan(photo)
    code, out, _ = run(
        capsys, "caption", str(photo), "--write", "embed", "--weights", str(tiny_checkpoint)
    )
    assert code == 0
    caption = out.split("\t")[1].strip()
    assert make_store("embed").read(photo) == caption
    assert scan(photo) == before


def test_write_failure_names_file_and_batch_goes_on(
    capsys, tiny_checkpoint: Path, photo_dir: Path
) -> None:
    locked = photo_dir / "photo0.jpg"
    locked.chmod(0o444)
    try:
        code, out, err = run(
            capsys, "caption", str(photo_dir), "--write", "embed", "--weights", str(tiny_checkpoint)
        )
    finally:
        locked.chmod(0o644)
    assert code == 1
    assert len(out.splitlines()) == 3
    assert "photo0.jpg" in err
    from core.storage import make_store

    assert make_store("embed").read(photo_dir / "photo1.jpg")


@pytest.mark.parametrize("fmt", ["csv", "json", "jsonl", "hf"])
def test_export_command(capsys, tmp_path: Path, photo_dir: Path, fmt: str) -> None:
    (photo_dir / "photo0.txt").write_text('a "quoted", caption', encoding="utf-8")
    target = tmp_path / f"out.{fmt}"
    code, _, err = run(capsys, "export", str(photo_dir), "--format", fmt, "-o", str(target))
    assert code == 0 and "exported 1" in err
    text = target.read_text(encoding="utf-8")
    if fmt == "csv":
        assert text.splitlines()[1] == 'photo0.jpg,"a ""quoted"", caption",txt'
    elif fmt == "json":
        assert json.loads(text)[0]["caption"] == 'a "quoted", caption'
    else:
        rec = json.loads(text.splitlines()[0])
        assert rec["file_name"] == "photo0.jpg"
        assert rec["text" if fmt == "hf" else "caption"] == 'a "quoted", caption'


def test_export_usage_errors(capsys, tmp_path: Path) -> None:
    assert run(capsys, "export", str(tmp_path / "nope"), "--format", "csv")[0] == 2
    assert run(capsys, "export", str(tmp_path), "--format", "json", "--bom")[0] == 2
