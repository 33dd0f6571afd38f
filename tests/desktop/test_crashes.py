"""A photo that crashes the image reader costs that photo only; an unclean exit is no crash loop."""

from __future__ import annotations

from pathlib import Path

from desktop.photos import Status
from tests.core.test_isolation import BAD, make_photos
from tests.desktop.conftest import open_and_wait, wait_idle


def test_the_app_stays_up_when_the_reader_crashes_on_photos(
    qtbot, window, tmp_path: Path, faulty_readers
) -> None:
    photos = make_photos(tmp_path / "photos")
    bad = [p for p in photos if p.name in BAD]
    good = [p for p in photos if p.name not in BAD]
    open_and_wait(qtbot, window, tmp_path / "photos", timeout=30_000)
    for photo in photos:
        window.photos.thumbnail(photo)
    # The hang takes the reader's timeout (3 s in tests) to be given up.
    qtbot.waitUntil(lambda: all(window.photos.is_broken(p) for p in bad), timeout=30_000)
    qtbot.waitUntil(lambda: all(window.photos.has_thumbnail(p) for p in good), timeout=30_000)
    rows = window.errors.rows()
    assert sorted(name for name, _ in rows) == sorted(BAD), "one entry per file"
    assert all("image reader crashed on this file" in reason for _, reason in rows)

    window.commands.caption_folder.trigger()
    wait_idle(qtbot, window, timeout=60_000)
    assert all(window.photos.photo(p).status is Status.SAVED for p in good)
    assert all(window.photos.photo(p).status is not Status.SAVED for p in bad)
    assert all(Path(f"{p.with_suffix('')}.txt").is_file() for p in good)
    assert not any(Path(f"{p.with_suffix('')}.txt").exists() for p in bad)
    rows = window.errors.rows()
    assert sorted(name for name, _ in rows) == sorted(BAD), "still one entry per file"
    assert window.isVisible()


def test_after_an_unclean_exit_the_folder_is_not_reopened(
    qtbot, make_window, photo_dir: Path, prompts
) -> None:
    crashed = make_window()
    crashed.start(str(photo_dir))
    qtbot.waitUntil(lambda: crashed.photos.rowCount() == 3)
    # PhotoScribe dies here (no shutdown); the next start must not open the folder again.
    second = make_window()
    second.start(None)
    assert second.session.folder is None
    assert second.middle.currentWidget() is second.welcome
    title, text = prompts.errors[-1]
    assert title == "PhotoScribe did not close properly"
    assert str(photo_dir) in text and "not opened again" in text
    # Nor on the start after that, until the user opens it again.
    third = make_window()
    third.start(None)
    assert third.session.folder is None and len(prompts.errors) == 1
    third.open_folder(photo_dir)
    third.shutdown()  # a clean quit: the folder is restored next time, without a word
    fourth = make_window()
    fourth.start(None)
    assert fourth.session.folder == photo_dir and len(prompts.errors) == 1


def test_the_packaged_app_serves_as_its_own_image_reader(tmp_path: Path, monkeypatch) -> None:
    """Frozen by PyInstaller there is no ``python -c``: the app's executable is started with
    --photoscribe-reader, and the launcher serves reader requests."""
    import stat
    import sys

    from core.isolation import ReaderPool

    app = tmp_path / "photoscribe"  # stands in for the frozen executable
    root = Path(__file__).resolve().parents[2]
    app.write_text(
        "#!/bin/sh\n"
        f"PYTHONPATH={root} exec {sys.executable} -c "
        "'import sys; from desktop.launcher import main; sys.exit(main())' \"$@\"\n"
    )
    app.chmod(app.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "executable", str(app))
    photo = make_photos(tmp_path / "photos")[0]
    pool = ReaderPool(size=1)
    try:
        mode, size, _ = pool.call("picture", photo, None)
        (reader,) = pool._idle
        assert reader.process.args[:2] == [str(app), "--photoscribe-reader"]
    finally:
        pool.close()
    assert (mode, size) == ("RGB", (160, 120))
