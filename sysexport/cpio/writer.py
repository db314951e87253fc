"""The newc CPIO writer: :class:`CPIO`, its plan value :class:`CPIOPlan`, and compression.

Format facts (Linux ``Documentation/driver-api/early-userspace/buffer-format.rst`` and
``init/initramfs.c``; the header itself is declared in :mod:`sysexport.cpio._structs`):

* every entry is a 110-byte ASCII header, then the NUL-terminated name, padded with NULs so
  that header plus name is a multiple of 4 bytes, then the data, padded to a multiple of 4;
* a symlink's data is its target (no NUL); devices carry ``rdevmajor``/``rdevminor``;
* hard links share one inode number; every member of the group carries ``nlink`` = the
  number of names, and the data is stored once, on the LAST entry of the group (earlier
  entries have size 0): the kernel links each later name to the first one and writes the
  data when it comes, and GNU cpio defers links until the entry with data;
* the archive ends with an entry named ``TRAILER!!!``.

The kernel accepts the archive compressed with gzip, xz (with a CRC32 or no integrity
check only: plain ``xz`` output, CRC64, is refused) or zstd, among others.

The writer follows the :class:`~sysexport.writer.Writer` contract (docs/architecture.md,
"Plan, then write"): ``add()``/``add_tree()`` record, :meth:`CPIO.plan` returns a frozen
:class:`CPIOPlan` (every entry's header bytes, offset, inode and link count),
:meth:`CPIO.write` writes a plan, :meth:`CPIO.finish` is both, once.
"""
from __future__ import annotations

import gzip
import importlib
import lzma
import os
from dataclasses import dataclass
from types import ModuleType
from typing import IO, Callable, NamedTuple, Protocol

from ..data import CHUNK_BYTES, DataSource, pwrite_all
from ..errors import CallOrderError, InternalError, InvalidInputError, SysExportError
from ..fileinfo import FileInfo, FileInfoSpec, HostPath, source_date_epoch, to_fileinfo, walk_host_fileinfo
from ..output import Output
from ..tree import Node, Tree
from ..writer import Lifecycle
from ._structs import MAX_FIELD, NEWC_ALIGN_BYTES, TRAILER_NAME, build_header_fast, pad_bytes


def _load_zstd() -> ModuleType | None:
    """The optional ``zstandard`` module (zstd-compressed initramfs), or None."""
    try:
        return importlib.import_module("zstandard")
    except ImportError:  # pragma: no cover - depends on the machine
        return None


_zstd = _load_zstd()

COMPRESSIONS = ("gzip", "xz", "zstd")
GZIP_LEVEL = 6
"""gzip's own default level."""
XZ_PRESET = 6
"""xz's own default preset (8 MiB dictionary; the kernel allocates the dictionary it needs)."""
ZSTD_LEVEL = 9
"""Measured on a 4.5 MiB initramfs: level 9 is 30 times faster than 19 for 10 % more bytes."""

GATHER_BYTES = 1 << 20
"""Small writes (headers, short files) are gathered into writes of about this size."""


# --------------------------------------------------------------------------------------
# The plan value

class CPIOEntry(NamedTuple):
    """One planned archive entry (immutable): header+name bytes, then its data.

    ``offset`` is where the header starts in the uncompressed archive; the data follows
    at :attr:`data_offset` and is ``size_bytes`` long (the header's c_filesize), then NUL
    padding to a multiple of 4.
    """

    name: str                   # the archive name ("." for the root, TRAILER!!! last)
    offset: int                 # of the header, in the uncompressed archive
    ino: int                    # c_ino: shared by the names of one hard-linked file
    nlink: int                  # c_nlink
    mode: int                   # c_mode: type bits and permissions
    size_bytes: int             # c_filesize: 0 for all but the last name of a hard link
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
    """What :meth:`CPIO.plan` computes before anything is written (immutable).

    ``entries`` in archive order (parents before children, siblings sorted by name; the
    trailer last); ``hard_links``: for each hard-linked file with more than one name, the
    indices into ``entries`` of its names, in archive order (the last one carries the
    data); ``size_bytes``: length of the uncompressed archive; ``compress``: None, "gzip",
    "xz" or "zstd", as :meth:`CPIO.write` will write it.
    """

    entries: tuple[CPIOEntry, ...]
    hard_links: tuple[tuple[int, ...], ...]
    size_bytes: int
    compress: str | None

    def find(self, name: str) -> CPIOEntry | None:
        """The entry of archive name ``name`` ("." for the root), or None."""
        for e in self.entries:
            if e.name == name:
                return e
        return None


