"""Rock Ridge (RRIP 1.09 / 1.12) system use entries for one directory record, on SUSP 1.12.

The ISO9660 writer calls, for every directory record:

* :func:`rrip_entries` for the file's own entries (RR, PX, PN, SL, NM, TF, CL/PL/RE),
* for the root directory's "." record also :func:`susp_sp` (first) and :func:`rrip_er`
  (the Linux kernel only believes Rock Ridge once it has seen an ER entry in that record
  or in its continuation area),
* :func:`split_system_use` to fit them into the record, the rest going to a continuation
  area that a :func:`susp_ce` entry (appended last in the record) points at.

Entry lengths never depend on numeric values (mode, ids, times, LBAs), so the writer can
size its directories before allocating extents and rebuild the entries afterwards.

The entry layouts and their constants are declared in :mod:`._rrstructs`; PX, TF, NM, SL
and RR are built here with plain byte operations because they are made for every file
(``_rrstructs.FAST_CODECS`` lists them; tests/test_fastcodecs.py shows they equal the
declarations).
"""
from __future__ import annotations

import datetime as _dt
import functools
import math
import stat
from typing import Any, Iterable, Sequence

from construct import ConstructError, Container, ListContainer

from ..errors import InternalError, InvalidImageError, InvalidInputError
from ..fileinfo import FileInfo
from . import _rrstructs as S
from ._rrstructs import (  # noqa: F401  (the on-disk constants, declared there, importable here)
    CE_LENGTH as CE_ENTRY_BYTES, ER_DES_109, ER_DES_112, ER_EXT_VERSION, ER_ID_109, ER_ID_112, ER_SRC_109,
    ER_SRC_112, NM_FLAG_CONTINUE, NM_FLAG_CURRENT, NM_FLAG_PARENT, NM_HEADER_SIZE, PX_LENGTH_109, PX_LENGTH_112,
    RR_FLAG_CL, RR_FLAG_NM, RR_FLAG_PL, RR_FLAG_PN, RR_FLAG_PX, RR_FLAG_RE, RR_FLAG_SL, RR_FLAG_TF, RR_LENGTH,
    SL_COMPONENT_CONTINUE, SL_COMPONENT_CURRENT, SL_COMPONENT_PARENT, SL_COMPONENT_ROOT, SL_FLAG_CONTINUE,
    SL_HEADER_SIZE, SUSP_ENTRY_MAX_BYTES, SUSP_ENTRY_VERSION, TF_ACCESS, TF_ATTRIBUTES, TF_BACKUP, TF_CREATION,
    TF_EFFECTIVE, TF_EXPIRATION, TF_HEADER_SIZE, TF_LONG_FORM, TF_MODIFY,
)

RRIP_109 = "1.09"
RRIP_112 = "1.12"
RRIP_VERSIONS = (RRIP_109, RRIP_112)

TF_WRITTEN = TF_MODIFY | TF_ACCESS | TF_ATTRIBUTES  # mtime, atime, ctime (7-byte form)
SL_COMPONENT_AREA_MAX_BYTES = SUSP_ENTRY_MAX_BYTES - SL_HEADER_SIZE
NM_NAME_MAX_BYTES = SUSP_ENTRY_MAX_BYTES - NM_HEADER_SIZE
CONTINUATION_AREA_MAX_BYTES = 2048  # one logical block: Linux reads one block per CE
UINT32_MAX = 0xFFFFFFFF

# Entry headers of the entries built here by byte operations (SUSP 1.12 section 4: signature,
# LEN, version); the lengths are the declarations'.
_RR_HEAD = b"RR" + bytes((RR_LENGTH, SUSP_ENTRY_VERSION))
_PX_HEAD_109 = b"PX" + bytes((PX_LENGTH_109, SUSP_ENTRY_VERSION))
_PX_HEAD_112 = b"PX" + bytes((PX_LENGTH_112, SUSP_ENTRY_VERSION))
_TF_WRITTEN_HEAD = b"TF" + bytes((TF_HEADER_SIZE + 3 * S.DATE7.sizeof(), SUSP_ENTRY_VERSION, TF_WRITTEN))

# The 7-byte date (ISO 9660 section 9.1.5) holds years 1900-2155; times outside are clamped.
_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
_DATE7_MIN_S = int((_dt.datetime(1900, 1, 1, tzinfo=_dt.timezone.utc) - _EPOCH).total_seconds())
_DATE7_MAX_S = int((_dt.datetime(2155, 12, 31, 23, 59, 59, tzinfo=_dt.timezone.utc)
                    - _EPOCH).total_seconds())


