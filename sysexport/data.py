"""Where file bytes come from, and how they are streamed into an image.

A file's content is described by a :class:`DataSource`; nothing is read when a file is
added.  At write time :meth:`DataSource.write_to` streams it into the output file at a
given byte offset in large chunks, using ``os.copy_file_range`` where the kernel has it,
skipping the holes of a sparse source (so the image keeps them as holes), and failing
loudly on a short read (docs/architecture.md, "The rooms": data sources).
"""
from __future__ import annotations

import errno
import io
import os
from contextvars import ContextVar
from dataclasses import dataclass
from typing import BinaryIO, Callable, Iterator, Union, cast

from .errors import InvalidInputError, SysExportError

CHUNK_BYTES = 4 * 1024 * 1024
"""Size of one copy step: large enough to amortise syscalls, small enough to stay flat in memory."""
SMALL_FILE_BYTES = 64 * 1024
"""Host files up to this size are copied with one pread and one pwrite (fewer system calls
than copy_file_range with hole probing; an all-zero small file still stays a hole)."""


PROGRESS: ContextVar[Callable[[int], None] | None] = ContextVar("sysexport_progress", default=None)
"""Optional callback told how many bytes of file data were just written (progress bars)."""


def report_progress(n_bytes: int) -> None:
    """Tell the current progress callback (if any) that ``n_bytes`` more were written."""
    hook = PROGRESS.get()
    if hook is not None and n_bytes:
        hook(n_bytes)


class DataSource:
    """Abstract source of a file's bytes (Sys::Export's ``data`` / ``data_path``)."""

    __slots__ = ()
    size_bytes: int

    def describe(self) -> str:  # pragma: no cover - overridden
        return "data"

    def write_to(self, out_fd: int, offset: int) -> None:
        """Write exactly ``size_bytes`` bytes at ``offset`` of ``out_fd``."""
        raise NotImplementedError

    def read_all(self, limit: int = 1 << 20) -> bytes:
        """Return the whole content; only for small sources (boot code, symlink targets)."""
        raise NotImplementedError

    def iter_chunks(self, chunk_bytes: int = CHUNK_BYTES) -> Iterator[bytes]:
        """Yield the content in chunks (for checksums and compressed output)."""
        raise NotImplementedError


@dataclass(eq=False)
class BytesData(DataSource):
    """Content held in memory (``data`` key)."""

    data: bytes

    def __post_init__(self) -> None:
        if isinstance(self.data, (bytearray, memoryview)):
            self.data = bytes(self.data)
        self.size_bytes = len(self.data)

    def describe(self) -> str:
        return f"{self.size_bytes} bytes of in-memory data"

    def write_to(self, out_fd: int, offset: int) -> None:
        view = memoryview(self.data)
        # All-zero chunks are left as holes: the output was sized with truncate.
        for pos in range(0, len(view), CHUNK_BYTES):
            n = min(CHUNK_BYTES, len(view) - pos)
            if self.data.count(0, pos, pos + n) != n:
                pwrite_all(out_fd, view[pos:pos + n], offset + pos)
        report_progress(self.size_bytes)

    def read_all(self, limit: int = 1 << 20) -> bytes:
        return self.data

    def iter_chunks(self, chunk_bytes: int = CHUNK_BYTES) -> Iterator[bytes]:
        for pos in range(0, len(self.data), chunk_bytes):
            yield self.data[pos:pos + chunk_bytes]


