"""Writing an image safely: to a temporary file beside the target, renamed into place.

A failed build (bad input found late, a full disk, a source file that changed) leaves no
partial image and no temporary file, and does not touch an existing output.  When the
caller gives an open file handle instead, the image is written into it in place (the
file is only ever enlarged), since the caller owns that file.  A writer's ``finish()``
opens one of these around its ``write(fd, plan)`` (docs/architecture.md).
"""
from __future__ import annotations

import os
import tempfile
from types import TracebackType
from typing import IO

from .errors import InternalError, InvalidInputError, SysExportError


class Output:
    """Context manager yielding a writable file descriptor for an image.

    Use ``set_size()`` once the layout is known: the file is sized with ftruncate so
    every region never written stays a hole.
    """

    def __init__(self, filename: str | os.PathLike[str] | None = None,
                 filehandle: IO[bytes] | None = None) -> None:
        if (filename is None) == (filehandle is None):
            raise InvalidInputError("output: give exactly one of filename or filehandle")
        self.filename: str | None = os.fspath(filename) if filename is not None else None
        self.filehandle = filehandle
        self.fd = -1
        self._tmp: str | None = None

    def __enter__(self) -> Output:
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
        filename = self._target()
        target_dir = os.path.dirname(os.path.abspath(filename))
        if os.path.isdir(filename):
            raise InvalidInputError(f"{filename}: output path is a directory")
        try:
            self.fd, self._tmp = tempfile.mkstemp(prefix=f".{os.path.basename(filename)}.",
                                                  suffix=".tmp", dir=target_dir)
        except OSError as e:
            raise SysExportError(f"{filename}: cannot create the output beside it: {e.strerror}") from e
        return self

    def _target(self) -> str:
        """The output path (set whenever there is no file handle: __init__ takes exactly one)."""
        if self.filename is None:
            raise InternalError("output: neither filename nor filehandle")
        return self.filename

    def set_size(self, size_bytes: int) -> None:
        """Make the output at least ``size_bytes`` long (holes, not written zeros)."""
        try:
            if os.fstat(self.fd).st_size < size_bytes:
                os.ftruncate(self.fd, size_bytes)
        except OSError as e:
            raise SysExportError(f"{self.describe()}: cannot size output to {size_bytes} bytes: {e.strerror}") from e

    def describe(self) -> str:
        return self.filename or str(getattr(self.filehandle, "name", "filehandle"))

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._tmp is None:
            return
        tmp, self._tmp = self._tmp, None
        if exc_type is None:
            filename = self._target()
            try:
                os.fchmod(self.fd, 0o644 & ~_umask())
                os.close(self.fd)
                os.replace(tmp, filename)
            except OSError as e:
                _unlink_quiet(tmp)
                raise SysExportError(f"{filename}: cannot move the finished image into place: {e.strerror}") from e
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
