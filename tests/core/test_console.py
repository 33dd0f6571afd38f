"""What the command line prints while it works: the progress line."""

from __future__ import annotations

import io

from core.console import Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def last_line(stream: Terminal) -> str:
    return stream.getvalue().rsplit("\r\033[K", 1)[-1]


def test_progress_says_starting_before_it_has_a_rate() -> None:
    """A regression guard: the first line read "0/35 0.0 img/s ETA 0s"."""
    term = Terminal()
    progress = Progress(35, term)
    progress.show(0, 35, 0.0)
    line = last_line(term)
    assert line.endswith("0/35 starting…")
    assert "img/s" not in line and "ETA" not in line


def test_progress_shows_rate_and_time_left_once_photos_are_done() -> None:
    term = Terminal()
    progress = Progress(40, term)
    progress.show(8, 40, 4.0)
    line = last_line(term)
    assert "8/40 4.0 img/s ETA " in line and line.endswith("s")
    progress.show(3, None, 2.5)
    assert last_line(term) == "3 done (still counting), 2.5 img/s"


def test_progress_is_silent_when_not_a_terminal() -> None:
    stream = io.StringIO()
    Progress(10, stream).show(5, 10, 1.0)
    assert stream.getvalue() == ""
