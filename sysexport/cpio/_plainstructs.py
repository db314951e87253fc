"""A plain file's newc header, declared with its name, and the fast copy the tree walk
builds it with (issue 16; the fast copy itself, :data:`.newc.PLAIN_HEADER`, lives in
:mod:`.newc` without construct).

A regular file with one link and no device numbers has five of its thirteen header fields
zero (c_devmajor, c_devminor, c_rdevmajor, c_rdevminor, and c_check in newc) and c_nlink 1.
The header is ASCII hex of 32-bit numbers, and the magic ``070701`` is itself the hex of
the bytes 07 07 01, so the whole 110 bytes are the hex of one 55-byte big-endian
``struct``: :data:`PLAIN_HEADER` packs the magic's bytes and the seven fields that vary,
the zero fields as pad bytes, and ``binascii.hexlify(...).upper()`` spells it, about twice
as fast as ``%08X`` thirteen (or seven) times (each ``%X`` makes a str first).
:func:`plain_entry` declares a header with its name and NUL padding (the header is
:data:`._structs.NEWC_HEADER`); :data:`FAST_CODECS` ties the two for the one property test
of every fast copy (tests/test_fastcodecs.py).
"""
from __future__ import annotations

import random
from binascii import hexlify
from typing import Any

import construct as cs

from .._fastcodec import FastCodec
from ._structs import NEWC_HEADER
from .newc import MAGIC_BYTES, MAX_FIELD, NAME_END, NEWC_HEADER_BYTES, PLAIN_FIELDS, PLAIN_HEADER, PLAIN_ZERO


def plain_entry(name_bytes: int) -> cs.Construct:
    """The declaration of a header and a name of ``name_bytes`` bytes with its NUL padding."""
    return cs.Struct("header" / NEWC_HEADER, "name" / cs.Bytes(name_bytes),
                     "end" / cs.Const(NAME_END[(NEWC_HEADER_BYTES + name_bytes + 1) % 4]))


def _sample(rng: random.Random) -> dict[str, Any]:
    fields = {k: rng.choice((0, 1, 0xFFFF, MAX_FIELD)) if rng.random() < 0.2 else rng.getrandbits(rng.choice((8, 32)))
              for k in PLAIN_FIELDS}
    name = bytes(rng.choice(b"abc/.-_\xc3\xa9") for _ in range(rng.randrange(1, 40)))
    fields["c_namesize"] = len(name) + 1
    return {"header": dict(fields, **dict.fromkeys(PLAIN_ZERO, 0)), "name": name}


def _encode(sample: dict[str, Any]) -> bytes:
    h = sample["header"]
    return hexlify(PLAIN_HEADER.pack(*MAGIC_BYTES, *(h[k] for k in PLAIN_FIELDS))).upper() + sample["name"] + \
        NAME_END[(h["c_namesize"] + 2) & 3]


FAST_CODECS: tuple[FastCodec[dict[str, Any]], ...] = (
    FastCodec("PLAIN_HEADER (walk.stream_tree)", lambda s: plain_entry(len(s["name"])), _sample, encode=_encode),
)
"""The fast copy of this module, with its samples (docs/architecture.md)."""


__all__ = ["PLAIN_HEADER", "MAGIC_BYTES", "PLAIN_FIELDS", "PLAIN_ZERO", "NAME_END", "plain_entry", "FAST_CODECS"]
