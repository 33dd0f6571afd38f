"""The photoscribe command: output formats, errors and exit codes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from functools import partial
from pathlib import Path

import pytest

from core.cli import main
from core.datatypes import CHECK_BELOW


@pytest.fixture(autouse=True)
def private_index(tmp_path_factory, monkeypatch) -> Path:
    """Every command here uses its own library index, never the user's data folder."""
    path = tmp_path_factory.mktemp("index") / "library.sqlite3"
    monkeypatch.setenv("PHOTOSCRIBE_INDEX", str(path))
    return path


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Two cores shared with other work: one thread is many times faster than two here."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


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


@pytest.mark.parametrize(
    "command",
    [
        ["index", "{missing}"],
        ["export", "{missing}", "--format", "csv"],
        ["search", "dog", "{missing}"],
    ],
    ids=["index", "export", "search"],
)
def test_a_missing_folder_is_one_usage_error_for_the_folder_commands(
    capsys, photo_dir: Path, tmp_path: Path, command: list[str]
) -> None:
    """Regression: export said "not a folder" (exit 2) where index said something else."""
    missing = tmp_path / "nope"
    args = [a.format(missing=missing, here=photo_dir) for a in command]
    code, out, err = run(capsys, *args)
    assert code == 2 and out == ""
    assert err.strip() == f"photoscribe: {missing}: no such file or folder"


def test_caption_reports_missing_paths_and_captions_the_rest(
    capsys, tiny_checkpoint: Path, photo_dir: Path, tmp_path: Path
) -> None:
    """A regression guard: `caption missing.jpg good.jpg` exited 2 and captioned nothing."""
    missing, also = tmp_path / "missing.jpg", tmp_path / "gone"
    good = photo_dir / "photo0.jpg"
    weights = ["--weights", str(tiny_checkpoint), "--beam", "1"]
    code, out, err = run(
        capsys, "caption", str(missing), str(good), str(also), "--write", "txt", *weights
    )
    assert code == 1, "some paths failed: exit 1, not a usage error"
    assert out.startswith(f"{good}\t") and len(out.splitlines()) == 1
    assert f"photoscribe: {missing}: no such file or folder" in err
    assert f"photoscribe: {also}: no such file or folder" in err
    assert good.with_suffix(".txt").is_file()
    code, out, err = run(capsys, "caption", str(missing), *weights)
    assert code == 1 and out == ""
    assert f"photoscribe: {missing}: no such file or folder" in err


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


def test_choices_come_from_the_types() -> None:
    from typing import get_args

    from core.cli import build_parser
    from core.datatypes import DeviceChoice, ExportFormat, Precision, StoreKind, XmpName

    def choices(command: str, option: str) -> tuple:
        sub = next(a for a in build_parser()._actions if a.dest == "command").choices[command]
        return tuple(next(a for a in sub._actions if option in a.option_strings).choices)

    assert choices("caption", "--write") == ("none", *get_args(StoreKind))
    assert choices("caption", "--device") == get_args(DeviceChoice)
    assert choices("caption", "--precision") == get_args(Precision)
    assert choices("caption", "--xmp-name") == choices("index", "--xmp-name") == get_args(XmpName)
    assert choices("export", "--format") == get_args(ExportFormat)


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


def test_precision_option_and_environment(
    capsys, monkeypatch, tiny_checkpoint: Path, photo_dir: Path
) -> None:
    photo = str(photo_dir / "photo0.jpg")
    weights = ["--weights", str(tiny_checkpoint), "--beam", "1"]
    code, fp32, _ = run(capsys, "caption", photo, *weights)
    assert code == 0
    code, bf16, _ = run(capsys, "caption", photo, *weights, "--precision", "bf16")
    assert code == 0 and bf16.startswith(photo)
    monkeypatch.setenv("PHOTOSCRIBE_PRECISION", "fp8")
    code, out, err = run(capsys, "caption", photo, *weights)
    assert code == 2 and out == ""
    assert "PHOTOSCRIBE_PRECISION='fp8' is not a precision" in err
    code, out, _ = run(capsys, "caption", photo, *weights, "--precision", "fp32")
    assert code == 0 and out == fp32  # the option wins over the environment


