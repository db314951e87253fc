"""CPIO "newc" archives, as the Linux kernel unpacks them into its initramfs.

Format facts (Linux ``Documentation/driver-api/early-userspace/buffer-format.rst`` and
``init/initramfs.c``; the newc variant of SVR4 cpio):

* every entry is a 110-byte ASCII header: the magic ``070701`` and thirteen 8-digit
  hexadecimal fields, then the NUL-terminated name, padded with NULs so that header plus
  name is a multiple of 4 bytes, then the data, padded to a multiple of 4;
* a symlink's data is its target (no NUL); devices carry ``rdevmajor``/``rdevminor``;
* hard links share one inode number; every member of the group carries ``nlink`` = the
  number of names, and the data is stored once, on the LAST entry of the group (earlier
  entries have size 0): the kernel links each later name to the first one and writes the
  data when it comes, and GNU cpio defers links until the entry with data;
* the archive ends with an entry named ``TRAILER!!!``.

The kernel accepts the archive compressed with gzip, xz (with a CRC32 or no integrity
check only: plain ``xz`` output, CRC64, is refused) or zstd, among others.
"""
from __future__ import annotations

import argparse
import gzip
import lzma
import os
import sys
from dataclasses import dataclass
from typing import Any, BinaryIO, Iterator

import construct as cs

from .data import CHUNK_BYTES, DataSource
from .errors import InternalError, InvalidImageError, InvalidInputError, SysExportError
from .fileinfo import FileInfo, source_date_epoch, to_fileinfo, walk_host_fileinfo
from .output import Output
from .tree import Node, Tree

try:  # optional: zstd-compressed initramfs
    import zstandard as _zstd
except ImportError:  # pragma: no cover - depends on the machine
    _zstd = None

NEWC_MAGIC = b"070701"
"""c_magic of the newc format (no checksum); ``070702`` is the 'crc' variant."""
NEWC_HEADER_BYTES = 110
"""6 bytes of magic + 13 fields of 8 hexadecimal digits."""
NEWC_ALIGN_BYTES = 4
"""Header+name and data are each padded with NULs to this multiple (initramfs.c N_ALIGN)."""
TRAILER_NAME = "TRAILER!!!"
"""Name of the entry that ends the archive."""
MAX_FIELD = 0xFFFFFFFF
"""Every numeric field is 32 bits: file sizes, times, ids and device numbers must fit."""

COMPRESSIONS = ("gzip", "xz", "zstd")
GZIP_LEVEL = 6
"""gzip's own default level."""
XZ_PRESET = 6
"""xz's own default preset (8 MiB dictionary; the kernel allocates the dictionary it needs)."""
ZSTD_LEVEL = 9
"""Measured on a 4.5 MiB initramfs: level 9 is 30 times faster than 19 for 10 % more bytes."""


# --------------------------------------------------------------------------------------
# The header, declared once (construct).  Offsets are from the start of the header.

class _Hex8(cs.Adapter):
    """An unsigned 32-bit number written as 8 ASCII hexadecimal digits (newc)."""

    def _decode(self, obj: bytes, context: Any, path: str) -> int:
        try:
            return int(obj.decode("ascii"), 16)
        except (UnicodeDecodeError, ValueError):
            raise cs.MappingError(f"not 8 hexadecimal digits: {obj!r}", path=path) from None

    def _encode(self, obj: int, context: Any, path: str) -> bytes:
        if not 0 <= obj <= MAX_FIELD:
            raise cs.MappingError(f"{obj} does not fit 8 hexadecimal digits", path=path)
        return b"%08X" % obj


HEX8 = _Hex8(cs.Bytes(8))

NEWC_HEADER = cs.Struct(
    "c_magic" / cs.Const(NEWC_MAGIC),  # 0: "070701"
    "c_ino" / HEX8,                    # 6: inode number, shared by hard links
    "c_mode" / HEX8,                   # 14: type bits and permissions (st_mode)
    "c_uid" / HEX8,                    # 22
    "c_gid" / HEX8,                    # 30
    "c_nlink" / HEX8,                  # 38: number of links (names) of the inode
    "c_mtime" / HEX8,                  # 46: seconds since the epoch
    "c_filesize" / HEX8,               # 54: bytes of data after the name (0 for all but the last hard link)
    "c_devmajor" / HEX8,               # 62: device holding the file (part of the hard-link key)
    "c_devminor" / HEX8,               # 70
    "c_rdevmajor" / HEX8,              # 78: for character and block devices
    "c_rdevminor" / HEX8,              # 86
    "c_namesize" / HEX8,               # 94: bytes of the name including its NUL
    "c_check" / HEX8,                  # 102: 0 in newc (a sum of the data bytes in the 070702 variant)
)                                      # 110: name, NUL padding, data, NUL padding
FIELD_NAMES = ("c_ino", "c_mode", "c_uid", "c_gid", "c_nlink", "c_mtime", "c_filesize",
               "c_devmajor", "c_devminor", "c_rdevmajor", "c_rdevminor", "c_namesize", "c_check")

