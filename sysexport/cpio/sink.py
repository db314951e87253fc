"""Where a streaming newc archive's bytes go: a file descriptor, a Python stream, or a
compressor working in a second thread.

Headers and small files are gathered into writes of about :data:`GATHER_BYTES`.  Into a
fresh file of ours (uncompressed) a large file's data is copied by the kernel
(``copy_file_range``) at its offset and its holes stay holes; anywhere else every byte is
written in order.  Compression (gzip, xz with a CRC32 check, zstd) runs in a thread of its
own fed through a bounded queue (:data:`PIPELINE_CHUNKS` chunks): zlib, liblzma and zstd
release the GIL while they compress, so headers are built and files read on one core while
the other compresses.  An error of the compressing thread (a full disk) is raised in the
writer's thread at its next write or at :meth:`Sink.close`.

The compressor writes through a :class:`_Gate` that :class:`CompressSink` shuts when it
stops (finished, failed or aborted) and before its caller may close the descriptor: a
compressor left unfinished after an error would otherwise write its last block and trailer
when it is garbage collected, into whatever file has taken the descriptor's number since.
"""
from __future__ import annotations

import importlib
import os
import queue
import threading
from types import ModuleType
from typing import IO, Callable, Protocol, cast

from ..data import CHUNK_BYTES, SMALL_FILE_BYTES, DataSource, _copy_fd_range, pwrite_all, report_progress
from ..errors import InvalidInputError, SysExportError

GATHER_BYTES = 1 << 20
"""Small writes (headers, short files) are gathered into writes of about this size."""
PIPELINE_CHUNKS = 2
"""Gathered chunks waiting for the compressing thread, at most (a few MiB in flight)."""
GZIP_LEVEL = 6
"""gzip's own default level."""
XZ_PRESET = 6
"""xz's own default preset (8 MiB dictionary; the kernel allocates the dictionary it needs)."""
ZSTD_LEVEL = 9
"""Measured on a 4.5 MiB initramfs: level 9 is 30 times faster than 19 for 10 % more bytes."""


def _load_zstd() -> ModuleType | None:
    """The optional ``zstandard`` module (zstd-compressed initramfs), or None."""
    try:
        return importlib.import_module("zstandard")
    except ImportError:  # pragma: no cover - depends on the machine
        return None


zstd_module: ModuleType | None
"""The ``zstandard`` module or None, imported when first asked for (:func:`zstd`): an
uncompressed or gzip archive does not pay for importing it (issue 16)."""


def zstd() -> ModuleType | None:
    """:data:`zstd_module`, imported now if it was not yet (a test may set it to None)."""
    g = globals()
    if "zstd_module" not in g:
        g["zstd_module"] = _load_zstd()
    return cast("ModuleType | None", g["zstd_module"])


def __getattr__(name: str) -> object:
    if name == "zstd_module":
        return zstd()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class _Writable(Protocol):
    def write(self, data: bytes, /) -> object: ...


def compressor(compress: str, fileobj: IO[bytes] | FdWriter) -> tuple[_Writable, Callable[[], None]]:
    """(writable, close) where writable compresses into fileobj; close ends the stream and
    leaves fileobj open."""
    if compress == "gzip":
        import gzip
        # mtime=0 and an empty name keep the gzip header (RFC 1952 2.3) deterministic.
        gz = gzip.GzipFile(filename="", mode="wb", fileobj=fileobj, compresslevel=GZIP_LEVEL, mtime=0)
        return gz, gz.close
    if compress == "xz":
        import lzma
        # The kernel's xz unpacker takes CRC32 or no check, not xz's default CRC64.
        xzc = lzma.LZMAFile(cast(IO[bytes], fileobj), mode="wb", format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC32, preset=XZ_PRESET)
        return xzc, xzc.close
    zstandard = zstd() if compress == "zstd" else None
    if zstandard is not None:
        zw = zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_checksum=True).stream_writer(fileobj, closefd=False)
        return zw, zw.close
    raise InvalidInputError(f"CPIO: cannot compress with {compress!r} here")


