"""Reviewing captions: edit, save, undo and redo, candidates, keyboard, never losing edits."""

from __future__ import annotations

import os

from PySide6.QtCore import Qt

from desktop.photos import Status
from tests.desktop.conftest import open_and_wait, wait_idle


def type_caption(qtbot, window, text: str) -> None:
    window.panel.editor.setFocus()
    window.panel.editor.selectAll()
    qtbot.keyClicks(window.panel.editor, text)


def test_edit_save_undo_and_redo(qtbot, window, photo_dir):
    open_and_wait(qtbot, window, photo_dir)
    photo = photo_dir / "photo0.jpg"
    assert window.panel.path == photo
    window.activateWindow()
    type_caption(qtbot, window, "a red ball on the grass")
    assert window.photos.photo(photo).status is Status.UNSAVED
    assert window.commands.save.isEnabled()

    qtbot.keyClick(window.panel.editor, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)
    wait_idle(qtbot, window)
    assert (photo_dir / "photo0.txt").read_text(encoding="utf-8") == "a red ball on the grass\n"
    saved = window.photos.photo(photo)
    assert saved.caption == "a red ball on the grass" and not saved.unsaved
    assert saved.status is Status.SAVED
    assert window.panel.location.text() == "Caption stored in the text sidecar."

    # Undo goes back to before the typing; the photo then has unsaved changes again.
    qtbot.keyClick(window.panel.editor, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert window.panel.text() == ""
    assert window.photos.photo(photo).unsaved
    window.commands.redo.trigger()
    assert window.panel.text() == "a red ball on the grass"
    assert not window.photos.photo(photo).unsaved
    # Undo from the menu works while the grid has the focus.
    window.grid.setFocus()
    window.commands.undo.trigger()
    assert window.panel.text() == ""
    window.commands.revert.trigger()
    assert window.panel.text() == "a red ball on the grass"
    assert not window.photos.photo(photo).unsaved


def test_picking_a_candidate_is_one_undoable_edit(qtbot, window, photo_dir):
    open_and_wait(qtbot, window, photo_dir)
    window.commands.caption_selected.trigger()  # the current photo is selected
    wait_idle(qtbot, window)
    photo = window.photos.photo(photo_dir / "photo0.jpg")
    assert window.panel.candidates.isVisible() == bool(photo.candidates)
    window.panel.use_candidate("a dog runs on the beach")
    assert window.panel.text() == "a dog runs on the beach"
    assert window.photos.photo(photo.path).unsaved
    window.panel.editor.undo()
    assert window.panel.text() == photo.caption
    assert not window.photos.photo(photo.path).unsaved


def test_next_and_previous_photo_from_the_keyboard(qtbot, window, photo_dir):
    open_and_wait(qtbot, window, photo_dir)
    window.activateWindow()
    window.panel.editor.setFocus()
    qtbot.keyClick(window.panel.editor, Qt.Key.Key_Down, Qt.KeyboardModifier.ControlModifier)
    assert window.panel.path == photo_dir / "photo1.jpg"
    window.commands.next.trigger()
    window.commands.next.trigger()  # stays on the last photo
    assert window.panel.path == photo_dir / "photo2.jpg"
    qtbot.keyClick(window.grid, Qt.Key.Key_Up, Qt.KeyboardModifier.ControlModifier)
    assert window.panel.path == photo_dir / "photo1.jpg"


def test_save_and_next_keeps_each_photos_own_text(qtbot, window, photo_dir):
    open_and_wait(qtbot, window, photo_dir)
    type_caption(qtbot, window, "first photo")
    window.commands.save_next.trigger()
    assert window.panel.path == photo_dir / "photo1.jpg"
    type_caption(qtbot, window, "second photo, not saved yet")
    window.commands.previous.trigger()
    window.commands.next.trigger()
    assert window.panel.text() == "second photo, not saved yet", "drafts survive moving around"
    wait_idle(qtbot, window)
    assert (photo_dir / "photo0.txt").read_text(encoding="utf-8") == "first photo\n"
    assert not (photo_dir / "photo1.txt").exists()


def test_unsaved_edits_are_never_lost_silently(qtbot, window, photo_dir, tmp_path, prompts):
    open_and_wait(qtbot, window, photo_dir)
    other = tmp_path / "other"
    other.mkdir()
    type_caption(qtbot, window, "keep me")

    prompts.unsaved_answer = "cancel"
    assert not window.open_folder(other)
    assert prompts.asked_unsaved == [(1, "opening another folder")]
    assert window.session.folder == photo_dir and window.panel.text() == "keep me"

    window.close()
    assert window.isVisible(), "quitting was cancelled"
    assert prompts.asked_unsaved[-1] == (1, "quitting")

    prompts.unsaved_answer = "save"
    assert window.open_folder(other)
    wait_idle(qtbot, window)
    assert (photo_dir / "photo0.txt").read_text(encoding="utf-8") == "keep me\n"


def test_quitting_with_save_writes_before_closing(qtbot, window, photo_dir, prompts):
    open_and_wait(qtbot, window, photo_dir)
    type_caption(qtbot, window, "saved on the way out")
    prompts.unsaved_answer = "save"
    window.close()
    assert not window.isVisible()
    assert (photo_dir / "photo0.txt").read_text(encoding="utf-8") == "saved on the way out\n"


def test_a_photo_changed_on_disk_is_not_overwritten(qtbot, window, photo_dir, prompts):
    window.apply_settings(window.settings.current.with_changes(store="embed"))
    open_and_wait(qtbot, window, photo_dir)
    photo = photo_dir / "photo0.jpg"
    before = photo.read_bytes()
    stat = photo.stat()
    os.utime(photo, ns=(stat.st_atime_ns, stat.st_mtime_ns + 3_000_000_000))
    type_caption(qtbot, window, "should not be written")
    window.commands.save.trigger()
    qtbot.waitUntil(lambda: bool(prompts.refusals), timeout=10_000)
    summary = prompts.refusals[-1]
    assert summary.count == 1 and "changed by another program" in summary.text()
    assert "changed on disk" in summary.details
    assert photo.read_bytes() == before
    assert window.photos.photo(photo).unsaved, "the text is kept to try again"
    assert window.errors.rows()[-1][0] == "photo0.jpg"


def test_embedded_captions_can_be_saved_twice_in_a_row(qtbot, window, photo_dir, prompts):
    """Our own write changes the photo; the next save must not call that 'changed on disk'."""
    window.apply_settings(window.settings.current.with_changes(store="embed"))
    open_and_wait(qtbot, window, photo_dir)
    type_caption(qtbot, window, "first version")
    window.commands.save.trigger()
    type_caption(qtbot, window, "second version")
    window.commands.save.trigger()  # queued before the first write's result came back
    wait_idle(qtbot, window)
    assert not prompts.errors and not prompts.refusals
    photo = window.photos.photo(photo_dir / "photo0.jpg")
    assert photo.caption == "second version" and photo.store == "embed"
