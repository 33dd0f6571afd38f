"""What the command line prints: the progress line and the summary."""

from __future__ import annotations

import io

from core.cli import summary_text
from core.console import Progress
from core.engine import RunSummary


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


def summary(**changes) -> RunSummary:
    fields = dict(
        captioned=0, skipped=35, failed=0, failures=(), problems=(), seconds=0.4,
        cancelled=False, store="txt", index_path=None, model="m",
    )  # fmt: skip
    fields.update(changes)
    return RunSummary(**fields)


def test_summary_gives_no_rate_when_nothing_was_captioned() -> None:
    """A regression guard: a run that skipped everything said "(0.00 images/s)"."""
    text = summary_text(summary(), overwrite=False)
    assert "images/s" not in text and "captioned 0, skipped 35" in text
    assert "(2.50 images/s)" in summary_text(summary(captioned=5, seconds=2.0), overwrite=False)


def test_summary_points_above_only_when_captions_were_left_for_review() -> None:
    """A regression guard: it said "left for review 0 (see above)" with nothing above."""
    text = summary_text(summary(), overwrite=False, min_confidence=0.5)
    assert "left for review 0, " in text and "see above" not in text
    assert "left for review" not in summary_text(summary(), overwrite=False)
    text = summary_text(summary(for_review=2), overwrite=False, min_confidence=0.5)
    assert "left for review 2 (see above)" in text
