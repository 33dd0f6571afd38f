"""Nothing the user has is lost: captions that could not be saved survive a restart (issue 27)."""

from __future__ import annotations

from pathlib import Path

import pytest

import core.engine.writer as writer_module
from core.errors import ReadOnlyError, StorageError
from core.index import LibraryIndex
from core.storage import make_store
from desktop.photos import Status
from desktop.saving import KEPT_NOTE
from tests.core.test_damaged_metadata import damaged_folder
from tests.desktop.conftest import open_and_wait, wait_idle
from tests.desktop.test_editing import type_caption


def refuse_embedding(monkeypatch, folder: Path, *, read_only: set[str] = frozenset()) -> None:
    """Writes inside the photos of ``folder`` are refused as an unsafe camera JPEG's are (and
    photos named in ``read_only`` cannot be written at all); sidecars can be written."""
    real_save = writer_module.save_caption

    def save(request):
        if request.photo.parent == folder and request.photo.name in read_only:
            raise ReadOnlyError(
                request.photo, "not allowed to write here (Permission denied); make it writable."
            )
        if request.photo.parent == folder and request.store == "embed":
            raise StorageError(
                request.photo,
                "the metadata could not be written safely (other metadata would have "
                "changed); the photo was not changed.",
            )
        return real_save(request)

    monkeypatch.setattr(writer_module, "save_caption", save)


def kept_in_index(window) -> dict[str, str]:
    with LibraryIndex.open(window.session.index_path, readonly=True) as index:
        return {kept.path.name: kept.caption for kept in index.unsaved_entries()}


def test_refused_captions_survive_a_restart_until_saved_elsewhere(
    qtbot, make_window, photo_dir, prompts, monkeypatch
):
    """Regression (issue 27, item 2): after Save All, 28 refused photos showed "The caption is
    kept"; after reopening the app all 28 showed "No caption stored yet" (a caption edited by
    hand was lost the same way), and Save All opened one error box per photo."""
    refuse_embedding(monkeypatch, photo_dir, read_only={"photo2.jpg"})
    window = make_window()
    window.apply_settings(window.settings.current.with_changes(store="embed"))
    open_and_wait(qtbot, window, photo_dir)
    window.commands.caption_folder.trigger()
    wait_idle(qtbot, window)
    qtbot.waitUntil(lambda: bool(prompts.refusals))
    assert len(prompts.refusals) == 1, "one summary for the whole batch, not a box each"
    summary = prompts.refusals[0]
    assert summary.count == 3 and summary.into_photos
    assert "3 captions could not be saved" in summary.text()
    assert "2: PhotoScribe would not write inside the photo" in summary.text()
    assert "1: the photo or its folder is read-only" in summary.text()
    assert "XMP sidecar" in summary.advice() and "photo2.jpg" in summary.details
    assert not prompts.errors

    # A caption typed by hand is refused too.
    photo0 = photo_dir / "photo0.jpg"
    window.editor.select_photo(photo0)
    type_caption(qtbot, window, "my own words about this photo")
    window.commands.save.trigger()
    wait_idle(qtbot, window)
    qtbot.waitUntil(lambda: len(prompts.refusals) == 2)
    shown = {p.path.name: p.draft for p in window.photos.photos()}
    assert shown["photo0.jpg"] == "my own words about this photo"
    assert all(shown.values())
    assert kept_in_index(window) == shown
    # One wording for a kept caption, whether a batch or a save refused it (and, below, after
    # a restart): it used to differ in each of the three places that built it.
    told = {p.path.name: p.error for p in window.photos.photos()}
    assert all(e.startswith("Not saved: ") and e.endswith(KEPT_NOTE) for e in told.values())

    # Quit, choosing Save: they fail again, quietly, and stay kept.
    prompts.unsaved_answer = "save"
    window.close()
    assert not window.isVisible()
    assert len(prompts.refusals) == 2 and not prompts.errors, "no box while quitting"

    again = make_window()
    open_and_wait(qtbot, again, photo_dir)
    for photo in again.photos.photos():
        assert photo.draft == shown[photo.path.name], "every refused caption is still there"
        assert photo.status is Status.ERROR and photo.unsaved
        assert photo.error == told[photo.path.name], "worded as before the restart"
    assert again.photos.photo(photo0).typed, "the one typed by hand is still the user's own"
    again.editor.select_photo(photo0)
    assert again.panel.text() == "my own words about this photo"

    # The summary's button saves them as XMP sidecars; then nothing is kept any more.
    prompts.refusals_answer = "sidecars"
    again.commands.save_all.trigger()
    wait_idle(qtbot, again)
    qtbot.waitUntil(lambda: len(prompts.refusals) == 4)
    wait_idle(qtbot, again)
    assert prompts.refusals[2].count == 3, "Save All: one summary"
    read_only = prompts.refusals[3]  # the sidecar of the read-only one could not be written
    assert read_only.count == 1 and not read_only.into_photos
    xmp = make_store("xmp")
    assert xmp.read(photo0) == "my own words about this photo"
    assert xmp.read(photo_dir / "photo1.jpg") == shown["photo1.jpg"]
    assert again.photos.photo(photo0).status is Status.SAVED
    assert kept_in_index(again) == {"photo2.jpg": shown["photo2.jpg"]}, "read-only: still kept"

    third = make_window()
    open_and_wait(qtbot, third, photo_dir)
    assert third.photos.photo(photo0).draft is None
    assert third.photos.photo(photo0).caption == "my own words about this photo"
    assert third.photos.photo(photo_dir / "photo2.jpg").draft == shown["photo2.jpg"]