_FAST_FORMAT = NEWC_MAGIC + b"%08X" * 13


def build_header_fast(fields: dict[str, int]) -> bytes:
    """The same bytes as ``NEWC_HEADER.build(fields)``, about 20 times faster."""
    values = tuple(fields[k] for k in FIELD_NAMES)
    for k, v in zip(FIELD_NAMES, values):
        if not 0 <= v <= MAX_FIELD:
            raise InternalError(f"cpio header field {k}={v} does not fit 32 bits")
    return _FAST_FORMAT % values


def _pad(length: int) -> int:
    return -length % NEWC_ALIGN_BYTES


# --------------------------------------------------------------------------------------

@dataclass(slots=True)
class _Entry:
    """One planned archive entry: its header+name bytes and the data that follows."""

    head: bytes                 # header, name, NUL padding
    source: DataSource | None   # regular file data (None: no data or inline)
    inline: bytes               # symlink target
    size_bytes: int


class CPIO:
    """Writer of a newc CPIO archive (Linux initramfs, ``buffer-format.rst``).

    ``compress`` is None, "gzip", "xz" (CRC32 check, as the kernel requires) or "zstd"
    (needs the ``zstandard`` module).  ``default_time`` is used for entries without
    ``mtime`` (default: SOURCE_DATE_EPOCH, else now).  Give ``filename`` or
    ``filehandle`` to use :meth:`finish`; :meth:`write_to_stream` needs neither.
    """

    def __init__(self, filename: str | os.PathLike | None = None, *, filehandle: BinaryIO | None = None,
                 compress: str | None = None, default_time: int | None = None) -> None:
        if filename is not None and filehandle is not None:
            raise InvalidInputError("CPIO: give filename or filehandle, not both")
        if compress not in (None, *COMPRESSIONS):
            raise InvalidInputError(f"CPIO: compress must be None or one of {', '.join(COMPRESSIONS)}, "
                                    f"found {compress!r}")
        if compress == "zstd" and _zstd is None:
            raise InvalidInputError("CPIO: compress='zstd' needs the Python module 'zstandard' "
                                    "(pip install zstandard, or Debian's python3-zstandard)")
        self.filename = filename
        self.filehandle = filehandle
        self.compress = compress
        self.default_time = source_date_epoch() if default_time is None else default_time
        self._check_time("default_time", self.default_time)
        self.tree = Tree()
        self._links: dict[tuple[int, int], list[Node]] = {}

    # ---------------------------------------------------------------- recording

    @staticmethod
    def _check_time(where: str, value: float) -> None:
        if not 0 <= int(value) <= MAX_FIELD:
            raise InvalidInputError(f"{where}: mtime {value} does not fit newc's unsigned 32-bit field "
                                    "(1970-01-01 .. 2106-02-07)")

    def add(self, spec: Any) -> Node:
        """Record one entry (a file-info mapping, shorthand tuple or FileInfo).

        Raises InvalidInputError for what newc cannot hold: a file of 4 GiB or more, an
        mtime outside 0..2**32-1, a hard link whose size or mode differs from its group.
        """
        info = to_fileinfo(spec)
        where = info.name or "/"
        if info.size > MAX_FIELD:
            raise InvalidInputError(f"{where}: {info.size} bytes; a newc entry holds at most {MAX_FIELD} bytes")
        if info.mtime is not None:
            self._check_time(where, info.mtime)
        key = self._link_key(info)
        if key is not None and key in self._links:
            first = self._links[key][0].info
            if first.mode != info.mode or first.size != info.size:
                raise InvalidInputError(
                    f"{where}: hard link of {first.name} (dev, ino {key}) must have the same mode and size: "
                    f"expected mode {first.mode:#o} size {first.size}, found mode {info.mode:#o} size {info.size}")
        node = self.tree.add(info)
        if key is not None:
            self._links.setdefault(key, []).append(node)
        return node

    def add_tree(self, host_dir: str | os.PathLike, dest: str = "") -> None:
        """Add a host directory and everything under it (lstat: symlinks, devices, hard links kept)."""
        for info in walk_host_fileinfo(host_dir, dest):
            self.add(info)

    @staticmethod
    def _link_key(info: FileInfo) -> tuple[int, int] | None:
        if info.is_dir or info.is_symlink:
            return None
        return info.link_key

    # ---------------------------------------------------------------- planning

    def _plan(self) -> list[_Entry]:
        """Every entry in archive order: parents before children, siblings sorted by name."""
        nodes = list(self.tree.walk())
        if self.tree.root.info.implicit:
            nodes = nodes[1:]  # the root is written only when the caller added it
        group_of: dict[int, list[Node]] = {}
        for members in self._links.values():
            if len(members) > 1:
                for n in members:
                    group_of[id(n)] = members
        order = {id(n): i for i, n in enumerate(nodes)}
        ino_of: dict[int, int] = {}
        next_ino = 1
        entries: list[_Entry] = []
        for node in nodes:
            info = node.info
            group = group_of.get(id(node))
            if group is not None:
                key = id(group[0])
                if key not in ino_of:
                    ino_of[key] = next_ino
                    next_ino += 1
                ino = ino_of[key]
                nlink = len(group)
                is_last = order[id(node)] == max(order[id(n)] for n in group)
            else:
                ino = next_ino
                next_ino += 1
                nlink = 1
                is_last = True
                if info.is_dir:
                    nlink = 2 + sum(1 for c in node.children.values() if c.children is not None)
            source, inline, size = None, b"", 0
            if info.is_file and is_last:
                source, size = info.source, info.size
            elif info.is_symlink:
                inline = info.target or b""
                size = len(inline)
            mtime = self.default_time if info.mtime is None else info.mtime
            name = (info.name or ".").encode("utf-8")
            entries.append(_Entry(self._head(name, dict(
                c_ino=ino, c_mode=info.mode, c_uid=info.uid, c_gid=info.gid, c_nlink=nlink,
                c_mtime=int(mtime), c_filesize=size, c_devmajor=0, c_devminor=0,
                c_rdevmajor=info.rdev_major if info.is_device else 0,
                c_rdevminor=info.rdev_minor if info.is_device else 0)), source, inline, size))
        entries.append(_Entry(self._head(TRAILER_NAME.encode(), dict(
            c_ino=0, c_mode=0, c_uid=0, c_gid=0, c_nlink=1, c_mtime=0, c_filesize=0, c_devmajor=0,
            c_devminor=0, c_rdevmajor=0, c_rdevminor=0)), None, b"", 0))
        return entries

    @staticmethod
    def _head(name: bytes, fields: dict[str, int]) -> bytes:
        fields["c_namesize"] = len(name) + 1
        fields["c_check"] = 0
        head = build_header_fast(fields) + name + b"\0"
        return head + b"\0" * _pad(len(head))

    # ---------------------------------------------------------------- writing

    def write_to_stream(self, fileobj: BinaryIO) -> None:
        """Write the whole archive (compressed as chosen) to a writable binary stream."""
        entries = self._plan()
        comp, close = self._compressor(fileobj)
        sink = _BufferedSink(comp)
        try:
            for e in entries:
                sink.write(e.head)
                if e.source is not None:
                    got = 0
                    for chunk in e.source.iter_chunks():
                        got += len(chunk)
                        if got > e.size_bytes:
                            break
                        sink.write(chunk)
                    if got != e.size_bytes:
                        raise SysExportError(f"{e.source.describe()}: expected {e.size_bytes} bytes, "
                                             f"the source gave {got}")
                elif e.inline:
                    sink.write(e.inline)
                if e.size_bytes % NEWC_ALIGN_BYTES:
                    sink.write(b"\0" * _pad(e.size_bytes))
            sink.flush()
        finally:
            close()

    def _compressor(self, fileobj: BinaryIO):
        """(writable, close) where writable compresses into fileobj; close leaves fileobj open."""
        if self.compress is None:
            return fileobj, lambda: None
        if self.compress == "gzip":
            # mtime=0 and an empty name keep the gzip header (RFC 1952 2.3) deterministic.
            gz = gzip.GzipFile(filename="", mode="wb", fileobj=fileobj, compresslevel=GZIP_LEVEL, mtime=0)
            return gz, gz.close
        if self.compress == "xz":
            # The kernel's xz unpacker takes CRC32 or no check, not xz's default CRC64.
            xzc = lzma.LZMAFile(fileobj, mode="wb", format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC32,
                                preset=XZ_PRESET)
            return xzc, xzc.close
        zw = _zstd.ZstdCompressor(level=ZSTD_LEVEL, write_checksum=True).stream_writer(fileobj, closefd=False)
        return zw, zw.close

    def finish(self) -> None:
        """Write the archive to ``filename`` (atomically: nothing is left on failure) or ``filehandle``."""
        if self.filename is None and self.filehandle is None:
            raise InvalidInputError("CPIO.finish(): no filename or filehandle was given; use write_to_stream()")
        entries = self._plan()  # bad input surfaces before the output is created
        with Output(filename=self.filename, filehandle=self.filehandle) as out:
            if self.compress is None and self.filehandle is None:
                self._write_planned(out, entries)
            else:
                with open(out.fd, "wb", closefd=False) as f:
                    self.write_to_stream(f)

    def _write_planned(self, out: Output, entries: list[_Entry]) -> None:
        """Uncompressed into a fresh file: headers gathered, file data by write_to at its offset."""
        offset = 0          # where the next byte of the archive goes
        pending = bytearray()
        pending_at = 0      # archive offset of pending[0]
        for e in entries:
            pending += e.head + e.inline
            offset += len(e.head) + len(e.inline)
            if e.source is not None:
                self._flush(out.fd, pending, pending_at)
                pending.clear()
                e.source.write_to(out.fd, offset)
                offset += e.size_bytes
                pending_at = offset
            pending += b"\0" * _pad(e.size_bytes)
            offset += _pad(e.size_bytes)
        self._flush(out.fd, pending, pending_at)
        out.set_size(offset)

    @staticmethod
    def _flush(fd: int, buf: bytearray, offset: int) -> None:
        view = memoryview(buf)
        while view:
            n = os.pwrite(fd, view, offset)
            view = view[n:]
            offset += n


