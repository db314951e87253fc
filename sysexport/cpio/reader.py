"""Reading newc archives (for tests and inspection): the kernel's view of an uncompressed
archive, entry by entry (``buffer-format.rst``; the header is :data:`~._structs.NEWC_HEADER`).
"""
from __future__ import annotations

from typing import Iterator

import construct as cs

from ..errors import InvalidImageError
from ._structs import FIELD_NAMES, NEWC_HEADER, NEWC_HEADER_BYTES, TRAILER_NAME, pad_bytes


def iter_newc(data: bytes) -> Iterator[tuple[dict[str, int], str, bytes]]:
    """Yield (header fields, name, data) of each entry up to the trailer (not included)."""
    pos = 0
    while True:
        try:
            hdr = NEWC_HEADER.parse(data[pos:pos + NEWC_HEADER_BYTES])
        except cs.ConstructError as e:
            raise InvalidImageError(f"cpio: bad newc header at byte {pos}: {e}") from None
        fields: dict[str, int] = {k: hdr[k] for k in FIELD_NAMES}
        name_end = pos + NEWC_HEADER_BYTES + fields["c_namesize"]
        name = data[pos + NEWC_HEADER_BYTES:name_end - 1].decode("utf-8", "surrogateescape")
        pos = name_end + pad_bytes(name_end)
        if name == TRAILER_NAME:
            return
        size = fields["c_filesize"]
        body = data[pos:pos + size]
        pos += size + pad_bytes(size)
        yield fields, name, body


__all__ = ["iter_newc"]
