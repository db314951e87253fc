"""The newc CPIO header, declared once with construct, and its fast twin.

Linux ``Documentation/driver-api/early-userspace/buffer-format.rst`` (the newc variant of
SVR4 cpio, as ``init/initramfs.c`` unpacks it): every entry starts with a 110-byte ASCII
header, the magic ``070701`` and thirteen fields of 8 hexadecimal digits, followed by the
NUL-terminated name padded with NULs to a multiple of 4 bytes (header included), then the
data padded to a multiple of 4.

:data:`NEWC_HEADER` is the declaration (what readers parse with); the writer builds headers
with :func:`build_header_fast`, a format string giving the same bytes about 20 times
faster.  :data:`FAST_CODECS` lists that pair (a :class:`~sysexport._fastcodec.FastCodec`)
for the one property test that compares every fast copy with its declaration
(docs/architecture.md, "Declarations and their fast copies").
"""
from __future__ import annotations

import random
from typing import Mapping

import construct as cs

from .._fastcodec import FastCodec
from ..errors import InternalError

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


class _Hex8(cs.Adapter):
    """An unsigned 32-bit number written as 8 ASCII hexadecimal digits (newc)."""

    def _decode(self, obj: bytes, context: object, path: str) -> int:
        try:
            return int(obj.decode("ascii"), 16)
        except (UnicodeDecodeError, ValueError):
            raise cs.MappingError(f"not 8 hexadecimal digits: {obj!r}", path=path) from None

    def _encode(self, obj: int, context: object, path: str) -> bytes:
        if not 0 <= obj <= MAX_FIELD:
            raise cs.MappingError(f"{obj} does not fit 8 hexadecimal digits", path=path)
        return b"%08X" % obj


HEX8 = _Hex8(cs.Bytes(8))

# buffer-format.rst, "cpio header": offsets from the start of the header.
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
"""The numeric fields of :data:`NEWC_HEADER`, in header order."""

_FAST_FORMAT = NEWC_MAGIC + b"%08X" * len(FIELD_NAMES)
HEADER_FORMAT = _FAST_FORMAT
"""``HEADER_FORMAT % values`` (the 13 fields in header order, each 0..MAX_FIELD) is a header:
what :func:`build_header_values` does after its range check, for callers whose values are
in range by construction."""


def build_header_fast(fields: Mapping[str, int]) -> bytes:
    """The same bytes as ``NEWC_HEADER.build(fields)``, about 20 times faster."""
    values = tuple(fields[k] for k in FIELD_NAMES)
    for k, v in zip(FIELD_NAMES, values):
        if not 0 <= v <= MAX_FIELD:
            raise InternalError(f"cpio header field {k}={v} does not fit 32 bits")
    return _FAST_FORMAT % values


def build_header_values(values: tuple[int, ...]) -> bytes:
    """The same bytes as :func:`build_header_fast`, from the 13 field values in header
    order (the writer's path for every entry: no mapping built)."""
    if len(values) != len(FIELD_NAMES) or min(values) < 0 or max(values) > MAX_FIELD:
        return build_header_fast(dict(zip(FIELD_NAMES, values)))      # names the bad field
    return _FAST_FORMAT % values


def pad_bytes(length: int) -> int:
    """NUL bytes that follow ``length`` bytes to reach the next multiple of 4 (N_ALIGN)."""
    return -length % NEWC_ALIGN_BYTES


# --------------------------------------------------------------------------------------
# The registry of fast copies, for the generic property test (tests/test_fastcodecs.py).

_EDGE_VALUES = (0, 1, 9, 10, 15, 16, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFE, MAX_FIELD)


def _header_sample(rng: random.Random) -> dict[str, int]:
    """Field values of one header: random 32-bit numbers, often the edges of 8 hex digits."""
    return {k: rng.choice(_EDGE_VALUES) if rng.random() < 0.3 else rng.getrandbits(rng.choice((4, 8, 16, 32)))
            for k in FIELD_NAMES}


FAST_CODECS: tuple[FastCodec[dict[str, int]], ...] = (
    FastCodec("NEWC_HEADER: build_header_fast", lambda _: NEWC_HEADER, _header_sample,
              encode=build_header_fast),
    FastCodec("NEWC_HEADER: build_header_values (writer)", lambda _: NEWC_HEADER, _header_sample,
              encode=lambda fields: build_header_values(tuple(fields[k] for k in FIELD_NAMES))),
)
"""Each hand-written codec of a declaration in this module, with its samples (docs/architecture.md)."""


__all__ = ["NEWC_MAGIC", "NEWC_HEADER_BYTES", "NEWC_ALIGN_BYTES", "TRAILER_NAME", "MAX_FIELD", "HEX8",
           "NEWC_HEADER", "FIELD_NAMES", "build_header_fast",
           "build_header_values", "HEADER_FORMAT", "pad_bytes", "FAST_CODECS"]