def test_bad_weights_file_exits_2_with_message(capsys, tmp_path: Path, photo_dir: Path) -> None:
    bad = tmp_path / "w.safetensors"
    bad.write_bytes(b"garbage" * 10)
    code, out, err = run(capsys, "caption", str(photo_dir), "--weights", str(bad))
    assert code == 2 and out == "" and "w.safetensors" in err


def test_no_model_installed_says_so(capsys, monkeypatch, tmp_path: Path, photo_dir: Path) -> None:
    import core.datatypes

    monkeypatch.setattr(core.datatypes, "DEFAULT_WEIGHTS", tmp_path / "absent.safetensors")
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
    # Regression (issue 11, item 18): stdout lists only the photos whose captions were saved.
    listed = sorted(Path(line.split("\t")[0]).name for line in out.splitlines())
    assert listed == ["photo1.jpg", "photo2.jpg"]
    assert "photo0.jpg" in err and "read-only" in err
    assert "the caption that was not saved" in err
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
        assert text.splitlines()[1] == 'photo0.jpg,"a ""quoted"", caption",txt,,false'
    elif fmt == "json":
        assert json.loads(text)[0]["caption"] == 'a "quoted", caption'
    else:
        rec = json.loads(text.splitlines()[0])
        assert rec["file_name"] == "photo0.jpg"
        assert rec["text" if fmt == "hf" else "caption"] == 'a "quoted", caption'


def test_export_to_a_dash_writes_to_stdout(capsys, tmp_path: Path, photo_dir: Path, monkeypatch):
    """`-o -` is standard output, as for other command-line tools; it wrote a file named "-"."""
    (photo_dir / "photo0.txt").write_text("a caption", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "export", str(photo_dir), "--format", "csv", "-o", "-")
    assert code == 0 and "exported 1 caption(s)" in err and " to -" not in err
    assert out.splitlines()[1].startswith("photo0.jpg,a caption,txt")
    assert not (tmp_path / "-").exists()


def test_export_carries_the_confidence_the_caption_run_recorded(
    capsys, tmp_path: Path, photo_dir: Path, tiny_checkpoint: Path
) -> None:
    index = tmp_path / "lib.sqlite3"
    weights = ["--weights", str(tiny_checkpoint), "--beam", "1", "--index", str(index)]
    code, out, _ = run(
        capsys, "caption", str(photo_dir), "--write", "txt", "--format", "jsonl", *weights
    )
    assert code == 0
    made = {Path(r["path"]).name: r["confidence"] for r in map(json.loads, out.splitlines())}
    code, out, _ = run(capsys, "export", str(photo_dir), "--format", "jsonl", "--index", str(index))
    assert code == 0
    exported = {r["file_name"]: r for r in map(json.loads, out.splitlines())}
    assert {n: r["confidence"] for n, r in exported.items()} == made
    assert not any(r["reviewed"] for r in exported.values())


def test_export_usage_errors(capsys, tmp_path: Path) -> None:
    assert run(capsys, "export", str(tmp_path / "nope"), "--format", "csv")[0] == 2
    (tmp_path / "a.jpg").write_bytes(b"")
    code, _, err = run(capsys, "export", str(tmp_path / "a.jpg"), "--format", "csv")
    assert code == 2 and "not a folder" in err
    assert run(capsys, "export", str(tmp_path), "--format", "json", "--bom")[0] == 2


# ---------------------------------------------------------------- whole libraries (issue 7)


def small_photos(folder: Path, n: int, start: int = 0) -> list[Path]:
    from tests.imagegen import textured_image

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(start, start + n):
        path = folder / f"img{i:03d}.jpg"
        textured_image(48, 32, seed=i).save(path, quality=80)
        paths.append(path)
    return paths


def lines_of(text: str) -> dict[str, str]:
    return {line.split("\t")[0]: line.split("\t")[1] for line in text.splitlines()}


def library_command(lib: Path, index: Path, checkpoint: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "core.cli",
        "caption",
        str(lib),
        "-r",
        "--write",
        "txt",
        "--weights",
        str(checkpoint),
        "--beam",
        "1",
        "--batch-size",
        "2",
        "--index",
        str(index),
    ]


ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1"}  # two busy cores: one thread is faster


