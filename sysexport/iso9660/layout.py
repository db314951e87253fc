"""Directory hierarchies, directory records and path tables of an ISO 9660 image.

ECMA-119 6.8 (directories, records never crossing a logical sector), 6.9 and 9.4 (path
tables), 9.1 (directory record), 9.3 (record order); Joliet for the second tree; Rock
Ridge (RRIP 1.09/1.12, section 4.1.5) for relocating directories deeper than 8 levels.
Record sizes are computed before allocation (Rock Ridge entry lengths do not depend on
the block numbers they carry); bytes are built after allocation.  Records and path table
records are packed by the ``struct.Struct`` declared beside their construct declarations
(``_structs.FAST_CODECS`` lists these packers; tests/test_fastcodecs.py checks them).
"""
from __future__ import annotations

import functools
import math
import stat
import time
from dataclasses import dataclass, field
from functools import partial
from types import ModuleType
from typing import Callable, cast

from ..errors import InternalError, LayoutError
from ..extent import Extent, align_up
from ..fileinfo import FileInfo, implied_directory
from ..tree import Node, Tree
from . import names as _names
from . import rockridge
from ._structs import (DIRECTORY_RECORD_FIXED_BYTES, DIRECTORY_RECORD_HEAD, MAX_RECORD_BYTES,  # noqa: F401
                       PATH_TABLE_RECORD_FIXED_BYTES, PATH_TABLE_RECORD_HEAD_L, PATH_TABLE_RECORD_HEAD_M,
                       SECTOR_BYTES)
from .enums import (FLAG_ASSOCIATED, FLAG_DIRECTORY, FLAG_HIDDEN, FLAG_MULTI_EXTENT, FLAG_PROTECTION,  # noqa: F401
                    FLAG_RECORD, USER_FLAGS)

MAX_SECTION_BYTES = 0xFFFFF800   # largest extent < 4 GiB that is a multiple of 2048
MAX_DEPTH = 8               # ECMA-119 6.8.2.1: at most eight levels of directories
CE_BYTES = rockridge.CE_ENTRY_BYTES   # SUSP 1.12 5.1: the CE entry a record ends with when it continues
RR_MOVED_NAME = b".rr_moved"

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
    build: Callable[[], list[Rec]] | None = None   # makes the records when needed (not kept: memory)
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
    """The ISO writer's state of a node (``Node.w`` holds it from plan() on)."""
    return cast(NodeState, node.w)


def _payload(rec: Rec) -> Payload:
    if rec.payload is None:
        raise InternalError(f"{rec.info.name}: file record without payload")
    return rec.payload


def _target(rec: Rec) -> DirOut:
    if rec.target is None:
        raise InternalError(f"{rec.info.name or '/'}: directory record without target")
    return rec.target


def _file_records(node: Node, ident: bytes, rr: RRSource | None) -> list[Rec]:
    st = _state(node)
    flags = node.info.ISO9660_flags & USER_FLAGS
    if st.payload is None:
        return [Rec(ident, flags, node.info, K_OTHER, rr=rr)]
    if isinstance(rr, RRArgs) and rr.nlink == st.payload.nlink and rr.inode == st.payload.inode \
            and rr._name is node and not rr.sp_er and rr.relocated is None:
        rr = RR_FROM_PAYLOAD
    n = st.payload.section_count()
    if n == 1:
        return [Rec(ident, flags, node.info, K_FILE, payload=st.payload, rr=rr)]
    return [Rec(ident, flags | (FLAG_MULTI_EXTENT if i < n - 1 else 0), node.info, K_FILE,
                payload=st.payload, section=i, rr=rr) for i in range(n)]


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
    root_st = _state(root_node)
    root = DirOut(root_node.info, None, b"\x00", 1, node=root_node, inode=root_st.inode, nlink=root_st.nlink)
    root_st.iso_dir = root
    rr_moved: DirOut | None = None
    relocated: list[tuple[DirOut, Node]] = []
    queue: list[DirOut] = [root]
    i = 0
    while i < len(queue):
        d = queue[i]
        i += 1
        node = d.tree_node
        kids = node.sorted_children()
        idents = _names.assign_iso_names([(c, c.name, c.info.is_dir, c.info.ISO9660_shortname) for c in kids],
                                         level, node.path)
        for c in kids:
            st = _state(c)
            st.iso_ident = idents[c]
            if not c.info.is_dir:
                continue
            if rock_ridge and d.depth + 1 > MAX_DEPTH:
                if rr_moved is None:
                    rr_info = implied_directory("rr_moved")
                    rr_info.mtime = root.info.mtime
                    rr_moved = DirOut(rr_info, root, b"", 2, inode=next_inode)
                    next_inode += 1
                    root.children.append(rr_moved)
                cd = DirOut(c.info, rr_moved, b"", 3, node=c, real_parent=d, inode=st.inode, nlink=st.nlink)
                relocated.append((d, c))
                rr_moved.children.append(cd)
            else:
                cd = DirOut(c.info, d, idents[c], d.depth + 1, node=c, inode=st.inode, nlink=st.nlink)
                d.children.append(cd)
            st.iso_dir = cd
            queue.append(cd)
    if rr_moved is not None:
        moved = _names.assign_iso_names([(c, c.name, True, None) for _, c in relocated], level, "rr_moved")
        for _, c in relocated:
            _iso_dir(c).ident = moved[c]
        taken = {_state(r).iso_ident for r in root_node.sorted_children()}
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


