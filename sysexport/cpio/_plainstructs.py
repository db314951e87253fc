"""A plain file's newc header with its name, declared, and the fast copy the tree walk
builds it with (issue 16).

A regular file with one link and no device numbers has six of its thirteen header fields
fixed (c_nlink 1, c_devmajor, c_devminor, c_rdevmajor, c_rdevminor and c_check 0), so the
walk's format (:data:`PLAIN_FORMATS`) has them as text and formats the other seven with the
name and its NUL padding in one ``%``: about half the work of :data:`._structs.HEADER_FORMAT`
and two appends per file fewer.  :data:`PLAIN_ENTRY` declares the same bytes (the header
of :data:`._structs.NEWC_HEADER`, the name, the padding); :data:`FAST_CODECS` ties the two
for the one property test of every fast copy (tests/test_fastcodecs.py).
"""
from __future__ import annotations

import random
from typing import Any

import construct as cs

from .._fastcodec import FastCodec
from ._structs import FIELD_NAMES, MAX_FIELD, NEWC_HEADER, NEWC_HEADER_BYTES, NEWC_MAGIC

PLAIN_FIXED = {"c_nlink": 1, "c_devmajor": 0, "c_devminor": 0, "c_rdevmajor": 0, "c_rdevminor": 0, "c_check": 0}
"""The fields every plain file's header has the same (one link, not a device, newc: no sum)."""
PLAIN_FIELDS = tuple(k for k in FIELD_NAMES if k not in PLAIN_FIXED)
"""The rest, in header order: c_ino, c_mode, c_uid, c_gid, c_mtime, c_filesize, c_namesize."""
NAME_END = (b"\0", b"\0\0\0\0", b"\0\0\0", b"\0\0")
"""The name's NUL and the padding after it, by (header + c_namesize) % 4 (N_ALIGN)."""


def _plain_format(name_end: bytes) -> bytes:
    fields = b"".join(b"%08X" % PLAIN_FIXED[k] if k in PLAIN_FIXED else b"%08X" for k in FIELD_NAMES)
    return NEWC_MAGIC + fields + b"%s" + name_end


PLAIN_FORMATS = tuple(_plain_format(end) for end in NAME_END)
"""``PLAIN_FORMATS[(c_namesize + 2) % 4] % (ino, mode, uid, gid, mtime, size, namesize, name)``
is a plain file's header, its name (``namesize - 1`` bytes, no NUL) and the NULs after it;
every value in 0..MAX_FIELD (the walk checks what is not so by construction)."""


def plain_entry(name_bytes: int) -> cs.Construct:
    """The declaration of a header and a name of ``name_bytes`` bytes with its NUL padding."""
    return cs.Struct("header" / NEWC_HEADER, "name" / cs.Bytes(name_bytes),
                     "end" / cs.Const(NAME_END[(NEWC_HEADER_BYTES + name_bytes + 1) % 4]))


def _sample(rng: random.Random) -> dict[str, Any]:
    fields = {k: rng.choice((0, 1, 0xFFFF, MAX_FIELD)) if rng.random() < 0.2 else rng.getrandbits(rng.choice((8, 32)))
              for k in PLAIN_FIELDS}
    name = bytes(rng.choice(b"abc/.-_\xc3\xa9") for _ in range(rng.randrange(1, 40)))
    fields["c_namesize"] = len(name) + 1
    return {"header": dict(fields, **PLAIN_FIXED), "name": name}


def _encode(sample: dict[str, Any]) -> bytes:
    h = sample["header"]
    return PLAIN_FORMATS[(h["c_namesize"] + 2) & 3] % (*(h[k] for k in PLAIN_FIELDS), sample["name"])


FAST_CODECS: tuple[FastCodec[dict[str, Any]], ...] = (
    FastCodec("PLAIN_FORMATS (walk.stream_tree)", lambda s: plain_entry(len(s["name"])), _sample, encode=_encode),
)
"""The fast copy of this module, with its samples (docs/architecture.md)."""


__all__ = ["PLAIN_FORMATS", "PLAIN_FIELDS", "PLAIN_FIXED", "NAME_END", "plain_entry", "FAST_CODECS"]
