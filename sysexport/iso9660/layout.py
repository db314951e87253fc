"""Directory records and path tables of an ISO 9660 image: sizing and bytes.

ECMA-119 6.8 (directories, records never crossing a logical sector), 6.9 and 9.4 (path
tables), 9.1 (directory record), 9.3 (record order), 6.5.1 (file sections).  The two
hierarchies (ISO 9660 with Rock Ridge, and Joliet) are built by :mod:`.hierarchy` into the
:class:`DirOut` values declared here, with the writer's per-entry state (:class:`Payload`,
:class:`NodeState`).  Record sizes are computed before allocation (Rock Ridge entry lengths
do not depend on the block numbers they carry); bytes are built after allocation, by
:mod:`.dirbytes` for whole directories and here (:func:`lay_record`,
:func:`general_record`) for one :class:`Rec` of any kind.  Records and path table records
are packed by the
``struct.Struct`` declared beside their construct declarations (``_structs.FAST_CODECS``
lists these packers; tests/test_fastcodecs.py checks them).
"""
from __future__ import annotations

import functools
import math
import stat
import time
from dataclasses import dataclass, field
from types import ModuleType
from typing import cast

from ..errors import InternalError
from ..extent import Extent, align_up
from ..fileinfo import FileInfo
from ..tree import Node
from . import rockridge
from ._structs import (DIRECTORY_RECORD_FIXED_BYTES, DIRECTORY_RECORD_HEAD, MAX_RECORD_BYTES,  # noqa: F401
                       PATH_TABLE_RECORD_FIXED_BYTES, PATH_TABLE_RECORD_HEAD_L, PATH_TABLE_RECORD_HEAD_M,
                       SECTOR_BYTES)
from .enums import (FLAG_ASSOCIATED, FLAG_DIRECTORY, FLAG_HIDDEN, FLAG_MULTI_EXTENT, FLAG_PROTECTION,  # noqa: F401
                    FLAG_RECORD, USER_FLAGS)

MAX_SECTION_BYTES = 0xFFFFF800
"""The section size of a file split into several extents (ECMA-119 6.5.1): the largest
multiple of 2048 below 4 GiB (every section but the last ends on a block boundary)."""
CE_BYTES = rockridge.CE_ENTRY_BYTES   # SUSP 1.12 5.1: the CE entry a record ends with when it continues

K_DIR, K_FILE, K_OTHER, K_CL = range(4)

# The Rock Ridge entries of a plain regular file (RRIP 1.12 4.1: [RR], PX, NM, TF), their
# lengths as rockridge.py's builders make them (they do not depend on the numbers inside).
_RR_BYTES = len(rockridge._rr(0))
_PX_BYTES = len(rockridge._px(0, 0, 0, 0, None))
_PX_SERIAL_BYTES = len(rockridge._px(0, 0, 0, 0, 0))
_TF_BYTES = len(rockridge._tf(FileInfo(name="f", mode=stat.S_IFREG), 0))
_NM_HEAD_BYTES = rockridge.NM_HEADER_SIZE
_NM_PREFIX = b"NM"      # signature; LEN, version 1 and flags 0 follow (RRIP 1.12 4.1.4)


def dir_datetime(t: float) -> bytes:
    """ECMA-119 9.1.5 recording date and time, in UTC (offset 0), clamped to 1900..2155."""
    return _dir_datetime_s(int(t))


@functools.lru_cache(maxsize=4096)
def _dir_datetime_s(seconds: int) -> bytes:
    tm = time.gmtime(seconds)
    if tm.tm_year < 1900:
        return bytes([0, 1, 1, 0, 0, 0, 0])
    if tm.tm_year > 2155:
        return bytes([255, 12, 31, 23, 59, 59, 0])
    return bytes([tm.tm_year - 1900, tm.tm_mon, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, 0])


def dec_datetime(t: float | None) -> bytes:
    """ECMA-119 8.4.26.1: 'YYYYMMDDHHMMSScc' + GMT offset; None gives 'not specified'."""
    if t is None:
        return b"0" * 16 + b"\x00"
    tm = time.gmtime(int(t))
    year = min(max(tm.tm_year, 1), 9999)
    return (f"{year:04d}{tm.tm_mon:02d}{tm.tm_mday:02d}{tm.tm_hour:02d}{tm.tm_min:02d}"
            f"{tm.tm_sec:02d}00").encode("ascii") + b"\x00"


