"""Where file bytes come from, and how they are streamed into an image.

A file's content is described by a :class:`DataSource`; nothing is read when a file is
added.  At write time :meth:`DataSource.write_to` streams it into the output file at a
given byte offset in large chunks, by the kernel where it can (long runs spliced through a
pipe of 1 MiB, sysexport/splicing.py; the rest with ``os.copy_file_range``), skipping the
holes of a sparse source and all-zero chunks (the output reads as zeros there: a fresh
file, or a range :meth:`sysexport.output.Output.prepare` zeroed), and failing loudly on a
short read (docs/architecture.md, "The rooms": data sources).

A ``data_path`` must be a regular file: a FIFO, a socket, a character or block device is
refused when it is added (``InvalidInputError``: "not a regular file").  A file whose size
says nothing of its content (a /proc file says 0, a /sys file 4096) is read whole when it
is added through the file-info key ``data_path``, up to :data:`PSEUDO_FILE_MAX_BYTES`, and
stored as those bytes; given to :class:`PathData` directly (read only when the image is
written) it is refused.  A source that
vanished, changed size or cannot be read (EIO) when the image is written raises
:class:`~sysexport.errors.SourceError` naming it.
"""
from __future__ import annotations

import errno
import io
import os
import stat
from contextvars import ContextVar
from dataclasses import dataclass
from typing import BinaryIO, Callable, Iterator, Union, cast

from .errors import InvalidInputError, SourceError
from .splicing import SPLICE_MIN_BYTES, SplicePipe

CHUNK_BYTES = 4 * 1024 * 1024
"""Size of one copy step: large enough to amortise syscalls, small enough to stay flat in memory."""
SMALL_FILE_BYTES = 64 * 1024
"""Host files up to this size are copied with one pread and one pwrite (fewer system calls
than copy_file_range with hole probing; an all-zero small file still stays a hole)."""
PSEUDO_FILE_MAX_BYTES = 1 << 20
"""A /proc or /sys file (or one that reports size 0) is read whole when added as
``data_path``, up to this many bytes."""


PROGRESS: ContextVar[Callable[[int], None] | None] = ContextVar("sysexport_progress", default=None)
"""Optional callback told how many bytes of file data were just written (progress bars,
sysexport/progress.py), or read by the read side's ``verify`` and ``extract``.  It is called
once per chunk of at most :data:`CHUNK_BYTES` (a hole of a sparse source in one call as it
is passed), so a single large file moves it steadily; a writer may call it from a second
thread (the hybrid's ESP), so a callback must be thread-safe."""


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
            report_progress(n)

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
            st = stat_source(self.path, "data_path")
            if is_pseudo(st) and (st.st_size or pseudo_content(self.path) is not None):
                raise InvalidInputError(
                    f"{self.path}: data_path reports size {st.st_size} but its content is made when read "
                    "(a /proc or /sys file), so it cannot be read when the image is written; give its bytes "
                    "as data")
            self.size_bytes = st.st_size

    def describe(self) -> str:
        return self.path

    def _open(self) -> int:
        fd = _open_source(self.path)
        size_now = os.fstat(fd).st_size
        if size_now != self.size_bytes:
            os.close(fd)
            raise SourceError(
                f"{self.path}: source file changed size since it was added: "
                f"expected {self.size_bytes} bytes, found {size_now}", path=self.path)
        return fd

    def write_to(self, out_fd: int, offset: int) -> None:
        if self.size_bytes <= SMALL_FILE_BYTES:
            data = self.read_all(SMALL_FILE_BYTES)
            if data.count(0) != len(data):
                pwrite_all(out_fd, data, offset)
            report_progress(self.size_bytes)
        else:
            fd = self._open()
            try:
                _copy_fd_range(fd, out_fd, offset, self.size_bytes, self.path)    # reports each chunk
            finally:
                os.close(fd)

    def read_all(self, limit: int = 1 << 20) -> bytes:
        if self.size_bytes > limit:
            raise InvalidInputError(f"{self.path}: {self.size_bytes} bytes, at most {limit} expected here")
        if self.size_bytes <= SMALL_FILE_BYTES:
            # One read of one byte more than expected finds a changed size without fstat.
            path = self.path
            fd = _open_source(path)
            try:
                data = _pread(fd, self.size_bytes + 1, 0, path)
                if len(data) == self.size_bytes:
                    return data
                size_now = os.fstat(fd).st_size
            finally:
                os.close(fd)
            if size_now == self.size_bytes:     # a short read of an unchanged file: read on
                return self._read_checked()
            raise SourceError(
                f"{path}: source file changed size since it was added: "
                f"expected {self.size_bytes} bytes, found {size_now}", path=path)
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
        try:
            self.fileobj.seek(self.start)
        except OSError as e:
            raise _source_error(e, self.describe(), f"cannot seek to byte {self.start}") from e
        remaining = self.size_bytes
        while remaining:
            try:
                piece = self.fileobj.read(min(chunk_bytes, remaining))
            except OSError as e:
                raise _source_error(e, self.describe(), f"cannot read at byte {self.size_bytes - remaining}") from e
            if not piece:
                raise SourceError(
                    f"{self.describe()}: short read: expected {self.size_bytes} bytes, "
                    f"stream ended {remaining} bytes early", path=self.describe())
            remaining -= len(piece)
            yield piece

    def write_to(self, out_fd: int, offset: int) -> None:
        try:
            src_fd = self.fileobj.fileno()
        except (AttributeError, OSError, io.UnsupportedOperation):
            src_fd = None
        if src_fd is not None:
            # The copy finds holes with lseek(SEEK_DATA), which moves the descriptor's file
            # position under the caller's file object: put it back where it was.
            try:
                position = os.lseek(src_fd, 0, os.SEEK_CUR)
            except OSError:
                position = None
            try:
                _copy_fd_range(src_fd, out_fd, offset, self.size_bytes, self.describe(), self.start)
            finally:
                if position is not None:
                    os.lseek(src_fd, position, os.SEEK_SET)
            return
        pos = offset
        for piece in self.iter_chunks():
            if piece.count(0) != len(piece):
                pwrite_all(out_fd, piece, pos)
            pos += len(piece)
            report_progress(len(piece))

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
        path = os.fsdecode(data_path)
        st = stat_source(path, "data_path", where)
        actual: int = st.st_size
        path_src: DataSource
        content = pseudo_content(path, where) if is_pseudo(st) else None
        if content is not None:
            # /proc, /sys: size 0, content generated when read; taken now, as it is.
            path_src = BytesData(content)
            actual = path_src.size_bytes
        else:
            path_src = PathData(path, actual)
        if size is not None and actual != size:
            raise InvalidInputError(f"{where}: size is {size} but data_path {path} has {actual} bytes")
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


