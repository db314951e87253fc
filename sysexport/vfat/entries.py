"""The 32-byte entries of one planned directory, built when it is written (fatgen103 "FAT
Directory Structure", "FAT Long Directory Entries", "Date and Time Formats").

One pass over the directory's columns: short names made for the whole directory at once
(:func:`names.short_names`), then each child's long-name entry (when its name needs one)
and short entry packed, the most common case (a name of at most 13 UTF-16 units: one
long-name entry) with one precompiled ``struct`` call for both, and the directory's bytes
joined once.  FAT times are cached by whole second (dates of access times by day).
"""
from __future__ import annotations

import calendar
import time

from ..errors import InternalError
from ..tree import Node
from ._structs import (ATTR_ARCHIVE, ATTR_DIRECTORY, ATTR_LONG_NAME, ATTR_VOLUME_ID, DIR_ENTRY_FAST, DOT_NAME,
                       DOTDOT_NAME, LFN_AND_DIR_ENTRY_FAST, LFN_LAST_FLAG, LFN_UNITS_PER_ENTRY)
from .names import _utf16, lfn_checksums, lfn_entries, short_names
from .plan import DirState, dir_state

FAT_TIME_MIN = calendar.timegm((1980, 1, 1, 0, 0, 0))
FAT_TIME_MAX = calendar.timegm((2107, 12, 31, 23, 59, 59))
TIME_CACHE_ENTRIES = 65536          # whole seconds remembered per directory write (then cleared)
_LFN_PAD = tuple(b"" if k == LFN_UNITS_PER_ENTRY else b"\x00\x00" + b"\xff\xff" * (LFN_UNITS_PER_ENTRY - k - 1)
                 for k in range(LFN_UNITS_PER_ENTRY + 1))
"""What follows a name of k < 13 units in its one long-name entry: a NUL unit, then 0xFFFF units."""
_HAS_LFN = bytes(min(n, 1) for n in range(256))
"""bytes.translate table: a long-name entry count to 1 (has long-name entries) or 0."""


