"""Review Marked Photos (issue 21): through the marked captions from the keyboard; accepted,
edited or picked captions are the user's and never marked again; the count left in view; the
model's suggestions survive a restart."""

from __future__ import annotations

from PySide6.QtCore import Qt

from core.index import LibraryIndex, default_index_path
from tests.desktop.conftest import open_and_wait, wait_idle
from tests.desktop.test_confidence import unsure_captioner

CTRL_SHIFT = Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier
ALT = Qt.KeyboardModifier.AltModifier


def marked(window) -> set[str]:
    return {p.path.name for p in window.photos.photos() if window.review.is_marked(p)}


def captioned(qtbot, make_window, photo_dir, confidences):
    window = make_window(captioner_factory=unsure_captioner(confidences))
    open_and_wait(qtbot, window, photo_dir)
    window.commands.caption_folder.trigger()
    wait_idle(qtbot, window)
    window.activateWindow()
    return window


def test_review_goes_through_the_marked_photos_from_the_keyboard(
    qtbot, make_window, photo_dir
) -> None:
    window = captioned(qtbot, make_window, photo_dir, [0.2, 0.9, 0.3])
    review = window.review
    assert marked(window) == {"photo0.jpg", "photo2.jpg"}
    # The count is redone COUNT_DELAY_MS after the rows last changed; captions arriving more
    # than that apart (a busy machine) have it shown, and visible, at 1 first: wait for the 2.
    qtbot.waitUntil(
        lambda: (
            review.count_label.isVisible()
            and "2 marked captions to review" in review.count_label.text()
        ),
        timeout=10_000,
    )

    # The count's link starts the review too.
    window.editor.select_photo(photo_dir / "photo1.jpg")
    review.count_label.linkActivated.emit("review")
    assert window.panel.path == photo_dir / "photo0.jpg"

    # F7 starts at the first marked photo; F8 and Shift+F8 step between the marked ones only.
    window.editor.select_photo(photo_dir / "photo1.jpg")
    qtbot.keyClick(window.grid, Qt.Key.Key_F7)
    assert window.panel.path == photo_dir / "photo0.jpg"
    qtbot.keyClick(window.grid, Qt.Key.Key_F8)
    assert window.panel.path == photo_dir / "photo2.jpg"
    qtbot.keyClick(window.grid, Qt.Key.Key_F8)  # wraps around
    assert window.panel.path == photo_dir / "photo0.jpg"
    qtbot.keyClick(window.grid, Qt.Key.Key_F8, Qt.KeyboardModifier.ShiftModifier)
    assert window.panel.path == photo_dir / "photo2.jpg"

    # Accepted as it is: saved as the user's, unmarked, and on to the next marked photo.
    caption = window.photos.photo(photo_dir / "photo2.jpg").caption
    said: list[str] = []
    window.editor.saver.message_posted.connect(lambda text, _ms: said.append(text))
    qtbot.keyClick(window.panel.editor, Qt.Key.Key_Return, CTRL_SHIFT)
    wait_idle(qtbot, window)
    # The caption was saved already: accepting it says so in a person's words.
    assert "Kept the caption of photo2.jpg as yours (it was already saved)." in said
    assert not any("this caption was already saved" in text for text in said)
    assert "photo2.jpg" not in marked(window)
    assert window.panel.path == photo_dir / "photo0.jpg"
    qtbot.waitUntil(lambda: "1 marked caption to review" in review.count_label.text())
    with LibraryIndex.open(default_index_path(), readonly=True) as index:
        row = index.lookup(photo_dir / "photo2.jpg")
        assert row.caption == caption and row.confidence is None and row.model is None

    # F2 puts the keys in the editor: what is typed is the user's, so the mark goes at once.
    qtbot.keyClick(window.grid, Qt.Key.Key_F2)
    assert window.panel.editor.hasFocus()
    qtbot.keyClicks(window.panel.editor, "my own words")
    assert window.panel.text() == "my own words" and not marked(window)
    qtbot.waitUntil(lambda: not review.count_label.isVisible())
    qtbot.keyClick(window.panel.editor, Qt.Key.Key_Return, CTRL_SHIFT)
    wait_idle(qtbot, window)
    assert (photo_dir / "photo0.txt").read_text(encoding="utf-8") == "my own words\n"

    # Reopened (a restart), the reviewed captions stay unmarked.
    again = make_window()
    open_and_wait(qtbot, again, photo_dir)
    assert not marked(again)
    again.review.recount()
    assert not again.review.count_label.isVisible()


def test_picking_a_suggestion_from_the_keyboard_makes_it_the_users(
    qtbot, make_window, photo_dir
) -> None:
    window = captioned(qtbot, make_window, photo_dir, [0.1, 0.2, 0.3])
    assert window.review.start()
    photo = window.photos.photo(window.panel.path)
    assert len(photo.candidates) >= 2, "the tiny model's beam finds alternatives"
    qtbot.keyClick(window.grid, Qt.Key.Key_2, ALT)
    assert window.panel.text() == photo.candidates[1].caption
    assert not window.review.is_marked(window.photos.photo(photo.path))
    qtbot.keyClick(window.grid, Qt.Key.Key_9, ALT)  # no such suggestion: nothing changes
    assert window.panel.text() == photo.candidates[1].caption


def test_the_models_suggestions_survive_a_restart(qtbot, make_window, photo_dir) -> None:
    window = captioned(qtbot, make_window, photo_dir, [0.9, 0.9, 0.9])
    before = {p.path.name: [c.caption for c in p.candidates] for p in window.photos.photos()}
    assert any(len(c) > 1 for c in before.values())

    again = make_window()
    open_and_wait(qtbot, again, photo_dir)
    after = {p.path.name: [c.caption for c in p.candidates] for p in again.photos.photos()}
    assert after == {n: c if len(c) > 1 else [] for n, c in before.items()}
    again.editor.select_photo(photo_dir / "photo0.jpg")
    assert again.panel.candidates.count() == len(after["photo0.jpg"])
    assert "Score" not in again.panel.candidates.item(0).toolTip()  # not kept: not shown
