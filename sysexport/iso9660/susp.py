"""Read side of SUSP 1.12 and RRIP 1.09/1.12: a record's system use entries, continuation
areas followed, decoded into one :class:`RRInfo` per record, leniently.

Where the readers users trust (the Linux kernel's fs/isofs/rock.c, libisofs, libarchive)
skip a malformed entry and go on, so does this: an entry that does not fit its area ends
that area, an entry its declaration rejects is skipped, a continuation area that lies
outside the image, loops or chains on past ``MAX_CE_CHAIN`` areas is not read; each such
case is told to ``note(offset, message)`` and the rest is used.  The common entries are
decoded by :mod:`._fastread` (struct and slicing), the others by the declarations of
:mod:`._rrstructs`.
"""
from __future__ import annotations

from typing import Any, Callable

from construct import ConstructError, Container, ListContainer

from . import _rrstructs as _rs
from ._fastread import decode_su_entry

MAX_CE_CHAIN = 32
"""Continuation areas followed from one record (RR_MAX_CE_ENTRIES of the Linux kernel)."""
MAX_CE_BYTES = 1 << 16
"""The most continuation area bytes read for one record, all areas of its chain together
(the kernel takes 32 areas of at most one block: 64 KiB)."""
MAX_ENTRIES = 1024
"""The most system use entries decoded for one record (a hostile area of 4-byte entries
would otherwise cost time and memory out of proportion)."""
MAX_TARGET_BYTES = 1 << 16
"""The longest symlink target assembled (the kernel stops at one page)."""

Note = Callable[[int | None, str], None]
ReadArea = Callable[[int, int, int], "tuple[int, bytes] | str"]
"""read_area(block, offset, length) -> (byte offset in the image, bytes), or why not."""

_DECLARED: dict[bytes, Any] = {sig.encode("latin-1"): decl for sig, decl in _rs.ENTRY_STRUCTS.items()}
_DECLARED[b"ZF"] = _rs.ZF
_SHARED = frozenset((b"PX", b"TF", b"RR", b"PN"))
"""Entries most records of a tree repeat byte for byte (the same mode, owner, times): their
decoding is kept (in _CACHE, at most _CACHE_ENTRIES) and shared; nothing modifies it."""
_CACHE: dict[bytes, dict[str, Any]] = {}
_CACHE_ENTRIES = 4096


def _plain(obj: Any) -> Any:
    if isinstance(obj, Container):
        return {k: _plain(v) for k, v in obj.items() if not k.startswith("_")}
    if isinstance(obj, ListContainer):
        return [_plain(v) for v in obj]
    return obj


def parse_area(data: bytes, at: int, note: Note) -> list[tuple[str, dict[str, Any]]]:
    """The entries of one system use area or continuation area at byte ``at`` (SUSP 1.12
    section 4): padding (NUL bytes, fewer than 4 left) and ST end it."""
    out: list[tuple[str, dict[str, Any]]] = []
    pos = 0
    end = len(data)
    while end - pos >= _rs.SUSP_HEADER_SIZE:
        sig = data[pos:pos + 2]
        length = data[pos + 2]
        if sig == b"\0\0":
            break
        if len(out) >= MAX_ENTRIES:
            note(at + pos, f"more than {MAX_ENTRIES} system use entries in one area; the rest is not read")
            break
        if length < _rs.SUSP_HEADER_SIZE or pos + length > end:
            note(at + pos, f"system use entry {sig!r}: length {length} does not fit the {end - pos} bytes left "
                           "of its area; the rest of the area is skipped")
            break
        raw = data[pos:pos + length]
        shared = sig in _SHARED
        fields = _CACHE.get(raw) if shared else None
        if fields is not None:
            out.append((sig.decode("latin-1"), fields))
            pos += length
            continue
        fields = decode_su_entry(raw)
        if fields is not None and shared:
            if len(_CACHE) >= _CACHE_ENTRIES:
                _CACHE.clear()
            _CACHE[raw] = fields
        if fields is None:
            decl = _DECLARED.get(sig)
            if decl is None:
                fields = {"raw": raw}
            else:
                try:
                    fields = _plain(decl.parse(raw))
                except (ConstructError, ValueError, OverflowError) as e:
                    note(at + pos, f"system use entry {sig.decode('latin-1')!r} skipped: "
                                   f"{str(e).splitlines()[0] if str(e) else type(e).__name__}")
                    pos += length
                    continue
        out.append((sig.decode("latin-1"), fields))
        pos += length
        if sig == b"ST":
            break
    return out


