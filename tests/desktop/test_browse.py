"""Opening folders: the grid, lazy thumbnails and their disk cache, start-up, drag and drop."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent

from desktop.samples import BUNDLED_SAMPLES, bundled_sample_photos
from desktop.thumbnails import ThumbnailCache, ThumbnailKey, load_thumbnail
from tests.desktop.conftest import DATA, copy_photos, open_and_wait
from tests.imagegen import textured_image


def test_open_folder_lists_photos_and_thumbnails_arrive(qtbot, window, photo_dir, env):
    (photo_dir / "notes.txt").write_text("not a photo")
    (photo_dir / "sub").mkdir()
    textured_image(64, 48).save(photo_dir / "sub" / "deep.jpg")
    open_and_wait(qtbot, window, photo_dir)

    names = [p.path.name for p in window.photos.photos()]
    assert names == ["photo0.jpg", "photo1.jpg", "photo2.jpg"]
    assert window.middle.currentWidget() is window.grid
    assert window.windowTitle().startswith(photo_dir.name)
    qtbot.waitUntil(
        lambda: all(window.photos.has_thumbnail(p.path) for p in window.photos.photos()),
        timeout=10_000,
    )
    assert len(list(env.cache_dir.rglob("*.jpg"))) == 3, "every thumbnail is cached on disk"
    assert window.panel.path == photo_dir / "photo0.jpg", "the first photo is selected"
    qtbot.waitUntil(
        lambda: (
            window.panel.preview.pixmap() is not None and not window.panel.preview.pixmap().isNull()
        ),
        timeout=10_000,
    )
    # With subfolders included the photo in sub/ is listed too.
    window.commands.recursive.trigger()
    qtbot.waitUntil(lambda: window.photos.rowCount() == 4, timeout=10_000)
    assert window.photos.photo(photo_dir / "sub" / "deep.jpg") is not None


def test_thumbnail_cache_is_keyed_by_path_size_and_mtime(tmp_path):
    photo = tmp_path / "a.jpg"
    textured_image(400, 300).save(photo)
    cache = ThumbnailCache(tmp_path / "cache")
    image = load_thumbnail(photo, cache)
    assert max(image.width(), image.height()) == 256
    key = ThumbnailKey.of(photo)
    assert cache.file_for(key).is_file()
    assert cache.get(key) is not None

    os.utime(photo, ns=(key.mtime_ns + 5_000_000_000, key.mtime_ns + 5_000_000_000))
    changed = ThumbnailKey.of(photo)
    assert changed != key and cache.file_for(changed) != cache.file_for(key)
    assert cache.get(changed) is None, "a modified photo gets a new thumbnail"
    other = tmp_path / "b.jpg"
    photo.rename(other)
    assert cache.file_for(ThumbnailKey.of(other)) != cache.file_for(changed)
    assert not list((tmp_path / "cache").rglob(".thumb-*")), "no temporary files are left"


def test_thumbnail_applies_exif_orientation():
    # exif_iptc.jpg stores its pixels rotated (171x256) with Orientation 6: upright it is wide.
    image = load_thumbnail(DATA / "exif_iptc.jpg", None)
    assert image.width() > image.height()


def test_a_broken_photo_gets_a_placeholder_not_an_endless_retry(qtbot, window, photo_dir):
    (photo_dir / "broken.jpg").write_bytes(b"this is not a JPEG")
    open_and_wait(qtbot, window, photo_dir)
    broken = photo_dir / "broken.jpg"
    window.photos.thumbnail(broken)
    qtbot.waitUntil(lambda: window.photos.is_broken(broken), timeout=10_000)


def record_decoding_threads(monkeypatch) -> list[threading.Thread]:
    """Note the thread that asked for every photo decode (thumbnails, previews and the model's
    input; the decoding itself runs in a reader process, core.isolation)."""
    import core.isolation

    threads: list[threading.Thread] = []
    real = core.isolation.ReaderPool.call

    def noted(self, task, *args, **kwargs):
        if task in ("picture", "model_input"):
            threads.append(threading.current_thread())
        return real(self, task, *args, **kwargs)

    monkeypatch.setattr(core.isolation.ReaderPool, "call", noted)
    return threads


def photo_at_top(window) -> Path:
    """A photo in the grid's top row as it is scrolled now (the first point, from the top
    left, that falls on a cell rather than on the spacing between cells)."""
    for y in range(0, 200, 6):
        for x in range(0, 200, 6):
            index = window.grid.indexAt(QPoint(x, y))
            if index.isValid():
                return window.photos.photo_at(window.filter.mapToSource(index).row()).path
    raise AssertionError("no photo at the top of the grid")


def test_ten_thousand_photos_are_listed_and_only_those_shown_are_decoded(
    qtbot, window, tmp_path, monkeypatch
):
    """How fast they list and how smoothly they scroll: ``python -m tests.benchmarks.gui``."""
    folder = tmp_path / "many"
    source = tmp_path / "source"
    source.mkdir()
    textured_image(96, 72, seed=1).save(source / "a.jpg", quality=70)
    photos = copy_photos(source, folder, 10_000)
    decodes = record_decoding_threads(monkeypatch)
    window.open_folder(folder)
    qtbot.waitUntil(lambda: window.photos.rowCount() == 10_000, timeout=60_000)
    assert [p.path for p in window.photos.photos()] == photos
    assert window.filter.rowCount() == 10_000, "every one of them is in the grid"
    bar = window.grid.verticalScrollBar()
    assert bar.maximum() > 0
    for step in range(1, 21):  # scroll from top to bottom in 20 jumps
        bar.setValue(bar.maximum() * step // 20)
        top = photo_at_top(window)  # shown at this position: its thumbnail is asked for
        qtbot.waitUntil(lambda top=top: window.photos.has_thumbnail(top), timeout=60_000)
    qtbot.waitUntil(lambda: window.session.thumbnails.idle, timeout=60_000)
    # Only what was on screen was decoded, not all 10,000, and none of it by the GUI thread.
    assert 0 < len(list(window.env.cache_dir.rglob("*.jpg"))) < 2_000
    assert 0 < len(decodes) < 2_000
    assert threading.main_thread() not in decodes, "the GUI thread decoded a photo"


def test_the_grid_stays_scrolled_to_the_bottom_while_thumbnails_arrive(qtbot, window, tmp_path):
    """A regression guard: laid out in batches, the grid jumped back to row ~500 whenever a
    thumbnail arrived (Qt restarts a batched layout on every dataChanged)."""
    source = tmp_path / "source"
    source.mkdir()
    textured_image(96, 72, seed=1).save(source / "a.jpg", quality=70)
    photos = copy_photos(source, tmp_path / "many", 2_000)
    open_and_wait(qtbot, window, tmp_path / "many", timeout=60_000)
    qtbot.waitUntil(lambda: window.session.thumbnails.idle, timeout=60_000)
    bar = window.grid.verticalScrollBar()
    bar.setValue(bar.maximum())
    # The rows now on screen ask for their thumbnails; each one arriving used to move the grid.
    qtbot.waitUntil(lambda: window.photos.has_thumbnail(photos[-1]), timeout=60_000)
    qtbot.waitUntil(lambda: window.session.thumbnails.idle, timeout=60_000)
    assert bar.value() == bar.maximum() > 0
    last = window.filter.mapFromSource(window.photos.index_of(photos[-1]))
    assert window.grid.viewport().rect().intersects(window.grid.visualRect(last)), "on screen"


def test_start_without_a_folder_offers_the_sample_photos(qtbot, window):
    window.start(None)
    assert window.middle.currentWidget() is window.welcome
    qtbot.mouseClick(window.welcome.samples_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(
        lambda: window.photos.rowCount() == len(bundled_sample_photos()), timeout=10_000
    )
    assert window.session.folder == window.env.data_dir / "Sample photos"
    assert window.session.folder.is_dir() and window.session.folder != BUNDLED_SAMPLES


def test_start_opens_the_folder_given_then_the_last_one(qtbot, make_window, photo_dir, prompts):
    first = make_window()
    first.start(str(photo_dir))
    qtbot.waitUntil(lambda: first.photos.rowCount() == 3)
    first.close()
    second = make_window()
    second.start(None)
    assert second.session.folder == photo_dir, "the last folder is reopened"
    second.start(str(photo_dir / "missing"))
    assert prompts.errors and "does not exist" in prompts.errors[-1][1]


def test_bundled_samples_are_small_and_documented():
    photos = bundled_sample_photos()
    assert 6 <= len(photos) <= 8, "issue 20: 6 to 8 sample photos"
    readme = (BUNDLED_SAMPLES / "README.md").read_text()
    for photo in photos:
        assert photo.stat().st_size < 120_000
        assert f"`{photo.name}`" in readme, f"{photo.name} has its source and licence stated"


def drop(window, path: Path) -> None:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    event = QDropEvent(
        QPointF(10, 10),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    window.dropEvent(event)


def test_dropping_a_folder_or_a_photo_opens_it(qtbot, window, photo_dir, tmp_path):
    drop(window, photo_dir)
    qtbot.waitUntil(lambda: window.photos.rowCount() == 3)
    assert window.session.folder == photo_dir
    other = tmp_path / "other"
    other.mkdir()
    for i in range(3):
        textured_image(80, 60, seed=i).save(other / f"x{i}.jpg")
    drop(window, other / "x2.jpg")
    qtbot.waitUntil(lambda: window.session.folder == other and window.photos.rowCount() == 3)
    qtbot.waitUntil(lambda: window.panel.path == other / "x2.jpg")


def test_clicking_a_folder_in_the_tree_opens_it(qtbot, window, photo_dir, tmp_path):
    open_and_wait(qtbot, window, photo_dir)
    other = tmp_path / "elsewhere"
    other.mkdir()
    textured_image(80, 60).save(other / "y.jpg")
    index = window.tree.index_of(other)
    assert index.isValid()
    window.tree.clicked.emit(index)
    qtbot.waitUntil(lambda: window.session.folder == other and window.photos.rowCount() == 1)
    assert window.tree.path_of(window.tree.currentIndex()) == other


def tree_children(window, folder: Path) -> list[str]:
    model = window.tree.model()
    parent = window.tree.index_of(folder)
    return sorted(model.index(row, 0, parent).data() for row in range(model.rowCount(parent)))


def top_rows(window) -> list[Path]:
    model, root = window.tree.model(), window.tree.rootIndex()
    return [window.tree.path_of(model.index(row, 0, root)) for row in range(model.rowCount(root))]


def test_the_folder_tree_shows_home_and_browses(qtbot, make_window, tmp_path_factory, monkeypatch):
    home = tmp_path_factory.mktemp("home")
    (home / "Pictures" / "2024").mkdir(parents=True)
    (home / "Documents").mkdir()
    (home / ".hidden").mkdir()
    monkeypatch.setenv("HOME", str(home))
    window = make_window()
    # Home is the one row at the top, named so, with its folders shown (hidden ones not).
    assert top_rows(window) == [home]
    assert window.tree.index_of(home).data() == "Home"
    assert window.tree.isExpanded(window.tree.index_of(home))
    qtbot.waitUntil(lambda: tree_children(window, home) == ["Documents", "Pictures"])
    # Unfolding a folder shows the folders inside it.
    window.tree.expand(window.tree.index_of(home / "Pictures"))
    qtbot.waitUntil(lambda: tree_children(window, home / "Pictures") == ["2024"])


def test_the_folder_tree_shows_where_a_hidden_folder_is(
    qtbot, make_window, tmp_path_factory, monkeypatch
):
    # A folder under a hidden one (here ~/.local/share/...) is still shown in place when open.
    home = tmp_path_factory.mktemp("home")
    samples = home / ".local" / "share" / "Photos" / "Trip"
    samples.mkdir(parents=True)
    textured_image(80, 60).save(samples / "a.jpg")
    (home / ".cache").mkdir()
    monkeypatch.setenv("HOME", str(home))
    window = make_window()
    open_and_wait(qtbot, window, samples)
    assert top_rows(window) == [home]
    assert window.tree.path_of(window.tree.currentIndex()) == samples
    for folder in (home, home / ".local", home / ".local" / "share"):
        assert window.tree.isExpanded(window.tree.index_of(folder)), folder
    qtbot.waitUntil(lambda: tree_children(window, home) == [".local"])  # not .cache


def test_the_folder_tree_shows_a_folder_outside_home_in_place(
    qtbot, make_window, photo_dir, tmp_path_factory, monkeypatch
):
    home = tmp_path_factory.mktemp("home")
    (home / "Pictures").mkdir()
    monkeypatch.setenv("HOME", str(home))
    window = make_window()
    open_and_wait(qtbot, window, photo_dir)
    # One tree from the folder holding both, with the way to the open folder unfolded and
    # the folders beside them there to browse.
    top = Path(os.path.commonpath([home, photo_dir]))
    assert top_rows(window) == [top]
    assert window.tree.path_of(window.tree.currentIndex()) == photo_dir
    assert window.tree.isExpanded(window.tree.index_of(photo_dir.parent))
    beside = sorted(p.name for p in top.iterdir() if p.is_dir() and not p.name.startswith("."))
    assert home.name in beside and len(beside) > 2
    beside = sorted("Home" if name == home.name else name for name in beside)  # named so
    qtbot.waitUntil(lambda: tree_children(window, top) == beside, timeout=10_000)
    # Back in home, the tree starts at home again.
    (home / "Pictures" / "p.jpg").write_bytes((photo_dir / "photo0.jpg").read_bytes())
    window.tree.clicked.emit(window.tree.index_of(home / "Pictures"))
    qtbot.waitUntil(
        lambda: window.session.folder == home / "Pictures" and window.photos.rowCount() == 1
    )
    assert top_rows(window) == [home]
    assert window.tree.path_of(window.tree.currentIndex()) == home / "Pictures"


def test_the_sample_photos_are_a_named_place_and_app_folders_are_not_browsed(
    qtbot, make_window, tmp_path_factory, monkeypatch
):
    """Issue 22 item 11: the samples sat in the tree under Home > .local > share > PhotoScribe
    beside the app's state folder, and folders without subfolders had an expand arrow."""
    home = tmp_path_factory.mktemp("home")
    (home / "Pictures" / "2024").mkdir(parents=True)
    (home / "Documents").mkdir()
    app_dir = home / ".local" / "share" / "PhotoScribe"
    (app_dir / "state").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    window = make_window(data_dir=app_dir)
    assert window.places.count() == 1 and window.places.item(0).text() == "Sample photos"
    window.places.itemClicked.emit(window.places.item(0))  # as a click does
    samples = app_dir / "Sample photos"
    qtbot.waitUntil(lambda: window.session.folder == samples and window.photos.rowCount() > 0)
    assert window.places.currentRow() == 0, "the place is shown as the open folder"
    assert not window.tree.currentIndex().isValid()
    assert not window.tree.index_of(samples).isValid()
    assert not window.tree.index_of(app_dir / "state").isValid(), "app state is not browsed"
    qtbot.waitUntil(lambda: tree_children(window, home) == ["Documents", "Pictures"])
    # Only folders holding folders can be unfolded.
    model = window.tree.model()
    assert model.hasChildren(window.tree.index_of(home / "Pictures"))
    # Looked into off the GUI thread: the arrow goes once the answer is in.
    qtbot.waitUntil(lambda: not model.hasChildren(window.tree.index_of(home / "Documents")))
    assert model.hasChildren(window.tree.index_of(home / "Pictures"))
    # Another folder: the place is no longer selected, the tree shows the folder.
    window.tree.clicked.emit(window.tree.index_of(home / "Pictures" / "2024"))
    qtbot.waitUntil(lambda: window.session.folder == home / "Pictures" / "2024")
    assert window.places.currentRow() == -1
    assert window.tree.path_of(window.tree.currentIndex()) == home / "Pictures" / "2024"


def test_staying_in_the_folder_leaves_the_sample_photos_place_unselected(
    qtbot, window, photo_dir, prompts
):
    open_and_wait(qtbot, window, photo_dir)
    window.session.saver.set_draft(photo_dir / "photo0.jpg", "not saved yet")
    prompts.unsaved_answer = "cancel"
    window.places.itemClicked.emit(window.places.item(0))
    qtbot.waitUntil(lambda: bool(prompts.asked_unsaved))
    assert window.session.folder == photo_dir
    assert window.places.currentRow() == -1, "the place is selected only once it is open"