# --------------------------------------------------------------------------------------

class CPIO(Lifecycle):
    """Writer of a newc CPIO archive (Linux initramfs, ``buffer-format.rst``).

    ``compress`` is None, "gzip", "xz" (CRC32 check, as the kernel requires) or "zstd"
    (needs the ``zstandard`` module).  ``default_time`` is used for entries without
    ``mtime`` (default: SOURCE_DATE_EPOCH, else now).  Give ``filename`` or
    ``filehandle`` to use :meth:`finish`; :meth:`write_to_stream` needs neither.
    """

    def __init__(self, filename: str | os.PathLike[str] | None = None, *, filehandle: IO[bytes] | None = None,
                 compress: str | None = None, default_time: int | None = None) -> None:
        if filename is not None and filehandle is not None:
            raise InvalidInputError("CPIO: give filename or filehandle, not both")
        self.filename = filename
        self.filehandle = filehandle
        self.compress = compress
        self.default_time = source_date_epoch() if default_time is None else default_time
        self.tree: Tree[None] = Tree()
        self._links: dict[tuple[int, int], list[Node[None]]] = {}
        self._last_plan: CPIOPlan | None = None

    # ---------------------------------------------------------------- attributes

    @property
    def compress(self) -> str | None:
        """None, "gzip", "xz" or "zstd" (validated when set, see :func:`validate_compress`)."""
        return self._compress

    @compress.setter
    def compress(self, value: str | None) -> None:
        self._compress = validate_compress(value)

    @property
    def default_time(self) -> int | float:
        """The mtime of entries without one (validated when set, see :func:`validate_mtime`)."""
        return self._default_time

    @default_time.setter
    def default_time(self, value: int | float) -> None:
        try:
            self._default_time = validate_mtime("CPIO default_time", value)
        except InvalidInputError:
            if value == source_date_epoch(0) and os.environ.get("SOURCE_DATE_EPOCH", "").strip():
                raise InvalidInputError(f"SOURCE_DATE_EPOCH={value}: outside what newc can record; {MTIME_RULE} "
                                        "(CPIO default_time is SOURCE_DATE_EPOCH)") from None
            raise

    # ---------------------------------------------------------------- recording

    def add(self, spec: FileInfoSpec) -> Node[None]:
        """Record one entry (a file-info mapping, shorthand tuple or FileInfo).

        Raises InvalidInputError for what newc or the kernel's unpacker cannot hold (see
        :func:`check_entry`): a file of 4 GiB or more, an mtime outside 0..2**32-1, a name
        of more than 4095 bytes or the trailer's name, a device number Linux cannot
        represent, a hard link whose size or mode differs from its group; CallOrderError
        after :meth:`plan` or :meth:`finish`.
        """
        self._require_open("add()")
        info = to_fileinfo(spec)
        where = info.name or "/"
        check_entry(info)
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

    def add_tree(self, host_dir: HostPath, dest: str = "") -> None:
        """Add a host directory and everything under it (lstat: symlinks, devices, hard links kept)."""
        self._require_open("add_tree()")
        for info in walk_host_fileinfo(host_dir, dest):
            self.add(info)

    @staticmethod
    def _link_key(info: FileInfo) -> tuple[int, int] | None:
        if info.is_dir or info.is_symlink:
            return None
        return info.link_key

    # ---------------------------------------------------------------- planning

    def plan(self) -> CPIOPlan:
        """Every entry in archive order with its header, offset, inode and link count.

        Parents come before children, siblings sorted by name; the root is written only
        when the caller added it.  Inode numbers count from 1 in archive order, one per
        hard-linked file.  After it, :meth:`add` is refused; ``plan()`` may be called again
        (the same plan) until :meth:`finish`.
        """
        self._require_unfinished("plan()")
        plan = self._plan()
        self._mark_planned()
        self._last_plan = plan
        return plan

    def _check_current(self, call: str, plan: CPIOPlan) -> None:
        if plan is not self._last_plan:
            raise CallOrderError(f"CPIO.{call}: the plan is stale or not this writer's; "
                                 "write the plan that the last plan() returned")

    def _plan(self) -> CPIOPlan:
        nodes = list(self.tree.walk())
        if self.tree.root.info.implicit:
            nodes = nodes[1:]  # the root is written only when the caller added it
        group_of: dict[int, list[Node[None]]] = {}
        for members in self._links.values():
            if len(members) > 1:
                for n in members:
                    group_of[id(n)] = members
        order = {id(n): i for i, n in enumerate(nodes)}
        ino_of: dict[int, int] = {}
        link_indices: dict[int, list[int]] = {}
        next_ino = 1
        offset = 0
        entries: list[CPIOEntry] = []
        new_entry = tuple.__new__  # CPIOEntry(...) without its argument handling: 100,000 times
        for node in nodes:
            info = node.info
            group = group_of.get(id(node))
            if group is not None:
                key = id(group[0])
                if key not in ino_of:
                    ino_of[key] = next_ino
                    next_ino += 1
                    link_indices[key] = []
                link_indices[key].append(len(entries))
                ino = ino_of[key]
                nlink = len(group)
                is_last = order[id(node)] == max(order[id(n)] for n in group)
            else:
                ino = next_ino
                next_ino += 1
                nlink = 1
                is_last = True
                children = node.children
                if info.is_dir and children is not None:
                    nlink = 2 + sum(c.children is not None for c in children.values())
            source, inline, size = None, b"", 0
            if info.is_file and is_last:
                source, size = info.source, info.size
            elif info.is_symlink:
                inline = info.target or b""
                size = len(inline)
            mtime = self.default_time if info.mtime is None else info.mtime
            name = info.name or "."
            head = _head(name.encode("utf-8"), dict(
                c_ino=ino, c_mode=info.mode, c_uid=info.uid, c_gid=info.gid, c_nlink=nlink,
                c_mtime=int(mtime), c_filesize=size, c_devmajor=0, c_devminor=0,
                c_rdevmajor=info.rdev_major if info.is_device else 0,
                c_rdevminor=info.rdev_minor if info.is_device else 0))
            entries.append(new_entry(CPIOEntry, (name, offset, ino, nlink, info.mode, size, head, source, inline)))
            offset += len(head) + size + (-size % NEWC_ALIGN_BYTES)
        head = _head(TRAILER_NAME.encode(), dict(
            c_ino=0, c_mode=0, c_uid=0, c_gid=0, c_nlink=1, c_mtime=0, c_filesize=0, c_devmajor=0,
            c_devminor=0, c_rdevmajor=0, c_rdevminor=0))
        entries.append(CPIOEntry(TRAILER_NAME, offset, 0, 1, 0, 0, head, None, b""))
        offset += len(head)
        return CPIOPlan(tuple(entries), tuple(tuple(v) for v in link_indices.values()), offset, self.compress)

    # ---------------------------------------------------------------- writing

    def write(self, fd: int, plan: CPIOPlan, /, *, sparse: bool = True) -> None:
        """Write the archive ``plan`` describes into ``fd``.

        Uncompressed with ``sparse`` (a fresh output file, sized to ``plan.size_bytes`` or
        empty): the archive is bytes 0 .. ``plan.size_bytes`` of ``fd``, each entry at its
        planned offset, file data copied with copy_file_range, all-zero regions left as
        holes.  Compressed, or with ``sparse=False`` (a file that may hold
        old bytes, a pipe, a file opened for appending): every byte is written in order
        from the current position of ``fd``.
        """
        self._check_current("write()", plan)
        if plan.compress is None and sparse:
            _write_sparse(fd, plan)
            return
        with open(fd, "wb", closefd=False) as f:
            _write_stream(f, plan)

    def write_to_stream(self, fileobj: IO[bytes], plan: CPIOPlan | None = None) -> None:
        """Write the whole archive (compressed as chosen) to a writable binary stream.

        Without ``plan``, plans first (so :meth:`add` is refused afterwards).
        """
        if plan is None:
            plan = self.plan()
        self._check_current("write_to_stream()", plan)
        _write_stream(fileobj, plan)

    def finish(self) -> CPIOPlan:
        """plan(), then write the archive to ``filename`` (atomically: nothing is left on
        failure) or ``filehandle`` (from its current position), once; returns the plan."""
        self._require_unfinished("finish()")
        if self.filename is None and self.filehandle is None:
            raise InvalidInputError("CPIO.finish(): no filename or filehandle was given; use write_to_stream()")
        plan = self.plan()  # bad input surfaces before the output is created
        with Output(filename=self.filename, filehandle=self.filehandle, sequential=True) as out:
            # Holes only in a fresh file of ours; anything else (a caller's file from its
            # position, a device, a pipe) gets every byte in order, so nothing old shows.
            sparse = out.fresh and plan.compress is None
            if sparse:
                out.prepare(plan.size_bytes)
            elif plan.compress is None:
                out.check_fits(plan.size_bytes)
            self.write(out.fd, plan, sparse=sparse)
        self._mark_finished()
        return plan


