"""Saving does what the setting says; a failed save keeps the caption; problems per folder."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt

import core.engine.writer as writer_module
from core.errors import ReadOnlyError
from core.storage import make_store
from desktop.photos import Status
from tests.desktop.conftest import open_and_wait, wait_idle
from tests.desktop.test_editing import type_caption


def fail_saves_in(monkeypatch, folder: Path) -> None:
    """Saves of photos in ``folder`` fail as in a read-only folder (the tests may run as root,
    who may write anywhere)."""
    real_save = writer_module.save_caption

    def save(request):
        if request.photo.parent == folder:
            raise ReadOnlyError(
                request.photo.parent,
                "not allowed to write here (Permission denied); make it writable or choose "
                "another way to store captions.",
            )
        return real_save(request)

    monkeypatch.setattr(writer_module, "save_caption", save)


def test_a_save_goes_to_the_chosen_store_and_the_old_one_agrees(qtbot, window, photo_dir):
    """Regression (issue 11, item 1): with "Embedded in the photo" chosen, an edited caption
    of a photo captioned before went to its .txt and nothing was embedded."""
    photo = photo_dir / "photo0.jpg"
    photo.with_suffix(".txt").write_text("an older caption", encoding="utf-8")
    window.apply_settings(window.settings.current.with_changes(store="embed"))
    open_and_wait(qtbot, window, photo_dir)
    assert window.photos.photo(photo).store == "txt"
    type_caption(qtbot, window, "a red ball on the grass")
    window.commands.save.trigger()
    wait_idle(qtbot, window)
    assert make_store("embed").read(photo) == "a red ball on the grass"
    assert photo.with_suffix(".txt").read_text(encoding="utf-8") == "a red ball on the grass\n"
    saved = window.photos.photo(photo)
    assert saved.store == "embed" and saved.status is Status.SAVED
    assert not (photo_dir / "photo0.jpg.xmp").exists(), "no store is created besides the chosen"


def test_a_failed_save_shows_the_unsaved_caption_and_why(
    qtbot, window, photo_dir, prompts, monkeypatch
):
    """Regression (issue 11, item 3): in a read-only folder the generated caption showed in
    the grid with a red "!", but the editor was empty."""
    real_save = writer_module.save_caption
    fail_saves_in(monkeypatch, photo_dir)
    open_and_wait(qtbot, window, photo_dir)
    photo = photo_dir / "photo0.jpg"
    assert window.panel.path == photo and window.panel.text() == ""
    window.commands.caption_selected.trigger()
    wait_idle(qtbot, window)
    row = window.photos.photo(photo)
    assert row.status is Status.ERROR and row.draft and row.unsaved
    assert window.panel.text() == row.draft, "the editor shows the caption that was not saved"
    assert "not allowed to write" in window.panel.status.text()
    assert "Ctrl+S" in window.panel.status.text(), "it says how to try again"
    # Re-selecting shows it too.
    window.editor.select_photo(photo_dir / "photo1.jpg")
    window.editor.select_photo(photo)
    assert window.panel.text() == row.draft

    assert [name for name, _ in window.errors.rows()] == ["photo0.jpg"]
    assert window.errors_dock.isVisible()

    # Retrying once the folder is writable again saves the caption that was kept.
    monkeypatch.setattr(writer_module, "save_caption", real_save)
    qtbot.keyClick(window.panel.editor, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)
    wait_idle(qtbot, window)
    assert photo.with_suffix(".txt").read_text(encoding="utf-8") == row.draft + "\n"
    assert window.photos.photo(photo).status is Status.SAVED
    # Issue 22 items 11 and 12: saved, it is no longer a problem; with none left the empty
    # panel closes instead of taking a quarter of the window.
    assert window.errors.rows() == []
    assert not window.errors_dock.isVisible()


def test_the_problems_panel_shows_this_folder_each_photo_once(
    qtbot, window, photo_dir, tmp_path, monkeypatch
):
    """Regression (issue 11, item 4): rows of the previous folder stayed, and a photo that
    failed twice was listed twice."""
    fail_saves_in(monkeypatch, photo_dir)
    open_and_wait(qtbot, window, photo_dir)
    window.commands.caption_selected.trigger()
    wait_idle(qtbot, window)
    assert [name for name, _ in window.errors.rows()] == ["photo0.jpg"]
    qtbot.keyClick(window.panel.editor, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)
    wait_idle(qtbot, window)
    rows = window.errors.rows()
    assert [name for name, _ in rows] == ["photo0.jpg"], "one row per photo, newest reason"

    other = tmp_path / "other"
    other.mkdir()
    (other / "x.jpg").write_bytes((photo_dir / "photo1.jpg").read_bytes())
    open_and_wait(qtbot, window, other)
    assert window.errors.rows() == [], "the problems of the folder on screen only"


def test_writing_into_the_photos_is_asked_once(qtbot, window, photo_dir, prompts):
    """Regression (issue 11, item 2): with the embedded store, one click rewrote every JPEG
    in the folder without a word."""
    window.apply_settings(window.settings.current.with_changes(store="embed"))
    open_and_wait(qtbot, window, photo_dir)
    before = {p: p.read_bytes() for p in photo_dir.glob("*.jpg")}

    prompts.write_into_photos_answer = "no"
    window.commands.caption_folder.trigger()
    wait_idle(qtbot, window)
    assert prompts.asked_write_into_photos == 1
    assert {p: p.read_bytes() for p in photo_dir.glob("*.jpg")} == before, "nothing written"
    assert "untouched" in window.statusBar().currentMessage()

    prompts.write_into_photos_answer = "yes"
    window.commands.caption_folder.trigger()
    wait_idle(qtbot, window)
    assert prompts.asked_write_into_photos == 2
    assert all(make_store("embed").read(p) for p in before), "written once the user agreed"
    type_caption(qtbot, window, "a red ball on the grass")
    window.commands.save.trigger()
    wait_idle(qtbot, window)
    assert prompts.asked_write_into_photos == 2, "asked once per session, not per save"


def test_dont_ask_again_is_remembered_and_sidecars_never_ask(
    qtbot, make_window, photo_dir, prompts
):
    window = make_window()
    open_and_wait(qtbot, window, photo_dir)
    type_caption(qtbot, window, "a sidecar caption")
    window.commands.save.trigger()  # the default store is a text sidecar
    wait_idle(qtbot, window)
    assert prompts.asked_write_into_photos == 0

    window.apply_settings(window.settings.current.with_changes(store="embed"))
    prompts.write_into_photos_answer = "always"
    type_caption(qtbot, window, "an embedded caption")
    window.commands.save.trigger()
    wait_idle(qtbot, window)
    assert prompts.asked_write_into_photos == 1
    assert make_store("embed").read(photo_dir / "photo0.jpg") == "an embedded caption"
    assert not window.settings.current.ask_before_writing_into_photos
    again = make_window()  # a new session reads the saved settings
    assert not again.settings.current.ask_before_writing_into_photos
    open_and_wait(qtbot, again, photo_dir)
    again.commands.caption_folder.trigger()
    wait_idle(qtbot, again)
    assert prompts.asked_write_into_photos == 1


def test_where_a_photos_stores_disagree_the_panel_says_so_and_offers_which_to_keep(
    qtbot, window, photo_dir
):
    """Issue 22 item 10: with the embedded store chosen, a .txt sidecar edited outside the
    app was ignored without a hint. Now the panel shows both captions, and the one kept is
    saved everywhere."""
    window.apply_settings(window.settings.current.with_changes(store="embed"))
    photo = photo_dir / "photo0.jpg"
    make_store("embed").write(photo, "a dog on the grass")
    photo.with_suffix(".txt").write_text("a cat on the sofa", encoding="utf-8")  # by hand
    open_and_wait(qtbot, window, photo_dir)
    window.editor.select_photo(photo)
    row = window.photos.photo(photo)
    assert row.caption == "a dog on the grass" and row.store == "embed"
    assert [(o.caption, o.store) for o in row.others] == [("a cat on the sofa", "txt")]
    conflict = window.panel.conflict
    assert conflict.isVisible()
    assert "not the same everywhere" in conflict.text() and "a cat on the sofa" in conflict.text()
    assert "text sidecar" in conflict.text() and "embedded" in conflict.text()
    assert not window.photos.photo(photo_dir / "photo1.jpg").others

    conflict.linkActivated.emit("keep:1")  # "Keep this" beside the text sidecar's caption
    wait_idle(qtbot, window)
    assert make_store("embed").read(photo) == "a cat on the sofa"
    assert photo.with_suffix(".txt").read_text(encoding="utf-8") == "a cat on the sofa"
    row = window.photos.photo(photo)
    assert row.caption == "a cat on the sofa" and not row.others and not row.unsaved
    assert not conflict.isVisible() and window.panel.text() == "a cat on the sofa"


def test_a_batch_that_replaces_the_caption_everywhere_ends_the_disagreement(
    qtbot, window, photo_dir
):
    """A batch saving with overwrite brings every store up to date: the panel's "not the same
    everywhere" list goes with it (it stayed, listing the old text, until a restart)."""
    window.apply_settings(
        window.settings.current.with_changes(store="embed", overwrite=True, recaption=True)
    )
    photo = photo_dir / "photo0.jpg"
    make_store("embed").write(photo, "a dog on the grass")
    photo.with_suffix(".txt").write_text("a cat on the sofa", encoding="utf-8")  # by hand
    open_and_wait(qtbot, window, photo_dir)
    window.editor.select_photo(photo)
    assert window.photos.photo(photo).others and window.panel.conflict.isVisible()

    window.commands.caption_folder.trigger()
    wait_idle(qtbot, window)
    row = window.photos.photo(photo)
    new = make_store("embed").read(photo)
    assert new not in (None, "a dog on the grass") and row.caption == new
    assert photo.with_suffix(".txt").read_text(encoding="utf-8").strip() == new
    assert not row.others
    window.editor.select_photo(photo_dir / "photo1.jpg")
    window.editor.select_photo(photo)
    assert not window.panel.conflict.isVisible()