@dataclass(eq=False, slots=True)
class PathData(DataSource):
    """Content of a host file (``data_path`` key), opened only when the image is written.

    ``size_bytes`` is the size seen when the file was added; if the file has another size
    when it is read, the build fails rather than writing a truncated or overlong file.
    """

    path: str
    size_bytes: int = -1

    def __post_init__(self) -> None:
        self.path = os.fsdecode(self.path)
        if self.size_bytes < 0:
            try:
                self.size_bytes = os.stat(self.path).st_size
            except OSError as e:
                raise InvalidInputError(f"{self.path}: cannot stat data_path: {e.strerror}") from e

    def describe(self) -> str:
        return self.path

    def _open(self) -> int:
        fd = _open_source(self.path)
        size_now = os.fstat(fd).st_size
        if size_now != self.size_bytes:
            os.close(fd)
            raise SysExportError(
                f"{self.path}: source file changed size since it was added: "
                f"expected {self.size_bytes} bytes, found {size_now}")
        return fd

    def write_to(self, out_fd: int, offset: int) -> None:
        if self.size_bytes <= SMALL_FILE_BYTES:
            data = self.read_all(SMALL_FILE_BYTES)
            if data.count(0) != len(data):
                pwrite_all(out_fd, data, offset)
        else:
            fd = self._open()
            try:
                _copy_fd_range(fd, out_fd, offset, self.size_bytes, self.path)
            finally:
                os.close(fd)
        report_progress(self.size_bytes)

    def read_all(self, limit: int = 1 << 20) -> bytes:
        if self.size_bytes > limit:
            raise InvalidInputError(f"{self.path}: {self.size_bytes} bytes, at most {limit} expected here")
        if self.size_bytes <= SMALL_FILE_BYTES:
            # One read of one byte more than expected finds a changed size without fstat.
            path = self.path
            fd = _open_source(path)
            try:
                data = os.pread(fd, self.size_bytes + 1, 0)
                if len(data) == self.size_bytes:
                    return data
                size_now = os.fstat(fd).st_size
            finally:
                os.close(fd)
            if size_now == self.size_bytes:     # a short read of an unchanged file: read on
                return self._read_checked()
            raise SysExportError(
                f"{path}: source file changed size since it was added: "
                f"expected {self.size_bytes} bytes, found {size_now}")
        return self._read_checked()

    def _read_checked(self) -> bytes:
        fd = self._open()
        try:
            data = _pread_all(fd, self.size_bytes, 0, self.path)
        finally:
            os.close(fd)
        return data

    def iter_chunks(self, chunk_bytes: int = CHUNK_BYTES) -> Iterator[bytes]:
        fd = self._open()
        try:
            pos = 0
            while pos < self.size_bytes:
                n = min(chunk_bytes, self.size_bytes - pos)
                yield _pread_all(fd, n, pos, self.path)
                pos += n
        finally:
            os.close(fd)


class TreeFileData(PathData):
    """A :class:`PathData` for a file found by walking a host tree: the path is kept as the
    tree's root and the entry's relative name (strings shared with the tree walk and the
    file-info record) instead of one full path string per file."""

    __slots__ = ("_root", "_rel")

    def __init__(self, root: str, rel: str, size_bytes: int) -> None:
        self._root = root
        self._rel = rel
        self.size_bytes = size_bytes

    @property
    def path(self) -> str:  # type: ignore[override]
        return f"{self._root}/{self._rel}"


@dataclass(eq=False)
class FileObjData(DataSource):
    """Content read from an open binary file object, from ``start`` for ``size_bytes`` bytes."""

    fileobj: BinaryIO
    size_bytes: int
    start: int = 0

    def describe(self) -> str:
        return str(getattr(self.fileobj, "name", "file object"))

    def iter_chunks(self, chunk_bytes: int = CHUNK_BYTES) -> Iterator[bytes]:
        self.fileobj.seek(self.start)
        remaining = self.size_bytes
        while remaining:
            piece = self.fileobj.read(min(chunk_bytes, remaining))
            if not piece:
                raise SysExportError(
                    f"{self.describe()}: short read: expected {self.size_bytes} bytes, "
                    f"stream ended {remaining} bytes early")
            remaining -= len(piece)
            yield piece

    def write_to(self, out_fd: int, offset: int) -> None:
        try:
            src_fd = self.fileobj.fileno()
        except (AttributeError, OSError, io.UnsupportedOperation):
            src_fd = None
        if src_fd is not None:
            _copy_fd_range(src_fd, out_fd, offset, self.size_bytes, self.describe(), self.start)
            report_progress(self.size_bytes)
            return
        pos = offset
        for piece in self.iter_chunks():
            if piece.count(0) != len(piece):
                pwrite_all(out_fd, piece, pos)
            pos += len(piece)
        report_progress(self.size_bytes)

    def read_all(self, limit: int = 1 << 20) -> bytes:
        if self.size_bytes > limit:
            raise InvalidInputError(f"{self.describe()}: {self.size_bytes} bytes, at most {limit} expected here")
        return b"".join(self.iter_chunks())


def make_source(data: object = None, data_path: object = None, size: int | None = None,
                where: str = "?") -> DataSource | None:
    """Build a :class:`DataSource` from the file-info keys ``data`` / ``data_path``."""
    if data is not None and data_path is not None:
        raise InvalidInputError(f"{where}: give either data or data_path, not both")
    if data_path is not None:
        if not isinstance(data_path, (str, bytes, os.PathLike)):
            raise InvalidInputError(f"{where}: data_path must be a path, found {type(data_path).__name__}")
        path_src = PathData(os.fsdecode(data_path), -1 if size is None else size)
        if size is None:
            return path_src
        try:
            actual = os.stat(path_src.path).st_size
        except OSError as e:
            raise InvalidInputError(f"{where}: data_path {path_src.path}: {e.strerror}") from e
        if actual != size:
            raise InvalidInputError(f"{where}: size is {size} but data_path {path_src.path} has {actual} bytes")
        return path_src
    if data is None:
        return None
    src: DataSource
    if isinstance(data, DataSource):
        src = data
    elif isinstance(data, str):
        src = BytesData(data.encode("utf-8"))
    elif isinstance(data, (bytes, bytearray, memoryview)):
        src = BytesData(bytes(data))
    elif hasattr(data, "read"):
        fileobj = cast(BinaryIO, data)  # duck-typed: read(), and seek() when it is read
        if size is None:
            try:
                size = os.fstat(fileobj.fileno()).st_size - fileobj.tell()
            except (AttributeError, OSError, io.UnsupportedOperation):
                raise InvalidInputError(f"{where}: a file object as data needs a size") from None
        src = FileObjData(fileobj, size, fileobj.tell() if hasattr(fileobj, "tell") else 0)
    else:
        raise InvalidInputError(f"{where}: data must be bytes, str or a file object, found {type(data).__name__}")
    if size is not None and size != src.size_bytes:
        raise InvalidInputError(f"{where}: size is {size} but data holds {src.size_bytes} bytes")
    return src