# --------------------------------------------------------------------------------------
# What newc and the kernel's unpacker can hold (init/initramfs.c)

PATH_MAX = 4096
"""The kernel skips an entry whose c_namesize (name and NUL) is more than PATH_MAX."""
LINUX_MAJOR_MAX = (1 << 12) - 1
"""The kernel makes a device number with MKDEV(major, minor) into a 32-bit dev_t: 12 bits of major, ..."""
LINUX_MINOR_MAX = (1 << 20) - 1
"""... and 20 bits of minor; larger numbers would be cut to other devices."""
MTIME_RULE = "newc's unsigned 32-bit c_mtime holds 0..4294967295 (1970-01-01 .. 2106-02-07 UTC)"


def validate_compress(value: object) -> str | None:
    """``compress``: None or one of :data:`COMPRESSIONS` (zstd only with the zstandard module)."""
    if value is not None and (not isinstance(value, str) or value not in COMPRESSIONS):
        raise InvalidInputError(f"CPIO compress: must be None or one of {', '.join(COMPRESSIONS)}, found {value!r}")
    if value == "zstd" and _zstd is None:
        raise InvalidInputError("CPIO compress: 'zstd' needs the Python module 'zstandard' "
                                "(pip install zstandard, or Debian's python3-zstandard)")
    return value