def fat_datetime(t: float) -> tuple[int, int, int]:
    """(date, time, tenths) in FAT format (fatgen103 "Date and Time Formats"), UTC,
    clamped to 1980-01-01 .. 2107-12-31; time has 2 s resolution, tenths 10 ms units."""
    t = min(max(t, FAT_TIME_MIN), FAT_TIME_MAX)
    whole = int(t)
    tm = time.gmtime(whole)
    date = ((tm.tm_year - 1980) << 9) | (tm.tm_mon << 5) | tm.tm_mday
    tod = (tm.tm_hour << 11) | (tm.tm_min << 5) | (tm.tm_sec // 2)
    tenth = (tm.tm_sec % 2) * 100 + min(99, int((t - whole) * 100))
    return date, tod, tenth


class EntryTimes:
    """FAT (date, time, tenths) of entry times, ``default_time`` for None; by whole second
    in a bounded cache (most host files have distinct sub-second times, few distinct seconds)."""

    __slots__ = ("default_time", "_seconds")

    def __init__(self, default_time: int) -> None:
        self.default_time = default_time
        self._seconds: dict[int, tuple[int, int, int]] = {}

    def of(self, t: float | None) -> tuple[int, int, int]:
        if t is None:
            t = self.default_time
        if not FAT_TIME_MIN <= t <= FAT_TIME_MAX:
            t = min(max(t, FAT_TIME_MIN), FAT_TIME_MAX)
        whole = int(t)
        hit = self._seconds.get(whole)
        if hit is None:
            if len(self._seconds) >= TIME_CACHE_ENTRIES:
                self._seconds.clear()
            hit = self._seconds[whole] = fat_datetime(whole)
        if t != whole:
            return hit[0], hit[1], hit[2] + min(99, int((t - whole) * 100))
        return hit


def directory_bytes(d: Node, label: str, times: EntryTimes) -> bytes:
    """Every entry of the planned directory ``d``: its volume label (the root, when there
    is one) or its "." and ".." entries, then each child's long-name and short entries."""
    pack = DIR_ENTRY_FAST.pack
    st = dir_state(d)
    out: list[bytes] = []
    info = d.info
    wdate, wtime, tenth = times.of(info.mtime)
    parent = d.parent
    if parent is None:
        if label:
            out.append(pack(label.encode("ascii").ljust(11), ATTR_VOLUME_ID, 0, 0, 0, 0,
                            0, 0, wtime, wdate, 0, 0))
    else:
        adate = times.of(info.atime if info.atime is not None else info.mtime)[0]
        attr = ATTR_DIRECTORY | info.FAT_flags
        up = dir_state(parent).first if parent.parent is not None else 0
        for nm, cluster in ((DOT_NAME, st.first), (DOTDOT_NAME, up)):
            out.append(pack(nm, attr, 0, tenth, wtime, wdate, adate, cluster >> 16, wtime, wdate,
                            cluster & 0xFFFF, 0))
    _child_entries(d, st, times, out)
    return b"".join(out)


def _child_entries(d: Node, st: DirState, times: EntryTimes, out: list[bytes]) -> None:
    """The children's entries of ``d`` appended to ``out``, in sorted order."""
    names = st.names
    children = st.children
    if len(children) != len(st.sizes):
        raise InternalError(f"{d.path or '/'}: changed since it was planned")
    shorts, ntres, has_lfn = short_names(names, st.fixed, d.path or "")
    if has_lfn != st.lfn.translate(_HAS_LFN):
        raise InternalError(f"{d.path or '/'}: long names planned and written differ")
    csums = lfn_checksums(shorts)
    pack = DIR_ENTRY_FAST.pack
    pack2 = LFN_AND_DIR_ENTRY_FAST.pack
    lfn = st.lfn
    firsts, sizes = st.firsts, st.sizes
    seconds = times._seconds
    default = times.default_time
    day_dates: dict[int, int] = {}
    for i, c in enumerate(children):
        info = c.info
        t = info.mtime                              # times.of(), inlined: once per entry
        if t is None:
            t = default
        if not FAT_TIME_MIN <= t <= FAT_TIME_MAX:
            t = min(max(t, FAT_TIME_MIN), FAT_TIME_MAX)
        whole = int(t)
        hit = seconds.get(whole)
        if hit is None:
            hit = times.of(whole)
        wdate, wtime, tenth = hit
        if t != whole:
            tenth += min(99, int((t - whole) * 100))
        at = info.atime
        if at is None:                              # no atime: mtime's date
            adate = wdate
        else:
            day = int(at if FAT_TIME_MIN <= at <= FAT_TIME_MAX else min(max(at, FAT_TIME_MIN), FAT_TIME_MAX)) // 86400
            adate = day_dates.get(day, -1)
            if adate < 0:
                adate = day_dates[day] = times.of(day * 86400)[0]
        if c.children is not None:
            attr, size, first = ATTR_DIRECTORY | info.FAT_flags, 0, dir_state(c).first
        else:
            attr, size, first = info.FAT_flags or ATTR_ARCHIVE, sizes[i], firsts[i]
        short = shorts[i]
        n = lfn[i]
        if n == 1:
            units = _utf16(names[i])[0]
            units += _LFN_PAD[len(units) >> 1]
            out.append(pack2(LFN_LAST_FLAG | 1, units[0:10], ATTR_LONG_NAME, 0, csums[i],
                             units[10:22], 0, units[22:26],
                             short, attr, ntres[i], tenth, wtime, wdate, adate, first >> 16,
                             wtime, wdate, first & 0xFFFF, size))
            continue
        if n:
            out.append(lfn_entries(_utf16(names[i])[0], short, csums[i]))
        out.append(pack(short, attr, ntres[i], tenth, wtime, wdate, adate, first >> 16,
                        wtime, wdate, first & 0xFFFF, size))
