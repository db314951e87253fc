"""The records of one directory, sized at plan() and built at write(), each in one pass.

A directory of either hierarchy (:class:`~.layout.DirOut`) keeps only its children's keys
and identifiers, in record order (:mod:`.hierarchy` puts them there).  Most records are
those of plain regular files, one section each, without a continuation area: their
lengths are found by arithmetic at plan() (:func:`size_directory`: Rock Ridge entry
lengths do not depend on the numbers inside, RRIP 1.12 4.1), and their bytes are made
once, at write(), by ``_structs.DIRECTORY_RECORD_HEAD`` and one join per directory
(:func:`directory_bytes`).  No object is made per record for them.  Every other record
("." and "..", directories, symlinks, devices, files of several sections or with a
continuation area, RR_MOVED's) is made as a :class:`~.layout.Rec` when it is met and goes
through :func:`.layout.lay_record` and :func:`.layout.general_record`, which are the
reference the fast path is tested against (tests/test_iso9660_dirbytes.py, and the
``FAST_CODECS`` entry in ``_structs``).

ECMA-119 6.8.1.1 (no record crosses a logical sector), 9.1 (the directory record),
9.3 (record order); SUSP 1.12 and RRIP 1.12 4.1 for the Rock Ridge system use fields.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from types import ModuleType

from ..errors import InternalError
from ..extent import align_up
from ..tree import Node
from . import rockridge
from .hierarchy import child_records, dot_records
from ._structs import DIRECTORY_RECORD_MIDDLE
from .layout import (_NM_HEAD_BYTES, _NM_PREFIX, _PX_BYTES, _PX_SERIAL_BYTES, _RR_BYTES, _TF_BYTES,
                     DIRECTORY_RECORD_FIXED_BYTES, K_FILE, MAX_RECORD_BYTES, RR_FROM_PAYLOAD, SECTOR_BYTES,
                     USER_FLAGS, DirOut, NodeState, Payload, Rec, _dir_datetime_s, general_record, lay_record, plain_prefix,
                     single_section_max)

_PAD = (b"\x00", b"")
"""The padding byte after an identifier of even length (ECMA-119 9.1.12), by length % 2."""
_ZEROS = bytes(SECTOR_BYTES)


def _plain_su_bytes(info_mode: int, nlink: int, uid: int, gid: int, version: str) -> int | None:
    """The bytes of a plain regular file's Rock Ridge entries other than NM ([RR], PX, TF),
    or None when rrip_entries() must build them to know (it then reports what is wrong)."""
    if (info_mode & 0o170000 != 0o100000 or info_mode > 0xFFFFFFFF or nlink > 0xFFFFFFFF
            or not 0 <= uid <= 0xFFFFFFFF or not 0 <= gid <= 0xFFFFFFFF):
        return None
    if version == rockridge.RRIP_109:
        return _RR_BYTES + _PX_BYTES + _TF_BYTES
    if version == rockridge.RRIP_112:
        return _PX_SERIAL_BYTES + _TF_BYTES
    return None


def _finite(t: float | None) -> bool:
    return t is None or t - t == 0


def _children(d: DirOut) -> dict[str, Node]:
    node = d.node
    if node is None or node.children is None:
        return {}
    return node.children


def size_directory(d: DirOut, rr_mod: ModuleType | None, version: str, default_time: float) -> int:
    """Give the directory its ``used_bytes`` and continuation areas (``conts``: record
    index -> [length, offset]); returns its size in bytes (whole sectors)."""
    rock = rr_mod is not None and not d.joliet
    where = d.info.name or "/"
    pos = 0
    index = 0
    conts: dict[int, list[int]] = {}
    for rec in dot_records(d, rock):
        pos, cont_len = lay_record(rec, pos, where, rr_mod, version, default_time)
        if cont_len:
            conts[index] = [cont_len, 0]
        index += 1
    children = _children(d)
    one_section = single_section_max()
    head, sector, max_record, nm_max = DIRECTORY_RECORD_FIXED_BYTES, SECTOR_BYTES, MAX_RECORD_BYTES, \
        rockridge.NM_NAME_MAX_BYTES
    fixed_su: dict[tuple[int, int, int, int], int | None] = {}
    lens = d.ident_lens
    blob = d.idents
    at = 0
    for j, entry in enumerate(d.entries):
        li = 2 * len(entry) if lens is None else lens[j]     # type: ignore[arg-type]
        if entry.__class__ is str:
            node = children[entry]
            p = node.w
            if p.__class__ is Payload and p.size_bytes <= one_section:
                length = head + li + (1 - li % 2)
                if rock:
                    info = node.info
                    key = (info.mode, p.nlink, info.uid, info.gid)
                    su = fixed_su.get(key, -1)
                    if su == -1:
                        su = fixed_su[key] = _plain_su_bytes(*key, version)
                    name_len = len(entry) if entry.isascii() else \
                        len(entry.encode("utf-8", "surrogateescape"))
                    if (su is None or not name_len or not (_finite(info.mtime) and _finite(info.atime)
                                                           and _finite(info.ctime))):
                        length = -1
                    else:
                        su += _NM_HEAD_BYTES * -(-name_len // nm_max) + name_len
                        if su > max_record - length:
                            length = -1
                        else:
                            length += su + su % 2
                if length >= 0:
                    if pos % sector + length > sector:
                        pos = align_up(pos, sector)
                    pos += length
                    index += 1
                    at += li
                    continue
            ident = blob[at:at + li] if lens is not None else entry.encode("utf-16-be")
            records = child_records(d, node, ident, rock)
        else:
            records = [entry]   # type: ignore[list-item]
        at += li
        for rec in records:
            pos, cont_len = lay_record(rec, pos, where, rr_mod, version, default_time)
            if cont_len:
                conts[index] = [cont_len, 0]
            index += 1
    d.conts = conts or None
    d.used_bytes = pos
    return align_up(max(pos, 1), SECTOR_BYTES)


class _SystemUse:
    """The Rock Ridge system use fields of one directory's plain files, made as pieces of
    the directory's join: the entries files of the same mode, links, owner and whole-second
    times share (:func:`_shared_entries`) are made once, the NM entry and (RRIP 1.12) the
    serial number per file."""

    __slots__ = ("rr_mod", "version", "default_time", "serial", "prefixes")

    def __init__(self, rr_mod: ModuleType | None, version: str, default_time: float) -> None:
        self.rr_mod = rr_mod
        self.version = version
        self.default_time = default_time
        self.serial = version == rockridge.RRIP_112
        self.prefixes: dict[tuple[int, ...], tuple[bytes, bytes, int]] = {}

    def pieces(self, node: Node, name_text: str, ident: bytes, p: Payload, m: float) -> tuple[list[bytes], int]:
        """(the pieces of the file's system use field, their length in bytes)."""
        info = node.info
        name = name_text.encode("utf-8", "surrogateescape")
        nl = len(name)
        a = info.atime
        c = info.ctime
        floor = math.floor
        try:    # TF keeps whole seconds (rockridge._seconds); non-finite: rrip_entries() reports it
            key: tuple[int, ...] | None = (info.mode, p.nlink, info.uid, info.gid, floor(m),
                                           floor(m if a is None else a), floor(m if c is None else c))
        except (ValueError, OverflowError):
            key = None
        hit = self.prefixes.get(key) if key is not None else None
        if hit is None:
            hit = _shared_entries(_file_rec(node, ident, p), self.rr_mod, self.version, self.default_time)
            if key is not None:
                self.prefixes[key] = hit
        if hit[2] < 0 or not nl or nl > rockridge.NM_NAME_MAX_BYTES or b"/" in name or b"\0" in name:
            su = general_su(_file_rec(node, ident, p), self.rr_mod, self.version, self.default_time)
            return [su], len(su)
        if self.serial:
            return [hit[0], rockridge._both32(p.inode), _NM_HEADS[nl], name, hit[1]], hit[2] + nl
        return [hit[0], _NM_HEADS[nl], name, hit[1]], hit[2] + nl


def directory_bytes(d: DirOut, rr_mod: ModuleType | None, version: str, default_time: float,
                    continuation: dict[int, bytes], middles: dict[str, bytes] | None = None) -> bytes:
    """The final bytes of one directory extent, as :func:`size_directory` planned them (an
    InternalError if not); continuation areas are added to ``continuation``.

    ``middles``: bytes 3-32 of each plain file's record (extent, data length, date, flags,
    volume sequence number: the same in both trees), by child key; an ISO 9660 directory
    fills it, the Joliet directory of the same tree node takes from it
    (:func:`directories_bytes`)."""
    rock = rr_mod is not None and not d.joliet
    size = d.placed_extent.size_bytes
    pieces: list[bytes] = []
    put = pieces.append
    pos = index = at = 0
    conts = d.conts or {}
    sector = SECTOR_BYTES

    def general(rec: Rec, pos: int) -> int:
        c = conts.get(index)
        if c is not None:
            rec.cont_len, rec.cont_offset = c
        return _put(put, general_record(rec, rr_mod, version, default_time, continuation), pos)

    for rec in dot_records(d, rock):
        pos = general(rec, pos)
        index += 1
    children = _children(d)
    one_section = single_section_max()
    head, max_record = DIRECTORY_RECORD_FIXED_BYTES, MAX_RECORD_BYTES
    system_use = _SystemUse(rr_mod, version, default_time) if rock else None
    take = middles.get if middles is not None and d.joliet else None
    keep = middles if middles is not None and not d.joliet else None
    shared: dict[tuple[int, int], bytes] = {}
    lens, blob = d.ident_lens, d.idents
    for j, entry in enumerate(d.entries):
        if lens is None:
            ident = entry.encode("utf-16-be")  # type: ignore[union-attr]
            li = len(ident)
        else:
            li = lens[j]
            ident = blob[at:at + li]
            at += li
        if entry.__class__ is not str:
            pos = general(entry, pos)  # type: ignore[arg-type]
            index += 1
            continue
        node = children[entry]
        p = node.w
        if p.__class__ is not Payload or p.size_bytes > one_section or index in conts:
            for rec in child_records(d, node, ident, rock):
                pos = general(rec, pos)
                index += 1
            continue
        info = node.info
        m = info.mtime
        if m is None:
            m = default_time
        mid = take(entry) if take is not None else None
        if mid is None:
            mid = _middle(p, info.ISO9660_flags & USER_FLAGS, m, shared)
            if keep is not None:
                keep[entry] = mid
        base = head + li + (1 - li % 2)
        su: list[bytes] = []
        su_len = 0
        rec_len = base
        if system_use is not None:
            su, su_len = system_use.pieces(node, entry, ident, p, m)
            if su_len > max_record - base:
                raise InternalError(f"{info.name}: continuation area changed size after allocation")
            rec_len += su_len + su_len % 2
        if rec_len > 255:
            raise InternalError(f"directory record of {rec_len} bytes for {ident!r}")
        if pos % sector + rec_len > sector:     # ECMA-119 6.8.1.1, as planned
            put(_ZEROS[:sector - pos % sector])
            pos = align_up(pos, sector)
        put(_RECORD_LENGTHS[rec_len])
        put(mid)
        put(_ID_LENGTHS[li])
        put(ident)
        if not li % 2:
            put(b"\x00")
        if su:
            pieces += su
            if su_len % 2:
                put(b"\x00")
        pos += rec_len
        index += 1
    if pos != d.used_bytes:
        raise InternalError(f"{d.info.name or '/'}: directory records take {pos} bytes, "
                            f"{d.used_bytes} were planned")
    if pos > size:
        raise InternalError(f"{d.info.name or '/'}: directory records take {pos} bytes, its extent {size}")
    put(bytes(size - pos))
    return b"".join(pieces)


_RECORD_LENGTHS = [bytes((n, 0)) for n in range(256)]
"""BP 1-2 of a record: its length and an extended attribute record length of 0 (ECMA-119 9.1.1-9.1.2)."""
_ID_LENGTHS = [bytes((n,)) for n in range(256)]
"""BP 33: the length of the file identifier (ECMA-119 9.1.10)."""
_NM_HEADS = [_NM_PREFIX + bytes((_NM_HEAD_BYTES + n, 1, 0)) for n in range(rockridge.NM_NAME_MAX_BYTES + 1)]
"""The head of a plain file's one NM entry (RRIP 1.12 4.1.4: LEN, version 1, flags 0), by name length."""


_ODD = (b"", b"", -1)
"""What :func:`_shared_entries` gives for entries that are not [RR], PX, NM, TF."""


def _shared_entries(rec: Rec, rr_mod: ModuleType | None, version: str,
                    default_time: float) -> tuple[bytes, bytes, int]:
    """What a plain file's Rock Ridge entries share with every file of the same mode, links,
    owner and whole-second times (:func:`.layout.plain_prefix`): the entries before NM
    ([RR], PX less its serial number), TF, and their length with the serial number and
    NM's head; :data:`_ODD` when the entries are not those (then each is built in full)."""
    rr_head, tf, odd = plain_prefix(rec, rr_mod, version, default_time)
    if odd:
        return _ODD
    serial = 8 if version == rockridge.RRIP_112 else 0
    return rr_head, tf, len(rr_head) + serial + _NM_HEAD_BYTES + len(tf)


def _put(put: Callable[[bytes], None], data: bytes, pos: int) -> int:
    """Put a record at ``pos``, or at the next sector when it would cross one (ECMA-119
    6.8.1.1, as planned); returns the position after it."""
    room = SECTOR_BYTES - pos % SECTOR_BYTES
    if len(data) > room:
        put(_ZEROS[:room])
        pos += room
    put(data)
    return pos + len(data)


def _middle(p: Payload, flags: int, mtime: float, shared: dict[tuple[int, int], bytes]) -> bytes:
    """BP 3-32 of a plain file's record (``_structs.DIRECTORY_RECORD_MIDDLE``); ``shared``
    holds the recording date, flags and volume sequence number by (seconds, flags)."""
    seconds = int(mtime)
    tail = shared.get((seconds, flags))
    if tail is None:
        tail = shared[seconds, flags] = _dir_datetime_s(seconds) + bytes((flags, 0, 0)) + b"\x01\x00\x00\x01"
    if p.size_bytes == 0:
        lba = length = 0
    elif p.offset < 0:
        raise InternalError(f"{p.info.name}: no extent")
    else:
        lba = p.offset // SECTOR_BYTES
        length = p.size_bytes
    return _MIDDLE(lba, lba.to_bytes(4, "big"), length, length.to_bytes(4, "big"), tail)


_MIDDLE = DIRECTORY_RECORD_MIDDLE.pack


def directories_bytes(iso_dirs: Sequence[DirOut], joliet_dirs: Sequence[DirOut], rr_mod: ModuleType | None,
                      version: str, default_time: float, continuation: dict[int, bytes]) -> Iterator[tuple[DirOut, bytes]]:
    """Every directory of both trees with its bytes (:func:`directory_bytes`), each Joliet
    directory right after the ISO 9660 directory of the same tree node, whose files'
    record middles it takes (the order they are written in does not change the image)."""
    waiting = {id(jd) for jd in joliet_dirs}
    done: set[int] = set()
    for d in iso_dirs:
        middles: dict[str, bytes] = {}
        yield d, directory_bytes(d, rr_mod, version, default_time, continuation, middles)
        state = d.node.w if d.node is not None else None
        jd = state.joliet_dir if isinstance(state, NodeState) else None
        if jd is not None and id(jd) in waiting:
            done.add(id(jd))
            yield jd, directory_bytes(jd, rr_mod, version, default_time, continuation, middles)
    for jd in joliet_dirs:
        if id(jd) not in done:
            yield jd, directory_bytes(jd, rr_mod, version, default_time, continuation)


def _file_rec(node: Node, ident: bytes, p: Payload) -> Rec:
    """The record a plain file's fast path stands for (to build its entries the general way)."""
    info = node.info
    return Rec(ident, info.ISO9660_flags & USER_FLAGS, info, K_FILE, None, p, 0, RR_FROM_PAYLOAD)


def general_su(rec: Rec, rr_mod: ModuleType | None, version: str, default_time: float) -> bytes:
    """A record's system use field built from all its Rock Ridge entries (one that needs no
    continuation area)."""
    from .layout import rr_entries
    return b"".join(rr_entries(rec, rr_mod, version, default_time, True))
