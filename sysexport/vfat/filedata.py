"""The file data of a planned FAT volume, each file at its first cluster.

100,000 small host files cost three system calls each (open, one read, close; about 3 us
here, what the kernel takes) and little Python beside: each is read straight into its
place in a zero-filled buffer that spans a run of nearby clusters, and the buffer is
written with one pwrite.  Anything unusual about a small file (it cannot be opened, it
grew or shrank) is left to its data source's own read, which raises the error that names
it (or reads a short read on), so the messages are those of :mod:`sysexport.data`.
Larger files and other sources stream through the data source itself
(copy_file_range / sendfile there).
"""
from __future__ import annotations

import errno
import os

from ..data import SMALL_FILE_BYTES, PathData, report_progress
from ..errors import InternalError
from .plan import VFATPlan, dir_state

BATCH_BYTES = 1 << 20               # small files gathered per pwrite
BATCH_GAP_BYTES = 64 << 10          # free space a batch may bridge with zeros
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)
_NOATIME = getattr(os, "O_NOATIME", 0)


class _Batch:
    """A buffer for the bytes of ``[at, end)`` of the device (empty when ``end == at``):
    files are read into it in place, the gaps between them stay zero."""

    __slots__ = ("fd", "buf", "view", "zero_bytes", "zeros", "at", "end", "reported")

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buf = bytearray(BATCH_BYTES + BATCH_GAP_BYTES + SMALL_FILE_BYTES + 1)
        self.view = memoryview(self.buf)
        self.zero_bytes = bytes(len(self.buf))          # as many zeros as the buffer holds
        self.zeros = memoryview(self.zero_bytes)
        self.at = 0
        self.end = 0
        self.reported = 0

    def start(self, at: int) -> None:
        """Flush, then an empty run starting at device offset ``at``."""
        self.flush()
        self.at = self.end = at

    def flush(self) -> None:
        """Write what the buffer holds (nothing when all zeros: the region reads as zeros,
        as the writer was told) and zero it again; report its files' bytes."""
        length = self.end - self.at
        if length:
            data = self.view[:length]
            if not self.zero_bytes.startswith(data):    # (a compare with zeros: memcmp, not a count)
                _pwrite(self.fd, data, self.at)
            data[:] = self.zeros[:length]
            data.release()
            self.end = self.at
        if self.reported:
            report_progress(self.reported)
            self.reported = 0

    def close(self) -> None:
        self.view.release()
        self.zeros.release()


def write_data(fd: int, plan: VFATPlan, zeroed: bool) -> None:
    """Every file's bytes at its first cluster.  Small host files (at most
    SMALL_FILE_BYTES) are gathered into one buffer per run of clusters at most
    BATCH_GAP_BYTES apart (adjacent only when ``zeroed`` is false: a gap would overwrite
    the caller's free space with zeros) and written with one pwrite."""
    base = plan.cluster2_device_offset - 2 * plan.geometry.cluster_size
    cs = plan.geometry.cluster_size
    batch = _Batch(fd)
    max_gap = BATCH_GAP_BYTES if zeroed else 0
    opener = _Opener()
    flags = _OPEN_FLAGS | opener.noatime
    try:
        for d in plan.dirs:
            st = dir_state(d)
            children, sizes = st.children, st.sizes
            for i, first in enumerate(st.firsts):
                if not first:
                    continue
                at = base + first * cs
                source = children[i].info.source
                size = sizes[i]
                if not isinstance(source, PathData) or size > SMALL_FILE_BYTES:
                    if source is None:
                        raise InternalError(f"{children[i].path}: a file of {size} bytes with no data source")
                    # A batch must never span bytes written directly: its zero gaps would
                    # overwrite them when it is flushed.
                    batch.flush()
                    source.write_to(fd, at)
                    continue
                end = batch.end
                if end == batch.at or not 0 <= at - end <= max_gap or end - batch.at >= BATCH_BYTES:
                    batch.start(at)
                pos = at - batch.at
                into = batch.view[pos:pos + size + 1]
                try:                    # _read_into(), inlined for the common case
                    src = os.open(source.path, flags)
                except OSError:
                    _read_into(source, size, into, opener)
                    flags = _OPEN_FLAGS | opener.noatime
                else:
                    try:
                        n = os.readv(src, [into])
                    except OSError:
                        n = -1
                    finally:
                        os.close(src)
                    if n != size:
                        _read_into(source, size, into, opener)
                batch.end = at + size
                batch.reported += size
        batch.flush()
    finally:
        batch.close()


class _Opener:
    """os.open of a source for reading, with O_NOATIME where allowed (as data.py opens
    them: reading the tree must not change the atimes the next build records)."""

    __slots__ = ("noatime",)

    def __init__(self) -> None:
        self.noatime = _NOATIME

    def open(self, path: str) -> int:
        if self.noatime:
            try:
                return os.open(path, _OPEN_FLAGS | self.noatime)
            except PermissionError:
                pass                    # not the owner: open normally
            except OSError as e:
                if e.errno != errno.EINVAL:
                    raise
                self.noatime = 0        # not supported here
        return os.open(path, _OPEN_FLAGS)


def _read_into(source: PathData, size: int, into: memoryview, opener: _Opener) -> None:
    """Read the ``size`` bytes of a small host file into ``into`` (one byte larger: a file
    that grew shows there)."""
    n = -1
    try:
        fd = opener.open(source.path)
        try:
            n = os.readv(fd, [into])
        finally:
            os.close(fd)
    except OSError:
        pass
    if n != size:                       # the source's own read: its error, or a short read read on
        into[:size] = source.read_all(SMALL_FILE_BYTES)
        into[size:size + 1] = b"\0"


def _pwrite(fd: int, data: bytes | bytearray | memoryview, offset: int) -> None:
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, offset)
        view = view[n:]
        offset += n
