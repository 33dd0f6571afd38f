"""Hundreds of damaged photos through the real command line: no crash, every file captioned or
named with a reason, and no photo's pixels changed by writing its caption inside it.

The damaged copies are of every photo in tests/data, and of an AVIF and a JPEG XL made here.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import core.images  # noqa: F401 - registers JPEG XL with Pillow, to make the JPEG XL here
from core.errors import PhotoScribeError
from core.images import decode_picture
from core.library import IMAGE_EXTENSIONS
from core.storage.embedded import EMBED_EXTENSIONS
from core.storage.pixels import NotRecognisedError, image_data_digest
from tests.damage import damaged_copies
from tests.imagegen import textured_image

DATA = Path(__file__).parents[1] / "data"
ROOT = Path(__file__).parents[2]
SEED = 25
_KINDS = {".jpg": "jpeg", ".jpeg": "jpeg", ".png": "png", ".webp": "webp"}


def pixels(photo: Path) -> bytes | str:
    """The decoded picture, or why it cannot be decoded; decoded in a reader process, so a
    file that crashes a decoder cannot take the test down either."""
    try:
        image = decode_picture(photo, None)
    except PhotoScribeError as error:
        return error.problem
    return hashlib.sha256(image.tobytes()).hexdigest()


def image_data(photo: Path) -> str | None:
    kind = _KINDS.get(photo.suffix.lower())
    if kind is None:
        return None
    try:
        return image_data_digest(photo.read_bytes(), kind)
    except NotRecognisedError:
        return None


@pytest.fixture(scope="module")
def damaged(tmp_path_factory) -> tuple[Path, dict[str, bytes]]:
    folder = tmp_path_factory.mktemp("damaged")
    generated = tmp_path_factory.mktemp("generated")  # formats with no sample in tests/data
    for suffix, kind in (("avif", "AVIF"), ("jxl", "JXL")):
        textured_image(320, 240, seed=7).save(generated / f"made.{suffix}", kind, quality=80)
    originals: dict[str, bytes] = {}
    for photo in [*sorted(DATA.iterdir()), *sorted(generated.iterdir())]:
        if photo.suffix.lower() not in IMAGE_EXTENSIONS:
            continue
        for name, data in damaged_copies(photo, SEED):
            (folder / name).write_bytes(data)
            originals[name] = data
    return folder, originals


def test_damaged_photos_are_captioned_or_named_and_never_altered(
    damaged, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    folder, originals = damaged
    assert len(originals) >= 200
    before = {
        name: pixels(folder / name)
        for name in originals
        if Path(name).suffix.lower() in EMBED_EXTENSIONS
    }
    report = tmp_path / "report.json"
    env = {**os.environ, "PHOTOSCRIBE_INDEX": str(tmp_path / "index.db")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    command = [
        sys.executable, "-c", "import sys; from desktop.launcher import main; sys.exit(main())",
        "caption", str(folder), "--weights", str(tiny_checkpoint), "--beam", "1",
        "--write", "embed", "--overwrite", "--format", "jsonl", "--report", str(report),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
    assert done.returncode in (0, 1), f"the command line died ({done.returncode}): {done.stderr}"

    summary = json.loads(report.read_text())
    captioned = {Path(json.loads(line)["path"]).name for line in done.stdout.splitlines()}
    failed = {Path(f["path"]).name: f["reason"] for f in summary["failures"]}
    assert captioned.isdisjoint(failed)
    assert captioned | set(failed) == set(originals), "every file captioned or named"
    assert summary["captioned"] == len(captioned) and summary["failed"] == len(failed)
    for name, reason in failed.items():
        assert "\n" not in reason, f"{name}: one line per file"
        assert (
            reason.startswith(str(folder / name) + ": ")
            and len(reason) > len(str(folder / name)) + 10
        )
    assert captioned, "the lightly damaged copies are still captioned"

    for name, data in originals.items():
        photo = folder / name
        if photo.suffix.lower() not in EMBED_EXTENSIONS:
            assert photo.read_bytes() == data, f"{name}: a sidecar format was written to"
            continue
        if photo.read_bytes() == data:
            continue
        # Written: the caption went in, the picture did not change.
        assert name in captioned
        assert pixels(photo) == before[name], f"{name}: the pixels changed"
        original = folder.parent / f"original-{name}"
        original.write_bytes(data)
        assert image_data(photo) == image_data(original), f"{name}: the image data changed"
    # No temporary file left behind by a refused or failed write.
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]