def stat_source(path: str, key: str = "data_path", where: str | None = None) -> os.stat_result:
    """stat() a file named as a source (symlinks followed); InvalidInputError unless it is a
    regular file (a FIFO would block the build, a device or socket has no fixed content)."""
    label = f"{where}: {key} {path}" if where else f"{path}: {key}"
    try:
        st = os.stat(path)
    except OSError as e:
        raise InvalidInputError(f"{label}: cannot stat: {e.strerror} "
                                f"({errno.errorcode.get(e.errno or 0, e.errno)})") from e
    if not stat.S_ISREG(st.st_mode):
        raise InvalidInputError(f"{label}: not a regular file (it is a {_kind(st.st_mode)}); file data must "
                                "come from a regular file, or be given as data")
    return st


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "directory"), (stat.S_ISFIFO, "FIFO"), (stat.S_ISSOCK, "socket"),
                       (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device")):
        if test(mode):
            return name
    return f"file of mode {mode:#o}"


PSEUDO_FILE_SYSTEMS = frozenset({"proc", "sysfs", "debugfs", "tracefs", "securityfs", "configfs", "cgroup",
                                 "cgroup2", "bpf", "pstore", "efivarfs", "fusectl", "binfmt_misc"})
"""File systems whose files' sizes are not their contents' (/proc says 0, /sys a page)."""


def is_pseudo(st: os.stat_result) -> bool:
    """Whether a regular file's size cannot be trusted: it says 0 (and may yet have
    content), or it lives on /proc, /sys or a kin of theirs (:data:`PSEUDO_FILE_SYSTEMS`)."""
    if st.st_size == 0:
        return True
    from .targetio import fs_type
    return fs_type(st.st_dev) in PSEUDO_FILE_SYSTEMS


def pseudo_content(path: str, where: str | None = None) -> bytes | None:
    """The content of a file whose size cannot be trusted (:func:`is_pseudo`), read in
    order to its end, or None when it is empty.  /proc and /sys files say 0 or 4096 and
    have what they have when read; more than :data:`PSEUDO_FILE_MAX_BYTES` of it is an
    InvalidInputError."""
    fd = _open_source(path)
    data = bytearray()
    try:
        while len(data) <= PSEUDO_FILE_MAX_BYTES:
            try:
                piece = os.read(fd, 65536)      # in order: what /proc and /sys files expect
            except OSError as e:
                raise _source_error(e, path, f"cannot read at byte {len(data)}") from e
            if not piece:
                break
            data += piece
    finally:
        os.close(fd)
    if not data:
        return None
    if len(data) > PSEUDO_FILE_MAX_BYTES:
        label = f"{where}: data_path {path}" if where else f"{path}: data_path"
        raise InvalidInputError(f"{label}: a /proc or /sys file (or one that reports size 0) with more than "
                                f"{PSEUDO_FILE_MAX_BYTES} bytes of content; copy it to a regular file first")
    return bytes(data)


def _source_error(e: OSError, name: str, what: str) -> SourceError:
    code = e.errno or 0
    return SourceError(f"{name}: {what}: {e.strerror or os.strerror(code)} "
                       f"({errno.errorcode.get(code, code)})", path=name, errno=code or None)


def _pread(fd: int, n: int, offset: int, name: str) -> bytes:
    """os.pread of a source; an OSError (EIO) becomes a SourceError naming it."""
    try:
        return os.pread(fd, n, offset)
    except OSError as e:
        raise _source_error(e, name, f"cannot read {n} bytes at offset {offset}") from e


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
                raise _source_error(e, path, "cannot open source file") from e
            _NOATIME = 0                # not supported here
    try:
        return os.open(path, _OPEN_FLAGS)
    except OSError as e:
        raise _source_error(e, path, "cannot open source file") from e


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
        piece = _pread(fd, min(n - got, CHUNK_BYTES), offset + got, name)
        if not piece:
            raise SourceError(f"{name}: short read: expected {n} bytes at offset {offset}, got {got}", path=name)
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
    """Copy ``length`` bytes of src_fd (from src_offset) to out_fd at out_offset, keeping holes:
    a long run of data spliced through a pipe of our own (sysexport/splicing.py), the rest
    with copy_file_range, and pread and pwrite where the kernel can do neither."""
    global _HAVE_COPY_FILE_RANGE
    use_cfr = _HAVE_COPY_FILE_RANGE
    src_size = os.fstat(src_fd).st_size
    if src_size < src_offset + length:
        raise SourceError(f"{name}: short read: expected {length} bytes, the file has {src_size - src_offset}",
                          path=name)
    pipe = SplicePipe.for_output(out_fd) if length >= SPLICE_MIN_BYTES else None
    try:
        passed = src_offset                 # reported to the progress callback up to here
        for seg_start, seg_len in _data_segments(src_fd, src_offset, length):
            report_progress(seg_start - passed)     # the hole before this segment
            passed = seg_start + seg_len
            dst = out_offset + (seg_start - src_offset)
            done = 0
            if pipe is not None and seg_len >= SPLICE_MIN_BYTES:
                done = pipe.copy(src_fd, out_fd, seg_start, dst, seg_len, name,
                                 lambda e, at: _source_error(e, name, f"cannot read at offset {at}"),
                                 report_progress)           # 0: not possible between these files
                if not done:
                    pipe.close()
                    pipe = None
            while done < seg_len:
                want = min(seg_len - done, CHUNK_BYTES)
                n = 0
                if use_cfr:
                    try:
                        n = os.copy_file_range(src_fd, out_fd, want, seg_start + done, dst + done)
                    except OSError as e:
                        # Not possible between these two files: read and write from now on.  Any
                        # other error (EIO, ENOSPC): this chunk again with pread and pwrite, so
                        # that the error names its side (the source, or the output).
                        if e.errno in _NO_COPY_FILE_RANGE:
                            use_cfr = False
                            if e.errno == errno.ENOSYS:
                                _HAVE_COPY_FILE_RANGE = False
                        n = 0
                if n == 0:
                    chunk = _pread(src_fd, min(want, CHUNK_BYTES), seg_start + done, name)
                    if not chunk:
                        raise SourceError(f"{name}: short read at offset {seg_start + done}: file shrank while "
                                          "copying", path=name)
                    pwrite_all(out_fd, chunk, dst + done)
                    n = len(chunk)
                done += n
                report_progress(n)
        report_progress(src_offset + length - passed)   # a hole at the end
    finally:
        if pipe is not None:
            pipe.close()


_NO_COPY_FILE_RANGE = {errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EBADF, errno.EPERM,
                       errno.ETXTBSY, errno.EOVERFLOW}
"""copy_file_range errors that mean "not between these files" (other file systems before
Linux 5.3, a pipe, a device, an O_APPEND output), as opposed to a failed read or write."""