def _iso_dir(node: Node) -> DirOut:
    d = _state(node).iso_dir
    if d is None:
        raise InternalError(f"{node.path or '/'}: directory not in the ISO 9660 hierarchy")
    return d


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

    def rr(info: FileInfo, name: bytes | Node | None, nlink: int, inode: int, *, sp_er: bool = False,
           relocated: str | None = None, link: DirOut | None = None) -> RRArgs | None:
        return RRArgs(info, name, nlink, inode, sp_er, relocated, link) if rock_ridge else None

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
            st = _state(c)
            if c.info.is_dir:
                cd = _iso_dir(c)
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
                if plain and pl is not None and pl.size_bytes <= MAX_SECTION_BYTES:  # _file_records(), one section
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
                                rr=rr(cd.info, _rr_name(cd.tree_node), cd.nlink, cd.inode, relocated="RE")))
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
    _state(tree.root).joliet_dir = root
    queue = [root]
    i = 0
    while i < len(queue):
        d = queue[i]
        i += 1
        kids = _joliet_children(d.tree_node)
        idents = _names.assign_joliet_names([(c, c.name, c.info.is_dir) for c in kids])
        for c in kids:
            st = _state(c)
            st.joliet_ident = idents[c]
            if c.info.is_dir:
                cd = DirOut(c.info, d, idents[c], d.depth + 1, node=c)
                st.joliet_dir = cd
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
    for c in _joliet_children(d.tree_node):
        st = _state(c)
        if c.info.is_dir:
            kids.append(Rec(st.joliet_ident, FLAG_DIRECTORY | (c.info.ISO9660_flags & USER_FLAGS), c.info,
                            K_DIR, target=st.joliet_dir))
        else:
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


