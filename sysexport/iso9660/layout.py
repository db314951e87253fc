"""Directory hierarchies, directory records and path tables of an ISO 9660 image.

ECMA-119 6.8 (directories, records never crossing a logical sector), 6.9 and 9.4 (path
tables), 9.1 (directory record), 9.3 (record order); Joliet for the second tree; Rock
Ridge (RRIP 1.09/1.12, section 4.1.5) for relocating directories deeper than 8 levels.
Record sizes are computed before allocation (Rock Ridge entry lengths do not depend on
the block numbers they carry); bytes are built after allocation.
"""
from __future__ import annotations

import functools
import math
import stat
import struct
import time
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from ..errors import InternalError, LayoutError
from ..extent import Extent, align_up
from ..fileinfo import FileInfo, implied_directory
from ..tree import Node, Tree
from . import names as _names
from ._structs import SECTOR_BYTES

FLAG_HIDDEN = 0x01          # ECMA-119 9.1.6 bit 0: Existence ("hidden")
FLAG_DIRECTORY = 0x02       # bit 1: Directory
FLAG_ASSOCIATED = 0x04      # bit 2: Associated File
FLAG_RECORD = 0x08          # bit 3: Record format in the extended attribute record
FLAG_PROTECTION = 0x10      # bit 4: Protection in the extended attribute record
FLAG_MULTI_EXTENT = 0x80    # bit 7: not the final directory record of the file
USER_FLAGS = FLAG_HIDDEN | FLAG_ASSOCIATED

MAX_RECORD_BYTES = 254      # 9.1.1: at most 255, and even (9.1.12 padding keeps it even)
MAX_SECTION_BYTES = 0xFFFFF800   # largest extent < 4 GiB that is a multiple of 2048
MAX_DEPTH = 8               # ECMA-119 6.8.2.1: at most eight levels of directories
CE_BYTES = 28               # SUSP 5.1
RR_MOVED_NAME = b".rr_moved"

K_DIR, K_FILE, K_OTHER, K_CL = range(4)

# Hot path: a directory record header (ECMA-119 9.1) packed by struct; big-endian halves
# are given as bytes.  tests/test_iso9660_structs.py checks it against _structs.DirectoryRecord.
_REC = struct.Struct("<BBI4sI4s6BbBBBH2sB")
_PT_L = struct.Struct("<BBIH")
_PT_M = struct.Struct(">BBIH")


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
    length = 33 + len(ident) + len(pad) + len(system_use)
    tail = b""
    if length % 2:
        tail = b"\x00"
        length += 1
    if length > 255:
        raise InternalError(f"directory record of {length} bytes for {ident!r}")
    head = _REC.pack(length, 0, lba, lba.to_bytes(4, "big"), data_length, data_length.to_bytes(4, "big"),
                     *recorded[:6], struct.unpack("b", recorded[6:7])[0], flags, 0, 0, 1, b"\x00\x01",
                     len(ident))
    return head + ident + pad + system_use + tail


def path_table_record(ident: bytes, lba: int, parent_number: int, big_endian: bool) -> bytes:
    """One path table record (ECMA-119 9.4), L (little-endian) or M (big-endian)."""
    head = (_PT_M if big_endian else _PT_L).pack(len(ident), 0, lba, parent_number)
    return head + ident + (b"\x00" if len(ident) % 2 else b"")


