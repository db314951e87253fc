"""The newc CPIO header, declared once with construct, and its fast twin.

Linux ``Documentation/driver-api/early-userspace/buffer-format.rst`` (the newc variant of
SVR4 cpio, as ``init/initramfs.c`` unpacks it): every entry starts with a 110-byte ASCII
header, the magic ``070701`` and thirteen fields of 8 hexadecimal digits, followed by the
NUL-terminated name padded with NULs to a multiple of 4 bytes (header included), then the
data padded to a multiple of 4.

:data:`NEWC_HEADER` is the declaration (what readers parse with); the writer builds headers
with :func:`build_header_fast`, a format string giving the same bytes about 20 times
faster (it and the format's numbers live in :mod:`.newc`, without construct, and are
re-exported here).  :data:`FAST_CODECS` lists that pair (a :class:`~sysexport._fastcodec.FastCodec`)
for the one property test that compares every fast copy with its declaration
(docs/architecture.md, "Declarations and their fast copies").
"""
from __future__ import annotations

import random

import construct as cs

from .._fastcodec import FastCodec
from .newc import (FIELD_NAMES, HEADER_FORMAT, MAX_FIELD, NEWC_ALIGN_BYTES, NEWC_HEADER_BYTES, NEWC_MAGIC,
                   TRAILER_NAME, build_header_fast, build_header_values, pad_bytes)


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
