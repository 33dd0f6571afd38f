"""Thumbnails: decoded on a TaskPool into QImage, newest request first, cached on disk."""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from PIL import Image
from PySide6.QtCore import QObject, QSize, Qt, Signal
from PySide6.QtGui import QImage

from core.errors import PhotoScribeError, ReaderCrashedError
from core.images import decode_picture
from desktop.tasks import TaskPool

log = logging.getLogger(__name__)

THUMBNAIL_EDGE = 256  # longest side of a cached thumbnail, in pixels
CACHE_FORMAT_VERSION = 1  # bump to ignore thumbnails made by an older PhotoScribe
MAX_QUEUED = 400  # older requests are dropped: they scrolled out of view and will be re-asked


@dataclass(frozen=True)
class ThumbnailKey:
    """What a cached thumbnail depends on: the file, its size and modification time."""

    path: Path
    size: int
    mtime_ns: int
    edge: int = THUMBNAIL_EDGE

    @classmethod
    def of(cls, path: Path, edge: int = THUMBNAIL_EDGE) -> ThumbnailKey:
        info = os.stat(path)
        return cls(path, info.st_size, info.st_mtime_ns, edge)

    def digest(self) -> str:
        text = f"v{CACHE_FORMAT_VERSION}|{os.fsencode(self.path.resolve())!r}|{self.size}|"
        text += f"{self.mtime_ns}|{self.edge}"
        return hashlib.sha1(text.encode("utf-8")).hexdigest()