def pack_record(ident: bytes, lba: int, data_length: int, recorded: bytes, flags: int,
                system_use: bytes = b"") -> bytes:
    """One directory record (ECMA-119 9.1), padded to an even length."""
    pad = b"\x00" if len(ident) % 2 == 0 else b""
    length = DIRECTORY_RECORD_FIXED_BYTES + len(ident) + len(pad) + len(system_use)
    tail = b""
    if length % 2:
        tail = b"\x00"
        length += 1
    if length > 255:
        raise InternalError(f"directory record of {length} bytes for {ident!r}")
    head = DIRECTORY_RECORD_HEAD.pack(length, 0, lba, lba.to_bytes(4, "big"), data_length,
                                      data_length.to_bytes(4, "big"), recorded, flags, 0, 0, 1, b"\x00\x01",
                                      len(ident))
    return head + ident + pad + system_use + tail


def path_table_record(ident: bytes, lba: int, parent_number: int, big_endian: bool) -> bytes:
    """One path table record (ECMA-119 9.4), L (little-endian) or M (big-endian)."""
    head = (PATH_TABLE_RECORD_HEAD_M if big_endian else PATH_TABLE_RECORD_HEAD_L).pack(len(ident), 0, lba,
                                                                                          parent_number)
    return head + ident + (b"\x00" if len(ident) % 2 else b"")


