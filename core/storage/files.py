"""File identity checks and atomic, permission-keeping writes shared by every caption store."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import stat
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from core.errors import (
    DiskFullError,
    FileChangedError,
    FileMissingError,
    ReadOnlyError,
    StorageError,
)

log = logging.getLogger(__name__)

TEMP_PREFIX = ".photoscribe-"
"""Temporary files start with this (hidden, so photo browsers and find_photos ignore them)."""
TEMP_SUFFIX = ".tmp"

HEAD_BYTES = 8192
"""How much of a file's start is hashed into its identity (Picard does the same)."""

_DISK_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
_NOT_ALLOWED = {errno.EACCES, errno.EPERM, errno.EROFS}


@dataclass(frozen=True)
class FileIdentity:
    """What a file looked like when it was read; a different identity means it changed.

    Size and modification time catch most changes; the inode catches a file replaced by
    another, and a hash of the first 8 KiB catches a tool that rewrites the metadata at the
    start of a photo but keeps its size and time (``exiftool -P``). The last two are None
    when not known (an identity built from a directory listing); then they are not compared.
    """

    size: int
    mtime_ns: int
    inode: int | None = None
    head: str | None = None  # sha256 of the first HEAD_BYTES, hex

    @classmethod
    def of(cls, path: Path) -> FileIdentity:
        """The identity of ``path`` now; FileMissingError when it is not there."""
        try:
            info = os.stat(path)
            with open(path, "rb") as file:
                head = hashlib.sha256(file.read(HEAD_BYTES)).hexdigest()
        except FileNotFoundError:
            raise FileMissingError(
                path, "the file is no longer there; it may have been moved, renamed or deleted."
            ) from None
        except IsADirectoryError:
            raise StorageError(path, "this is a folder, not a file.") from None
        except OSError as error:
            raise os_error(path, error, "check the file") from error
        return cls(info.st_size, info.st_mtime_ns, info.st_ino, head)

    @classmethod
    def of_optional(cls, path: Path) -> FileIdentity | None:
        """Like ``of`` but None when the file does not exist (yet)."""
        try:
            return cls.of(path)
        except FileMissingError:
            return None

    def matches(self, other: FileIdentity) -> bool:
        """True when both describe the same file contents (unknown parts are not compared)."""
        if (self.size, self.mtime_ns) != (other.size, other.mtime_ns):
            return False
        if self.inode is not None and other.inode is not None and self.inode != other.inode:
            return False
        return self.head is None or other.head is None or self.head == other.head


def display_name(path: Path) -> str:
    """A file name that can always be printed, even when it is not valid UTF-8: each byte that
    is not UTF-8 shown as \\xNN (b"caf\\xe9.jpg" -> "caf\\xe9.jpg"), never dropped or replaced."""
    return os.fsencode(path.name).decode("utf-8", "backslashreplace")