def _build(struct_: Any, what: str, **fields: Any) -> bytes:
    """Build one declared entry, turning a construct error into one of ours."""
    try:
        return struct_.build(fields)
    except (ConstructError, OverflowError, ValueError) as e:
        raise InternalError(f"Rock Ridge {what} entry: cannot build {fields!r}: {e}") from None


def _both32(value: int) -> bytes:
    """ISO 9660 section 7.3.3: 32-bit number, LE copy then BE copy."""
    return value.to_bytes(4, "little") + value.to_bytes(4, "big")


def _check_u32(info: FileInfo, field: str, value: int) -> int:
    if not isinstance(value, int) or not 0 <= value <= UINT32_MAX:
        raise InvalidInputError(f"{info.name or '/'}: {field} must be 0..{UINT32_MAX} for Rock Ridge, "
                                f"found {value!r}")
    return value


# --- SUSP entries ---------------------------------------------------------------------

def susp_sp() -> bytes:
    """SP entry (SUSP 1.12 section 5.3): check bytes BEh EFh, LEN_SKP 0.

    It must be the first entry of the system use field of the root directory's first
    record (its "." entry); readers, the Linux kernel among them, look for it there.
    """
    return _build(S.SP, "SP", len_skp=0)


def rrip_er(version: str) -> bytes:
    """ER entry (SUSP 1.12 section 5.5) announcing RRIP 1.09 ("RRIP_1991A") or 1.12 ("IEEE_P1282").

    Goes in the root directory's "." record (usually in its continuation area: it is
    237 bytes long for 1.09, 185 for 1.12).
    """
    if version == RRIP_109:
        ext_id, des, src = ER_ID_109, ER_DES_109, ER_SRC_109
    elif version == RRIP_112:
        ext_id, des, src = ER_ID_112, ER_DES_112, ER_SRC_112
    else:
        raise InvalidInputError(f"rock_ridge: expected {RRIP_109!r} or {RRIP_112!r}, found {version!r}")
    return _build(S.ER, "ER", ext_ver=ER_EXT_VERSION, ext_id=ext_id, ext_des=des, ext_src=src)


def susp_ce(lba: int, offset: int, length: int) -> bytes:
    """CE entry (SUSP 1.12 section 5.1), always 28 bytes: where the continuation area is.

    The area must lie inside one 2048-byte block (``offset + length <= 2048``): the
    Linux kernel rejects a continuation area that crosses a block boundary.
    """
    if not (0 <= offset and 0 <= length and offset + length <= CONTINUATION_AREA_MAX_BYTES):
        raise InternalError(f"CE entry: continuation area offset {offset} + length {length} "
                            f"crosses a {CONTINUATION_AREA_MAX_BYTES}-byte block")
    return _build(S.CE, "CE", block_location=lba, offset=offset, length_of_continuation_area=length)


def split_system_use(entries: list[bytes], room: int, *, path: str | None = None
                     ) -> tuple[list[bytes], bytes]:
    """Fit entries into a directory record's system use field (SUSP 1.12 sections 4, 5.1).

    Returns the entries that stay in the record and the bytes of the continuation area
    (b"" when everything fits in ``room`` bytes).  When not everything fits, the entries
    kept leave 28 bytes free for the CE entry the caller appends after them, and the rest
    (in order; an entry is never split) forms one continuation area of at most 2048 bytes.
    ``path`` names the file in the error raised when even that is not enough.
    """
    total = sum(len(e) for e in entries)
    if total <= room:
        return list(entries), b""
    available = room - CE_ENTRY_BYTES
    if available < 0:
        raise InvalidInputError(f"{path or 'directory record'}: {room} bytes of system use field "
                                f"cannot hold a {CE_ENTRY_BYTES}-byte CE entry")
    kept: list[bytes] = []
    used = 0
    for entry in entries:
        if used + len(entry) > available:
            break
        kept.append(entry)
        used += len(entry)
    rest = b"".join(entries[len(kept):])
    if len(rest) > CONTINUATION_AREA_MAX_BYTES:
        raise InvalidInputError(
            f"{path or 'directory record'}: Rock Ridge entries need {len(rest)} bytes of continuation "
            f"area, more than one {CONTINUATION_AREA_MAX_BYTES}-byte block (symlink target or name too long)")
    return kept, rest


# --- RRIP entries ---------------------------------------------------------------------