_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)
_NOATIME = getattr(os, "O_NOATIME", 0)


def _open_source(path: str) -> int:
    """Open a source file for reading without updating its access time where allowed
    (O_NOATIME, Linux, for the file's owner): reading the tree for one image must not change
    the atime that the next build of the same tree records (Rock Ridge TF, FAT)."""
    global _NOATIME
    if _NOATIME:
        try:
            return os.open(path, _OPEN_FLAGS | _NOATIME)
        except PermissionError:
            pass                        # not the owner: open normally
        except OSError as e:
            if e.errno != errno.EINVAL:
                raise SysExportError(f"{path}: cannot open source file: {e.strerror}") from e
            _NOATIME = 0                # not supported here
    try:
        return os.open(path, _OPEN_FLAGS)
    except OSError as e:
        raise SysExportError(f"{path}: cannot open source file: {e.strerror}") from e


Buffer = Union[bytes, bytearray, memoryview]
"""Bytes to write (os.pwrite takes any of them)."""


def pwrite_all(fd: int, buf: Buffer, offset: int) -> None:
    """Write all of ``buf`` at ``offset`` of ``fd`` (os.pwrite may write less at a time)."""
    view = memoryview(buf)
    while view:
        n = os.pwrite(fd, view, offset)
        view = view[n:]
        offset += n


_pwrite_all = pwrite_all
"""The former private name, still imported by the partition writers."""


def _pread_all(fd: int, n: int, offset: int, name: str) -> bytes:
    parts: list[bytes] = []
    got = 0
    while got < n:
        piece = os.pread(fd, min(n - got, CHUNK_BYTES), offset + got)
        if not piece:
            raise SysExportError(f"{name}: short read: expected {n} bytes at offset {offset}, got {got}")
        parts.append(piece)
        got += len(piece)
    return b"".join(parts)


def _data_segments(fd: int, start: int, length: int) -> Iterator[tuple[int, int]]:
    """Yield (offset, length) of the data (non-hole) regions of fd in [start, start+length)."""
    end = start + length
    pos = start
    seek_data = getattr(os, "SEEK_DATA", None)
    if seek_data is None:
        yield start, length
        return
    while pos < end:
        try:
            data_at = os.lseek(fd, pos, seek_data)
        except OSError:
            # ENXIO: no data after pos (the rest is a hole); EINVAL: not supported.
            try:
                os.lseek(fd, pos, os.SEEK_HOLE)
            except OSError:
                yield pos, end - pos
            return
        if data_at >= end:
            return
        hole_at = min(os.lseek(fd, data_at, os.SEEK_HOLE), end)
        yield data_at, hole_at - data_at
        pos = hole_at


_HAVE_COPY_FILE_RANGE = hasattr(os, "copy_file_range")


def _copy_fd_range(src_fd: int, out_fd: int, out_offset: int, length: int, name: str,
                   src_offset: int = 0) -> None:
    """Copy ``length`` bytes of src_fd (from src_offset) to out_fd at out_offset, keeping holes."""
    global _HAVE_COPY_FILE_RANGE
    src_size = os.fstat(src_fd).st_size
    if src_size < src_offset + length:
        raise SysExportError(f"{name}: short read: expected {length} bytes, the file has {src_size - src_offset}")
    for seg_start, seg_len in _data_segments(src_fd, src_offset, length):
        dst = out_offset + (seg_start - src_offset)
        done = 0
        while done < seg_len:
            want = min(seg_len - done, 1 << 30)
            n = 0
            if _HAVE_COPY_FILE_RANGE:
                try:
                    n = os.copy_file_range(src_fd, out_fd, want, seg_start + done, dst + done)
                except OSError:
                    _HAVE_COPY_FILE_RANGE = False
                    n = 0
            if n == 0:
                chunk = os.pread(src_fd, min(want, CHUNK_BYTES), seg_start + done)
                if not chunk:
                    raise SysExportError(f"{name}: short read at offset {seg_start + done}: file shrank while copying")
                pwrite_all(out_fd, chunk, dst + done)
                n = len(chunk)
            done += n
