"""The folder tree looks into folders for their expand arrows off the GUI thread."""

from __future__ import annotations

import threading
from pathlib import Path

import desktop.folder_tree as folder_tree
from desktop.folder_tree import FolderScope, FolderTree


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
    # What the view asks the model while it lays its rows out (to see it lay them out again).
    asked: list[tuple[Path, bool]] = []
    original = FolderScope.hasChildren

    def recording(self: FolderScope, parent=None) -> bool:
        answer = original(self, parent)
        if parent is not None and parent.isValid():
            source = self.mapToSource(parent)
            asked.append((Path(self.sourceModel().filePath(source)), answer))
        return answer

    monkeypatch.setattr(FolderScope, "hasChildren", recording)
    tree = FolderTree(home)
    qtbot.addWidget(tree)
    tree.show()
    try:
        model = tree.model()
        qtbot.waitUntil(
            lambda: all(tree.index_of(home / n).isValid() for n in ("Share", "Documents")),
            timeout=30_000,
        )
        # The GUI thread has its answer at once: an arrow until the folder has been looked into.
        assert model.hasChildren(tree.index_of(share))
        qtbot.waitUntil(
            lambda: not model.hasChildren(tree.index_of(home / "Documents")), timeout=30_000
        )
        assert model.hasChildren(tree.index_of(home / "Pictures"))
        assert model.hasChildren(tree.index_of(share)), "still no answer from the share"
        with qtbot.waitSignal(model.subfolders_known, timeout=30_000):
            release.set()
        assert not model.hasChildren(tree.index_of(share))
        # The view lays its rows out again and draws the share without an arrow.
        qtbot.waitUntil(lambda: (share, False) in asked, timeout=30_000)
        assert looked_into.count(share) == 1, "each folder is looked into once"
    finally:
        release.set()
        tree.shutdown()


def test_without_a_pool_the_answer_comes_at_once(tmp_path: Path) -> None:
    """FolderScope on its own (no pool) still answers from the folder itself."""
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "c").mkdir()
    assert folder_tree.has_subfolders(tmp_path / "a")
    assert not folder_tree.has_subfolders(tmp_path / "c")
    assert not folder_tree.has_subfolders(tmp_path / "missing")


def test_arrows_follow_folders_made_or_removed_while_the_app_runs(
    qtbot, tmp_path: Path, monkeypatch
):
    """A folder that had no subfolders when the tree first drew it never got an arrow, even
    after one was made in it (in a file manager, say): the answer was kept for the session."""
    home = tmp_path / "home"
    empty, full = home / "Documents", home / "Pictures"
    empty.mkdir(parents=True)
    (full / "2024").mkdir(parents=True)
    asked: list[tuple[Path, bool]] = []
    original = FolderScope.hasChildren

    def recording(self: FolderScope, parent=None) -> bool:
        answer = original(self, parent)
        if parent is not None and parent.isValid():
            asked.append((Path(self.sourceModel().filePath(self.mapToSource(parent))), answer))
        return answer

    monkeypatch.setattr(FolderScope, "hasChildren", recording)
    tree = FolderTree(home)
    qtbot.addWidget(tree)
    tree.show()
    try:
        model = tree.model()
        qtbot.waitUntil(lambda: (empty, False) in asked and (full, True) in asked, timeout=30_000)
        (empty / "Scans").mkdir()
        (full / "2024").rmdir()
        assert model.hasChildren(tree.index_of(full)), "kept until looked into again"
        asked.clear()
        tree.look_again()  # as when the app becomes the active one again
        assert model.hasChildren(tree.index_of(full)), "its arrow stays while it is looked into"
        # The view lays its rows out again with the new answers: an arrow comes and one goes.
        qtbot.waitUntil(lambda: (empty, True) in asked and (full, False) in asked, timeout=30_000)
    finally:
        tree.shutdown()
