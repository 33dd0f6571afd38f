"""TaskPool: work off the GUI thread, results back on it, never in the middle of ``submit``."""

from __future__ import annotations

import subprocess
import sys
import threading
from concurrent.futures import Future
from pathlib import Path

from desktop.tasks import TaskPool

ROOT = Path(__file__).resolve().parents[2]


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


def test_a_daemon_pool_runs_work_like_the_others(qtbot) -> None:
    """Results and errors come back on the GUI thread; work still queued at shutdown is
    cancelled and never delivered."""
    pool = TaskPool("test", 2, daemon=True)
    results: list[int] = []
    errors: list[BaseException] = []
    for n in range(6):
        pool.submit(lambda n=n: n * n, on_done=results.append)

    def fail() -> None:
        raise ValueError("bad folder")

    pool.submit(fail, on_error=errors.append)
    qtbot.waitUntil(lambda: len(results) == 6 and len(errors) == 1, timeout=30_000)
    assert sorted(results) == [0, 1, 4, 9, 16, 25] and isinstance(errors[0], ValueError)
    assert len(pool._executor._threads) <= 2
    release = threading.Event()
    started = threading.Event()
    late: list[str] = []
    pool.submit(lambda: (started.set(), release.wait(60)))
    pool.submit(lambda: (started.set(), release.wait(60)))
    queued = pool.submit(lambda: "queued", on_done=late.append)  # behind two busy threads
    assert started.wait(30)
    pool.shutdown(wait=False, cancel_pending=True)
    assert queued.cancelled()
    release.set()
    for thread in pool._executor._threads:
        thread.join(30)
        assert not thread.is_alive()
    assert late == [] and pool.pending == 0


def test_a_daemon_pool_does_not_hold_the_process_at_exit() -> None:
    """A folder look-up that never returns (a share that does not answer) kept the app's
    process alive after its window had closed: Python joins a ThreadPoolExecutor's threads."""
    script = (
        "import threading\n"
        "from desktop.tasks import TaskPool\n"
        "pool = TaskPool('folders', 2, daemon=True)\n"
        "started = threading.Event()\n"
        "pool.submit(lambda: (started.set(), threading.Event().wait()))\n"
        "assert started.wait(60)\n"
        "pool.shutdown(wait=False, cancel_pending=True)\n"
        "print('exiting', flush=True)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "exiting"


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
