"""The folder tree looks into folders for their expand arrows off the GUI thread."""

from __future__ import annotations

import threading
from pathlib import Path

from PySide6.QtCore import QDir
from PySide6.QtWidgets import QFileSystemModel

import desktop.folder_tree as folder_tree
from desktop.folder_tree import FolderScope, FolderTree


def recorded_arrows(monkeypatch) -> tuple[list[tuple[Path, bool]], object]:
    """What the view asks the model while it lays its rows out (folder, arrow), and the
    unrecorded hasChildren for the test's own questions."""
    asked: list[tuple[Path, bool]] = []
    original = FolderScope.hasChildren

    def recording(self: FolderScope, parent=None) -> bool:
        answer = original(self, parent)
        if parent is not None and parent.isValid():
            asked.append((Path(self.sourceModel().filePath(self.mapToSource(parent))), answer))
        return answer

    monkeypatch.setattr(FolderScope, "hasChildren", recording)
    return asked, original


def shown_tree(qtbot, home: Path) -> tuple[FolderTree, object]:
    tree = FolderTree(home)
    qtbot.addWidget(tree)
    tree.show()
    return tree, tree.model()


def test_a_folder_that_does_not_answer_holds_up_nothing(qtbot, tmp_path: Path, monkeypatch):
    """Whether a folder holds folders was asked on the GUI thread: a network share that does
    not answer froze the window while the tree drew its rows."""
    home = tmp_path / "home"
    share = home / "Share"  # stands for a share that does not answer until released
    share.mkdir(parents=True)
    (home / "Pictures" / "2024").mkdir(parents=True)
    (home / "Documents").mkdir()
    release = threading.Event()
    looked_into: list[Path] = []
    real = folder_tree.has_subfolders

    def slow(folder: Path) -> bool:
        looked_into.append(folder)
        if folder == share:
            assert release.wait(120), "never released"
        return real(folder)

    monkeypatch.setattr(folder_tree, "has_subfolders", slow)
    asked, original = recorded_arrows(monkeypatch)
    tree, model = shown_tree(qtbot, home)

    def arrow(folder: Path) -> bool:
        return original(model, tree.index_of(folder))

    try:
        qtbot.waitUntil(
            lambda: all(tree.index_of(home / n).isValid() for n in ("Share", "Documents")),
            timeout=30_000,
        )
        # The GUI thread has its answer at once: an arrow until the folder has been looked into.
        assert arrow(share)
        qtbot.waitUntil(lambda: not arrow(home / "Documents"), timeout=30_000)
        assert arrow(home / "Pictures")
        assert arrow(share), "still no answer from the share"
        emitted_at: list[int] = []
        model.subfolders_known.connect(lambda: emitted_at.append(len(asked)))
        with qtbot.waitSignal(model.subfolders_known, timeout=30_000):
            release.set()
        assert not arrow(share)
        # The view lays its rows out again and draws the share without an arrow.
        qtbot.waitUntil(lambda: (share, False) in asked[emitted_at[-1] :], timeout=30_000)
        assert looked_into.count(share) == 1, "each folder is looked into once"
    finally:
        release.set()
        tree.shutdown()


def test_arrows_follow_folders_made_or_removed_while_the_app_runs(
    qtbot, tmp_path: Path, monkeypatch
):
    """A folder that had no subfolders when the tree first drew it never got an arrow, even
    after one was made in it (in a file manager, say): the answer was kept for the session."""
    home = tmp_path / "home"
    empty, full = home / "Documents", home / "Pictures"
    empty.mkdir(parents=True)
    (full / "2024").mkdir(parents=True)
    asked, original = recorded_arrows(monkeypatch)
    tree, model = shown_tree(qtbot, home)
    try:
        qtbot.waitUntil(lambda: (empty, False) in asked and (full, True) in asked, timeout=30_000)
        (empty / "Scans").mkdir()
        (full / "2024").rmdir()
        assert original(model, tree.index_of(full)), "kept until looked into again"
        asked.clear()
        tree.look_again()  # as when the app becomes the active one again
        assert original(model, tree.index_of(full)), "its arrow stays while it is looked into"
        # The view lays its rows out again with the new answers: an arrow comes and one goes.
        qtbot.waitUntil(lambda: (empty, True) in asked and (full, False) in asked, timeout=30_000)
    finally:
        tree.shutdown()


def test_an_answer_from_before_the_refresh_is_asked_again(qtbot, tmp_path: Path, monkeypatch):
    """A look into a folder that began before the app looked again may have read the folder
    before the change: its answer is used, and asked again."""
    home = tmp_path / "home"
    slow_folder = home / "Projects"
    slow_folder.mkdir(parents=True)
    release = threading.Event()
    looks: list[Path] = []
    real = folder_tree.has_subfolders

    def read_then_wait(folder: Path) -> bool:
        answer = real(folder)  # read now, answered later: older than a change meanwhile
        looks.append(folder)
        if folder == slow_folder and looks.count(folder) == 1:
            assert release.wait(120), "never released"
        return answer

    monkeypatch.setattr(folder_tree, "has_subfolders", read_then_wait)
    _asked, original = recorded_arrows(monkeypatch)
    tree, model = shown_tree(qtbot, home)
    try:
        qtbot.waitUntil(lambda: slow_folder in looks, timeout=30_000)
        (slow_folder / "2025").mkdir()
        tree.look_again()
        release.set()
        # The old answer (no subfolders) came back after the refresh: looked into again.
        qtbot.waitUntil(lambda: looks.count(slow_folder) == 2, timeout=30_000)
        qtbot.waitUntil(lambda: original(model, tree.index_of(slow_folder)), timeout=30_000)
    finally:
        release.set()
        tree.shutdown()


def test_many_answers_lay_the_rows_out_again_once(qtbot, tmp_path: Path) -> None:
    """Each answer laid every row out again: a folder of thousands of folders on a slow share
    kept the window busy for seconds."""
    tree, model = shown_tree(qtbot, tmp_path)
    layouts: list[int] = []
    tree._relayout.timeout.connect(lambda: layouts.append(1))
    try:
        for _ in range(100):
            model.subfolders_known.emit()
        assert tree._relayout.isActive()
        qtbot.waitUntil(lambda: layouts == [1], timeout=30_000)
        assert not tree._relayout.isActive(), "no second layout pending"
    finally:
        tree.shutdown()


def test_without_a_pool_the_scope_answers_at_once(qtbot, tmp_path: Path) -> None:
    """FolderScope on its own (no pool) looks into the folder on the calling thread, and again
    after a refresh."""
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "c").mkdir()
    fs = QFileSystemModel()
    fs.setFilter(QDir.Filter.AllDirs | QDir.Filter.NoDotAndDotDot)
    scope = FolderScope(tmp_path)
    scope.setSourceModel(fs)
    scope.set_scope(tmp_path, None)
    fs.setRootPath(str(tmp_path))

    def arrow(folder: Path) -> bool:
        return scope.hasChildren(scope.mapFromSource(fs.index(str(folder))))

    qtbot.waitUntil(lambda: scope.mapFromSource(fs.index(str(tmp_path / "c"))).isValid())
    assert arrow(tmp_path / "a") and not arrow(tmp_path / "c")
    (tmp_path / "c" / "d").mkdir()
    assert not arrow(tmp_path / "c"), "the answer is kept"
    scope.refresh()
    assert arrow(tmp_path / "c")
    assert folder_tree.has_subfolders(tmp_path / "a")
    assert not folder_tree.has_subfolders(tmp_path / "missing")