def signal_after_three_lines(command: list[str], sig: int) -> tuple[int, str, str]:
    """Start ``command``, send ``sig`` once it has printed three lines; (code, stdout, stderr)."""
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ONE_THREAD
    )
    seen: list[str] = []
    errors: list[str] = []
    three = threading.Event()

    def read_out() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            seen.append(line)
            if len(seen) >= 3:
                three.set()

    def read_err() -> None:
        assert proc.stderr is not None
        errors.append(proc.stderr.read())

    readers = [threading.Thread(target=f, daemon=True) for f in (read_out, read_err)]
    for reader in readers:
        reader.start()
    try:
        assert three.wait(240), "the first run printed nothing"
        os.kill(proc.pid, sig)
    finally:
        proc.wait(120)
        for reader in readers:
            reader.join(10)
    return proc.returncode, "".join(seen), "".join(errors)


def test_sigkill_mid_batch_then_the_same_command_resumes(
    tiny_checkpoint: Path, tmp_path: Path
) -> None:
    from core.storage.files import TEMP_PREFIX

    lib = tmp_path / "lib"
    photos = small_photos(lib / "a", 24) + small_photos(lib / "b", 24, start=24)
    index, report = tmp_path / "index.sqlite3", tmp_path / "report.json"
    command = library_command(lib, index, tiny_checkpoint)
    code, out, _ = signal_after_three_lines(command, signal.SIGKILL)
    assert code == -signal.SIGKILL
    first = lines_of(out)
    assert 3 <= len(first) < len(photos), "the kill did not land mid-run"

    second = subprocess.run(
        [*command, "--report", str(report)],
        capture_output=True,
        text=True,
        env=ONE_THREAD,
        timeout=300,
    )
    assert second.returncode == 0, second.stderr
    again = lines_of(second.stdout)
    assert set(first).isdisjoint(again)  # nothing finished in run 1 is redone or listed
    summary = json.loads(report.read_text(encoding="utf-8"))
    assert summary["captioned"] == len(again) and summary["failed"] == 0
    assert summary["captioned"] + summary["skipped"] == len(photos)
    assert summary["skipped"] >= len(first)  # and possibly photos saved just before the kill
    assert f"skipped {summary['skipped']}" in second.stderr
    for photo in photos:  # exactly one caption each, whole, and the one that was printed
        sidecars = list(photo.parent.glob(photo.stem + "*.txt"))
        assert len(sidecars) == 1, photo
        text = sidecars[0].read_text(encoding="utf-8").removesuffix("\n")
        assert text and text == (first.get(str(photo)) or again.get(str(photo)) or text)
    assert list(lib.rglob(f"{TEMP_PREFIX}*")) == []
    from core.index import LibraryIndex

    with LibraryIndex.open(index, readonly=True) as db:
        assert db.count("done") == db.count() == len(photos)

    third = subprocess.run(command, capture_output=True, text=True, env=ONE_THREAD, timeout=300)
    assert third.returncode == 0 and third.stdout == ""
    assert f"captioned 0, skipped {len(photos)}, failed 0" in third.stderr


def test_ctrl_c_finishes_the_batch_and_the_next_run_continues(
    tiny_checkpoint: Path, tmp_path: Path
) -> None:
    lib = tmp_path / "lib"
    photos = small_photos(lib, 30)
    command = library_command(lib, tmp_path / "index.sqlite3", tiny_checkpoint)
    code, out, err = signal_after_three_lines(command, signal.SIGINT)
    assert code == 130, err
    assert "stopping after the current photos are saved" in err
    assert "run the same command again to continue" in err
    first = lines_of(out)
    assert len(first) < len(photos)
    for path, caption in first.items():  # everything listed was saved, whole
        assert Path(path).with_suffix(".txt").read_text(encoding="utf-8") == caption + "\n"
    second = subprocess.run(command, capture_output=True, text=True, env=ONE_THREAD, timeout=300)
    assert second.returncode == 0, second.stderr
    again = lines_of(second.stdout)
    assert set(first).isdisjoint(again) and len(first) + len(again) == len(photos)
    assert list(lib.glob(".photoscribe-*")) == []


