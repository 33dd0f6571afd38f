"""TaskPool: work off the GUI thread, results back on it, never in the middle of ``submit``."""

from __future__ import annotations

import threading
from concurrent.futures import Future

from desktop.tasks import TaskPool


class Instant:
    """An executor whose tasks are done before ``submit`` returns (a very fast worker)."""

    def submit(self, fn, *args):
        future: Future = Future()
        future.set_result(fn(*args))
        return future

    def shutdown(self, wait=True, cancel_futures=False) -> None:
        pass


def test_a_result_is_delivered_later_even_when_the_task_was_instant(qtbot) -> None:
    """Regression: a folder listed before open_folder had finished left the grid saying
    "Looking for photos…" (the callback ran inside submit, before the caller's next line)."""
    pool = TaskPool("test", 1)
    pool._executor = Instant()
    order: list[str] = []
    pool.submit(lambda: 42, on_done=lambda value: order.append(f"done {value}"))
    order.append("submit returned")
    qtbot.waitUntil(lambda: len(order) == 2, timeout=5000)
    assert order == ["submit returned", "done 42"]
    pool.shutdown()


def test_errors_go_to_on_error_on_the_gui_thread(qtbot) -> None:
    pool = TaskPool("test", 1)
    errors: list[BaseException] = []

    def fail() -> None:
        raise ValueError("bad photo")

    pool.submit(fail, on_error=errors.append)
    qtbot.waitUntil(lambda: bool(errors), timeout=5000)
    assert isinstance(errors[0], ValueError)
    pool.shutdown()


def test_the_desktop_runs_its_work_on_task_pools_and_signals(qtbot, window, photo_dir):
    """Issue 23 item 6: the thumbnail loader had its own threads and condition, and the GUI
    polled the inference worker's locked list every 50 ms. Now thumbnails decode on a
    TaskPool, newest first, and the worker's events come as signals: no polling timer."""
    from PySide6.QtCore import QTimer

    from desktop.tasks import TaskPool
    from tests.desktop.conftest import open_and_wait, wait_idle

    loader = window.session.thumbnails
    assert isinstance(loader._pool, TaskPool)
    assert not any(t.name.startswith("thumbnail-") for t in threading.enumerate())
    open_and_wait(qtbot, window, photo_dir)
    # Decoded in reader processes started for them: seconds on a busy one-core machine.
    qtbot.waitUntil(
        lambda: all(window.photos.has_thumbnail(p.path) for p in window.photos.photos()),
        timeout=30_000,
    )
    qtbot.waitUntil(lambda: loader.idle, timeout=30_000)
    service = window.session.captioning
    arrived = []
    service.events_arrived.connect(arrived.append)
    window.commands.caption_folder.trigger()
    wait_idle(qtbot, window)
    assert arrived and not service.findChildren(QTimer), "events are sent, not polled for"
