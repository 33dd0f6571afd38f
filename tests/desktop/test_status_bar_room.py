"""A long message in a narrow window: the status bar's labels step aside instead of cutting it."""

from __future__ import annotations

from desktop.main_window import MainWindow


def message_room(window: MainWindow) -> int:
    return window.status_line._room()


def narrow_with_labels(qtbot, window: MainWindow) -> None:
    """An 800-pixel window whose counts and model labels say what they say in use (their text
    otherwise depends on what the start-up check has found by now)."""
    window.resize(800, 600)
    qtbot.waitUntil(lambda: window.width() == 800)
    window.counts_label.setText("1,204 photos, 1,180 captioned")
    window.device_label.setText("Model on CPU (2 threads)")


def needing_the_labels_room(window: MainWindow) -> str:
    """A batch report wider than the room the labels leave, narrower than the room without them."""
    bar = window.statusBar()
    labels = window.counts_label.sizeHint().width() + window.device_label.sizeHint().width()
    words = ["Captioned 1,204 photos, saved in XMP sidecars"]
    while bar.fontMetrics().horizontalAdvance(", ".join(words)) <= message_room(window) + 30:
        words.append("3 failed")
    text = ", ".join(words) + "."
    assert bar.fontMetrics().horizontalAdvance(text) + 30 < message_room(window) + labels
    return text


def test_a_long_message_in_a_narrow_window_is_shown_whole(qtbot, window: MainWindow) -> None:
    narrow_with_labels(qtbot, window)
    bar = window.statusBar()
    text = needing_the_labels_room(window)
    need = bar.fontMetrics().horizontalAdvance(text)
    assert need > message_room(window), "the message did not fit beside the labels before"
    window.status_line.show_message(text, 0)
    assert bar.currentMessage() == text
    assert window.device_label.isHidden()
    assert need <= message_room(window)
    bar.clearMessage()
    assert not window.device_label.isHidden() and not window.counts_label.isHidden()


def test_a_message_that_fits_leaves_the_labels_where_they_are(qtbot, window: MainWindow) -> None:
    narrow_with_labels(qtbot, window)
    window.status_line.show_message(needing_the_labels_room(window), 0)
    assert window.device_label.isHidden()
    window.status_line.show_message("Saved.", 0)  # a short one gives the room back
    assert not window.device_label.isHidden() and not window.counts_label.isHidden()
    window.resize(1600, 800)
    qtbot.waitUntil(lambda: window.width() == 1600)
    window.status_line.show_message("Captioned 3 photos.", 0)
    assert not window.device_label.isHidden() and not window.counts_label.isHidden()
