"""The newc format's numbers and the writer's fast header, without construct.

The declaration (:data:`._structs.NEWC_HEADER`, construct) is what readers parse with and
what the property test holds these to (tests/test_fastcodecs.py, through the
``FAST_CODECS`` of :mod:`._structs` and :mod:`._plainstructs`).  The writer's path needs only
what is here, so ``sysexport initramfs`` starts without importing construct (a tenth of its
start-up).  Linux ``Documentation/driver-api/early-userspace/buffer-format.rst``: every entry
starts with a 110-byte ASCII header, the magic ``070701`` and thirteen fields of 8
hexadecimal digits, then the NUL-terminated name padded with NULs to a multiple of 4 bytes
(header included), then the data padded to a multiple of 4.
"""
from __future__ import annotations

import struct
from typing import Mapping

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
FIELD_NAMES = ("c_ino", "c_mode", "c_uid", "c_gid", "c_nlink", "c_mtime", "c_filesize",
               "c_devmajor", "c_devminor", "c_rdevmajor", "c_rdevminor", "c_namesize", "c_check")
"""The numeric fields of the header, in header order."""

HEADER_FORMAT = NEWC_MAGIC + b"%08X" * len(FIELD_NAMES)
"""``HEADER_FORMAT % values`` (the 13 fields in header order, each 0..MAX_FIELD) is a header:
what :func:`build_header_values` does after its range check, for callers whose values are
in range by construction."""


def build_header_fast(fields: Mapping[str, int]) -> bytes:
    """The same bytes as ``NEWC_HEADER.build(fields)``, about 20 times faster."""
    values = tuple(fields[k] for k in FIELD_NAMES)
    for k, v in zip(FIELD_NAMES, values):
        if not 0 <= v <= MAX_FIELD:
            raise InternalError(f"cpio header field {k}={v} does not fit 32 bits")
    return HEADER_FORMAT % values


def build_header_values(values: tuple[int, ...]) -> bytes:
    """The same bytes as :func:`build_header_fast`, from the 13 field values in header
    order (the writer's path for every entry: no mapping built)."""
    if len(values) != len(FIELD_NAMES) or min(values) < 0 or max(values) > MAX_FIELD:
        return build_header_fast(dict(zip(FIELD_NAMES, values)))      # names the bad field
    return HEADER_FORMAT % values


def pad_bytes(length: int) -> int:
    """NUL bytes that follow ``length`` bytes to reach the next multiple of 4 (N_ALIGN)."""
    return -length % NEWC_ALIGN_BYTES


# A plain file's header (cpio/_plainstructs.py declares it with its name): a regular file with
# one link and no device numbers has c_devmajor, c_devminor, c_rdevmajor, c_rdevminor and
# c_check zero and c_nlink 1.  The header is ASCII hex of 32-bit numbers, and the magic
# ``070701`` is itself the hex of the bytes 07 07 01, so the 110 bytes are the hex of one
# 55-byte big-endian struct: ``binascii.hexlify(...).upper()`` spells it, about twice as fast
# as ``%08X`` thirteen (or seven) times (each ``%X`` makes a str first).
PLAIN_HEADER = struct.Struct(">3B7I16xI4x")
"""magic bytes (07 07 01), c_ino, c_mode, c_uid, c_gid, c_nlink, c_mtime, c_filesize, four zero
device fields, c_namesize, a zero c_check: ``hexlify(PLAIN_HEADER.pack(*MAGIC_BYTES, ino,
mode, uid, gid, nlink, mtime, size, namesize)).upper()`` is the header (every value in
0..MAX_FIELD: ``struct.error`` otherwise)."""
MAGIC_BYTES = tuple(bytes.fromhex(NEWC_MAGIC.decode("ascii")))
"""07 07 01: the bytes whose hex is the magic."""
PLAIN_ZERO = ("c_devmajor", "c_devminor", "c_rdevmajor", "c_rdevminor", "c_check")
"""The fields :data:`PLAIN_HEADER` writes as zeros."""
PLAIN_FIELDS = tuple(k for k in FIELD_NAMES if k not in PLAIN_ZERO)
"""The fields it packs, in header order: c_ino, c_mode, c_uid, c_gid, c_nlink, c_mtime, c_filesize, c_namesize."""
NAME_END = (b"\0", b"\0\0\0\0", b"\0\0\0", b"\0\0")
"""The name's NUL and the padding after it, by (header + c_namesize) % 4 (N_ALIGN)."""


__all__ = ["NEWC_MAGIC", "NEWC_HEADER_BYTES", "NEWC_ALIGN_BYTES", "TRAILER_NAME", "MAX_FIELD", "FIELD_NAMES",
           "HEADER_FORMAT", "build_header_fast", "build_header_values", "pad_bytes", "PLAIN_HEADER",
           "MAGIC_BYTES", "PLAIN_ZERO", "PLAIN_FIELDS", "NAME_END"]
