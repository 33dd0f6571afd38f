"""Typed errors with messages a user understands: which file, what is wrong, what to do."""

from __future__ import annotations

from pathlib import Path


class PhotoScribeError(Exception):
    """Base class for every error PhotoScribe reports to a user."""

    def __init__(self, path: str | Path | None, problem: str, *, cli_hint: str = "") -> None:
        self.path = Path(path) if path is not None else None
        self.problem = problem
        # What to do about it on the command line (an option, a command); the message itself
        # names no option, since the app shows it too. The CLI prints both.
        self.cli_hint = cli_hint
        super().__init__(f"{self.path}: {problem}" if self.path is not None else problem)

    def for_cli(self) -> str:
        """The message with the command-line hint, for the `photoscribe` command."""
        return f"{self} {self.cli_hint}" if self.cli_hint else str(self)


class ImageError(PhotoScribeError):
    """A photo could not be opened or decoded."""


class CheckpointError(PhotoScribeError):
    """A model weights file is missing, damaged or of the wrong kind."""


class NoModelError(PhotoScribeError):
    """No trained caption model is installed."""


class StorageError(PhotoScribeError):
    """A caption could not be read from or written to a store."""


class FileChangedError(StorageError):
    """The file on disk is no longer the one that was read; nothing was written."""


class CaptionExistsError(StorageError):
    """The photo already has a caption and overwriting was not asked for."""


class FileMissingError(StorageError):
    """A photo, sidecar or folder is not there (moved, renamed or deleted)."""


class ReadOnlyError(StorageError):
    """A photo, sidecar or folder may not be written to."""


class UnsupportedFormatError(StorageError):
    """The file is not a kind of photo whose captions PhotoScribe can read or write."""


class CorruptMetadataError(StorageError):
    """Existing metadata or a sidecar is damaged, so writing could lose what is in it."""


class DiskFullError(StorageError):
    """The disk ran out of space while writing; the original was left untouched."""


class InvalidCaptionError(StorageError):
    """The caption cannot be stored as given (empty, too long, or with forbidden characters)."""


class LibraryIndexError(PhotoScribeError):
    """The library index (the database of captioned photos) cannot be used."""


class IndexDamagedError(LibraryIndexError):
    """The library index file is damaged or not a PhotoScribe index; the stores still hold
    every caption, so it can be rebuilt from them."""


class IndexLockedError(LibraryIndexError):
    """Another program holds the library index open for writing."""


class ReaderError(ImageError, StorageError):
    """PhotoScribe's image reader (a separate process that decodes photos and reads and writes
    their metadata) could not handle a file; an ImageError when decoding, a StorageError when
    reading or writing a caption."""


class ReaderCrashedError(ReaderError):
    """The image reader crashed or stopped responding on a file; the file was left untouched and
    is not read again until it changes or PhotoScribe is updated."""


class Cancelled(Exception):
    """Raised inside a batch when its cancel token is set; the run stops quietly (never shown)."""
