"""Hot path of the ISO reader: directory records and common SUSP/RRIP entries by struct.

docs/architecture.md, "Declarations and their fast copies": construct takes about 0.5 ms
per record here, so a directory record's fixed part (ECMA-119 9.1) and the Rock Ridge
entries every record carries (RR, PX, TF, NM, SL) are decoded with struct and slicing.
Anything unusual falls back to the construct declarations, which then also produce the
error.  ``FAST_CODECS`` of _structs.py and _rrstructs.py list these decoders;
tests/test_fastcodecs.py checks on many random samples, and on bytes with a byte changed,
that each gives what the declaration parses (or leaves the bytes to it).
"""
from __future__ import annotations

from typing import Callable

from . import _rrstructs as _rs
from . import rockridge as _rr
from ._structs import DIRECTORY_RECORD_FIXED_BYTES, DIRECTORY_RECORD_HEAD


class _Date(dict):
    """A parsed date as a dict with attribute access (both date layouts use it)."""

    __getattr__ = dict.__getitem__


_DATE7_KEYS = ("years_since_1900", "month", "day", "hour", "minute", "second")


class _Record(dict):
    """A decoded directory record with attribute access, like construct's Container.

    The annotations name what the keys hold (ECMA-119 9.1); the values live in the dict."""

    __getattr__ = dict.__getitem__
    location_of_extent: int
    data_length: int
    extended_attribute_record_length: int
    file_flags: int
    file_identifier: bytes
    system_use: bytes
    recording_date_and_time: _Date


def parse_directory_record(raw: bytes) -> _Record | None:
    """ECMA-119 9.1 by struct; None when the record needs the construct declaration's verdict."""
    if len(raw) <= DIRECTORY_RECORD_FIXED_BYTES:
        return None
    (length, ext_len, loc, loc_be, size, size_be, date, flags, unit, gap, vsn, vsn_be,
     len_fi) = DIRECTORY_RECORD_HEAD.unpack_from(raw)
    pad = 1 - len_fi % 2
    su_start = DIRECTORY_RECORD_FIXED_BYTES + len_fi + pad
    if (loc_be != loc.to_bytes(4, "big") or size_be != size.to_bytes(4, "big")
            or vsn_be != vsn.to_bytes(2, "big") or length != len(raw) or su_start > length
            or (pad and raw[DIRECTORY_RECORD_FIXED_BYTES + len_fi] != 0)):
        return None
    d = _Date(zip(_DATE7_KEYS, date[:6]))
    d["offset_from_gmt"] = date[6] - 256 if date[6] > 127 else date[6]
    return _Record(length_of_directory_record=length, extended_attribute_record_length=ext_len,
                   location_of_extent=loc, data_length=size, recording_date_and_time=d, file_flags=flags,
                   file_unit_size=unit, interleave_gap_size=gap, volume_sequence_number=vsn,
                   length_of_file_identifier=len_fi,
                   file_identifier=raw[DIRECTORY_RECORD_FIXED_BYTES:DIRECTORY_RECORD_FIXED_BYTES + len_fi],
                   padding_field=b"\x00" if pad else None, system_use=raw[su_start:length])


def _both32(raw: bytes, pos: int) -> int | None:
    """ECMA-119 7.3.3 number at ``pos``; None when the two copies differ."""
    le = raw[pos:pos + 4]
    return int.from_bytes(le, "little") if raw[pos + 4:pos + 8] == le[::-1] else None


def _fast_px(raw: bytes) -> dict | None:
    if len(raw) not in (_rs.PX_LENGTH_109, _rs.PX_LENGTH_112):
        return None
    vals = [_both32(raw, p) for p in range(_rs.SUSP_HEADER_SIZE, len(raw), 8)]
    if None in vals:
        return None
    return {"file_mode": vals[0], "file_links": vals[1], "file_user_id": vals[2], "file_group_id": vals[3],
            "file_serial_number": vals[4] if len(vals) > 4 else None}


def _fast_tf(raw: bytes) -> dict | None:
    flags = raw[4]
    count = bin(flags & 0x7F).count("1")
    if flags & _rs.TF_LONG_FORM or len(raw) != _rs.TF_HEADER_SIZE + 7 * count:
        return None
    stamps = []
    for i in range(count):
        b = raw[5 + 7 * i:12 + 7 * i]
        d = dict(zip(_DATE7_KEYS, b[:6]))
        d["gmt_offset"] = b[6] - 256 if b[6] > 127 else b[6]
        stamps.append(d)
    return {"flags": flags, "count": count, "time_stamps": stamps}


def _fast_sl(raw: bytes) -> dict | None:
    comps, pos = [], _rs.SL_HEADER_SIZE
    while pos < len(raw):
        if pos + 2 > len(raw) or pos + 2 + raw[pos + 1] > len(raw):
            return None
        n = raw[pos + 1]
        comps.append({"flags": raw[pos], "len": n, "content": raw[pos + 2:pos + 2 + n]})
        pos += 2 + n
    return {"flags": raw[4], "component_area": comps}


_FAST_SU: dict[bytes, Callable[[bytes], dict | None]] = {
    b"RR": lambda raw: {"flags": raw[4]} if len(raw) == _rs.RR_LENGTH else None,
    b"PX": _fast_px,
    b"TF": _fast_tf,
    b"NM": lambda raw: {"flags": raw[4], "name_content": raw[5:]} if len(raw) >= _rs.NM_HEADER_SIZE else None,
    b"SL": lambda raw: _fast_sl(raw) if len(raw) >= _rs.SL_HEADER_SIZE else None,
}


def decode_su_entry(raw: bytes) -> dict | None:
    """One RR, PX, TF, NM or SL entry (exactly its LEN bytes) as ``rockridge.parse_entries``
    gives its fields; None for any other entry, or one to leave to the declaration."""
    fast = _FAST_SU.get(raw[:2])
    if fast is None or len(raw) < _rs.SUSP_HEADER_SIZE or raw[2] != len(raw) or raw[3] != _rs.SUSP_ENTRY_VERSION:
        return None
    fields = fast(raw)
    if fields is None:
        return None
    return {"signature": raw[:2], "length": raw[2], "version": _rs.SUSP_ENTRY_VERSION, **fields}


def parse_su_entries(data: bytes) -> list[tuple[str, dict]]:
    """What :func:`rockridge.parse_entries` returns (SUSP 1.12 section 4), the common RRIP
    entries decoded without construct, every other entry by the declarations."""
    out: list[tuple[str, dict]] = []
    pos = 0
    while len(data) - pos >= _rs.SUSP_HEADER_SIZE:
        sig, length = data[pos:pos + 2], data[pos + 2]
        if sig == b"\0\0":
            break
        if length < _rs.SUSP_HEADER_SIZE or pos + length > len(data):
            return _rr.parse_entries(data)          # raises the declared error
        raw = data[pos:pos + length]
        fields = decode_su_entry(raw)
        if fields is None:
            out.extend(_rr.parse_entries(raw))
        else:
            out.append((sig.decode("latin-1"), fields))
        pos += length
        if sig == b"ST":
            break
    return out