def test_second_run_lists_only_new_photos_and_counts_the_rest(
    capsys, tiny_checkpoint: Path, tmp_path: Path, private_index: Path
) -> None:
    lib = tmp_path / "lib"
    small_photos(lib, 3)
    w = ["--weights", str(tiny_checkpoint), "--beam", "1", "--write", "xmp"]
    code, out, err = run(capsys, "caption", str(lib), *w)
    assert code == 0 and len(out.splitlines()) == 3
    assert "captioned 3, skipped 0, failed 0" in err and "images/s" in err
    small_photos(lib, 1, start=3)
    report = tmp_path / "r.json"
    code, out, err = run(capsys, "caption", str(lib), *w, "--report", str(report))
    assert code == 0
    assert [Path(p).name for p in lines_of(out)] == ["img003.jpg"]
    assert "captioned 1, skipped 3, failed 0" in err
    data = json.loads(report.read_text(encoding="utf-8"))
    assert {k: data[k] for k in ("captioned", "skipped", "failed", "failures", "cancelled")} == {
        "captioned": 1,
        "skipped": 3,
        "failed": 0,
        "failures": [],
        "cancelled": False,
    }
    assert data["store"] == "xmp" and data["index"] == str(private_index)
    assert data["seconds"] > 0 and data["images_per_second"] > 0