class _BufferedSink:
    """Gathers small writes (headers) into large ones for the compressor or the stream."""

    def __init__(self, raw: Any) -> None:
        self.raw = raw
        self.buf = bytearray()

    def write(self, data: bytes) -> None:
        if len(data) >= CHUNK_BYTES // 4:
            self.flush()
            self.raw.write(data)
            return
        self.buf += data
        if len(self.buf) >= 1 << 20:
            self.flush()

    def flush(self) -> None:
        if self.buf:
            self.raw.write(bytes(self.buf))
            self.buf.clear()


# --------------------------------------------------------------------------------------
# Reading (for tests and inspection): the kernel's view of an uncompressed archive.

def iter_newc(data: bytes) -> Iterator[tuple[dict[str, int], str, bytes]]:
    """Yield (header fields, name, data) of each entry up to the trailer (not included)."""
    pos = 0
    while True:
        try:
            hdr = NEWC_HEADER.parse(data[pos:pos + NEWC_HEADER_BYTES])
        except cs.ConstructError as e:
            raise InvalidImageError(f"cpio: bad newc header at byte {pos}: {e}") from None
        name_end = pos + NEWC_HEADER_BYTES + hdr.c_namesize
        name = data[pos + NEWC_HEADER_BYTES:name_end - 1].decode("utf-8", "surrogateescape")
        pos = name_end + _pad(name_end)
        if name == TRAILER_NAME:
            return
        body = data[pos:pos + hdr.c_filesize]
        pos += hdr.c_filesize + _pad(hdr.c_filesize)
        yield {k: hdr[k] for k in FIELD_NAMES}, name, body