def entries(system_use: bytes, at: int, read_area: ReadArea, note: Note) -> list[tuple[str, dict[str, Any]]]:
    """Every entry of a record's system use field at byte ``at``, then of its continuation
    areas (SUSP 5.1) in chain order, CE entries themselves left out."""
    out: list[tuple[str, dict[str, Any]]] = []
    pending = parse_area(system_use, at, note)
    seen: set[tuple[int, int]] = set()
    where = at
    budget = MAX_CE_BYTES
    while True:
        if len(out) + len(pending) > MAX_ENTRIES:
            note(where, f"more than {MAX_ENTRIES} system use entries for one record; the rest is not read")
            out.extend(p for p in pending[:max(0, MAX_ENTRIES - len(out))] if p[0] != "CE")
            return out
        ce = None
        for sig, fields in pending:
            if sig == "CE":
                ce = fields                         # the last one counts, as in Linux
            else:
                out.append((sig, fields))
        if ce is None:
            return out
        block, offset, length = ce["block_location"], ce["offset"], ce["length_of_continuation_area"]
        key = (block, offset)
        if key in seen:
            note(where, f"CE entry points back at the continuation area at block {block} offset {offset} "
                        "(a loop); not followed")
            return out
        if len(seen) >= MAX_CE_CHAIN:
            note(where, f"more than {MAX_CE_CHAIN} continuation areas chained; the rest is not read")
            return out
        seen.add(key)
        if length == 0:
            return out
        if length > budget:
            note(where, f"CE entry: a continuation area of {length} bytes (at most {MAX_CE_BYTES} are read for "
                        "one record); not followed")
            return out
        budget -= length
        got = read_area(block, offset, length)
        if isinstance(got, str):
            note(where, f"CE entry: {got}; not followed")
            return out
        where, data = got
        pending = parse_area(data, where, note)


class RRInfo:
    """What the Rock Ridge entries of one record say (None: not recorded)."""

    __slots__ = ("name", "name_flags", "mode", "nlink", "uid", "gid", "inode", "pn", "target", "times",
                 "cl", "pl", "re", "zf", "rr_flags", "signatures", "sl_bad")

    def __init__(self) -> None:
        self.name: bytes | None = None
        self.name_flags = 0
        self.mode: int | None = None
        self.nlink: int | None = None
        self.uid: int | None = None
        self.gid: int | None = None
        self.inode: int | None = None
        self.pn: tuple[int, int] | None = None
        self.target: bytes | None = None
        self.times: dict[str, float] = {}
        self.cl: int | None = None
        self.pl: int | None = None
        self.re = False
        self.zf: dict[str, Any] | None = None
        self.rr_flags: int | None = None
        self.signatures: list[str] = []
        self.sl_bad = False


