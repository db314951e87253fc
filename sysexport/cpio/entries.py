"""The records of a streaming newc archive: :class:`CPIOEntry` (one entry's header and
where its data comes from), :class:`CPIOPlan` (what :meth:`CPIO.plan` returns), and
:func:`write_entries`, which writes entries with their data into a sink.

Header layout: :mod:`sysexport.cpio._structs` (``buffer-format.rst``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Sequence

from ..data import SMALL_FILE_BYTES, DataSource, report_progress
from ..errors import SysExportError
from .newc import NAME_END, pad_bytes
from .sink import GATHER_BYTES, Sink

TYPE_NAMES = {0o100000: "file", 0o040000: "dir", 0o120000: "symlink", 0o020000: "chardev", 0o060000: "blockdev",
              0o010000: "fifo", 0o140000: "socket"}
"""The kinds of :attr:`CPIOPlan.types`, by the type bits of c_mode."""
DATA_PAD = (b"", b"\0\0\0", b"\0\0", b"\0")
"""The padding after data, by its size % 4."""
new_entry = tuple.__new__
"""CPIOEntry(...) without NamedTuple's argument handling (once per entry)."""


class CPIOEntry(NamedTuple):
    """One archive entry (immutable): header+name bytes, then its data.

    ``offset`` is where the header starts in the uncompressed archive; the data follows
    at :attr:`data_offset` and is ``size_bytes`` long (the header's c_filesize), then NUL
    padding to a multiple of 4.
    """

    name: str                   # the archive name ("." for the root, TRAILER!!! last)
    offset: int                 # of the header, in the uncompressed archive
    ino: int                    # c_ino: shared by the names of one hard-linked file
    nlink: int                  # c_nlink
    mode: int                   # c_mode: type bits and permissions
    size_bytes: int             # c_filesize: 0 for the later names of a hard link
    head: bytes                 # header, name, NUL, padding
    source: DataSource | None   # a regular file's data (None: no data, or inline)
    inline: bytes               # a symlink's target

    @property
    def data_offset(self) -> int:
        """Where the entry's data starts in the uncompressed archive."""
        return self.offset + len(self.head)

    @property
    def end_offset(self) -> int:
        """Where the next entry's header starts (data and its padding included)."""
        return self.offset + len(self.head) + self.size_bytes + pad_bytes(self.size_bytes)


@dataclass(frozen=True, slots=True)
class CPIOPlan:
    """What :meth:`CPIO.plan` knows of the whole archive (immutable).

    ``entry_count`` entries (the trailer not counted), ``size_bytes`` of uncompressed
    archive, ``data_bytes`` of file data in it; ``streamed_entries`` of them (the first
    ``streamed_bytes``) are already in the output; ``entries`` are the rest, in archive order
    with their offsets, and the trailer last.  ``linked_names``: names written as a hard
    link to an earlier name (size 0); ``links_forgotten``: files forgotten by the bounded
    link table with names still to come (a later name is then a copy).  ``compress``: None,
    "gzip", "xz" or "zstd".  ``types``: (kind, entries) pairs, see :meth:`count`.
    """

    entries: tuple[CPIOEntry, ...]
    entry_count: int
    size_bytes: int
    data_bytes: int
    streamed_entries: int
    streamed_bytes: int
    linked_names: int
    links_forgotten: int
    compress: str | None
    types: tuple[tuple[str, int], ...] = ()

    def count(self, kind: str) -> int:
        """Entries of ``kind``: "file", "dir", "symlink", "chardev", "blockdev", "fifo", "socket"."""
        return dict(self.types).get(kind, 0)

    def find(self, name: str) -> CPIOEntry | None:
        """The entry ``name`` ("." for the root) among those not yet written, or None."""
        for e in self.entries:
            if e.name == name:
                return e
        return None


def write_entries(sink: Sink, entries: Sequence[CPIOEntry]) -> None:
    """Headers, data and padding of ``entries`` into ``sink``; small files are read here
    into the gathered buffer, larger ones copied by the sink (see :meth:`Sink.put_source`)."""
    buf = sink.buf                      # the same bytearray across the sink's flushes
    small_bytes = 0
    for e in entries:
        head, size, inline = e[6], e[5], e[8]
        source = e[7]
        buf += head
        if source is None:
            if inline:
                buf += inline
        elif size <= SMALL_FILE_BYTES:
            data = source.read_all(SMALL_FILE_BYTES)
            if len(data) != size:
                raise SysExportError(f"{source.describe()}: expected {size} bytes, the source gave {len(data)}")
            buf += data
            small_bytes += size
        else:
            sink.put_source(source, size)
        if size & 3:
            buf += DATA_PAD[size & 3]
        if len(buf) >= GATHER_BYTES:
            sink.flush()
            report_progress(small_bytes)
            small_bytes = 0
    report_progress(small_bytes)


__all__ = ["CPIOEntry", "CPIOPlan", "TYPE_NAMES", "NAME_END", "DATA_PAD", "write_entries", "new_entry"]