class Sink:
    """Accepts the uncompressed archive in order; :attr:`offset` counts its bytes."""

    sparse = False

    def __init__(self) -> None:
        self.emitted = 0            # bytes passed on (written, or handed to the compressor)
        self.buf = bytearray()      # gathered, not yet passed on

    @property
    def offset(self) -> int:
        """Bytes of the archive accepted so far."""
        return self.emitted + len(self.buf)

    def put(self, data: bytes) -> None:
        """The next bytes of the archive."""
        if len(data) >= GATHER_BYTES:
            self.flush()
            self._emit(data)
            self.emitted += len(data)
            return
        self.buf += data
        if len(self.buf) >= GATHER_BYTES:
            self.flush()

    def put_source(self, source: DataSource, size: int) -> None:
        """A file's ``size`` bytes of data (not its padding), read now; a source that gives
        another number of bytes is a SysExportError naming it."""
        if size <= SMALL_FILE_BYTES:
            data = source.read_all(SMALL_FILE_BYTES)
            if len(data) != size:
                raise SysExportError(f"{source.describe()}: expected {size} bytes, the source gave {len(data)}")
            self.put(data)
            report_progress(size)
            return
        if self.sparse:
            self.flush()
            self._copy(source)
            self.emitted += size
            return
        got = 0
        for chunk in source.iter_chunks():
            got += len(chunk)
            if got > size:
                break
            self.put(chunk)
            report_progress(len(chunk))
        if got != size:
            raise SysExportError(f"{source.describe()}: expected {size} bytes, the source gave {got}")

    def flush(self) -> None:
        buf = self.buf
        if buf:
            self._emit_gathered(buf)
            self.emitted += len(buf)
            buf.clear()

    def _emit_gathered(self, buf: bytearray) -> None:
        """Pass on the gathered bytes (a sink that keeps them after the call copies them)."""
        self._emit(bytes(buf))

    def close(self) -> None:
        """Everything accepted is written (and the compressed stream ended)."""
        self.flush()

    def abort(self) -> None:
        """Stop without writing what is left (after an error).  A write interrupted by a
        signal handler's exception may leave a memoryview of the buffer alive in its
        traceback, and a buffer with a view cannot be resized: then it is dropped instead
        (seen as a BufferError of Ctrl-C during ``sysexport initramfs``)."""
        try:
            self.buf.clear()
        except BufferError:
            self.buf = bytearray()

    def copy_range(self, src_fd: int, size: int) -> None:
        """``size`` bytes of ``src_fd`` from byte 0 (a spool), in order."""
        pos = 0
        while pos < size:
            chunk = os.pread(src_fd, min(CHUNK_BYTES, size - pos), pos)
            if not chunk:
                raise SysExportError(f"the spooled archive ends at {pos} bytes, expected {size}")
            self.put(chunk)
            pos += len(chunk)

    def _emit(self, data: bytes) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def _copy(self, source: DataSource) -> None:  # pragma: no cover - only sparse sinks
        raise NotImplementedError


class FdSink(Sink):
    """Into a descriptor: ``sparse`` (a fresh file of ours, from byte 0: pwrite at offsets,
    data by the kernel, zeros left as holes) or in order from its position.  With
    ``background``, gathered chunks are written by a thread of their own
    (:class:`BackgroundWrites`): copying a MiB into the page cache takes as long as
    gathering a few hundred small files, and the second core can do it meanwhile."""

    def __init__(self, fd: int, *, sparse: bool, background: bool = False) -> None:
        super().__init__()
        self.fd = fd
        self.sparse = sparse
        self._background = BackgroundWrites(self._write_at) if background else None

    def _emit(self, data: bytes | bytearray) -> None:
        if self._background is not None:
            self._background.put(bytes(data) if isinstance(data, bytearray) else data, self.emitted)
        else:
            self._write_at(data, self.emitted)

    def _write_at(self, data: bytes | bytearray, offset: int) -> None:
        if self.sparse:
            pwrite_all(self.fd, data, offset)           # a fresh file, from byte 0
            return
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view):]

    def _emit_gathered(self, buf: bytearray) -> None:
        self._emit(buf)                             # written (or copied) before the buffer is reused

    def close(self) -> None:
        self.flush()
        if self._background is not None:
            self._background.close()

    def abort(self) -> None:
        super().abort()
        if self._background is not None:
            self._background.abort()

    def _copy(self, source: DataSource) -> None:
        source.write_to(self.fd, self.emitted)

    def copy_range(self, src_fd: int, size: int) -> None:
        """``size`` bytes of ``src_fd`` from byte 0 (a spool), holes kept when sparse."""
        if not self.sparse:
            super().copy_range(src_fd, size)
            return
        self.flush()
        _copy_fd_range(src_fd, self.fd, self.emitted, size, "the spooled archive")
        self.emitted += size


