"""A reader that crashes or hangs on one photo costs that photo only: tests of core.isolation."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from PIL import Image

import core
import core.isolation
from core.cli import main
from core.errors import ImageError, ReaderCrashedError, ReaderError, StorageError
from core.images import decode_model_input, decode_picture, model_pixels, open_image
from core.isolation import ReaderPool
from core.logfile import default_log_file
from core.quarantine import Quarantine, default_quarantine_file
from core.storage import make_store
from tests.imagegen import textured_image

BAD = ("segfault.jpg", "abort.jpg", "hang.jpg")


def make_photos(folder: Path) -> list[Path]:
    """Two good photos, then one that segfaults, aborts or hangs the reader, then two good."""
    folder.mkdir(exist_ok=True)
    names = ["a_good.jpg", "b_good.jpg", *BAD, "y_good.jpg", "z_good.jpg"]
    for i, name in enumerate(names):
        textured_image(160, 120, seed=i).save(folder / name, quality=90)
    return [folder / n for n in names]


def readers_asked(pool: ReaderPool) -> list[Path]:
    """The files ``pool`` hands to a reader process from now on."""
    asked: list[Path] = []
    real = pool._ask

    def noted(task, path, args):
        asked.append(path)
        return real(task, path, args)

    pool._ask = noted  # type: ignore[method-assign]
    return asked


def test_a_reader_decodes_as_this_process_would(tmp_path: Path) -> None:
    photo = tmp_path / "p.jpg"
    textured_image(320, 240, seed=3).save(photo, quality=90)
    here = open_image(photo, (100, 100))
    there = decode_picture(photo, (100, 100))
    assert there.mode == "RGB" and there.size == here.size
    assert there.tobytes() == here.tobytes()
    assert decode_model_input(photo) == model_pixels(open_image(photo))


def test_errors_come_back_as_the_same_typed_errors(tmp_path: Path) -> None:
    not_a_photo = tmp_path / "notes.jpg"
    not_a_photo.write_text("hello")
    with pytest.raises(ImageError, match="notes.jpg: not an image") as caught:
        decode_picture(not_a_photo, None)
    assert type(caught.value) is ImageError
    assert not default_quarantine_file().exists(), "an ordinary bad file is not remembered"


@pytest.mark.parametrize(
    ("name", "how"),
    [
        ("segfault.jpg", "segmentation fault"),
        ("abort.jpg", "an abort"),
        ("hang.jpg", "no result after 3 s"),
    ],
)
def test_a_crash_costs_one_file_and_is_remembered(
    faulty_readers: ReaderPool, tmp_path: Path, name: str, how: str
) -> None:
    photos = make_photos(tmp_path)
    bad = tmp_path / name
    before = bad.read_bytes()
    for photo in photos:
        if photo != bad and photo.name not in BAD:
            assert decode_picture(photo, None).size == (160, 120)
    with pytest.raises(ReaderCrashedError) as caught:
        decode_picture(bad, None)
    message = str(caught.value)
    assert message.startswith(f"{bad}: PhotoScribe's image reader crashed on this file")
    assert how in message and "it was left untouched" in message
    assert isinstance(caught.value, ImageError) and isinstance(caught.value, StorageError)
    assert bad.read_bytes() == before
    # The next photo gets a fresh reader.
    assert decode_picture(photos[-1], None).size == (160, 120)

    # Remembered: not tried again (no wait for the hang, no new crash) until the file changes.
    asked = readers_asked(faulty_readers)
    with pytest.raises(ReaderCrashedError, match="remembered from an earlier try"):
        decode_picture(bad, (50, 50))
    assert asked == [], "no reader was given the file again"
    entries = json.loads(default_quarantine_file().read_text())["files"]
    assert list(entries) == [os.path.abspath(bad)]
    assert entries[os.path.abspath(bad)]["version"] == core.__version__
    os.utime(bad, ns=(time.time_ns(), time.time_ns() + 10**9))  # the file changed: try again
    with pytest.raises(ReaderCrashedError, match="crashed on this file \\("):
        decode_picture(bad, None)
    assert asked == [bad]


def test_a_remembered_file_is_tried_again_by_a_later_version(tmp_path: Path, monkeypatch) -> None:
    photo = tmp_path / "p.jpg"
    textured_image(32, 32, seed=1).save(photo)
    quarantine = Quarantine(tmp_path / "list.json")
    quarantine.add(photo, "it crashed")
    assert Quarantine(tmp_path / "list.json").reason(photo) == "it crashed"
    monkeypatch.setattr(core, "__version__", "99.0")
    assert Quarantine(tmp_path / "list.json").reason(photo) is None


def test_a_crash_while_reading_or_writing_metadata_leaves_the_photo_alone(
    faulty_readers: ReaderPool, tmp_path: Path
) -> None:
    shutil.copy(Path(__file__).parents[1] / "data" / "exif_iptc.jpg", tmp_path / "segfault.jpg")
    photo = tmp_path / "segfault.jpg"
    before = photo.read_bytes()
    with pytest.raises(StorageError, match="image reader crashed on this file"):
        make_store("embed").write(photo, "a cup of coffee")
    assert photo.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["segfault.jpg"], "no temporary file"


def test_the_command_line_goes_on_after_a_crash_and_names_the_files(
    faulty_readers: ReaderPool, capsys, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    photos = make_photos(tmp_path / "photos")
    args = ["caption", str(tmp_path / "photos"), "--weights", str(tiny_checkpoint)]
    code = main([*args, "--write", "xmp"])
    out, err = capsys.readouterr()
    assert code == 1, err
    good = [p for p in photos if p.name not in BAD]
    assert sorted(Path(line.split("\t")[0]) for line in out.splitlines()) == good
    assert all(Path(f"{p}.xmp").is_file() for p in good)
    problems = [line for line in err.splitlines() if "image reader crashed" in line]
    assert len(problems) == 3, err
    for name in BAD:
        assert sum(name in line for line in problems) == 1
        assert not (tmp_path / "photos" / f"{name}.xmp").exists()
    # The index is consistent: a second run skips what was saved and does not wait for the
    # hang again (the crashes are remembered).
    asked = readers_asked(faulty_readers)
    code = main([*args, "--write", "xmp"])
    out, err = capsys.readouterr()
    assert code == 1 and out == ""
    assert sum("remembered from an earlier try" in line for line in err.splitlines()) == 3, err
    assert not [p for p in asked if p.name in BAD], "no reader was given those files again"


def test_a_closed_pool_reports_instead_of_waiting(tmp_path: Path) -> None:
    pool = ReaderPool(size=1, setup="tests.reader_faults:install")
    photo = tmp_path / "p.jpg"
    textured_image(32, 32, seed=1).save(photo)
    assert pool.call("picture", photo, None)[1] == (32, 32)
    pool.close()
    with pytest.raises(ImageError, match="PhotoScribe is closing"):
        pool.call("picture", photo, None)
    assert not default_quarantine_file().exists()


def damaged_tiff(path: Path) -> Path:
    """chelsea.tif with its first strip's compressed data scrambled: libtiff complains on stderr."""
    data = bytearray((Path(__file__).parents[1] / "data" / "chelsea.tif").read_bytes())
    with Image.open(io.BytesIO(bytes(data))) as image:
        first_strip = image.tag_v2[273][0]
    data[first_strip + 2 : first_strip + 40] = bytes(range(38))
    path.write_bytes(bytes(data))
    return path