class Payload:
    """The bytes of one regular file, shared by all its hard links.

    From plan() on it is also the ``Node.w`` of every member of its link group (the node's
    inode is the payload's, its link count ``max(nlink, 1)``): no other per-file object is
    kept.  Its extent is held as a device offset (-1: none yet), the :class:`Extent` made
    when asked for: 100,000 files placed by a coordinator need no Extent each."""

    __slots__ = ("info", "size_bytes", "offset", "placed_later", "inode", "nlink")

    def __init__(self, info: FileInfo, size_bytes: int, extent: Extent | None = None, placed_later: bool = False,
                 inode: int = 0, nlink: int = 0) -> None:
        self.info = info
        self.size_bytes = size_bytes
        self.offset = -1 if extent is None else extent.device_offset
        self.placed_later = placed_later
        self.inode = inode
        self.nlink = nlink

    @property
    def fixed(self) -> bool:
        """Placed by the caller, at its file-info ``device_offset``."""
        return self.info.device_offset is not None

    @property
    def extent(self) -> Extent | None:
        """The file's bytes on the device (None until allocated or placed)."""
        if self.offset < 0:
            return None
        return Extent(self.offset, self.size_bytes, self.info.name)

    @extent.setter
    def extent(self, value: Extent | None) -> None:
        self.offset = -1 if value is None else value.device_offset

    @property
    def payload(self) -> Payload:
        """The payload of a node whose state this is (itself)."""
        return self

    def __repr__(self) -> str:
        return f"Payload({self.info.name!r}, {self.size_bytes}, offset={self.offset})"

    def sections(self) -> list[tuple[int, int]]:
        """(device_offset, length) of each extent of the file (ECMA-119 6.5.1): one, unless
        the file needs more (see :func:`single_section_max`)."""
        if self.size_bytes == 0:
            return [(0, 0)]
        if self.offset < 0:
            raise InternalError(f"{self.info.name}: no extent")
        if self.size_bytes <= single_section_max():
            return [(self.offset, self.size_bytes)]
        out, pos, left = [], self.offset, self.size_bytes
        while left:
            n = min(left, MAX_SECTION_BYTES)
            out.append((pos, n))
            pos += n
            left -= n
        return out

    def section_count(self) -> int:
        if self.size_bytes <= single_section_max():
            return 1
        return -(-self.size_bytes // MAX_SECTION_BYTES)


def single_section_max() -> int:
    """The largest file recorded in one extent: 0xFFFFFFFF bytes, the largest Data Length
    (ECMA-119 9.1.4, a 32-bit number), which is MAX_SECTION_BYTES plus the 2047 bytes its
    last block holds beyond it (computed from MAX_SECTION_BYTES, so a test that makes the
    sections small moves this limit with them).

    Levels 1 and 2 record each file in one extent (ECMA-119 10.1, 10.2); at level 3 a file
    of 0xFFFFF801..0xFFFFFFFF bytes is one extent too, as xorriso writes it at every level
    (measured, xorriso 1.5.4).  Only files of 4 GiB or more, which level 3 alone allows,
    are split into sections of MAX_SECTION_BYTES."""
    return MAX_SECTION_BYTES + SECTOR_BYTES - 1


@dataclass(eq=False, slots=True)
class NodeState:
    """Per-node scratch state of the ISO writer (``Node.w``) of a directory, a symlink, a
    device, a fifo or a socket; a regular file's state is its :class:`Payload`.  The
    identifiers live with the directory that records them (:class:`DirOut`)."""

    inode: int = 0
    nlink: int = 1
    iso_dir: "DirOut | None" = None
    joliet_dir: "DirOut | None" = None
    placed_later: bool = False

    @property
    def payload(self) -> None:
        """No bytes: only regular files have a payload."""
        return None


PLACED_LATER = NodeState(placed_later=True)
"""Node.w of a file added with placed_later=True, until plan() gives it its own state."""


class RRArgs:
    """What the Rock Ridge entries of one record are made from.

    ``name`` may be a tree Node: its UTF-8 name is then made when asked for."""

    __slots__ = ("info", "_name", "nlink", "inode", "sp_er", "relocated", "link")

    def __init__(self, info: FileInfo, name: bytes | Node | None, nlink: int, inode: int, sp_er: bool = False,
                 relocated: str | None = None, link: "DirOut | None" = None) -> None:
        self.info = info
        self._name = name
        self.nlink = nlink
        self.inode = inode
        self.sp_er = sp_er
        self.relocated = relocated
        self.link = link

    @property
    def name(self) -> bytes | None:
        n = self._name
        return _rr_name(n) if isinstance(n, Node) else n


class _RRFromPayload:
    """Rock Ridge arguments of a plain file record, derived when needed from the record
    itself (its FileInfo and payload): no per-file object is kept for them."""

    __slots__ = ()


RR_FROM_PAYLOAD = _RRFromPayload()

RRSource = RRArgs | _RRFromPayload
"""What a record's Rock Ridge entries come from (``Rec.rr``; None: no Rock Ridge entries)."""


def rr_args(rec: "Rec") -> RRArgs | None:
    """The Rock Ridge arguments of a record (made from its payload for a plain file)."""
    kw = rec.rr
    if isinstance(kw, _RRFromPayload):
        p = _payload(rec)
        return RRArgs(rec.info, rec.info.basename.encode("utf-8", "surrogateescape"), p.nlink, p.inode)
    return kw


@dataclass(eq=False, slots=True)
class Rec:
    """One directory record before its numbers are known."""

    ident: bytes
    flags: int
    info: FileInfo
    kind: int
    target: "DirOut | None" = None
    payload: Payload | None = None
    section: int = 0
    rr: RRSource | None = None
    length: int = 0
    pos: int = 0
    cont_len: int = 0
    cont_offset: int = 0


@dataclass(eq=False, slots=True)
class DirOut:
    """One directory of one hierarchy (ISO 9660 or Joliet).

    Its records are not kept: ``entries`` lists, in record order (ECMA-119 9.3), the key in
    ``node.children`` of each child it records (a str) or a record made at plan() (a
    :class:`Rec`: RR_MOVED and the directories relocated into it); ``idents`` holds their
    identifiers end to end, ``ident_lens`` the length of each (None in a Joliet directory
    whose identifiers are its children's names in UCS-2).  :mod:`.dirbytes` sizes the
    records from these at plan() and builds them once, at write()."""

    info: FileInfo
    parent: "DirOut | None"
    ident: bytes
    depth: int
    node: Node | None = None
    children: list["DirOut"] = field(default_factory=list)
    extent: Extent | None = None
    number: int = 0
    real_parent: "DirOut | None" = None    # relocated directories: the true parent (PL)
    inode: int = 0
    nlink: int = 2
    joliet: bool = False
    entries: list["str | Rec"] = field(default_factory=list)
    idents: bytes = b""
    ident_lens: bytes | None = b""
    conts: dict[int, list[int]] | None = None   # record index -> [continuation length, offset]
    used_bytes: int = 0     # bytes of records, sector padding included, found by size_directory

    @property
    def lba(self) -> int:
        return self.placed_extent.device_offset // SECTOR_BYTES

    @property
    def placed_extent(self) -> Extent:
        """The directory's extent; InternalError before allocation."""
        if self.extent is None:
            raise InternalError(f"{self.info.name or '/'}: directory has no extent yet")
        return self.extent

    @property
    def tree_node(self) -> Node:
        """The tree node the directory shows; InternalError for RR_MOVED, which has none."""
        if self.node is None:
            raise InternalError(f"{self.info.name or '/'}: directory has no tree node")
        return self.node


def _state(node: Node) -> NodeState:
    """The ISO writer's state of a directory or special node (``Node.w`` from plan() on)."""
    return cast(NodeState, node.w)


def payload_of(node: Node) -> Payload | None:
    """The payload of a regular file's node after plan() (its ``Node.w``), else None."""
    w = node.w
    return w if isinstance(w, Payload) else None


def _payload(rec: Rec) -> Payload:
    if rec.payload is None:
        raise InternalError(f"{rec.info.name}: file record without payload")
    return rec.payload


def _target(rec: Rec) -> DirOut:
    if rec.target is None:
        raise InternalError(f"{rec.info.name or '/'}: directory record without target")
    return rec.target


def _rr_name(node: Node) -> bytes:
    """A node's Rock Ridge name (NM): its name in UTF-8."""
    return node.name.encode("utf-8", "surrogateescape")


def path_table_bytes(dirs: list[DirOut], big_endian: bool) -> bytes:
    """A whole path table (ECMA-119 6.9)."""
    return b"".join(path_table_record(d.ident, d.lba, (d.parent or d).number, big_endian) for d in dirs)


def path_table_size(dirs: list[DirOut]) -> int:
    return sum(PATH_TABLE_RECORD_FIXED_BYTES + len(d.ident) + len(d.ident) % 2 for d in dirs)


def record_base_length(ident: bytes) -> int:
    """Bytes of a record without system use field: fixed part, identifier, padding (ECMA-119 9.1.12)."""
    return DIRECTORY_RECORD_FIXED_BYTES + len(ident) + (1 - len(ident) % 2)


def rr_entries(rec: Rec, rr_mod: ModuleType | None, version: str, default_time: float,
               final: bool) -> list[bytes]:
    """The SUSP/RRIP entries of a record; with final=False the block numbers are placeholders.

    ``rr_mod`` is the :mod:`rockridge` module when Rock Ridge is on (as for every function
    here that takes it), None when it is off."""
    kw = rr_args(rec)
    if rr_mod is None or kw is None:
        return []
    if rec.rr is RR_FROM_PAYLOAD:           # a plain file: no SP/ER, not relocated
        return rockridge.rrip_entries(kw.info, version=version, name=kw.name, nlink=kw.nlink, inode=kw.inode,
                                      default_time=default_time)
    link = kw.link
    lba = (link.lba if final else 0) if link is not None else None
    relocated = kw.relocated
    entries = [rockridge.susp_sp()] if kw.sp_er else []
    entries += rockridge.rrip_entries(kw.info, version=version, name=kw.name, nlink=kw.nlink, inode=kw.inode,
                                      default_time=default_time, relocated=relocated,
                                      child_lba=lba if relocated == "CL" else None,
                                      parent_lba=lba if relocated == "PL" else None)
    if kw.sp_er:
        entries.append(rockridge.rrip_er(version))
    return entries


def _plain_file_rr_bytes(rec: Rec, version: str) -> int | None:
    """Length of the Rock Ridge entries of a plain regular file's record (RR for 1.09, PX,
    NM, TF: RRIP 4.1), or None when the entries must be built to know (then they are).

    Sizing 100,000 records this way halves the Rock Ridge work; directory_bytes() builds
    the entries and checks that every directory comes out at its planned size.
    """
    info = rec.info
    for t in (info.mtime, info.atime, info.ctime):
        if t is not None and not math.isfinite(t):
            return None                     # rr_entries() reports it
    name_len = len(info.basename.encode("utf-8", "surrogateescape"))
    return _plain_rr_bytes(info.mode, _payload(rec).nlink, info.uid, info.gid, name_len, version)


@functools.lru_cache(maxsize=1024)
def _plain_rr_bytes(mode: int, nlink: int, uid: int, gid: int, name_len: int, version: str) -> int | None:
    """The part of _plain_file_rr_bytes() that many files share (one result per key)."""
    if (not stat.S_ISREG(mode) or mode > 0xFFFFFFFF or nlink > 0xFFFFFFFF
            or not 0 <= uid <= 0xFFFFFFFF or not 0 <= gid <= 0xFFFFFFFF):
        return None
    if not name_len:
        return None
    pieces = -(-name_len // rockridge.NM_NAME_MAX_BYTES)
    if version == rockridge.RRIP_109:
        return _RR_BYTES + _PX_BYTES + _NM_HEAD_BYTES * pieces + name_len + _TF_BYTES
    if version == rockridge.RRIP_112:
        return _PX_SERIAL_BYTES + _NM_HEAD_BYTES * pieces + name_len + _TF_BYTES
    return None


def lay_record(rec: Rec, pos: int, where: str, rr_mod: ModuleType | None, version: str,
               default_time: float) -> tuple[int, int]:
    """Give one record of any kind its length and position ``pos`` (or the next sector's
    start: no record crosses a sector, ECMA-119 6.8.1.1), and ``rec.cont_len``, the bytes
    of its continuation area; returns (position after it, continuation bytes)."""
    li = len(rec.ident)
    base = DIRECTORY_RECORD_FIXED_BYTES + li + (1 - li % 2)     # record_base_length()
    su_len = 0
    cont_len = 0
    if rec.rr is not None:
        plain = _plain_file_rr_bytes(rec, version) if rec.rr is RR_FROM_PAYLOAD else None
        if plain is not None and plain <= MAX_RECORD_BYTES - base:
            su_len = plain                  # same length rr_entries() gives, without building it
        else:
            fit, cont = rockridge.split_system_use(rr_entries(rec, rr_mod, version, default_time, False),
                                                   MAX_RECORD_BYTES - base)
            su_len = sum(map(len, fit)) + (CE_BYTES if cont else 0)
            cont_len = len(cont)
    rec.cont_len = cont_len
    rec.length = length = base + su_len + (base + su_len) % 2
    if length > 255:
        raise InternalError(f"{where}: record {rec.ident!r} would be {length} bytes")
    if pos % SECTOR_BYTES + length > SECTOR_BYTES:
        pos = align_up(pos, SECTOR_BYTES)
    rec.pos = pos
    return pos + length, cont_len


def lay_records(records: list[Rec], d: DirOut, rr_mod: ModuleType | None, version: str,
                default_time: float) -> tuple[int, dict[int, list[int]]]:
    """Lengths and positions of ``records`` (:func:`lay_record` one by one); returns the
    bytes they take and the continuation areas they need {index: [length, 0]}."""
    pos = 0
    conts: dict[int, list[int]] = {}
    where = d.info.name or "/"
    for i, rec in enumerate(records):
        pos, cont_len = lay_record(rec, pos, where, rr_mod, version, default_time)
        if cont_len:
            conts[i] = [cont_len, 0]
    return pos, conts


def record_location(rec: Rec) -> tuple[int, int]:
    """(LBA, data length) that a record points at."""
    if rec.kind == K_DIR:
        target = _target(rec)
        return target.lba, target.placed_extent.size_bytes
    if rec.kind == K_FILE:
        offset, length = _payload(rec).sections()[rec.section]
        return offset // SECTOR_BYTES, length
    return 0, 0


PlainPrefix = tuple[bytes, bytes, bool]
"""A plain file's Rock Ridge entries less NM and serial number: (RR and PX head, TF, odd)."""


def plain_prefix(rec: Rec, rr_mod: ModuleType | None, version: str, default_time: float) -> PlainPrefix:
    """What a plain file's Rock Ridge entries share with every file of the same mode, links,
    owner and times, taken from the entries rrip_entries() builds for it: [RR (1.09)] and PX
    without the serial number, and TF; ``odd`` when they are not those and one NM entry."""
    entries = rr_entries(rec, rr_mod, version, default_time, True)
    px_at = 1 if version == rockridge.RRIP_109 else 0
    rr_head = b"".join(entries[:px_at + 1])
    if version == rockridge.RRIP_112:
        rr_head = rr_head[:-8]
    return rr_head, entries[-1], len(entries) != px_at + 3 or not entries[-1].startswith(b"TF")


def general_record(rec: Rec, rr_mod: ModuleType | None, version: str, default_time: float,
                   continuation: dict[int, bytes]) -> bytes:
    """The final bytes of any record, built from its Rock Ridge entries (split with a CE
    entry when ``rec.cont_len`` says it continues; the continuation area goes into
    ``continuation`` at ``rec.cont_offset``)."""
    su = b""
    if rec.rr is not None:
        fit, cont = rockridge.split_system_use(rr_entries(rec, rr_mod, version, default_time, True),
                                               MAX_RECORD_BYTES - record_base_length(rec.ident))
        if len(cont) != rec.cont_len:
            raise InternalError(f"{rec.info.name}: continuation area changed size after allocation")
        if cont:
            fit = list(fit) + [rockridge.susp_ce(rec.cont_offset // SECTOR_BYTES, rec.cont_offset % SECTOR_BYTES,
                                                 len(cont))]
            continuation[rec.cont_offset] = cont
        su = b"".join(fit)
    t = rec.info.mtime if rec.info.mtime is not None else default_time
    lba, length = record_location(rec)
    return pack_record(rec.ident, lba, length, dir_datetime(t), rec.flags, su)
