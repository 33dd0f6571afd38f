"""A long message in a narrow window: the status bar's labels step aside instead of cutting it."""

from __future__ import annotations

from desktop.main_window import MainWindow

LONG = "Captioned 1,204 photos, saved in XMP sidecars, 3 failed (see Problems), in 2 min 10 s."


def message_room(window: MainWindow) -> int:
    return window.status_line._room()


def test_a_long_message_in_a_narrow_window_is_shown_whole(qtbot, window: MainWindow) -> None:
    window.resize(800, 600)
    qtbot.waitUntil(lambda: window.width() == 800)
    bar = window.statusBar()
    need = bar.fontMetrics().horizontalAdvance(LONG)
    assert need > message_room(window), "the message did not fit beside the labels before"
    window.status_line.show_message(LONG, 0)
    assert bar.currentMessage() == LONG
    assert window.device_label.isHidden()
    assert need <= message_room(window)
    bar.clearMessage()
    assert not window.device_label.isHidden() and not window.counts_label.isHidden()


def test_a_message_that_fits_leaves_the_labels_where_they_are(qtbot, window: MainWindow) -> None:
    window.resize(800, 600)
    qtbot.waitUntil(lambda: window.width() == 800)
    window.status_line.show_message(LONG, 0)
    assert window.device_label.isHidden()
    window.status_line.show_message("Saved.", 0)  # a short one gives the room back
    assert not window.device_label.isHidden() and not window.counts_label.isHidden()
    window.resize(1600, 800)
    qtbot.waitUntil(lambda: window.width() == 1600)
    window.status_line.show_message("Captioned 3 photos.", 0)
    assert not window.device_label.isHidden() and not window.counts_label.isHidden()