def test_the_terminal_gets_one_line_per_problem_file_and_the_log_the_rest(
    capfd, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "photos"
    make_photos(folder)
    for name in BAD:
        (folder / name).unlink()
    damaged_tiff(folder / "damaged.tif")
    code = main(["caption", str(folder), "--weights", str(tiny_checkpoint)])
    out, err = capfd.readouterr()  # the file descriptors: what C libraries write goes there
    assert code == 1
    assert len(out.splitlines()) == 4
    assert [line for line in err.splitlines() if "damaged.tif" in line] == err.splitlines()[:1]
    assert "ZIPDecode" not in err and "TIFF" not in err
    assert len([line for line in err.splitlines() if line.strip()]) == 2, err  # + the summary
    log_text = default_log_file().read_text()
    assert "damaged.tif" in log_text and "ZIPDecode" in log_text


def test_a_reader_stopped_from_outside_does_not_mark_the_file(
    faulty_readers: ReaderPool, tmp_path: Path
) -> None:
    """Another program ending a reader (kill, a shutdown) says nothing about the file."""
    photo = make_photos(tmp_path)[BAD.index("hang.jpg") + 2]
    errors: list[BaseException] = []

    def read() -> None:
        try:
            decode_picture(photo, None)
        except BaseException as error:  # noqa: BLE001 - checked below
            errors.append(error)

    # Killed once the file is handed over: killed while starting is another case, and killed
    # after it said it was ready but before the file was sent, the pool rightly tries the file
    # on a new reader (where it hangs: "stopped responding"). Waiting for "ready" alone let a
    # busy machine kill it in that gap.
    handed_over = threading.Event()
    real_wait = faulty_readers._wait

    def noted_wait(reader, path, timeout_s):
        if timeout_s == faulty_readers.timeout_s:  # waiting for the file's result, not the start
            handed_over.set()
        return real_wait(reader, path, timeout_s)

    faulty_readers._wait = noted_wait  # type: ignore[method-assign]
    reader = threading.Thread(target=read)
    reader.start()
    assert handed_over.wait(60), "the file never reached a reader"
    (busy,) = faulty_readers._busy
    os.kill(busy.process.pid, signal.SIGTERM)
    reader.join()
    (error,) = errors
    assert type(error) is ReaderError and "reader was stopped" in str(error)
    assert not default_quarantine_file().exists()


def test_readers_in_process_lets_a_test_patch_what_readers_run(
    readers_in_process, tmp_path: Path, monkeypatch
) -> None:
    import core.storage.embedded

    photo = tmp_path / "p.jpg"
    shutil.copy(Path(__file__).parents[1] / "data" / "plain.jpg", photo)
    monkeypatch.setattr(core.storage.embedded, "embedded_caption", lambda image: "patched")
    assert make_store("embed").read(photo) == "patched"


def test_a_reader_whose_parent_dies_leaves_no_log_file(tmp_path: Path) -> None:
    """A crashed app cannot remove its readers' log files: the readers do, seeing it gone."""
    script = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "from core.isolation import reader_pool\n"
        "pool = reader_pool()\n"
        f"pool.call('picture', Path({str(make_photos(tmp_path / 'p')[0])!r}), None)\n"
        "print(pool._idle[0].log_file, pool._idle[0].process.pid, flush=True)\n"
        "os._exit(0)  # as a crash would: no clean-up at exit\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120
    )
    log_file, pid = done.stdout.split()
    deadline = time.monotonic() + 30
    while Path(log_file).exists() and time.monotonic() < deadline:
        time.sleep(0.05)  # the reader sees its pipe close, removes the file and ends
    assert not Path(log_file).exists()