def size_directory(d: DirOut, rr_mod: ModuleType | None, version: str, default_time: float) -> int:
    """Give each record its length and position; returns the directory size in bytes."""
    pos = 0
    conts: dict[int, list[int]] = {}
    head = DIRECTORY_RECORD_FIXED_BYTES
    for i, rec in enumerate(dir_records(d)):
        li = len(rec.ident)
        base = head + li + (1 - li % 2)     # record_base_length()
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
        plain = _plain_file_rr_bytes(rec, version) if rr is RR_FROM_PAYLOAD else None
        if plain is not None and plain <= MAX_RECORD_BYTES - base:
            su_len = plain                  # same length rr_entries() gives, without building it
            rec.cont_len = 0
        else:
            fit, cont = rockridge.split_system_use(rr_entries(rec, rr_mod, version, default_time, False),
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
        target = _target(rec)
        return target.lba, target.placed_extent.size_bytes
    if rec.kind == K_FILE:
        offset, length = _payload(rec).sections()[rec.section]
        return offset // SECTOR_BYTES, length
    return 0, 0


PlainPrefix = tuple[bytes, bytes, bool]
"""A plain file's Rock Ridge entries less NM and serial number: (RR and PX head, TF, odd)."""


def directory_bytes(d: DirOut, rr_mod: ModuleType | None, version: str, default_time: float,
                    continuation: dict[int, bytes]) -> bytes:
    """The final bytes of one directory extent; continuation areas are added to ``continuation``.

    Regular files whose records need no continuation area take the fast path: their system
    use fields come from :func:`_plain_system_uses`, their records are packed here by
    ``_structs.DIRECTORY_RECORD_HEAD``.  Every other record takes :func:`_general_record`.
    """
    size = d.placed_extent.size_bytes
    buf = bytearray(size)
    records = dir_records(d)
    pos = 0
    head, sector, max_record, max_section = (DIRECTORY_RECORD_FIXED_BYTES, SECTOR_BYTES, MAX_RECORD_BYTES,
                                             MAX_SECTION_BYTES)
    rec_pack = DIRECTORY_RECORD_HEAD.pack
    for rec, su in zip(records, _plain_system_uses(records, rr_mod, version, default_time)):
        p = rec.payload
        if su is None or p is None:
            pos = _general_record(buf, pos, rec, rr_mod, version, default_time, continuation)
            continue
        info = rec.info
        ident = rec.ident
        li = len(ident)
        if len(su) > max_record - (head + li + (1 - li % 2)):
            raise InternalError(f"{info.name}: continuation area changed size after allocation")
        if p.size_bytes == 0:
            lba = length = 0
        else:
            length = p.size_bytes
            if length > max_section:
                lba, length = record_location(rec)
            else:
                if p.extent is None:
                    raise InternalError(f"{info.name}: no extent")
                lba = p.extent.device_offset // sector
        t = info.mtime if info.mtime is not None else default_time
        rec_len = head + li + (1 - li % 2) + len(su)
        rec_len += rec_len % 2
        if rec_len > 255:
            raise InternalError(f"directory record of {rec_len} bytes for {ident!r}")
        if pos % sector + rec_len > sector:     # ECMA-119 6.8.1.1, as planned
            pos = align_up(pos, sector)
        buf[pos:pos + head] = rec_pack(rec_len, 0, lba, lba.to_bytes(4, "big"), length, length.to_bytes(4, "big"),
                                       _dir_datetime_s(int(t)), rec.flags, 0, 0, 1, b"\x00\x01", li)
        q = pos + head + li + (1 - li % 2)
        buf[pos + head:pos + head + li] = ident
        buf[q:q + len(su)] = su
        pos += rec_len
    if pos != d.used_bytes or len(buf) != size:
        raise InternalError(f"{d.info.name or '/'}: directory records take {pos} bytes, "
                            f"{d.used_bytes} were planned")
    return bytes(buf)


def _plain_system_uses(records: list[Rec], rr_mod: ModuleType | None, version: str,
                       default_time: float) -> list[bytes | None]:
    """The system use field of each regular file record that needs no continuation area
    (b"" in the Joliet tree or without Rock Ridge), None for every other record.

    Plain files' Rock Ridge entries differ only by name and (1.12) serial number: the rest
    (RR, PX head, TF) is built once per (mode, nlink, uid, gid, times) by rrip_entries()
    itself (:func:`_plain_prefix`), and the NM entry spliced in."""
    out: list[bytes | None] = []
    prefixes: dict[tuple[int, ...], PlainPrefix] = {}
    serial = version == rockridge.RRIP_112
    both32 = rockridge._both32
    nm_max = rockridge.NM_NAME_MAX_BYTES
    nm_prefix, nm_head = _NM_PREFIX, _NM_HEAD_BYTES
    floor = math.floor
    for rec in records:
        rr = rec.rr
        p = rec.payload
        if p is None or rec.kind != K_FILE or not (rr is None or (rr is RR_FROM_PAYLOAD and rec.cont_len == 0)):
            out.append(None)
            continue
        if rr is None:                      # a Joliet file record: no system use field
            out.append(b"")
            continue
        info = rec.info
        name = info.basename.encode("utf-8", "surrogateescape")
        m = info.mtime
        a = info.atime
        c = info.ctime
        if m is None:
            m = default_time
        try:        # TF keeps whole seconds (rockridge._seconds); non-finite: rr_entries() reports it
            key: tuple[int, ...] | None = (info.mode, p.nlink, info.uid, info.gid, floor(m),
                                           floor(m if a is None else a), floor(m if c is None else c))
        except (ValueError, OverflowError):
            key = None
        hit = prefixes.get(key) if key is not None else None
        if hit is None:
            hit = _plain_prefix(rec, rr_mod, version, default_time)
            if key is not None:
                prefixes[key] = hit
        rr_head, tf, odd = hit
        if odd or not name or len(name) > nm_max or b"/" in name or b"\0" in name:
            out.append(b"".join(rr_entries(rec, rr_mod, version, default_time, True)))
        elif serial:
            out.append(b"".join((rr_head, both32(p.inode), nm_prefix, bytes((nm_head + len(name), 1, 0)), name, tf)))
        else:
            out.append(b"".join((rr_head, nm_prefix, bytes((nm_head + len(name), 1, 0)), name, tf)))
    return out


def _plain_prefix(rec: Rec, rr_mod: ModuleType | None, version: str, default_time: float) -> PlainPrefix:
    """What a plain file's Rock Ridge entries share with every file of the same mode, links,
    owner and times, taken from the entries rrip_entries() builds for it: [RR (1.09)] and PX
    without the serial number, and TF; ``odd`` when they are not those and one NM entry."""
    entries = rr_entries(rec, rr_mod, version, default_time, True)
    px_at = 1 if version == rockridge.RRIP_109 else 0
    rr_head = b"".join(entries[:px_at + 1])
    if version == rockridge.RRIP_112:
        rr_head = rr_head[:-8]
    return rr_head, entries[-1], len(entries) != px_at + 3 or not entries[-1].startswith(b"TF")


def _general_record(buf: bytearray, pos: int, rec: Rec, rr_mod: ModuleType | None, version: str,
                    default_time: float, continuation: dict[int, bytes]) -> int:
    """Put any record at ``pos`` of ``buf`` (or at the next sector, as size_directory planned),
    its continuation area into ``continuation``; returns the position after it."""
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
    data = pack_record(rec.ident, lba, length, dir_datetime(t), rec.flags, su)
    if pos % SECTOR_BYTES + len(data) > SECTOR_BYTES:     # ECMA-119 6.8.1.1, as planned
        pos = align_up(pos, SECTOR_BYTES)
    buf[pos:pos + len(data)] = data
    return pos + len(data)
