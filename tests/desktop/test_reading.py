"""Screens that must read right: welcome text, store names, progress, empty views, messages."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QListView, QTreeView

from core.datatypes import Candidate
from desktop.dialogs import export_file_dialog
from desktop.panel import CaptionPanel, where_stored
from desktop.photos import Photo, PhotoListModel
from desktop.status import BatchProgress, RateMeter
from tests.desktop.conftest import open_and_wait, wait_idle


@pytest.mark.parametrize("size", [(1280, 800), (1600, 960)])
def test_the_welcome_text_is_shown_whole(qtbot, window, size):
    window.resize(*size)
    window.start(None)
    qtbot.waitExposed(window)
    assert window.middle.currentWidget() is window.welcome
    text = window.welcome.text
    qtbot.waitUntil(lambda: text.height() >= text.heightForWidth(text.width()))
    assert text.width() >= 300, "a readable column, not a sliver"
    lines = text.height() // text.fontMetrics().lineSpacing()  # whole lines it has room for
    assert lines >= 2


@pytest.mark.parametrize(
    ("store", "sentence"),
    [
        ("txt", "Caption stored in the text sidecar."),
        ("xmp", "Caption stored in the XMP sidecar."),
        ("embed", "Caption stored in the photo's embedded metadata."),
    ],
)
def test_every_store_name_reads_right(qtbot, tmp_path, store, sentence):
    photo = Photo(path=tmp_path / "coffee.jpg", caption="a cup", store=store, loaded=True)
    assert where_stored(photo) == sentence
    model = PhotoListModel()
    model.set_photos([photo.path])
    model.put(photo)
    tooltip = model.data(model.index_of(photo.path), Qt.ItemDataRole.ToolTipRole)
    assert sentence in tooltip.splitlines()


def test_progress_shows_no_rate_until_it_means_something():
    meter = RateMeter(total=400)
    for i in range(8):  # one batch of 8 comes back within a couple of milliseconds
        meter.advance(now=100.0 + i * 0.0002)
    assert meter.rate() is None and meter.seconds_left() is None
    meter.advance(now=101.0)  # a second in: still too early to say
    assert meter.rate() is None
    # Then a batch of 8 every 10 s: 0.8 photos/s, however the first batch arrived.
    for batch in range(1, 4):
        for i in range(8):
            meter.advance(now=100.0 + 10 * batch + i * 0.0002)
    rate = meter.rate()
    assert rate is not None and 0.7 < rate < 0.95
    left = meter.seconds_left()
    assert left is not None and 400 < left < 560  # 367 photos at about 0.8 a second


def test_the_rate_shown_is_smoothed():
    meter = RateMeter(total=1000)
    now = 0.0
    for _ in range(60):  # 1 photo/s for a minute
        now += 1.0
        meter.advance(now=now)
    steady = meter.rate()
    assert steady is not None and abs(steady - 1.0) < 0.05
    for _ in range(3):  # then a burst of 10 photos a second for three seconds
        now += 1.0
        meter.advance(now=now, count=10)
    assert 1.0 < meter.rate() < 5.0, "one fast stretch moves the rate, it does not take over"


def test_progress_says_estimating_before_it_knows(qtbot):
    progress = BatchProgress()
    qtbot.addWidget(progress)
    progress.start(400)
    for _ in range(8):
        progress.advance(1)
    assert "estimating" in progress.label.text()
    assert "images/s" not in progress.label.text()


def test_a_batch_in_flight_shows_as_in_progress(qtbot):
    """Issue 22 item 3: the bar sat at 0/100 while the first batches were at the model; now
    what the model works on is named, and the bar counts what is saved."""
    progress = BatchProgress()
    qtbot.addWidget(progress)
    progress.start(100)
    progress.set_in_flight(32)
    assert progress.label.text().startswith("Captioning 1–32 of 100")
    assert progress.bar.value() == 0, "nothing saved yet"
    progress.advance(32)
    progress.set_in_flight(32)
    assert progress.label.text().startswith("Captioning 33–64 of 100")
    assert progress.bar.value() == 32
    progress.advance(64)
    progress.set_in_flight(4)
    assert progress.label.text().startswith("Captioning 97–100 of 100")
    progress.advance(4)
    progress.set_in_flight(0)
    assert progress.bar.value() == 100 and "–" not in progress.label.text()


def test_the_model_loading_message_is_shown_only_while_it_loads(qtbot, window, photo_dir):
    open_and_wait(qtbot, window, photo_dir)
    window.commands.caption_folder.trigger()
    wait_idle(qtbot, window)
    assert window.status_line.model_info is not None
    window.apply_settings(window.settings.current.with_changes(recaption=True))
    window.commands.caption_folder.trigger()
    assert window.progress.isVisible()
    assert "Loading" not in window.progress.label.text()
    wait_idle(qtbot, window)


def save_sidecar(photo: Path, caption: str) -> None:
    photo.with_suffix(".txt").write_text(caption + "\n", encoding="utf-8")


def test_uncaptioned_filter_with_nothing_left_says_why(qtbot, window, photo_dir):
    for i in range(3):
        save_sidecar(photo_dir / f"photo{i}.jpg", f"a photo number {i}")
    open_and_wait(qtbot, window, photo_dir)
    assert window.panel.path is not None
    window.commands.uncaptioned.trigger()
    assert window.filter.rowCount() == 0
    assert "Only Uncaptioned Photos" in window.grid.empty_text
    assert window.panel.path is None, "the preview shows no photo the grid does not"
    assert not window.commands.caption_selected.isEnabled()
    window.commands.uncaptioned.trigger()
    assert window.filter.rowCount() == 3 and window.grid.empty_text == ""
    assert window.panel.path == photo_dir / "photo0.jpg"
    assert window.grid.selectionModel().hasSelection()


def test_the_preview_follows_the_grid_when_the_filter_hides_it(qtbot, window, photo_dir):
    save_sidecar(photo_dir / "photo0.jpg", "a captioned photo")
    open_and_wait(qtbot, window, photo_dir)
    assert window.panel.path == photo_dir / "photo0.jpg"
    window.commands.uncaptioned.trigger()
    assert window.filter.rowCount() == 2
    shown = window.panel.path
    assert shown in (photo_dir / "photo1.jpg", photo_dir / "photo2.jpg")
    assert window.editor.selected_paths() == [shown], "the photo shown is the one selected"
    assert window.commands.caption_selected.isEnabled()


def test_a_search_selects_what_it_shows(qtbot, window, photo_dir):
    save_sidecar(photo_dir / "photo0.jpg", "a red bicycle by a wall")
    save_sidecar(photo_dir / "photo2.jpg", "two dogs on a beach")
    open_and_wait(qtbot, window, photo_dir)
    window.search.setText("dogs")
    assert window.filter.rowCount() == 1
    assert window.panel.path == photo_dir / "photo2.jpg"
    assert window.editor.selected_paths() == [photo_dir / "photo2.jpg"]
    assert window.commands.caption_selected.isEnabled()
    window.search.setText("zebra")
    assert window.filter.rowCount() == 0
    assert "zebra" in window.grid.empty_text
    assert window.panel.path is None
    qtbot.waitUntil(lambda: not window.library_search.busy)


def test_an_empty_folder_says_so(qtbot, window, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    window.open_folder(empty)
    qtbot.waitUntil(lambda: "no photos" in window.grid.empty_text)
    assert "Include Subfolders" in window.grid.empty_text


def test_a_long_preview_error_wraps(qtbot, tmp_path):
    panel = CaptionPanel()
    qtbot.addWidget(panel)
    path = tmp_path / "broken.jpg"
    panel.show_photo(Photo(path=path, loaded=True))
    message = (
        "Cannot show this photo:\nbroken.jpg is damaged or truncated (image file is truncated "
        "(104 bytes not processed)); it cannot be read"
    )
    panel.set_preview(path, None, message)
    preview = panel.preview
    assert preview.minimumSizeHint().width() < preview.fontMetrics().horizontalAdvance(message)


def test_revert_clears_a_picked_suggestion(qtbot, tmp_path):
    panel = CaptionPanel()
    qtbot.addWidget(panel)
    panel.show()
    photo = Photo(
        path=tmp_path / "a.jpg",
        caption="a dog on the grass",
        store="txt",
        loaded=True,
        candidates=(
            Candidate(caption="a dog on the grass", score=-0.5),
            Candidate(caption="a dog in a park", score=-0.9),
        ),
    )
    panel.show_photo(photo)
    item = panel.candidates.item(1)
    panel.candidates.setCurrentItem(item)
    panel.candidates.itemClicked.emit(item)
    assert panel.text() == "a dog in a park"
    assert panel.candidates.selectedItems() == [item]
    panel.show_photo(photo)  # what Revert does
    assert panel.text() == "a dog on the grass"
    assert panel.candidates.selectedItems() == [] and panel.candidates.currentRow() == -1


@pytest.mark.parametrize(
    ("fmt", "suffix"), [("csv", "csv"), ("json", "json"), ("jsonl", "jsonl"), ("hf", "jsonl")]
)
def test_the_export_dialog_offers_the_formats_extension(qtbot, tmp_path, fmt, suffix):
    dialog = export_file_dialog(None, tmp_path, fmt)
    qtbot.addWidget(dialog)
    assert dialog.nameFilters()[0].endswith(f"(*.{suffix})")
    assert dialog.defaultSuffix() == suffix
    assert dialog.selectedFiles()[0].endswith(f".{suffix}")


def test_the_export_dialogs_columns_are_readable(qtbot, tmp_path):
    (tmp_path / "captions of the summer holiday photos, exported for the album.csv").write_bytes(
        b"x" * 51_200
    )
    dialog = export_file_dialog(None, tmp_path, "csv")
    qtbot.addWidget(dialog)
    dialog.show()
    views = [v for v in dialog.findChildren(QTreeView) if v.isVisible()]
    if not views:
        pytest.skip("the desktop's own file dialog is in use")
    view = views[0]
    qtbot.waitUntil(lambda: view.model().rowCount(view.rootIndex()) > 0)
    places = dialog.findChild(QListView, "sidebar")
    if places is not None:  # Computer, home: names not cut short
        assert places.width() >= places.sizeHintForColumn(0)
    header = view.header()
    for column in range(header.count()):
        if not header.isSectionHidden(column):  # a very long name may be cut, not the rest
            wanted = view.sizeHintForColumn(column)
            if column == 0:
                wanted = min(wanted, 250)
            qtbot.waitUntil(lambda c=column, w=wanted: header.sectionSize(c) >= w)


def test_the_problems_panel_opens_a_few_rows_high(qtbot, window, photo_dir):
    window.resize(1280, 800)
    open_and_wait(qtbot, window, photo_dir)
    window.session.problem_found.emit(photo_dir / "photo0.jpg", "the image is damaged")
    qtbot.waitUntil(lambda: window.errors_dock.isVisible())
    qtbot.waitUntil(lambda: window.errors_dock.height() < window.height() / 4)


def test_no_caption_hint_while_no_photo_is_shown(qtbot, window, photo_dir):
    assert window.panel.editor.placeholderText() == ""
    open_and_wait(qtbot, window, photo_dir)
    assert "No caption yet" in window.panel.editor.placeholderText()