def _rr(flags: int) -> bytes:
    """RR entry (RRIP 1.09), 5 bytes."""
    return _RR_HEAD + bytes((flags,))


def _px(mode: int, nlink: int, uid: int, gid: int, serial: int | None) -> bytes:
    """PX entry (RRIP 1.12 section 4.1.1): 36 bytes, or 44 with the file serial number."""
    body = _both32(mode) + _both32(nlink) + _both32(uid) + _both32(gid)
    if serial is None:
        return _PX_HEAD_109 + body
    return _PX_HEAD_112 + body + _both32(serial)


def _pn(info: FileInfo) -> bytes:
    """PN entry (RRIP 1.12 section 4.1.2): the device number as a 64-bit Linux dev_t.

    Split into high and low 32 bits, the encoding mkisofs and xorriso write (glibc's
    makedev): the Linux kernel and libarchive read it back correctly for minors < 256.
    """
    major, minor = info.rdev_major, info.rdev_minor
    _check_u32(info, "rdev_major", major)
    _check_u32(info, "rdev_minor", minor)
    dev = (((major & 0x00000FFF) << 8) | ((major & 0xFFFFF000) << 32)
           | (minor & 0x000000FF) | ((minor & 0xFFFFFF00) << 12))
    return _build(S.PN, "PN", dev_t_high=dev >> 32, dev_t_low=dev & UINT32_MAX)


@functools.lru_cache(maxsize=4096)
def date7(seconds: int) -> bytes:
    """7-byte date (ISO 9660 section 9.1.5, RRIP TF short form) of an epoch time, in UTC.

    Times before 1900 or after 2155 cannot be recorded and are clamped to those years.
    """
    seconds = min(max(seconds, _DATE7_MIN_S), _DATE7_MAX_S)
    t = _EPOCH + _dt.timedelta(seconds=seconds)
    return bytes((t.year - 1900, t.month, t.day, t.hour, t.minute, t.second, 0))


def _seconds(value: float | None, default_time: float) -> int:
    v = default_time if value is None else value
    if isinstance(v, float) and not math.isfinite(v):
        raise InvalidInputError(f"time must be finite, found {v!r}")
    return math.floor(v)


def _tf(info: FileInfo, default_time: float) -> bytes:
    """TF entry (RRIP 1.12 section 4.1.6): modify, access, attribute-change times, 26 bytes."""
    try:
        # Access and attribute-change times not given default to the modification time.
        mtime = info.mtime
        stamps = b"".join(date7(_seconds(t if t is not None else mtime, default_time))
                          for t in (mtime, info.atime, info.ctime))
    except InvalidInputError as e:
        raise InvalidInputError(f"{info.name or '/'}: {e}") from None
    return _TF_WRITTEN_HEAD + stamps


def _nm(name: bytes) -> list[bytes]:
    """NM entries (RRIP 1.12 section 4.1.4): the name, split over entries of 250 bytes."""
    pieces = [name[i:i + NM_NAME_MAX_BYTES] for i in range(0, len(name), NM_NAME_MAX_BYTES)]
    out = []
    for i, piece in enumerate(pieces):
        flags = NM_FLAG_CONTINUE if i < len(pieces) - 1 else 0
        out.append(b"NM" + bytes((NM_HEADER_SIZE + len(piece), SUSP_ENTRY_VERSION, flags)) + piece)
    return out


def _sl_components(target: bytes) -> list[tuple[int, bytes]]:
    """The component records of a symlink target (RRIP 1.12 section 4.1.3.1), before splitting.

    A leading "/" becomes a ROOT component; "." and ".." become CURRENT and PARENT; empty
    components (from "//" or a trailing "/") stay empty text components.  The Linux
    kernel, libarchive and pycdlib give those back exactly; libisofs and isoinfo skip them
    ("b//c" reads as the equivalent "b/c").  A ROOT component in mid-path, which xorriso
    writes for "//", would make pycdlib restart the path at "/": a different target.
    """
    components: list[tuple[int, bytes]] = []
    rest = target
    if target.startswith(b"/"):
        components.append((SL_COMPONENT_ROOT, b""))
        rest = target[1:]
        if not rest:
            return components
    for part in rest.split(b"/"):
        if part == b".":
            components.append((SL_COMPONENT_CURRENT, b""))
        elif part == b"..":
            components.append((SL_COMPONENT_PARENT, b""))
        else:
            components.append((0, part))
    return components


