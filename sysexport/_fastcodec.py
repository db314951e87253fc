"""The registry entry of a hand-written fast copy of a construct declaration.

docs/architecture.md, "Declarations and their fast copies": where a structure is built or
parsed hundreds of thousands of times, construct is too slow, and a precompiled
``struct.Struct``, an ``array`` or plain slicing does the work.  Each such copy is listed
in the ``FAST_CODECS`` tuple of its format's ``_structs.py`` as a :class:`FastCodec`, and
one property test (tests/test_fastcodecs.py, after construct's own
``tests/declarativeunittest.py`` helper ``common(format, data, obj, size)``) checks every
entry on many random samples: the fast bytes equal the declaration's, the fast decoding
equals the declaration's parse, the sizes agree.

Samples are drawn from a :class:`random.Random` so that the package needs no test
dependency; the test hands in hypothesis' ``st.randoms()``.
"""
from __future__ import annotations

import calendar
import datetime
import random
import re
import struct
from dataclasses import dataclass
from typing import Callable, Generic, TypeVar

from construct import Construct

T = TypeVar("T")

Values = tuple[int | bytes, ...]
"""The positional values of one ``struct.Struct`` record."""


@dataclass(frozen=True)
class FastCodec(Generic[T]):
    """A fast encoder and/or decoder of one declared structure, with what checks it.

    ``sample(rng)`` draws a value the fast code accepts; ``construct_obj(sample)`` is what
    ``declaration(sample).build`` takes for it (the sample itself when None);
    ``encode(sample)`` runs the fast encoder; ``decode(data)`` the fast decoder, which gives
    what ``declaration(sample).parse(data)`` gives (compared as plain dicts and lists) or
    None to leave the bytes to construct; ``size(sample)`` is a fast size computation.
    ``decodes_any_bytes``: the decoder also agrees with (or defers to) construct on bytes
    that no encoder made (the test then flips bytes too).
    """

    name: str
    declaration: Callable[[T], Construct]
    sample: Callable[[random.Random], T]
    construct_obj: Callable[[T], object] | None = None
    encode: Callable[[T], bytes] | None = None
    decode: Callable[[bytes], object] | None = None
    size: Callable[[T], int] | None = None
    decodes_any_bytes: bool = True


_FORMAT_ITEM = re.compile(r"(\d*)([xcbB?hHiIlLqQnNefdspP])")
_INT_BITS = {"B": 8, "H": 16, "I": 32, "L": 32, "Q": 64}


def struct_twin(name: str, declaration: Construct, fast: struct.Struct) -> FastCodec[Values]:
    """The entry of a ``struct.Struct`` whose fields are, one for one and in order, the
    fields of a flat construct ``Struct`` of unsigned integers and byte strings."""
    names = [sc.name for sc in declaration.subcons]
    items = [(int(count or 1), code) for count, code in _FORMAT_ITEM.findall(fast.format.lstrip("<>=!@"))]
    if len(items) != len(names) or any(code not in _INT_BITS and code != "s" for _, code in items):
        raise TypeError(f"{name}: {fast.format!r} is not one field per field of {names}")

    def sample(rng: random.Random) -> Values:
        return tuple(rng.randbytes(count) if code == "s" else rng.getrandbits(_INT_BITS[code])
                     for count, code in items)

    def encode(values: Values) -> bytes:
        return fast.pack(*values)

    def decode(data: bytes) -> dict[str, int | bytes]:
        return dict(zip(names, fast.unpack(data)))

    def construct_obj(values: Values) -> dict[str, int | bytes]:
        return dict(zip(names, values))

    return FastCodec(name, lambda _: declaration, sample, construct_obj, encode, decode)


def date7_fields(seconds: int) -> dict[str, int]:
    """The 7-byte date (ECMA-119 9.1.5, RRIP TF) of an epoch time in UTC, clamped to 1900..2155, as
    fields without the GMT offset: the reference the ISO 9660 fast copies' samples are checked with."""
    t = _EPOCH + datetime.timedelta(seconds=min(max(seconds, _DATE7_FIRST), _DATE7_LAST))
    return dict(years_since_1900=t.year - 1900, month=t.month, day=t.day, hour=t.hour, minute=t.minute,
                second=t.second)


_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
_DATE7_FIRST = calendar.timegm((1900, 1, 1, 0, 0, 0))
_DATE7_LAST = calendar.timegm((2155, 12, 31, 23, 59, 59))
