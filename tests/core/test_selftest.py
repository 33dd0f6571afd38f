"""`photoscribe --self-test`: what it checks, what it prints, and how it fails."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest

import core.datatypes
import core.selftest
from core.cli import main
from core.selftest import find_test_photos, run_self_test

DATA = Path(__file__).resolve().parents[1] / "data"
SAMPLES = Path(__file__).resolve().parents[2] / "desktop" / "resources" / "samples"


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_self_test_passes_and_says_what_it_checked(tiny_checkpoint: Path) -> None:
    photos = find_test_photos(False, (SAMPLES, DATA))
    before = digest(photos.photo)
    out, err = io.StringIO(), io.StringIO()
    code = run_self_test(
        tiny_checkpoint, out=out, err=err, device="cpu", photo_folders=(SAMPLES, DATA)
    )
    assert code == 0, out.getvalue()
    lines = out.getvalue().splitlines()
    checked = [line.split(":")[0] for line in lines if line.startswith("ok")]
    assert checked == ["ok   program", "ok   libraries", "ok   photos", "ok   devices",
                       "ok   model", "ok   caption", "ok   HEIC", "ok   save"]  # fmt: skip
    assert "image data unchanged" in lines[-2] and lines[-1].startswith("self-test passed")
    assert "decoded astronaut.heic (128x128)" in out.getvalue()
    assert err.getvalue() == ""
    assert digest(photos.photo) == before, "the sample photo itself is never written"


def test_it_uses_the_photos_it_is_given_first(tiny_checkpoint: Path) -> None:
    photos = find_test_photos(False, (SAMPLES, DATA))
    assert photos.photo.parent == SAMPLES
    assert photos.heic is not None and photos.heic.suffix == ".heic"
    assert find_test_photos(False, (DATA,)).photo.parent == DATA


def test_without_the_model_it_fails_with_a_clear_message(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setattr(core.datatypes, "DEFAULT_WEIGHTS", tmp_path / "missing.safetensors")
    out, err = io.StringIO(), io.StringIO()
    assert run_self_test(out=out, err=err, device="cpu", photo_folders=(SAMPLES,)) == 1
    assert "FAIL model:" in out.getvalue()
    assert "missing.safetensors" in err.getvalue() and "no trained caption model" in err.getvalue()
    assert "self-test passed" not in out.getvalue()


def test_a_packaged_app_must_carry_its_test_photos(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setattr(core.selftest, "PACKAGED_DIR", tmp_path / "selftest")
    out, err = io.StringIO(), io.StringIO()
    assert run_self_test(out=out, err=err, frozen=True, device="cpu") == 1
    assert "the app carries no HEIC test photo" in err.getvalue()
    (tmp_path / "selftest").mkdir()
    (tmp_path / "selftest" / "a.heic").write_bytes((DATA / "astronaut.heic").read_bytes())
    with pytest.raises(core.selftest.SelfTestFailed, match="carries no sample photos"):
        find_test_photos(True, (tmp_path / "samples",))
    # Outside the packaged app a JPEG is enough.
    assert find_test_photos(False, (DATA,)).heic is not None
    assert find_test_photos(False, (SAMPLES,)).photo.parent == SAMPLES


def test_a_packaged_app_must_run_its_own_code(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setattr(core.selftest.sys, "_MEIPASS", str(tmp_path), raising=False)
    with pytest.raises(core.selftest.SelfTestFailed, match="outside the app"):
        core.selftest.check_program(frozen=True)


def test_the_command_line_flag(monkeypatch, capsys, tiny_checkpoint: Path) -> None:
    monkeypatch.setattr(core.datatypes, "DEFAULT_WEIGHTS", tiny_checkpoint)
    assert main(["--self-test"], self_test_photos=(SAMPLES,)) == 0
    assert "self-test passed" in capsys.readouterr().out
    assert main(["--self-test", "search", "dog"]) == 2
    assert "takes no subcommand" in capsys.readouterr().err


def test_a_missing_library_is_a_failed_check_not_a_traceback(monkeypatch) -> None:
    monkeypatch.setattr(core.selftest, "LIBRARIES", ("numpy", "photoscribe_no_such_library"))
    out, err = io.StringIO(), io.StringIO()
    assert run_self_test(out=out, err=err, device="cpu") == 1
    assert "FAIL libraries: ModuleNotFoundError" in out.getvalue()
    assert "photoscribe_no_such_library" in err.getvalue()


def test_a_cpu_build_needs_no_torchvision_and_a_cuda_build_does(monkeypatch) -> None:
    """torchvision only decodes JPEGs on an NVIDIA GPU: the CPU build of the app leaves it out."""
    import sys

    import torch

    monkeypatch.setitem(sys.modules, "torchvision", None)  # as if not installed: import fails
    monkeypatch.setattr(torch.version, "cuda", None)
    found = core.selftest.check_libraries()
    assert "torch " in found and "torchvision" not in found and "CPU-only build" in found
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    with pytest.raises(ImportError, match="torchvision"):
        core.selftest.check_libraries()