def test_a_discarded_or_reverted_caption_is_not_kept(
    qtbot, make_window, photo_dir, prompts, monkeypatch
):
    refuse_embedding(monkeypatch, photo_dir)
    window = make_window()
    window.apply_settings(window.settings.current.with_changes(store="embed"))
    open_and_wait(qtbot, window, photo_dir)
    window.commands.caption_folder.trigger()
    wait_idle(qtbot, window)
    assert len(kept_in_index(window)) == 3
    window.editor.select_photo(photo_dir / "photo1.jpg")
    window.commands.revert.trigger()
    qtbot.waitUntil(lambda: set(kept_in_index(window)) == {"photo0.jpg", "photo2.jpg"})
    prompts.unsaved_answer = "discard"
    window.close()
    assert kept_in_index(window) == {}
    again = make_window()
    open_and_wait(qtbot, again, photo_dir)
    assert not again.photos.unsaved()


@pytest.mark.parametrize("store", ["xmp", "txt"])
def test_photos_with_damaged_metadata_are_captioned_into_sidecars(qtbot, window, tmp_path, store):
    """Regression (issue 27, item 5): camera JPEGs whose maker notes exiv2 calls damaged were
    never captioned in the app, even with XMP or text sidecars chosen."""
    folder = damaged_folder(tmp_path)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    window.apply_settings(window.settings.current.with_changes(store=store))
    open_and_wait(qtbot, window, folder)
    assert not any(p.error for p in window.photos.photos()), "nothing to complain about"
    window.commands.caption_folder.trigger()
    wait_idle(qtbot, window)
    assert len(list(window.photos.photos())) == 4
    for photo in window.photos.photos():
        assert photo.status is Status.SAVED and photo.store == store, photo.path.name
        assert make_store(store).read(photo.path) == photo.caption
        assert photo.path.read_bytes() == before[photo.path.name], "the photo is not touched"


def test_embedding_says_which_captions_went_beside_the_photos(qtbot, window, tmp_path):
    folder = damaged_folder(tmp_path)
    window.apply_settings(window.settings.current.with_changes(store="embed"))
    open_and_wait(qtbot, window, folder)
    window.commands.caption_folder.trigger()
    wait_idle(qtbot, window)
    stores = sorted(p.store for p in window.photos.photos())
    assert stores == ["embed", "embed", "xmp", "xmp"]
    qtbot.waitUntil(
        lambda: (
            "saved 2 inside the photos, 2 in XMP sidecars" in window.statusBar().currentMessage()
        )
    )


def test_the_refusal_summary_names_the_store_the_batch_saved_to(
    qtbot, window, photo_dir, prompts, monkeypatch
):
    """A batch's refusals are summed up for the store that batch saved to, even when Settings
    change while it runs (the summary read the store from the current Settings)."""
    refuse_embedding(monkeypatch, photo_dir)
    window.apply_settings(window.settings.current.with_changes(store="embed"))
    open_and_wait(qtbot, window, photo_dir)
    window.commands.caption_folder.trigger()
    # On the GUI thread, before any of the batch's events can be handled.
    window.apply_settings(window.settings.current.with_changes(store="txt"))
    wait_idle(qtbot, window)
    qtbot.waitUntil(lambda: bool(prompts.refusals))
    assert prompts.refusals[0].count == 3 and prompts.refusals[0].into_photos