def validate_mtime(where: str, value: object) -> int | float:
    """A time newc can record: seconds 0..2**32-1 (fractions are dropped).  Times outside
    are refused rather than clamped, as GNU cpio refuses them ("field width not sufficient")."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidInputError(f"{where}: must be seconds since the epoch, found {value!r}")
    if not 0 <= value < MAX_FIELD + 1:          # False for NaN too
        raise InvalidInputError(f"{where}: {value!r} is outside what newc can record; {MTIME_RULE}")
    return value


def check_entry(info: FileInfo) -> None:
    """Refuse what newc or the Linux unpacker cannot hold (InvalidInputError naming the
    path, the field, the rule and the value)."""
    where = info.name or "/"
    if info.name == TRAILER_NAME:
        raise InvalidInputError(f"{where}: the name {TRAILER_NAME!r} marks the end of a newc archive; an entry "
                                "of that name would end the archive there (the kernel stops unpacking)")
    if len(info.name) >= PATH_MAX // 4:
        namesize = len(info.name.encode("utf-8")) + 1
        if namesize > PATH_MAX:
            raise InvalidInputError(f"{where[:60]}...: name of {namesize - 1} bytes; the kernel skips an entry "
                                    f"whose c_namesize (name and NUL) is more than PATH_MAX {PATH_MAX}")
    if info.size > MAX_FIELD:
        raise InvalidInputError(f"{where}: size {info.size} bytes; newc's c_filesize holds at most {MAX_FIELD} bytes")
    if info.mtime is not None:
        validate_mtime(f"{where}: mtime", info.mtime)
    if info.is_device and (info.rdev_major > LINUX_MAJOR_MAX or info.rdev_minor > LINUX_MINOR_MAX):
        raise InvalidInputError(
            f"{where}: device ({info.rdev_major}, {info.rdev_minor}); Linux unpacks a device number as "
            f"MKDEV(major, minor) in 32 bits: major 0..{LINUX_MAJOR_MAX}, minor 0..{LINUX_MINOR_MAX}")


def _head(name: bytes, fields: dict[str, int]) -> bytes:
    """Header, name, NUL and padding of one entry."""
    fields["c_namesize"] = len(name) + 1
    fields["c_check"] = 0
    head = build_header_fast(fields) + name + b"\0"
    return head + b"\0" * pad_bytes(len(head))


# --------------------------------------------------------------------------------------
# Writing a plan

class _Sink(Protocol):
    def write(self, data: bytes, /) -> object: ...


def _write_stream(fileobj: IO[bytes], plan: CPIOPlan) -> None:
    """Every byte of the archive in order, compressed as ``plan.compress`` says."""
    comp, close = _compressor(plan.compress, fileobj)
    sink = _BufferedSink(comp)
    try:
        for e in plan.entries:
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
                sink.write(b"\0" * pad_bytes(e.size_bytes))
        sink.flush()
    finally:
        close()


def _compressor(compress: str | None, fileobj: IO[bytes]) -> tuple[_Sink, Callable[[], None]]:
    """(writable, close) where writable compresses into fileobj; close leaves fileobj open."""
    if compress is None:
        return fileobj, lambda: None
    if compress == "gzip":
        # mtime=0 and an empty name keep the gzip header (RFC 1952 2.3) deterministic.
        gz = gzip.GzipFile(filename="", mode="wb", fileobj=fileobj, compresslevel=GZIP_LEVEL, mtime=0)
        return gz, gz.close
    if compress == "xz":
        # The kernel's xz unpacker takes CRC32 or no check, not xz's default CRC64.
        xzc = lzma.LZMAFile(fileobj, mode="wb", format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC32,
                            preset=XZ_PRESET)
        return xzc, xzc.close
    if compress == "zstd" and _zstd is not None:
        zw = _zstd.ZstdCompressor(level=ZSTD_LEVEL, write_checksum=True).stream_writer(fileobj, closefd=False)
        return zw, zw.close
    raise InvalidInputError(f"CPIO: cannot compress with {compress!r} here")


def _write_sparse(fd: int, plan: CPIOPlan) -> None:
    """Uncompressed into a fresh file: headers gathered, file data by write_to at its offset."""
    offset = 0          # where the next byte of the archive goes
    pending = bytearray()
    pending_at = 0      # archive offset of pending[0]
    for e in plan.entries:
        pending += e.head + e.inline
        offset += len(e.head) + len(e.inline)
        if e.source is not None:
            pwrite_all(fd, pending, pending_at)
            pending.clear()
            e.source.write_to(fd, offset)
            offset += e.size_bytes
            pending_at = offset
        pending += b"\0" * pad_bytes(e.size_bytes)
        offset += pad_bytes(e.size_bytes)
    pwrite_all(fd, pending, pending_at)
    if offset != plan.size_bytes:
        raise InternalError(f"cpio: wrote {offset} bytes, the plan says {plan.size_bytes}")


class _BufferedSink:
    """Gathers small writes (headers) into large ones for the compressor or the stream."""

    def __init__(self, raw: _Sink) -> None:
        self.raw = raw
        self.buf = bytearray()

    def write(self, data: bytes) -> None:
        if len(data) >= CHUNK_BYTES // 4:
            self.flush()
            self.raw.write(data)
            return
        self.buf += data
        if len(self.buf) >= GATHER_BYTES:
            self.flush()

    def flush(self) -> None:
        if self.buf:
            self.raw.write(bytes(self.buf))
            self.buf.clear()


__all__ = ["CPIO", "CPIOPlan", "CPIOEntry", "COMPRESSIONS", "GZIP_LEVEL", "XZ_PRESET", "ZSTD_LEVEL"]