# --------------------------------------------------------------------------------------
# `sysexport initramfs SRC_DIR -o OUT [--compress gzip|xz|zstd]`

def add_cli_initramfs(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``initramfs`` subcommand on an argparse subparsers object."""
    p = subparsers.add_parser("initramfs", help="write a directory as a newc cpio archive (Linux initramfs)",
                              description="Write SRC_DIR as a newc cpio archive the Linux kernel unpacks "
                                          "as its initramfs (deterministic under SOURCE_DATE_EPOCH).")
    p.add_argument("src_dir", metavar="SRC_DIR", help="directory to archive (becomes the root)")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="archive to write")
    p.add_argument("--compress", choices=COMPRESSIONS, default=None, help="compress the archive")
    p.set_defaults(func=cli_initramfs)
    return p


def cli_initramfs(args: argparse.Namespace) -> int:
    """Run ``sysexport initramfs``; returns the exit status (1 with a message on bad input)."""
    try:
        archive = CPIO(args.output, compress=args.compress)
        archive.add_tree(args.src_dir)
        archive.finish()
    except SysExportError as e:
        print(f"sysexport initramfs: {e}", file=sys.stderr)
        return 1
    return 0


__all__ = ["CPIO", "NEWC_HEADER", "build_header_fast", "iter_newc", "add_cli_initramfs", "cli_initramfs",
           "COMPRESSIONS"]