def _sl(target: bytes) -> list[bytes]:
    """SL entries (RRIP 1.12 section 4.1.3) for a symlink target.

    Components are packed into entries of at most 255 bytes.  Every entry but the last
    has the SL CONTINUE flag and ends with a continued component: a text component split
    at the boundary, or, when the boundary falls between components, an empty component
    with the CONTINUE flag.  That way the Linux kernel, pycdlib and libarchive (which
    does not add "/" between SL entries) all read the same target.
    """
    components = _sl_components(target)
    groups: list[list[tuple[int, bytes]]] = []
    current: list[tuple[int, bytes]] = []
    used = 0
    for index, (flags, content) in enumerate(components):
        is_last = index == len(components) - 1
        while True:
            room = SL_COMPONENT_AREA_MAX_BYTES - used
            need = 2 + len(content)
            # A non-final entry must keep 2 bytes for an empty continued component.
            if need <= room - (0 if is_last else 2):
                current.append((flags, content))
                used += need
                break
            if flags == 0 and content and room >= 3:
                take = room - 2
                current.append((SL_COMPONENT_CONTINUE, content[:take]))
                content = content[take:]
            else:
                current.append((SL_COMPONENT_CONTINUE, b""))
            groups.append(current)
            current, used = [], 0
    groups.append(current)
    return [_sl_entry(SL_FLAG_CONTINUE if i < len(groups) - 1 else 0, group)
            for i, group in enumerate(groups)]


def _sl_entry(flags: int, components: list[tuple[int, bytes]]) -> bytes:
    """One SL entry (RRIP 1.12 section 4.1.3), byte for byte what ``_rrstructs.SL`` builds."""
    area = b"".join(bytes((f, len(c))) + c for f, c in components)
    return b"SL" + bytes((SL_HEADER_SIZE + len(area), SUSP_ENTRY_VERSION, flags)) + area


def rrip_entries(info: FileInfo, *, version: str, name: bytes | None, nlink: int, inode: int | None,
                 default_time: float, relocated: str | None = None, child_lba: int | None = None,
                 parent_lba: int | None = None) -> list[bytes]:
    """The RRIP entries of one directory record, in this order (RRIP 1.09 / 1.12 section 4.1):

    RR (1.09 only), PX, PN (devices), SL (symlinks), NM (``name``; None for "." and ".."),
    TF (mtime, atime, ctime; ``default_time`` for those not set), then CL (``relocated=
    "CL"``, the placeholder left in the deep parent, pointing at ``child_lba``), PL
    (``"PL"``, the moved directory's ".." record, pointing at ``parent_lba``) or RE
    (``"RE"``, the moved directory's own record in RR_MOVED).

    ``inode`` is the PX file serial number (1.12 only; None records 0).  Lengths do not
    depend on numeric values, LBAs included (None stands for a not-yet-known LBA).
    """
    if version not in RRIP_VERSIONS:
        raise InvalidInputError(f"rock_ridge: expected {RRIP_109!r} or {RRIP_112!r}, found {version!r}")
    if relocated not in (None, "CL", "PL", "RE"):
        raise InvalidInputError(f"{info.name or '/'}: relocated must be None, 'CL', 'PL' or 'RE', "
                                f"found {relocated!r}")
    mode = _check_u32(info, "mode", info.mode)
    uid = _check_u32(info, "uid", info.uid)
    gid = _check_u32(info, "gid", info.gid)
    _check_u32(info, "nlink", nlink)
    serial = None
    if version == RRIP_112:
        serial = _check_u32(info, "inode", 0 if inode is None else inode)

    entries: list[bytes] = []
    flags = RR_FLAG_PX | RR_FLAG_TF
    entries.append(_px(mode, nlink, uid, gid, serial))
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        entries.append(_pn(info))
        flags |= RR_FLAG_PN
    if stat.S_ISLNK(mode):
        target = info.target
        if not target:
            raise InvalidInputError(f"{info.name}: a symlink needs a non-empty target")
        if isinstance(target, str):
            target = target.encode("utf-8")
        entries.extend(_sl(bytes(target)))
        flags |= RR_FLAG_SL
    if name is not None:
        if not name or b"/" in name or b"\0" in name:
            raise InvalidInputError(f"{info.name}: Rock Ridge name {name!r} must be non-empty, "
                                    f"without '/' or NUL")
        entries.extend(_nm(bytes(name)))
        flags |= RR_FLAG_NM
    entries.append(_tf(info, default_time))
    if relocated == "CL":
        entries.append(_build(S.CL, "CL", location_of_child_directory=child_lba or 0))
        flags |= RR_FLAG_CL
    elif relocated == "PL":
        entries.append(_build(S.PL, "PL", location_of_parent_directory=parent_lba or 0))
        flags |= RR_FLAG_PL
    elif relocated == "RE":
        entries.append(_build(S.RE, "RE"))
        flags |= RR_FLAG_RE
    if version == RRIP_109:
        entries.insert(0, _rr(flags))

    total = sum(len(e) for e in entries)
    if total > CONTINUATION_AREA_MAX_BYTES:
        raise InvalidInputError(
            f"{info.name}: Rock Ridge entries need {total} bytes, more than one "
            f"{CONTINUATION_AREA_MAX_BYTES}-byte continuation area (symlink target or name too long)")
    return entries