def test_jsonl_output_works_with_the_library_engine(
    capsys, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    small_photos(tmp_path / "lib", 2)
    code, out, _ = run(
        capsys,
        "caption",
        str(tmp_path / "lib"),
        "--write",
        "txt",
        "--format",
        "jsonl",
        "--beam",
        "1",
        "--weights",
        str(tiny_checkpoint),
    )
    assert code == 0
    assert [json.loads(line)["path"].endswith(".jpg") for line in out.splitlines()] == [True] * 2


def test_search_command_finds_photos_by_caption(capsys, tmp_path: Path) -> None:
    from core.storage import TextSidecarStore

    lib = tmp_path / "lib"
    photos = small_photos(lib / "trip", 3) + small_photos(lib / "home", 1, start=3)
    store = TextSidecarStore()
    for photo, caption in zip(
        photos,
        ["a dog on the beach", "a cat on a sofa", "a dog running along a sandy beach at dusk", ""],
        strict=True,
    ):
        if caption:
            store.write(photo, caption)
    store.write(photos[3], "a dog on the beach at home")
    code, _, err = run(capsys, "index", str(lib), "-r")
    assert code == 0 and "indexed 4" in err

    code, out, _ = run(capsys, "search", "dog on a beach")
    assert out.splitlines() == [str(photos[0]), str(photos[3]), str(photos[2])]
    code, out, _ = run(capsys, "search", "dog on a beach", str(lib / "trip"), "--limit", "1")
    assert out.splitlines() == [str(photos[0])]
    code, out, _ = run(capsys, "search", "sofa", "--format", "jsonl")
    assert json.loads(out)["caption"] == "a cat on a sofa"
    code, out, err = run(capsys, "search", "submarine")
    assert code == 1 and out == "" and "no captioned photo matches" in err


def test_search_without_index_or_with_a_damaged_one(
    capsys, tmp_path: Path, private_index: Path
) -> None:
    code, _, err = run(capsys, "search", "dog")
    assert code == 1 and "no library index yet" in err and "photoscribe index" in err
    private_index.write_bytes(b"\0garbage" * 500)
    code, _, err = run(capsys, "search", "dog")
    assert code == 1 and str(private_index) in err and "damaged" in err
    assert "photoscribe index" in err  # what to do about it


def test_damaged_index_is_moved_aside_and_captions_are_not_redone(
    capsys, tiny_checkpoint: Path, tmp_path: Path, private_index: Path
) -> None:
    lib = tmp_path / "lib"
    small_photos(lib, 2)
    w = ["--weights", str(tiny_checkpoint), "--beam", "1", "--write", "txt"]
    assert run(capsys, "caption", str(lib), *w)[0] == 0
    private_index.write_bytes(b"\0garbage" * 500)
    code, out, err = run(capsys, "caption", str(lib), *w)
    assert code == 0 and out == ""  # the stores said both were done
    assert str(private_index) in err and "damaged" in err and "moved" in err
    assert "skipped 2" in err
    assert list(private_index.parent.glob("library.sqlite3.damaged-*"))


def test_locked_index_is_a_clear_error(
    capsys, monkeypatch, tiny_checkpoint: Path, tmp_path: Path, private_index: Path
) -> None:
    import sqlite3

    import core.index
    from core.index import LibraryIndex

    lib = tmp_path / "lib"
    small_photos(lib, 1)
    LibraryIndex.open(private_index).close()
    monkeypatch.setattr(core.index, "LOCK_TIMEOUT_S", 0.1)
    other = sqlite3.connect(private_index, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        code, out, err = run(
            capsys, "caption", str(lib), "--write", "txt", "--weights", str(tiny_checkpoint)
        )
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert code == 1 and out == ""
    assert str(private_index) in err and "in use by another program" in err
    assert not list(lib.glob("*.txt"))


def test_help_explains_resume_and_the_index(capsys) -> None:
    code, out, _ = run(capsys, "caption", "--help")
    assert code == 0
    assert "continues" in out and "index" in out and "--report" in out
    assert run(capsys, "search", "--help")[0] == 0
    assert run(capsys, "index", "--help")[0] == 0


# ---------------------------------------------------------------- confidence (issue 10)


def test_jsonl_lines_carry_the_confidence_rounded(
    capsys, tiny_checkpoint: Path, photo_dir: Path
) -> None:
    code, out, _ = run(
        capsys, "caption", str(photo_dir), "--weights", str(tiny_checkpoint), "--format", "jsonl"
    )
    assert code == 0
    records = [json.loads(line) for line in out.splitlines()]
    assert len(records) == 3
    for rec in records:
        assert isinstance(rec["confidence"], float) and 0.0 <= rec["confidence"] <= 1.0
        assert rec["confidence"] == round(rec["confidence"], 3)
        assert rec["check"] is (rec["confidence"] < CHECK_BELOW)


def test_jsonl_check_is_below_the_default_threshold() -> None:
    from core.console import caption_line

    line = partial(caption_line, Path("a.jpg"), "a cat", -0.5, fmt="jsonl")
    assert json.loads(line(confidence=CHECK_BELOW - 0.01))["check"] is True
    assert json.loads(line(confidence=CHECK_BELOW))["check"] is False
    assert json.loads(line(confidence=None))["check"] is False


def test_min_confidence_saves_the_sure_captions_and_lists_the_rest_for_review(
    capsys, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    photos = small_photos(tmp_path / "lib", 3)
    report = tmp_path / "report.json"
    base = ["caption", str(tmp_path / "lib"), "--write", "txt", "--weights", str(tiny_checkpoint)]
    base += ["--beam", "1"]
    # The tiny model is unsure of everything: a minimum of 1 leaves every caption for review.
    code, out, err = run(capsys, *base, "--min-confidence", "1", "--report", str(report))
    assert code == 0, err
    assert out == "", "stdout lists only the captions kept"
    review = [line for line in err.splitlines() if "left for review" in line and "\t" not in line]
    review = [line for line in review if not line.startswith("photoscribe:")]
    assert len(review) == 3
    for line, photo in zip(review, photos, strict=True):
        assert line.startswith(f"{photo}: left for review (confidence 0.")
        assert "below 1): " in line and line.split("): ", 1)[1].strip()
    assert "captioned 0, left for review 3 (see above), skipped 0, failed 0" in err
    assert json.loads(report.read_text())["left_for_review"] == 3
    assert not any(p.with_suffix(".txt").exists() for p in photos)

    code, out, err = run(capsys, *base, "--min-confidence", "0", "--format", "jsonl")
    assert code == 0, err
    assert len(out.splitlines()) == 3 and "left for review 0" in err
    assert all(p.with_suffix(".txt").exists() for p in photos)


@pytest.mark.parametrize("value", ["-0.1", "1.5", "nan", "sure"])
def test_min_confidence_outside_0_to_1_is_a_usage_error(capsys, value: str, tmp_path: Path) -> None:
    code, out, err = run(capsys, "caption", str(tmp_path), f"--min-confidence={value}")
    assert code == 2 and out == ""
    assert "--min-confidence" in err


def test_search_jsonl_carries_the_confidence(capsys, tiny_checkpoint: Path, tmp_path: Path) -> None:
    small_photos(tmp_path / "lib", 1)
    code, out, _ = run(
        capsys, "caption", str(tmp_path / "lib"), "--write", "txt", "--format", "jsonl",
        "--beam", "1", "--weights", str(tiny_checkpoint),
    )  # fmt: skip
    assert code == 0
    made = json.loads(out)
    word = made["caption"].split()[-1]
    code, out, _ = run(capsys, "search", word, "--format", "jsonl")
    assert code == 0 and json.loads(out)["confidence"] == made["confidence"]


# ---------------------------------------------------------------- the terminal stays readable


def test_library_warnings_about_a_file_go_to_the_log_not_the_terminal(
    tmp_path: Path, tiny_checkpoint: Path, photo_dir: Path
) -> None:
    """exiv2's "Directory SubImage1 ... Strip 0 is outside of the data area" and libtiff's
    "TIFFFillStrip: Read error" (a truncated DNG), libtiff's ZIPDecode error (a TIFF with a
    flipped byte): in the log file, while the terminal has one PhotoScribe line per file that
    could not be captioned."""
    from tests.damage import damaged_copies

    data = Path(__file__).resolve().parents[1] / "data"
    bad = dict(damaged_copies(data / "leica_m10.dng", seed=1))
    bad.update(damaged_copies(data / "chelsea.tif", seed=1))
    for name in ("leica_m10_cut1.dng", "chelsea_flip0.tif"):
        (photo_dir / name).write_bytes(bad[name])
    log_file = tmp_path / "cli.log"
    env = {**os.environ, "PHOTOSCRIBE_LOG": str(log_file), "OMP_NUM_THREADS": "1"}
    weights = ["--weights", str(tiny_checkpoint), "--beam", "1"]
    errs = []
    for command in (
        ["caption", str(photo_dir), *weights],
        ["export", str(photo_dir), "--format", "csv", "-o", str(tmp_path / "out.csv")],
        ["index", str(photo_dir)],
    ):
        proc = subprocess.run(
            [sys.executable, "-m", "core.cli", *command],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode in (0, 1), proc.stderr
        errs.append(proc.stderr)
    said = "\n".join(errs)
    for library_words in ("exiv2", "Strip", "TIFF", "ZIPDecode", "Warning", "warn("):
        assert library_words not in said, said
    lines = errs[0].splitlines()
    assert not any("leica_m10_cut1.dng" in line for line in lines), errs[0]  # its preview reads
    assert sum("chelsea_flip0.tif" in line for line in lines) == 1, errs[0]
    logged = log_file.read_text(encoding="utf-8")
    assert "Directory SubImage1, entry 0x0111: Strip 0 is outside of the data area" in logged
    assert "TIFFFillStrip: Read error" in logged and "ZIPDecode" in logged
    assert "photoscribe.libraries: photoscribe.libraries" not in logged  # named once a line


def test_a_name_that_is_not_utf8_is_logged_not_a_logging_error(
    tmp_path: Path, tiny_checkpoint: Path, photo_dir: Path
) -> None:
    """Saving the caption of b"caf\\xe9.jpg" logs its name (as \\udce9) in the log file; it used
    to print "--- Logging error ---" and a traceback on the terminal."""
    try:
        (photo_dir / "photo0.jpg").rename(photo_dir / os.fsdecode(b"caf\xe9.jpg"))
    except (OSError, UnicodeEncodeError):
        pytest.skip("this file system takes UTF-8 names only")
    log_file = tmp_path / "cli.log"
    env = {**os.environ, "PHOTOSCRIBE_LOG": str(log_file), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "core.cli", "caption", str(photo_dir), "--write", "txt"]
        + ["--weights", str(tiny_checkpoint), "--beam", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Logging error" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert (photo_dir / os.fsdecode(b"caf\xe9.txt")).is_file()
    assert "caf\\udce9.txt" in log_file.read_text(encoding="utf-8")