class ThumbnailCache:
    """Thumbnails as small JPEG files under ``folder``, named by a hash of their ThumbnailKey."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def file_for(self, key: ThumbnailKey) -> Path:
        digest = key.digest()
        return self.folder / digest[:2] / f"{digest}.jpg"

    def get(self, key: ThumbnailKey) -> QImage | None:
        file = self.file_for(key)
        if not file.is_file():
            return None
        image = QImage(str(file))
        return None if image.isNull() else image

    def put(self, key: ThumbnailKey, image: QImage) -> None:
        """Store atomically; a cache that cannot be written only costs speed, so it is logged."""
        file = self.file_for(key)
        try:
            file.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".thumb-", suffix=".jpg", dir=file.parent)
            os.close(fd)
            if not image.save(tmp, "JPEG", 85):
                os.unlink(tmp)
                raise OSError("Qt could not encode the thumbnail")
            os.replace(tmp, file)
        except OSError as error:
            log.warning("Could not cache the thumbnail of %s: %s", key.path, error)


def pil_to_qimage(image: Image.Image) -> QImage:
    """An RGB Pillow image as a QImage that owns its pixels (safe to pass between threads)."""
    rgb = image.convert("RGB")
    data = rgb.tobytes()
    qimage = QImage(data, rgb.width, rgb.height, rgb.width * 3, QImage.Format.Format_RGB888)
    return qimage.copy()  # detach from ``data``, which Python may free


def fit(image: QImage, box: QSize) -> QImage:
    """``image`` scaled down, keeping its shape, to fit in ``box`` (never enlarged)."""
    if image.width() <= box.width() and image.height() <= box.height():
        return image
    return image.scaled(
        box, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation
    )


def decode_scaled(path: Path, edge: int) -> QImage:
    """The photo upright (EXIF orientation applied), at most ``edge`` pixels on its long side."""
    # A thumbnail of a 4:3 photo is 3/4 edge on its short side, so an embedded image that big
    # (a phone HEIC's 320x240 thumbnail, a RAW file's preview) is enough; no full decode.
    # Decoded in a reader process: a crash in a decoder there costs only this thumbnail.
    least = edge * 3 // 4
    image = decode_picture(path, draft_size=(least, least))
    image.thumbnail((edge, edge), Image.Resampling.BILINEAR, reducing_gap=2.0)
    return pil_to_qimage(image)


def load_thumbnail(path: Path, cache: ThumbnailCache | None, edge: int = THUMBNAIL_EDGE) -> QImage:
    """From the cache, or decoded and cached; raises PhotoScribeError or OSError when unreadable."""
    key = ThumbnailKey.of(path, edge)
    if cache is not None:
        cached = cache.get(key)
        if cached is not None:
            return cached
    image = decode_scaled(path, edge)
    if cache is not None:
        cache.put(key, image)
    return image


def load_for_display(
    path: Path, cache: ThumbnailCache | None, edge: int, display: QSize | None
) -> QImage:
    """On a worker thread: the thumbnail, scaled to fit ``display`` (when given) so that the GUI
    thread only shows it."""
    image = load_thumbnail(path, cache, edge)
    return fit(image, display) if display is not None else image


class ThumbnailLoader(QObject):
    """Decodes requested thumbnails on a TaskPool, most recent request first.

    ``request`` is cheap and may be called from paint code on every repaint: it only queues a
    path not already queued. The queue lives on the GUI thread (no lock): at most ``workers``
    thumbnails are handed to the pool at a time, and each one that comes back (on the GUI
    thread, as ``thumbnail_ready`` or ``thumbnail_failed``) makes room for the newest request.
    """

    thumbnail_ready = Signal(object, QImage)  # path, image
    thumbnail_failed = Signal(object, str)  # path, readable reason
    reader_crashed = Signal(object, str)  # path, message: the file is for the Problems panel

    def __init__(
        self,
        cache: ThumbnailCache | None,
        workers: int = 2,
        edge: int = THUMBNAIL_EDGE,
        display: QSize | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.cache = cache
        self.edge = edge
        self.display = display  # scaled to fit this on the worker, so the GUI thread only shows it
        self._workers = max(workers, 1)
        self._pool = TaskPool("thumbnail", self._workers, self)
        self._queue: OrderedDict[Path, None] = OrderedDict()  # newest last
        self._in_flight: set[Path] = set()
        self._stopping = False

    def request(self, path: Path) -> None:
        if self._stopping or path in self._in_flight:
            return
        if path in self._queue:
            self._queue.move_to_end(path)  # wanted again: it is on screen now
            return
        self._queue[path] = None
        while len(self._queue) > MAX_QUEUED:
            self._queue.popitem(last=False)
        self._pump()

    def clear(self) -> None:
        """Forget queued requests (another folder was opened)."""
        self._queue.clear()

    def shutdown(self) -> None:
        self._stopping = True
        self._queue.clear()
        self._pool.shutdown(wait=True, cancel_pending=True)

    @property
    def idle(self) -> bool:
        return not self._queue and not self._in_flight

    def _pump(self) -> None:
        """Hand the newest requests to the pool while it has a free thread."""
        while self._queue and len(self._in_flight) < self._workers and not self._stopping:
            path, _ = self._queue.popitem(last=True)
            self._in_flight.add(path)
            self._pool.submit(
                load_for_display,
                path,
                self.cache,
                self.edge,
                self.display,
                on_done=lambda image, path=path: self._done(path, image),
                on_error=lambda error, path=path: self._failed(path, error),
            )

    def _done(self, path: Path, image: QImage) -> None:
        self._in_flight.discard(path)
        self.thumbnail_ready.emit(path, image)
        self._pump()

    def _failed(self, path: Path, error: BaseException) -> None:
        self._in_flight.discard(path)
        if isinstance(error, ReaderCrashedError):
            self.thumbnail_failed.emit(path, error.problem)
            self.reader_crashed.emit(path, str(error))
        elif isinstance(error, PhotoScribeError):
            self.thumbnail_failed.emit(path, error.problem)
        elif isinstance(error, OSError):
            self.thumbnail_failed.emit(path, error.strerror or str(error))
        else:  # a bad file must not stop the thumbnails
            log.error("Unexpected error making the thumbnail of %s", path, exc_info=error)
            self.thumbnail_failed.emit(path, f"unexpected error ({error})")
        self._pump()