def decode(items: list[tuple[str, dict[str, Any]]], at: int, note: Note) -> RRInfo:
    """One RRInfo from a record's entries (RRIP 1.12 section 4.1; as the Linux kernel reads
    them: the last PX, PN, TF wins, NM and SL entries are joined)."""
    info = RRInfo()
    nm: list[bytes] = []
    nm_continues = False
    sl_out = bytearray()
    sl_seen = False
    for sig, f in items:
        info.signatures.append(sig)
        if sig == "PX":
            info.mode, info.nlink = f["file_mode"], f["file_links"]
            info.uid, info.gid = f["file_user_id"], f["file_group_id"]
            info.inode = f.get("file_serial_number")
        elif sig == "NM":
            flags = f["flags"]
            if flags & (_rs.NM_FLAG_CURRENT | _rs.NM_FLAG_PARENT):
                info.name_flags |= flags
                continue
            if flags & ~_rs.NM_FLAG_CONTINUE:
                note(at, f"NM entry flags {flags:#04x} (RRIP 4.1.4 defines CONTINUE, CURRENT, PARENT only)")
            nm.append(bytes(f["name_content"]))
            nm_continues = bool(flags & _rs.NM_FLAG_CONTINUE)
        elif sig == "SL":
            sl_seen = True
            if len(sl_out) <= MAX_TARGET_BYTES:
                _sl_chunk(sl_out, f, at, note, info)
        elif sig == "TF":
            _tf(info, f, at, note)
        elif sig == "PN":
            info.pn = (f["dev_t_high"], f["dev_t_low"])
        elif sig == "CL":
            info.cl = f["location_of_child_directory"]
        elif sig == "PL":
            info.pl = f["location_of_parent_directory"]
        elif sig == "RE":
            info.re = True
        elif sig == "ZF":
            info.zf = f
        elif sig == "RR":
            info.rr_flags = f["flags"]
    if nm:
        info.name = b"".join(nm)
        if nm_continues:
            note(at, "the last NM entry has the CONTINUE flag, but no NM entry follows")
    if sl_seen:
        if len(sl_out) > MAX_TARGET_BYTES:
            note(at, f"symbolic link target longer than {MAX_TARGET_BYTES} bytes; cut")
            del sl_out[MAX_TARGET_BYTES:]
        info.target = bytes(sl_out)
    return info


def _sl_chunk(out: bytearray, f: dict[str, Any], at: int, note: Note, info: RRInfo) -> None:
    """Append one SL entry's components (RRIP 4.1.3.1), as the Linux kernel's
    get_symlink_chunk does: '/' after a component unless it is ROOT or continued, and at the
    end of an entry only when the entry has the CONTINUE flag."""
    comps = f["component_area"]
    root = False
    last_flags = 0
    for i, comp in enumerate(comps):
        flags = comp["flags"]
        kind = flags & ~_rs.SL_COMPONENT_CONTINUE
        root = False
        if kind == 0:
            out += comp["content"]
        elif kind == _rs.SL_COMPONENT_CURRENT:
            out += b"."
        elif kind == _rs.SL_COMPONENT_PARENT:
            out += b".."
        elif kind == _rs.SL_COMPONENT_ROOT:
            out += b"/"
            root = True
        else:
            if not info.sl_bad:
                note(at, f"SL component flags {flags:#04x} (volume root or host name, RRIP 4.1.3.1) not supported; "
                         "the component is left out")
            info.sl_bad = True
        last_flags = flags
        if i < len(comps) - 1:
            if not root and not flags & _rs.SL_COMPONENT_CONTINUE:
                out += b"/"
    if comps and not root and f["flags"] & _rs.SL_FLAG_CONTINUE and not last_flags & _rs.SL_COMPONENT_CONTINUE:
        out += b"/"


_TF_NAMES = ((_rs.TF_CREATION, "creation"), (_rs.TF_MODIFY, "modify"), (_rs.TF_ACCESS, "access"),
             (_rs.TF_ATTRIBUTES, "attributes"), (_rs.TF_BACKUP, "backup"), (_rs.TF_EXPIRATION, "expiration"),
             (_rs.TF_EFFECTIVE, "effective"))


def _tf(info: RRInfo, f: dict[str, Any], at: int, note: Note) -> None:
    known = f.get("_times")
    if known is not None:
        info.times.update(known)
        return
    before = dict(info.times)
    info.times.clear()
    _tf_times(info, f, at, note)
    f["_times"] = dict(info.times)
    before.update(info.times)
    info.times = before