# --- Reading back ------------------------------------------------------------------------

def _plain(obj: Any) -> Any:
    """A parsed construct value as plain dicts and lists (no private keys)."""
    if isinstance(obj, Container):
        return {k: _plain(v) for k, v in obj.items() if not k.startswith("_")}
    if isinstance(obj, ListContainer):
        return [_plain(v) for v in obj]
    return obj


def parse_entries(data: bytes) -> list[tuple[str, dict]]:
    """Decode a system use area or continuation area (SUSP 1.12 section 4) entry by entry.

    Returns (signature, fields) pairs; unknown signatures give ``{"raw": bytes}``.
    Stops at an ST entry, at fewer than 4 bytes left (record padding), or at zero bytes.
    """
    out: list[tuple[str, dict]] = []
    pos = 0
    while len(data) - pos >= S.SUSP_HEADER_SIZE:
        sig_bytes = data[pos:pos + 2]
        length = data[pos + 2]
        if sig_bytes == b"\0\0":
            break
        if length < S.SUSP_HEADER_SIZE or pos + length > len(data):
            raise InvalidImageError(f"system use entry {sig_bytes!r} at byte {pos}: length {length} "
                                    f"does not fit the {len(data)}-byte area")
        raw = data[pos:pos + length]
        signature = sig_bytes.decode("latin-1")
        declared = S.ENTRY_STRUCTS.get(signature)
        if declared is None:
            fields: dict = {"raw": raw}
        else:
            try:
                fields = _plain(declared.parse(raw))
            except ConstructError as e:
                raise InvalidImageError(f"system use entry {signature} at byte {pos}: {e}") from None
        out.append((signature, fields))
        pos += length
        if signature == "ST":
            break
    return out


def _fields_of(entries: Iterable[Any], signature: str) -> list[dict]:
    """Accept parse_entries() pairs, field dicts, or raw entry bytes; keep one signature."""
    result: list[dict] = []
    for item in entries:
        if isinstance(item, (bytes, bytearray)):
            result.extend(f for s, f in parse_entries(bytes(item)) if s == signature)
        elif isinstance(item, tuple):
            if item[0] == signature:
                result.append(item[1])
        else:
            result.append(item)
    return result


def symlink_target(sl_entries: Sequence[Any]) -> bytes:
    """Join the components of consecutive SL entries back into the target (RRIP 4.1.3).

    Follows the Linux kernel's reading: "/" between components unless the previous one
    was ROOT or had the CONTINUE flag (also across entries).
    """
    out = bytearray()
    separator = False
    for fields in _fields_of(sl_entries, "SL"):
        for comp in fields["component_area"]:
            flags = comp["flags"]
            if separator:
                out += b"/"
            kind = flags & ~SL_COMPONENT_CONTINUE
            if kind == SL_COMPONENT_ROOT:
                out += b"/"
                separator = False
                continue
            if kind == SL_COMPONENT_CURRENT:
                out += b"."
            elif kind == SL_COMPONENT_PARENT:
                out += b".."
            elif kind == 0:
                out += comp["content"]
            else:
                raise InvalidImageError(f"SL component flags 0x{flags:02x} not supported")
            separator = not flags & SL_COMPONENT_CONTINUE
    return bytes(out)


def nm_name(nm_entries: Sequence[Any]) -> bytes:
    """Join the NM entries of a record back into the name (RRIP 1.12 section 4.1.4).

    Entries flagged CURRENT or PARENT carry no name and are skipped.
    """
    return b"".join(f["name_content"] for f in _fields_of(nm_entries, "NM")
                    if not f["flags"] & (NM_FLAG_CURRENT | NM_FLAG_PARENT))
