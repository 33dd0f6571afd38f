"""What the `photoscribe` command prints: the progress line, caption lines, review lines."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import TextIO

from core.datatypes import CHECK_BELOW

CONFIDENCE_DIGITS = 3  # confidences are printed rounded to this many decimals


class Progress:
    """A one-line progress bar on stderr (photos done, images/s, time left), only on a terminal."""

    def __init__(self, total: int | None, stream: TextIO | None = None) -> None:
        self.total = total
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty()
        self.done = 0
        self.shown = False
        self.t0 = time.perf_counter()

    def show(self, done: int, total: int | None, rate: float) -> None:
        """Redraw with ``done`` of ``total`` photos (None: still counting), ``rate`` images/s."""
        self.done, self.total = done, total
        if not self.enabled:
            return
        elapsed = max(time.perf_counter() - self.t0, 1e-9)
        per_second = done / elapsed  # skipped photos go fast: the ETA uses all photos done
        # Nothing measured yet: a rate of 0.0 and an ETA of 0 s would both be wrong.
        speed = f"{rate:.1f} img/s" if rate > 0 else "starting…"
        if total:
            eta = f" ETA {(total - done) / per_second:.0f}s" if done and per_second > 0 else ""
            width = 24
            filled = int(width * min(done, total) / total)
            line = f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {speed}{eta}"
        else:
            line = f"{done} done (still counting), {speed}"
        self.stream.write("\r\033[K" + line)
        self.stream.flush()
        self.shown = True

    def clear(self) -> None:
        """Blank the bar so that a message can be printed on its line."""
        if self.enabled and self.shown:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self.shown = False

    def close(self) -> None:
        if self.enabled and self.shown:
            self.stream.write("\n")
            self.stream.flush()
            self.shown = False


def say(err: TextIO, text: str) -> None:
    """Print a message even when a file name in it is not valid UTF-8."""
    err.write(text.encode("utf-8", "backslashreplace").decode("utf-8") + "\n")
    err.flush()


def rounded(confidence: float | None) -> float | None:
    return round(confidence, CONFIDENCE_DIGITS) if confidence is not None else None


def caption_line(
    path: Path, caption: str | None, score: float | None, confidence: float | None, fmt: str
) -> str:
    if fmt == "jsonl":
        return json.dumps(
            {
                "path": str(path),
                "caption": caption,
                "score": score,
                "confidence": rounded(confidence),
                # What the app marks "Check this" at its default threshold.
                "check": confidence is not None and confidence < CHECK_BELOW,
            },
            ensure_ascii=False,
        )
    return f"{path}\t{caption}"


def review_line(path: Path, caption: str, confidence: float | None, least: float) -> str:
    """The stderr line for a caption left for review (one line, whatever the caption holds)."""
    sure = f"{confidence:.{CONFIDENCE_DIGITS}f}" if confidence is not None else "unknown"
    text = " ".join(caption.split())
    return f"{path}: left for review (confidence {sure}, below {least:g}): {text}"


class CaptionOutput:
    """Prints engine events: captions on stdout, problems on stderr, progress on a terminal."""

    def __init__(self, out: TextIO, err: TextIO, fmt: str, progress: Progress) -> None:
        self.out = out
        self.err = err
        self.fmt = fmt
        self.progress = progress

    def __call__(self, event: object) -> None:
        from core.engine import (
            IndexReplaced,
            PhotoCaptioned,
            PhotoFailed,
            PhotoForReview,
            RunProgress,
        )
        from core.library import ScanProblem

        if isinstance(event, RunProgress):
            self.progress.show(event.done, event.total, event.rate)
            return
        if isinstance(event, PhotoCaptioned):
            self.progress.clear()
            self._print(
                caption_line(event.path, event.caption, event.score, event.confidence, self.fmt)
            )
            if event.message:
                say(self.err, f"{event.path}: {event.message}")
        elif isinstance(event, PhotoForReview):
            self.progress.clear()
            say(
                self.err,
                review_line(event.path, event.caption, event.confidence, event.min_confidence),
            )
        elif isinstance(event, PhotoFailed):
            self.progress.clear()
            say(self.err, event.reason)
            if event.caption:  # made but not saved: stdout lists only saved captions
                say(
                    self.err,
                    f"{event.path}: the caption that was not saved (kept in the library index; "
                    f"the app shows it to save elsewhere): {event.caption}",
                )
        elif isinstance(event, ScanProblem):
            self.progress.clear()
            say(self.err, event.reason)
        elif isinstance(event, IndexReplaced):
            self.progress.clear()
            say(
                self.err,
                f"photoscribe: {event.path}: {event.reason} It was moved to {event.moved_to} and "
                "a new index started; photos whose captions are already saved are recognised "
                "from their stores, not captioned again.",
            )

    def _print(self, line: str) -> None:
        self.out.write(line.encode("utf-8", "backslashreplace").decode("utf-8") + "\n")
        self.out.flush()