def _tf_times(info: RRInfo, f: dict[str, Any], at: int, note: Note) -> None:
    stamps = list(f["time_stamps"])
    long_form = bool(f["flags"] & _rs.TF_LONG_FORM)
    for bit, name in _TF_NAMES:
        if not f["flags"] & bit:
            continue
        if not stamps:
            break
        d = stamps.pop(0)
        if long_form:
            value = date17(d, at, note)
        else:
            value = date7(d["years_since_1900"], d["month"], d["day"], d["hour"], d["minute"], d["second"],
                          d["gmt_offset"])
        if value is not None:
            info.times[name] = value


def _mktime64(year: int, mon: int, day: int, hour: int, minute: int, sec: int) -> int:
    """The Linux kernel's mktime64 (Gauss' algorithm): defined for every field value, equal to
    timegm for valid dates."""
    mon -= 2
    if mon <= 0:
        mon += 12
        year -= 1
    return ((((year // 4 - year // 100 + year // 400 + 367 * mon // 12 + day) + year * 365 - 719499) * 24
             + hour) * 60 + minute) * 60 + sec


def date7(year: int, month: int, day: int, hour: int, minute: int, second: int, gmt_offset: int) -> float | None:
    """ECMA-119 9.1.5 (and RRIP TF's short form) to epoch seconds, as the kernel's iso_date
    reads it: an offset from GMT beyond 13 hours (52 quarters) is ignored.  None when not
    recorded (all zero)."""
    if not (year or month or day or hour or minute or second):
        return None
    t = _mktime64(1900 + year, month, day, hour, minute, second)
    if gmt_offset > 127:
        gmt_offset -= 256
    if -52 <= gmt_offset <= 52:
        t -= gmt_offset * 15 * 60
    return float(t)


def date17(d: dict[str, Any], at: int | None, note: Note | None) -> float | None:
    """ECMA-119 8.4.26.1 (RRIP TF's long form) to epoch seconds; None when not specified
    (all digits zero) or not digits."""
    try:
        digits = b"".join(bytes(d[k]) for k in ("year", "month", "day", "hour", "minute", "second", "hundredths"))
    except (KeyError, TypeError):
        return None
    if digits.strip(b"0") == b"" or digits.strip(b"0 \x00") == b"":
        return None
    if not digits.isdigit():
        if note is not None:
            note(at, f"date {digits!r} is not 16 digits (ECMA-119 8.4.26.1)")
        return None
    vals = [int(digits[a:b]) for a, b in ((0, 4), (4, 6), (6, 8), (8, 10), (10, 12), (12, 14), (14, 16))]
    offset = d.get("gmt_offset", 0)
    if offset > 127:
        offset -= 256
    t = _mktime64(vals[0], vals[1], vals[2], vals[3], vals[4], vals[5])
    if -52 <= offset <= 52:
        t -= offset * 15 * 60
    return t + vals[6] / 100


def decode_pn(high: int, low: int) -> tuple[int, int]:
    """PN (RRIP 1.12 4.1.2) to (major, minor), for both encodings writers use.

    libisofs/xorriso (and sysexport's writer) record the 64-bit glibc dev_t split into its
    high and low 32 bits: for every Linux device (major < 2^12, minor < 2^20) the high word
    is 0 and the low word is glibc's 32-bit dev_t.  mkisofs/genisoimage record major(dev) and
    minor(dev) in the high and low words (RRIP 1.12's "high and low" read literally), which
    is what the Linux kernel's MKDEV(high, low) reads back.  So: high 0, the low word as a
    glibc dev_t; high a Linux major and low a Linux minor, those two; anything else the
    64-bit glibc dev_t.
    """
    if high == 0:
        return ((low >> 8) & 0xFFF, (low & 0xFF) | ((low >> 12) & 0xFFF00))
    if high < (1 << 12) and low < (1 << 20):
        return high, low
    dev = (high << 32) | low
    major = ((dev >> 32) & 0xFFFFF000) | ((dev >> 8) & 0x00000FFF)
    minor = ((dev >> 12) & 0xFFFFFF00) | (dev & 0x000000FF)
    return major, minor
