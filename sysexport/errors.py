"""Exceptions raised by sysexport.

Every error a caller can see is a :class:`SysExportError`.  Messages name the path or
field concerned, what was expected and what was found.
"""
from __future__ import annotations


class SysExportError(Exception):
    """Base class of every error sysexport raises on purpose."""


class InvalidInputError(SysExportError, ValueError):
    """The caller asked for something the format cannot hold (bad name, mode, key...)."""


class CallOrderError(InvalidInputError):
    """Calls came in an order the writer cannot honour: add() after plan(), finish() twice,
    write() with a plan from before the last plan()."""


class LayoutError(SysExportError):
    """The requested content does not fit the requested layout (size, alignment, overlap)."""


class InvalidImageError(SysExportError):
    """An image being read does not follow its format's rules."""


class InternalError(SysExportError):
    """A check of sysexport's own invariants failed: a bug, please report it."""


class UsageError(InvalidInputError):
    """A command line the ``sysexport`` command cannot act on (an option's value in the
    wrong form, an unknown partition type): the CLI exits with status 2, as argparse does."""


class OutputError(SysExportError):
    """The image could not be written where it was to go: the output could not be created,
    opened, sized, written, synced or renamed (ENOSPC, EIO, EROFS, EACCES...), or the target
    cannot take an image (a mounted device, one too small, a terminal).  ``path`` is the
    output, ``errno`` the error number when there is one.  A new or replaced file is then
    left as it was (sysexport/output.py)."""

    def __init__(self, message: str, *, path: str | None = None, errno: int | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.errno = errno


class SourceError(SysExportError):
    """A file's bytes could not be read when the image was written: the source vanished,
    changed size since it was added, or a read failed (EIO).  ``path`` names the source,
    ``errno`` the error number when there is one (sysexport/data.py)."""

    def __init__(self, message: str, *, path: str | None = None, errno: int | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.errno = errno
