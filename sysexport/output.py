"""Writing an image safely: to a temporary file beside the target, renamed into place.

A failed build (bad input found late, a full disk, a source file that changed) leaves no
partial image and no temporary file, and does not touch an existing output.  When the
caller gives an open file handle instead, the image is written into it in place (the
file is only ever enlarged), since the caller owns that file.
"""
from __future__ import annotations

import os
import tempfile
from typing import BinaryIO

from .errors import InvalidInputError, SysExportError


class Output:
    """Context manager yielding a writable file descriptor for an image.

    Use ``set_size()`` once the layout is known: the file is sized with ftruncate so
    every region never written stays a hole.
    """

    def __init__(self, filename: str | os.PathLike | None = None, filehandle: BinaryIO | None = None) -> None:
        if (filename is None) == (filehandle is None):
            raise InvalidInputError("output: give exactly one of filename or filehandle")
        self.filename = os.fspath(filename) if filename is not None else None
        self.filehandle = filehandle
        self.fd = -1
        self._tmp: str | None = None

    def __enter__(self) -> "Output":
        if self.filehandle is not None:
            try:
                self.filehandle.flush()
            except (AttributeError, ValueError):
                pass
            try:
                self.fd = self.filehandle.fileno()
            except (AttributeError, OSError) as e:
                raise InvalidInputError(f"filehandle: needs a real file with a descriptor ({e})") from e
            return self
        target_dir = os.path.dirname(os.path.abspath(self.filename))
        if os.path.isdir(self.filename):
            raise InvalidInputError(f"{self.filename}: output path is a directory")
        try:
            self.fd, self._tmp = tempfile.mkstemp(prefix=f".{os.path.basename(self.filename)}.",
                                                  suffix=".tmp", dir=target_dir)
        except OSError as e:
            raise SysExportError(f"{self.filename}: cannot create the output beside it: {e.strerror}") from e
        return self

    def set_size(self, size_bytes: int) -> None:
        """Make the output at least ``size_bytes`` long (holes, not written zeros)."""
        try:
            if os.fstat(self.fd).st_size < size_bytes:
                os.ftruncate(self.fd, size_bytes)
        except OSError as e:
            raise SysExportError(f"{self.describe()}: cannot size output to {size_bytes} bytes: {e.strerror}") from e

    def describe(self) -> str:
        return self.filename or getattr(self.filehandle, "name", "filehandle")

    def __exit__(self, exc_type, exc, tb) -> None:
        if self._tmp is None:
            return
        tmp, self._tmp = self._tmp, None
        if exc_type is None:
            try:
                os.fchmod(self.fd, 0o644 & ~_umask())
                os.close(self.fd)
                os.replace(tmp, self.filename)
            except OSError as e:
                _unlink_quiet(tmp)
                raise SysExportError(f"{self.filename}: cannot move the finished image into place: {e.strerror}") from e
        else:
            os.close(self.fd)
            _unlink_quiet(tmp)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _unlink_quiet(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
