"""Thumbnails: decoded on worker threads into QImage, newest request first, cached on disk."""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from PIL import Image
from PySide6.QtCore import QObject, QSize, Qt, Signal
from PySide6.QtGui import QImage

from core.errors import PhotoScribeError, ReaderCrashedError
from core.images import decode_picture

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


class ThumbnailLoader(QObject):
    """Decodes requested thumbnails on a few threads, most recent request first.

    ``request`` is cheap and may be called from paint code on every repaint: it only queues a
    path not already queued. Results arrive on the GUI thread as ``thumbnail_ready``.
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
        self.display = display  # scaled to fit this here, so the GUI thread only shows it
        self._queue: OrderedDict[Path, None] = OrderedDict()  # newest last
        self._in_flight: set[Path] = set()
        self._cond = threading.Condition()
        self._stopping = False
        self._threads = [
            threading.Thread(target=self._work, name=f"thumbnail-{i}", daemon=True)
            for i in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    def request(self, path: Path) -> None:
        with self._cond:
            if self._stopping or path in self._in_flight:
                return
            if path in self._queue:
                self._queue.move_to_end(path)  # wanted again: it is on screen now
                return
            self._queue[path] = None
            while len(self._queue) > MAX_QUEUED:
                self._queue.popitem(last=False)
            self._cond.notify()

    def clear(self) -> None:
        """Forget queued requests (another folder was opened)."""
        with self._cond:
            self._queue.clear()

    def shutdown(self) -> None:
        with self._cond:
            self._stopping = True
            self._queue.clear()
            self._cond.notify_all()
        for thread in self._threads:
            thread.join()

    @property
    def idle(self) -> bool:
        with self._cond:
            return not self._queue and not self._in_flight

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                path, _ = self._queue.popitem(last=True)
                self._in_flight.add(path)
            try:
                image = load_thumbnail(path, self.cache, self.edge)
                if self.display is not None:
                    image = fit(image, self.display)
            except ReaderCrashedError as error:
                self._emit_failed(path, error.problem)
                with self._cond:
                    if not self._stopping:
                        self.reader_crashed.emit(path, str(error))
            except PhotoScribeError as error:
                self._emit_failed(path, error.problem)
            except OSError as error:
                self._emit_failed(path, error.strerror or str(error))
            except Exception as error:  # noqa: BLE001 - a bad file must not kill the decoder
                log.exception("Unexpected error making the thumbnail of %s", path)
                self._emit_failed(path, f"unexpected error ({error})")
            else:
                with self._cond:
                    if not self._stopping:
                        self.thumbnail_ready.emit(path, image)
            finally:
                with self._cond:
                    self._in_flight.discard(path)

    def _emit_failed(self, path: Path, reason: str) -> None:
        with self._cond:
            if not self._stopping:
                self.thumbnail_failed.emit(path, reason)