@dataclass(eq=False, slots=True)
class Payload:
    """The bytes of one regular file, shared by all its hard links."""

    info: FileInfo
    size_bytes: int
    extent: Extent | None = None
    placed_later: bool = False
    fixed: bool = False
    inode: int = 0
    nlink: int = 0

    def sections(self) -> list[tuple[int, int]]:
        """(device_offset, length) of each extent of a multi-extent file (ECMA-119 6.5.1)."""
        if self.size_bytes == 0:
            return [(0, 0)]
        if self.extent is None:
            raise InternalError(f"{self.info.name}: no extent")
        out, pos, left = [], self.extent.device_offset, self.size_bytes
        while left:
            n = min(left, MAX_SECTION_BYTES)
            out.append((pos, n))
            pos += n
            left -= n
        return out

    def section_count(self) -> int:
        return max(1, -(-self.size_bytes // MAX_SECTION_BYTES))


@dataclass(eq=False, slots=True)
class NodeState:
    """Per-node scratch state of the ISO writer (``Node.w``)."""

    payload: Payload | None = None
    inode: int = 0
    nlink: int = 1
    iso_ident: bytes = b""
    joliet_ident: bytes = b""
    iso_dir: "DirOut | None" = None
    joliet_dir: "DirOut | None" = None
    placed_later: bool = False


PLACED_LATER = NodeState(placed_later=True)
"""Node.w of a file added with placed_later=True, until plan() gives it its own state."""


class RRArgs:
    """What the Rock Ridge entries of one record are made from (a compact mapping).

    ``name`` may be a tree Node: its UTF-8 name is then made when asked for."""

    __slots__ = ("info", "_name", "nlink", "inode", "sp_er", "relocated", "link")

    def __init__(self, info: FileInfo, name: Any, nlink: int, inode: int, sp_er: bool = False,
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

    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key, default)


class _RRFromPayload:
    """Rock Ridge arguments of a plain file record, derived when needed from the record
    itself (its FileInfo and payload): no per-file object is kept for them."""

    __slots__ = ()


RR_FROM_PAYLOAD = _RRFromPayload()


def rr_args(rec: "Rec") -> Any:
    kw = rec.rr
    if kw is RR_FROM_PAYLOAD:
        p = rec.payload
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
    rr: Any = None
    length: int = 0
    pos: int = 0
    cont_len: int = 0
    cont_offset: int = 0


@dataclass(eq=False, slots=True)
class DirOut:
    """One directory of one hierarchy (ISO 9660 or Joliet)."""

    info: FileInfo
    parent: "DirOut | None"
    ident: bytes
    depth: int
    node: Node | None = None
    records: list[Rec] = field(default_factory=list)
    children: list["DirOut"] = field(default_factory=list)
    extent: Extent | None = None
    number: int = 0
    real_parent: "DirOut | None" = None    # relocated directories: the true parent (PL)
    inode: int = 0
    nlink: int = 2
    build: Any = None       # makes the records when needed (they are not kept: memory)
    conts: dict[int, list[int]] | None = None   # record index -> [continuation length, offset]
    used_bytes: int = 0     # bytes of records, sector padding included, found by size_directory

    @property
    def lba(self) -> int:
        if self.extent is None:
            raise InternalError(f"{self.info.name or '/'}: directory has no extent yet")
        return self.extent.device_offset // SECTOR_BYTES


def _file_records(node: Node, ident: bytes, rr: Any) -> list[Rec]:
    st: NodeState = node.w
    flags = node.info.ISO9660_flags & USER_FLAGS
    if st.payload is None:
        return [Rec(ident, flags, node.info, K_OTHER, rr=rr)]
    if rr is not None and rr is not RR_FROM_PAYLOAD and rr.nlink == st.payload.nlink and rr.inode == st.payload.inode \
            and rr._name is node and not rr.sp_er and rr.relocated is None:
        rr = RR_FROM_PAYLOAD
    n = st.payload.section_count()
    if n == 1:
        return [Rec(ident, flags, node.info, K_FILE, payload=st.payload, rr=rr)]
    return [Rec(ident, flags | (FLAG_MULTI_EXTENT if i < n - 1 else 0), node.info, K_FILE,
                payload=st.payload, section=i, rr=rr) for i in range(n)]


def _rr(info: FileInfo, name: Any, nlink: int, inode: int, **kw: Any) -> RRArgs:
    return RRArgs(info, name, nlink, inode, **kw)


def _rr_name(node: Node) -> bytes:
    return node.name.encode("utf-8", "surrogateescape")


def build_iso_hierarchy(tree: Tree, level: int, rock_ridge: bool, next_inode: int) -> list[DirOut]:
    """The ISO 9660 directories in path table order, records filled (sizes not yet).

    With Rock Ridge, a directory that would sit deeper than 8 levels is moved under
    RR_MOVED (RRIP 4.1.5): a CL placeholder stays in its true parent, its '..' gets PL,
    its record in RR_MOVED gets RE.  RR_MOVED itself carries RE too, which Linux and
    libisofs read as "hide this entry" in the Rock Ridge view.
    """
    root_node = tree.root
    root = DirOut(root_node.info, None, b"\x00", 1, node=root_node, inode=root_node.w.inode,
                  nlink=root_node.w.nlink)
    root_node.w.iso_dir = root
    rr_moved: DirOut | None = None
    relocated: list[tuple[DirOut, Node]] = []
    queue: list[DirOut] = [root]
    i = 0
    while i < len(queue):
        d = queue[i]
        i += 1
        kids = d.node.sorted_children()
        idents = _names.assign_iso_names([(c, c.name, c.info.is_dir, c.info.ISO9660_shortname) for c in kids],
                                         level, d.node.path)
        for c in kids:
            c.w.iso_ident = idents[c]
            if not c.info.is_dir:
                continue
            if rock_ridge and d.depth + 1 > MAX_DEPTH:
                if rr_moved is None:
                    rr_info = implied_directory("rr_moved")
                    rr_info.mtime = root.info.mtime
                    rr_moved = DirOut(rr_info, root, b"", 2, inode=next_inode)
                    next_inode += 1
                    root.children.append(rr_moved)
                cd = DirOut(c.info, rr_moved, b"", 3, node=c, real_parent=d, inode=c.w.inode, nlink=c.w.nlink)
                relocated.append((d, c))
                rr_moved.children.append(cd)
            else:
                cd = DirOut(c.info, d, idents[c], d.depth + 1, node=c, inode=c.w.inode, nlink=c.w.nlink)
                d.children.append(cd)
            c.w.iso_dir = cd
            queue.append(cd)
    if rr_moved is not None:
        moved = _names.assign_iso_names([(c, c.name, True, None) for _, c in relocated], level, "rr_moved")
        for _, c in relocated:
            c.w.iso_dir.ident = moved[c]
        taken = {r.w.iso_ident for r in root_node.sorted_children()}
        ident = b"RR_MOVED"
        n = 0
        while ident in taken:
            n += 1
            ident = f"RR_MOV{n:02d}".encode()
        rr_moved.ident = ident
        rr_moved.nlink = 2 + len(relocated)
    ordered = _path_table_order(root)
    for d in ordered:
        d.build = partial(_iso_records, d, rock_ridge, root, rr_moved)
    return ordered


def dir_records(d: DirOut) -> list[Rec]:
    """The records of a directory, made afresh (with their continuation areas, once planned)."""
    if d.build is None:
        return d.records
    recs = d.build()
    if d.conts:
        for i, (cont_len, cont_offset) in d.conts.items():
            recs[i].cont_len = cont_len
            recs[i].cont_offset = cont_offset
    return recs


def _iso_records(d: DirOut, rock_ridge: bool, root: DirOut, rr_moved: DirOut | None) -> list[Rec]:
    parent = d.parent or d
    true_parent = d.real_parent or parent
    rr = (lambda *a, **k: _rr(*a, **k)) if rock_ridge else (lambda *a, **k: None)
    dot = Rec(b"\x00", FLAG_DIRECTORY, d.info, K_DIR, target=d,
              rr=rr(d.info, None, d.nlink, d.inode, sp_er=d is root))
    if d.real_parent is not None:
        dotdot_rr = rr(true_parent.info, None, true_parent.nlink, true_parent.inode, relocated="PL",
                       link=true_parent)
    else:
        dotdot_rr = rr(parent.info, None, parent.nlink, parent.inode)
    records = [dot, Rec(b"\x01", FLAG_DIRECTORY, parent.info, K_DIR, target=parent, rr=dotdot_rr)]
    children: list[Rec] = []
    if d.node is not None:
        for c in d.node.sorted_children():
            st: NodeState = c.w
            if c.info.is_dir:
                cd = st.iso_dir
                flags = FLAG_DIRECTORY | (c.info.ISO9660_flags & USER_FLAGS)
                if cd.parent is d:
                    children.append(Rec(st.iso_ident, flags, c.info, K_DIR, target=cd,
                                        rr=rr(c.info, c, cd.nlink, cd.inode)))
                else:   # relocated: a file record carrying CL (RRIP 4.1.5.1)
                    children.append(Rec(st.iso_ident, c.info.ISO9660_flags & USER_FLAGS, c.info, K_CL, target=cd,
                                        rr=rr(c.info, _rr_name(c), cd.nlink, cd.inode, relocated="CL", link=cd)))
            else:
                pl = st.payload
                plain = rock_ridge and pl is not None and st.nlink == pl.nlink and st.inode == pl.inode
                if plain and pl.size_bytes <= MAX_SECTION_BYTES:     # _file_records(), one section
                    children.append(Rec(st.iso_ident, c.info.ISO9660_flags & USER_FLAGS, c.info, K_FILE,
                                        None, pl, 0, RR_FROM_PAYLOAD))
                    continue
                children.extend(_file_records(c, st.iso_ident, RR_FROM_PAYLOAD if plain
                                              else rr(c.info, c, st.nlink, st.inode)))
    if d is root and rr_moved is not None:
        children.append(Rec(rr_moved.ident, FLAG_DIRECTORY, rr_moved.info, K_DIR, target=rr_moved,
                            rr=rr(rr_moved.info, RR_MOVED_NAME, rr_moved.nlink, rr_moved.inode, relocated="RE")))
    if d is rr_moved:
        for cd in d.children:
            children.append(Rec(cd.ident, FLAG_DIRECTORY, cd.info, K_DIR, target=cd,
                                rr=rr(cd.info, _rr_name(cd.node), cd.nlink, cd.inode, relocated="RE")))
    children.sort(key=lambda r: _names.iso_sort_key(r.ident))
    return records + children


def _joliet_children(node: Node) -> list[Node]:
    """Joliet holds directories and regular files only: like xorriso, symlinks, devices,
    fifos and sockets exist only in the Rock Ridge view (Joliet cannot describe them)."""
    return [c for c in node.sorted_children() if c.info.mode & 0o170000 in _JOLIET_TYPES]


_JOLIET_TYPES = (stat.S_IFDIR, stat.S_IFREG)


def build_joliet_hierarchy(tree: Tree) -> list[DirOut]:
    """The Joliet directories (the true tree, UCS-2 names sorted by code unit) in path table order."""
    root = DirOut(tree.root.info, None, b"\x00", 1, node=tree.root)
    tree.root.w.joliet_dir = root
    queue = [root]
    i = 0
    while i < len(queue):
        d = queue[i]
        i += 1
        kids = _joliet_children(d.node)
        idents = _names.assign_joliet_names([(c, c.name, c.info.is_dir) for c in kids])
        for c in kids:
            c.w.joliet_ident = idents[c]
            if c.info.is_dir:
                cd = DirOut(c.info, d, idents[c], d.depth + 1, node=c)
                c.w.joliet_dir = cd
                d.children.append(cd)
                queue.append(cd)
    ordered = _path_table_order(root)
    for d in ordered:
        d.build = partial(_joliet_records, d)
    return ordered


def _joliet_records(d: DirOut) -> list[Rec]:
    parent = d.parent or d
    recs = [Rec(b"\x00", FLAG_DIRECTORY, d.info, K_DIR, target=d),
            Rec(b"\x01", FLAG_DIRECTORY, parent.info, K_DIR, target=parent)]
    kids: list[Rec] = []
    for c in _joliet_children(d.node):
        if c.info.is_dir:
            kids.append(Rec(c.w.joliet_ident, FLAG_DIRECTORY | (c.info.ISO9660_flags & USER_FLAGS), c.info,
                            K_DIR, target=c.w.joliet_dir))
        else:
            st = c.w
            pl = st.payload
            if pl is not None and pl.size_bytes <= MAX_SECTION_BYTES:    # _file_records(), one section
                kids.append(Rec(st.joliet_ident, c.info.ISO9660_flags & USER_FLAGS, c.info, K_FILE, None, pl))
            else:
                kids.extend(_file_records(c, st.joliet_ident, None))
    kids.sort(key=lambda r: r.ident)
    return recs + kids


def _path_table_order(root: DirOut) -> list[DirOut]:
    """ECMA-119 6.9.1: by level, then parent number, then identifier; numbers from 1."""
    out = [root]
    i = 0
    while i < len(out):
        d = out[i]
        d.number = i + 1
        out.extend(sorted(d.children, key=lambda c: c.ident))
        i += 1
    if len(out) > 0xFFFF:
        raise LayoutError(f"{len(out)} directories: a path table numbers at most 65535 (ECMA-119 9.4.4)")
    return out


def path_table_bytes(dirs: list[DirOut], big_endian: bool) -> bytes:
    """A whole path table (ECMA-119 6.9)."""
    return b"".join(path_table_record(d.ident, d.lba, (d.parent or d).number, big_endian) for d in dirs)


def path_table_size(dirs: list[DirOut]) -> int:
    return sum(8 + len(d.ident) + len(d.ident) % 2 for d in dirs)


def record_base_length(ident: bytes) -> int:
    return 33 + len(ident) + (1 - len(ident) % 2)


def rr_entries(rec: Rec, rr_mod: Any, version: str, default_time: float, final: bool) -> list[bytes]:
    """The SUSP/RRIP entries of a record; with final=False the block numbers are placeholders."""
    if rec.rr is RR_FROM_PAYLOAD:           # a plain file: no SP/ER, not relocated
        info = rec.info
        p = rec.payload
        return rr_mod.rrip_entries(info, version=version, name=info.basename.encode("utf-8", "surrogateescape"),
                                   nlink=p.nlink, inode=p.inode, default_time=default_time)
    kw = rr_args(rec)
    link: DirOut | None = kw.get("link")
    lba = (link.lba if final else 0) if link is not None else None
    relocated = kw.get("relocated")
    entries = [rr_mod.susp_sp()] if kw.get("sp_er") else []
    entries += rr_mod.rrip_entries(kw["info"], version=version, name=kw["name"], nlink=kw["nlink"],
                                   inode=kw["inode"], default_time=default_time, relocated=relocated,
                                   child_lba=lba if relocated == "CL" else None,
                                   parent_lba=lba if relocated == "PL" else None)
    if kw.get("sp_er"):
        entries.append(rr_mod.rrip_er(version))
    return entries


def _plain_file_rr_bytes(rec: Rec, rr_mod: Any, version: str) -> int | None:
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
    return _plain_rr_bytes(info.mode, rec.payload.nlink, info.uid, info.gid, name_len, rr_mod, version)


@functools.lru_cache(maxsize=1024)
def _plain_rr_bytes(mode: int, nlink: int, uid: int, gid: int, name_len: int, rr_mod: Any,
                    version: str) -> int | None:
    """The part of _plain_file_rr_bytes() that many files share (one result per key)."""
    if (not stat.S_ISREG(mode) or mode > 0xFFFFFFFF or nlink > 0xFFFFFFFF
            or not 0 <= uid <= 0xFFFFFFFF or not 0 <= gid <= 0xFFFFFFFF):
        return None
    if not name_len:
        return None
    pieces = -(-name_len // rr_mod.NM_NAME_MAX_BYTES)
    if version == rr_mod.RRIP_109:
        return _RR_BYTES + _PX_BYTES + 5 * pieces + name_len + _TF_BYTES
    if version == rr_mod.RRIP_112:
        return _PX_SERIAL_BYTES + 5 * pieces + name_len + _TF_BYTES
    return None


_RR_BYTES, _PX_BYTES, _PX_SERIAL_BYTES, _TF_BYTES = 5, 36, 44, 26   # RRIP 1.12 4.1.1, 4.1.6; 1.09 RR


def size_directory(d: DirOut, rr_mod: Any, version: str, default_time: float) -> int:
    """Give each record its length and position; returns the directory size in bytes."""
    pos = 0
    conts: dict[int, list[int]] = {}
    for i, rec in enumerate(dir_records(d)):
        li = len(rec.ident)
        base = 33 + li + (1 - li % 2)       # record_base_length()
        su_len = 0
        rr = rec.rr
        if rr is None:                      # Joliet, or no Rock Ridge: the record is its base
            length = base + base % 2
            if length > 255:
                raise InternalError(f"{d.info.name or '/'}: record {rec.ident!r} would be {length} bytes")
            if pos % SECTOR_BYTES + length > SECTOR_BYTES:
                pos = align_up(pos, SECTOR_BYTES)
            rec.length = length
            pos += length
            continue
        plain = _plain_file_rr_bytes(rec, rr_mod, version) if rr is RR_FROM_PAYLOAD else None
        if plain is not None and plain <= MAX_RECORD_BYTES - base:
            su_len = plain                  # same length rr_entries() gives, without building it
            rec.cont_len = 0
        elif rec.rr is not None:
            fit, cont = rr_mod.split_system_use(rr_entries(rec, rr_mod, version, default_time, False),
                                                MAX_RECORD_BYTES - base)
            su_len = sum(map(len, fit)) + (CE_BYTES if cont else 0)
            rec.cont_len = len(cont)
            if cont:
                conts[i] = [len(cont), 0]
        rec.length = base + su_len + (base + su_len) % 2
        if rec.length > 255:
            raise InternalError(f"{d.info.name or '/'}: record {rec.ident!r} would be {rec.length} bytes")
        if pos % SECTOR_BYTES + rec.length > SECTOR_BYTES:
            pos = align_up(pos, SECTOR_BYTES)
        pos += rec.length
    d.conts = conts or None
    d.used_bytes = pos
    return align_up(max(pos, 1), SECTOR_BYTES)


def record_location(rec: Rec) -> tuple[int, int]:
    """(LBA, data length) that a record points at."""
    if rec.kind == K_DIR:
        return rec.target.lba, rec.target.extent.size_bytes
    if rec.kind == K_FILE:
        offset, length = rec.payload.sections()[rec.section]
        return offset // SECTOR_BYTES, length
    return 0, 0


def directory_bytes(d: DirOut, rr_mod: Any, version: str, default_time: float,
                    continuation: dict[int, bytes]) -> bytes:
    """The final bytes of one directory extent; continuation areas are added to ``continuation``."""
    buf = bytearray(d.extent.size_bytes)
    pos = 0
    # Plain files' Rock Ridge entries differ only by name and (1.12) serial number: the
    # rest (RR, PX head, TF) is built once per (mode, nlink, uid, gid, times) through
    # rrip_entries() itself and reused, so the bytes are the same ones it gives.
    plain_cache: dict[tuple, tuple[bytes, bytes, bool]] = {}
    if rr_mod is not None:
        serial = version == rr_mod.RRIP_112
        both32 = rr_mod._both32
        nm_max = rr_mod.NM_NAME_MAX_BYTES
    rec_pack = _REC.pack
    for rec in dir_records(d):
        rr = rec.rr
        if rr is None and rec.kind == K_FILE:     # a Joliet file record: no system use field
            info = rec.info
            p = rec.payload
            su = b""
        elif rr is RR_FROM_PAYLOAD and rec.cont_len == 0 and rec.kind == K_FILE:
            info = rec.info
            p = rec.payload
            name = info.basename.encode("utf-8", "surrogateescape")
            m = info.mtime
            a = info.atime
            c = info.ctime
            if m is None:
                m = default_time
            try:        # TF keeps whole seconds (rockridge._seconds); non-finite: rr_entries() reports it
                key = (info.mode, p.nlink, info.uid, info.gid, math.floor(m),
                       math.floor(m if a is None else a), math.floor(m if c is None else c))
            except (ValueError, OverflowError):
                key = None
            hit = plain_cache.get(key) if key is not None else None
            if hit is None:
                entries = rr_entries(rec, rr_mod, version, default_time, True)
                # [RR (1.09)], PX, NM..., TF: keep what does not depend on name and serial
                px_at = 1 if version == rr_mod.RRIP_109 else 0
                head = b"".join(entries[:px_at + 1])
                if serial:
                    head = head[:-8]
                hit = (head, entries[-1], len(entries) != px_at + 3 or not entries[-1].startswith(b"TF"))
                if key is not None:
                    plain_cache[key] = hit
            head, tf, odd = hit
            if odd or not name or len(name) > nm_max or b"/" in name or b"\0" in name:
                su = b"".join(rr_entries(rec, rr_mod, version, default_time, True))
            elif serial:
                su = b"".join((head, both32(p.inode), b"NM", bytes((5 + len(name), 1, 0)), name, tf))
            else:
                su = b"".join((head, b"NM", bytes((5 + len(name), 1, 0)), name, tf))
        else:
            info = None
        if info is not None:
            ident = rec.ident
            li = len(ident)
            if len(su) > MAX_RECORD_BYTES - (33 + li + (1 - li % 2)):
                raise InternalError(f"{info.name}: continuation area changed size after allocation")
            if p.size_bytes == 0:
                lba = length = 0
            else:
                length = p.size_bytes
                if length > MAX_SECTION_BYTES:
                    lba, length = record_location(rec)
                else:
                    if p.extent is None:
                        raise InternalError(f"{info.name}: no extent")
                    lba = p.extent.device_offset // SECTOR_BYTES
            t = info.mtime if info.mtime is not None else default_time
            rec_len = 33 + li + (1 - li % 2) + len(su)
            tail = rec_len % 2
            rec_len += tail
            if rec_len > 255:
                raise InternalError(f"directory record of {rec_len} bytes for {ident!r}")
            recorded = _dir_datetime_s(int(t))
            if pos % SECTOR_BYTES + rec_len > SECTOR_BYTES:     # ECMA-119 6.8.1.1, as planned
                pos = align_up(pos, SECTOR_BYTES)
            buf[pos:pos + 33] = rec_pack(rec_len, 0, lba, lba.to_bytes(4, "big"), length,
                                         length.to_bytes(4, "big"), *recorded[:6],
                                         recorded[6] - 256 if recorded[6] > 127 else recorded[6],
                                         rec.flags, 0, 0, 1, b"\x00\x01", li)
            q = pos + 33 + li + (1 - li % 2)
            buf[pos + 33:pos + 33 + li] = ident
            buf[q:q + len(su)] = su
            pos += rec_len
            continue
        su = b""
        if rec.rr is not None:
            fit, cont = rr_mod.split_system_use(rr_entries(rec, rr_mod, version, default_time, True),
                                                MAX_RECORD_BYTES - record_base_length(rec.ident))
            if len(cont) != rec.cont_len:
                raise InternalError(f"{rec.info.name}: continuation area changed size after allocation")
            if cont:
                fit = list(fit) + [rr_mod.susp_ce(rec.cont_offset // SECTOR_BYTES, rec.cont_offset % SECTOR_BYTES,
                                                  len(cont))]
                continuation[rec.cont_offset] = cont
            su = b"".join(fit)
        t = rec.info.mtime if rec.info.mtime is not None else default_time
        lba, length = record_location(rec)
        data = pack_record(rec.ident, lba, length, dir_datetime(t), rec.flags, su)
        if pos % SECTOR_BYTES + len(data) > SECTOR_BYTES:     # ECMA-119 6.8.1.1, as planned
            pos = align_up(pos, SECTOR_BYTES)
        buf[pos:pos + len(data)] = data
        pos += len(data)
    if pos != d.used_bytes or len(buf) != d.extent.size_bytes:
        raise InternalError(f"{d.info.name or '/'}: directory records take {pos} bytes, "
                            f"{d.used_bytes} were planned")
    return bytes(buf)