class BackgroundWrites:
    """Writes done in order by a thread of their own, fed through a bounded queue
    (:data:`PIPELINE_CHUNKS` chunks): ``write(data, offset)`` runs there, its error is
    raised in the writer's thread at the next :meth:`put` or at :meth:`close`.  After
    :meth:`abort` returns nothing more is written (a write in progress finishes first: one
    lock), so the caller may then close the descriptor."""

    def __init__(self, write: Callable[[bytes, int], None]) -> None:
        self._write = write
        self._queue: queue.Queue[tuple[bytes, int] | None] = queue.Queue(PIPELINE_CHUNKS)
        self._error: BaseException | None = None
        self._lock = threading.Lock()
        self._open = True
        self._orphaned = False          # aborted from the thread itself (a collection there)
        self._done = threading.Event()  # the thread's last act (see CompressSink._stop)
        self._thread = threading.Thread(target=self._run, name="sysexport-cpio-write", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        q = self._queue
        try:
            while not self._orphaned:
                item = q.get()
                if item is None:
                    break
                with self._lock:
                    if self._open:
                        self._write(*item)
        except BaseException as e:      # handed to the writer's thread
            self._error = e
            while q.get() is not None:  # keep the writer from blocking on a full queue
                pass
        finally:
            self._done.set()

    def put(self, data: bytes, offset: int) -> None:
        """Write ``data`` at ``offset`` (in order after everything put before)."""
        if self._error is not None:
            raise self._error
        self._queue.put((data, offset))

    def close(self) -> None:
        """Everything put is written; the thread has ended."""
        self._stop()
        if self._error is not None:
            raise self._error

    def abort(self) -> None:
        """Nothing more is written; the thread has ended (or will at its next chunk)."""
        with self._lock:
            self._open = False
        self._stop()

    def _stop(self) -> None:
        if self._thread is threading.current_thread():
            self._orphaned = True
        elif not self._done.is_set():
            self._queue.put(None)
            self._done.wait()
            self._thread.join()


class FdWriter:
    """A descriptor as the compressors' file object: every byte written (a pipe may take
    less at a time), nothing buffered that could be written later to a reused descriptor."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def write(self, data: bytes) -> int:
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view):]
        return len(data)

    def flush(self) -> None:
        pass


class StreamSink(Sink):
    """Into a Python binary stream (its ``write``), in order."""

    def __init__(self, fileobj: _Writable) -> None:
        super().__init__()
        self.fileobj = fileobj

    def _emit(self, data: bytes) -> None:
        self.fileobj.write(data)


class _Gate:
    """The compressor's file object: writes go on to ``fileobj`` until :meth:`shut`, then
    are dropped.  A write in progress finishes before :meth:`shut` returns (one lock), so
    once it has returned nothing reaches ``fileobj`` again, from any thread."""

    def __init__(self, fileobj: IO[bytes] | FdWriter) -> None:
        self._fileobj = fileobj
        self._lock = threading.Lock()
        self.open = True

    def write(self, data: bytes) -> int:
        with self._lock:
            if self.open:
                self._fileobj.write(data)
        return len(data)

    def flush(self) -> None:
        with self._lock:
            if self.open:
                self._fileobj.flush()

    def shut(self) -> None:
        with self._lock:
            self.open = False


class CompressSink(Sink):
    """Compressed into ``fileobj`` by a second thread (see the module docstring)."""

    def __init__(self, compress: str, fileobj: IO[bytes] | FdWriter) -> None:
        super().__init__()
        self.fileobj = fileobj
        self._gate = _Gate(fileobj)
        self._comp, self._end = compressor(compress, cast(IO[bytes], self._gate))
        self._queue: queue.Queue[bytes | None] = queue.Queue(PIPELINE_CHUNKS)
        self._error: BaseException | None = None
        self._orphaned = False          # aborted from the thread itself (a collection there)
        self._done = threading.Event()  # the thread's last act (is_alive() can lie, see _stop)
        self._thread = threading.Thread(target=self._run, name="sysexport-cpio-compress", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        q, gate = self._queue, self._gate
        try:
            while not self._orphaned:
                chunk = q.get()
                if chunk is None:
                    break
                if gate.open:               # shut by abort(): the rest is not compressed
                    self._comp.write(chunk)
            self._end()
            gate.flush()
        except BaseException as e:      # handed to the writer's thread
            self._error = e
            gate.shut()                 # the unfinished compressor never writes again...
            try:
                self._end()             # ...not even its trailer when it is collected
            except Exception:
                pass
            while q.get() is not None:  # keep the writer from blocking on a full queue
                pass
        finally:
            gate.shut()
            self._done.set()

    def _emit(self, data: bytes) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(data)

    def close(self) -> None:
        self.flush()
        self._stop()
        if self._error is not None:
            raise self._error

    def abort(self) -> None:
        """Stop: the gate is shut first (nothing more reaches the output, whatever the
        thread is doing), then the thread is told to end and joined."""
        super().abort()
        self._gate.shut()
        self._stop()

    def _stop(self) -> None:
        """End the thread and wait for it.  Its event, not ``is_alive()``, says it is done:
        a join interrupted by a signal handler's exception (Ctrl-C in close()) marks a
        running thread stopped (CPython issue 90882; seen here with Python 3.11)."""
        if self._thread is threading.current_thread():
            self._orphaned = True       # cannot join itself: it ends at its next chunk
        elif not self._done.is_set():
            self._queue.put(None)
            self._done.wait()
            self._thread.join()
        self._gate.shut()


__all__ = ["Sink", "FdSink", "BackgroundWrites", "FdWriter", "StreamSink", "CompressSink", "compressor", "zstd_module", "GATHER_BYTES",
           "PIPELINE_CHUNKS", "GZIP_LEVEL", "XZ_PRESET", "ZSTD_LEVEL"]