def display_path(path: Path) -> str:
    """display_name for the whole path."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def os_error(path: Path, error: OSError, doing: str) -> StorageError:
    """Turn an OSError into the StorageError subclass a user can act on."""
    reason = error.strerror or str(error)
    if error.errno in _DISK_FULL:
        return DiskFullError(
            path, f"the disk is full ({reason}); free some space and try again. Nothing changed."
        )
    if error.errno in _NOT_ALLOWED:
        return ReadOnlyError(
            path,
            f"not allowed to write here ({reason}); make it writable or choose another way "
            "to store captions.",
        )
    if error.errno == errno.ENOENT:
        return FileMissingError(
            path, f"the file or its folder is no longer there ({reason}); check it was not moved."
        )
    return StorageError(path, f"could not {doing} ({reason}).")


def check_identity(path: Path, expected: FileIdentity | None) -> FileIdentity:
    """The identity of ``path``, raising FileChangedError when it differs from ``expected``."""
    current = FileIdentity.of(path)
    if expected is not None and not current.matches(expected):
        raise FileChangedError(
            path,
            "the file changed on disk since PhotoScribe read it (another program saved it?); "
            "nothing was written. Reload it and try again.",
        )
    return current


def check_still_absent(path: Path) -> None:
    """Raise FileChangedError when ``path``, absent when we looked, has appeared since."""
    if os.path.lexists(path):
        raise FileChangedError(
            path,
            "another program created this file while PhotoScribe was saving; nothing was "
            "written. Check it and try again.",
        )


def read_bytes(path: Path, expected: FileIdentity | None = None) -> tuple[bytes, FileIdentity]:
    """The whole file and the identity it had while being read (checked before and after)."""
    before = check_identity(path, expected)
    try:
        with open(path, "rb") as file:
            data = file.read()
    except FileNotFoundError:
        raise FileMissingError(
            path, "the file is no longer there; it may have been moved, renamed or deleted."
        ) from None
    except IsADirectoryError:
        raise StorageError(path, "this is a folder, not a file.") from None
    except OSError as error:
        raise os_error(path, error, "read the file") from error
    check_identity(path, before)
    return data, before


def ensure_writable(path: Path) -> None:
    """Refuse to replace an existing file its owner made read-only (os.replace would not).

    A file with no write permission bits counts as read-only even for an administrator,
    who could write it anyway: the owner's intent is what matters.
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as error:
        raise os_error(path, error, "check the file") from error
    if not (mode & 0o222) or not os.access(path, os.W_OK):
        raise ReadOnlyError(
            path,
            "the file is read-only, so PhotoScribe leaves it alone; make it writable "
            "or store captions another way.",
        )


def atomic_write(
    target: Path,
    data: bytes,
    *,
    mode_from: Path | None = None,
    before_replace: Callable[[], None] | None = None,
) -> None:
    """Write ``data`` to ``target`` so that it is either fully written or not changed at all.

    The data goes to a hidden temporary file in the same folder, which is flushed, fsynced
    and given the permissions (and, where allowed, owner) of ``target`` if it exists, else of
    ``mode_from``, before ``os.replace`` puts it in place. ``before_replace`` runs just before
    the replace (an identity check); if it or anything else fails, the temporary file is removed
    and ``target`` is left exactly as it was.
    """
    folder = target.parent
    try:
        fd, temp_name = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=TEMP_SUFFIX, dir=folder)
    except OSError as error:
        raise os_error(folder, error, "create a temporary file in this folder") from error
    temp = Path(temp_name)
    try:
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            if target.exists():
                _copy_permissions(temp, target, keep_exec=True)
            else:
                _copy_permissions(temp, mode_from, keep_exec=False)
        except OSError as error:
            raise os_error(target, error, "write the file") from error
        if before_replace is not None:
            before_replace()
        try:
            os.replace(temp, target)
        except OSError as error:
            raise os_error(target, error, "replace the file") from error
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise
    _fsync_folder(folder)
    log.debug("Wrote %s (%d bytes)", target, len(data))


def _copy_permissions(temp: Path, source: Path | None, *, keep_exec: bool) -> None:
    """Give the temporary file the permission bits (and owner, if we may) of ``source``."""
    if source is None:
        os.chmod(temp, 0o644)
        return
    info = os.stat(source)
    mode = stat.S_IMODE(info.st_mode)
    if not keep_exec:
        # A new sidecar copies its photo's bits, but stays writable by its owner (a read-only
        # photo is a reason to use sidecars) and is never executable.
        mode = (mode | stat.S_IWUSR) & 0o666
    os.chmod(temp, mode)
    if hasattr(os, "chown"):
        temp_info = os.stat(temp)
        if (temp_info.st_uid, temp_info.st_gid) != (info.st_uid, info.st_gid):
            # Only root may give a file away; an ordinary user keeps ownership, which is fine.
            with contextlib.suppress(OSError):
                os.chown(temp, info.st_uid, info.st_gid)


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable where the platform allows it (not on Windows)."""
    if os.name != "posix":
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
