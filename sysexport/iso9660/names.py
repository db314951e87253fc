"""ISO 9660 identifiers (interchange levels 1-3) and Joliet names, with deterministic mangling.

ECMA-119 7.5 and 7.6: file identifiers are d-characters ``NAME.EXT;1``; directory
identifiers have no separators.  Level 1 allows 8+3 (directories 8); levels 2 and 3 allow 30
characters for name plus extension (directories 31).  Joliet (Microsoft's "Joliet
Specification", 1995) stores UCS-2 big-endian names of at most 64 characters, without
``* / : ; ? \\`` and control characters.

Names in one directory are assigned in two passes over the children in sorted order of
their original names: every candidate is first given to the first child that wants it;
only the later children of a colliding group get a numbered variant, chosen so that it
collides with no candidate at all.  Same input, same names, whatever order add() saw.
"""
from __future__ import annotations

import re
import unicodedata
from typing import Hashable, Sequence

from ..errors import InvalidInputError

D_CHARACTERS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
"""ECMA-119 7.4.1 d-characters."""
JOLIET_MAX_CHARS = 64
"""Joliet: a file or directory identifier holds at most 64 UCS-2 characters (128 bytes)."""
JOLIET_FORBIDDEN = frozenset("*/:;?\\")
"""Joliet: characters a name may not contain (besides controls 0x00-0x1F)."""
JOLIET_KEEP_EXT_MAX = 16
"""A Joliet extension at most this long survives shortening."""


def iso_limits(level: int, is_dir: bool) -> tuple[int, int]:
    """(max name length, max extension length) of a file, or (max dir length, 0)."""
    if level == 1:
        return (8, 0) if is_dir else (8, 3)
    return (31, 0) if is_dir else (30, 30)


# ASCII fast path of to_d_characters(): NFKD leaves ASCII alone and it has no combining marks.
_ASCII_TO_D = str.maketrans({chr(i): (chr(i) if chr(i) in D_CHARACTERS else "_")
                             for i in range(128) if not chr(i).islower()})
# The same with '.' kept: a file's name is split at its last '.' after mapping (the mapping
# works character by character, so it may come first).
_ASCII_TO_D_DOT = {**_ASCII_TO_D, ord("."): "."}
# ASCII fast path of joliet_candidate(): controls and the forbidden characters become '_'.
_ASCII_TO_JOLIET = str.maketrans({chr(i): "_" for i in range(128) if i < 0x20 or chr(i) in JOLIET_FORBIDDEN})


def to_d_characters(text: str) -> str:
    """Map text to d-characters: upper case, accents dropped, anything else becomes '_'."""
    if text.isascii():
        return text.upper().translate(_ASCII_TO_D)
    decomposed = unicodedata.normalize("NFKD", text)
    out = []
    for ch in decomposed:
        if unicodedata.combining(ch):
            continue
        up = ch.upper() if ch.isascii() else ch
        out.append(up if up in D_CHARACTERS else "_")
    return "".join(out)


def iso_candidate(basename: str, is_dir: bool, level: int) -> tuple[str, str]:
    """The preferred (name, extension) of a basename before collision handling."""
    max_name, max_ext = iso_limits(level, is_dir)
    if is_dir:
        return to_d_characters(basename)[:max_name] or "_", ""
    base = "_" + basename[1:] if basename.startswith(".") else basename
    stem, dot, ext = base.rpartition(".")
    if not dot:
        stem, ext = base, ""
    stem, ext = to_d_characters(stem), to_d_characters(ext)
    if level == 1:
        ext = ext[:max_ext]
        stem = stem[:max_name]
    else:
        ext = ext[:8] if len(stem) + len(ext) > max_ext else ext
        stem = stem[:max_ext - len(ext)]
    if not stem and not ext:
        stem = "_"
    return stem, ext


def format_iso_identifier(stem: str, ext: str, is_dir: bool) -> bytes:
    """ECMA-119 7.5.1 / 7.6.3: ``NAME.EXT;1`` for files, the bare name for directories."""
    return (stem if is_dir else f"{stem}.{ext};1").encode("ascii")


def check_iso_override(where: str, shortname: str, is_dir: bool, level: int) -> bytes:
    """Validate an ``ISO9660_shortname``; returns the identifier (``;1`` added to files)."""
    text = shortname
    if not is_dir and text.endswith(";1"):
        text = text[:-2]
    if is_dir:
        stem, ext = text, ""
        if "." in text:
            raise InvalidInputError(f"{where}: ISO9660_shortname {shortname!r}: a directory identifier has no '.'")
    else:
        stem, dot, ext = text.rpartition(".")
        if not dot:
            stem, ext = text, ""
    bad = sorted(set(stem + ext) - D_CHARACTERS)
    if bad or not (stem or ext):
        raise InvalidInputError(f"{where}: ISO9660_shortname {shortname!r}: only d-characters A-Z 0-9 _ "
                                f"are allowed (ECMA-119 7.4.1), found {''.join(bad) or 'an empty name'!r}")
    max_name, max_ext = iso_limits(level, is_dir)
    too_long = (len(stem) > max_name or len(ext) > max_ext) if level == 1 or is_dir \
        else len(stem) + len(ext) > max_ext
    if too_long:
        raise InvalidInputError(f"{where}: ISO9660_shortname {shortname!r} is too long for interchange "
                                f"level {level} (ECMA-119 7.5.1 / 10.{level})")
    return format_iso_identifier(stem, ext, is_dir)


def _numbered_iso(stem: str, ext: str, n: int, is_dir: bool, level: int) -> tuple[str, str]:
    """The n-th numbered variant of a candidate: ``_n`` ends the name, which gives up its
    last characters for it; at levels 2 and 3, where name and extension share 30
    characters, a long extension gives up its last characters too when the name has too
    few left (``A.`` + 29 characters would otherwise become a 31-character ``_1.`` + 29)."""
    max_name, max_ext = iso_limits(level, is_dir)
    suffix = f"_{n}"
    if level == 1 or is_dir:
        return stem[:max(max_name - len(suffix), 0)] + suffix, ext
    ext = ext[:max(max_ext - len(suffix), 0)]
    return stem[:max(max_ext - len(ext) - len(suffix), 0)] + suffix, ext


def assign_iso_names(children: Sequence[tuple[Hashable, str, bool, str | None]], level: int,
                     where: str = "") -> dict[Hashable, bytes]:
    """Give every child of one directory a unique ISO 9660 identifier.

    ``children``: (key, basename, is_dir, ISO9660_shortname or None), in any order.
    Overrides are kept as given (two equal overrides are an InvalidInputError).
    """
    ordered = sorted(children, key=lambda c: c[1].encode("utf-8", "surrogateescape"))
    result: dict[Hashable, bytes] = {}
    used: set[bytes] = set()
    for key, name, is_dir, override in ordered:
        if override is not None:
            ident = check_iso_override(f"{where}/{name}".lstrip("/") or name, override, is_dir, level)
            if clash_key(ident) in used:
                raise InvalidInputError(f"{where}/{name}: ISO9660_shortname {override!r} is used twice "
                                        "in this directory")
            used.add(clash_key(ident))
            result[key] = ident
    candidates = {}
    for key, name, is_dir, override in ordered:
        if key not in result:
            candidates[key] = iso_candidate(name, is_dir, level)
    wanted = {clash_key(format_iso_identifier(s, e, d)) for (k, _, d, _o) in ordered if k in candidates
              for s, e in [candidates[k]]}
    later = []
    for key, name, is_dir, override in ordered:
        if key in result:
            continue
        stem, ext = candidates[key]
        ident = format_iso_identifier(stem, ext, is_dir)
        if clash_key(ident) in used:
            later.append((key, is_dir))
        else:
            used.add(clash_key(ident))
            result[key] = ident
    resume: dict[tuple[str, str, bool, int], int] = {}
    for key, is_dir in later:
        stem, ext = candidates[key]
        ident, ck = _free_numbered(stem, ext, is_dir, level, used, wanted, resume)
        used.add(ck)
        result[key] = ident
    return result


def _free_numbered(stem: str, ext: str, is_dir: bool, level: int, used: set[bytes], wanted: set[bytes],
                   resume: dict[tuple[str, str, bool, int], int]) -> tuple[bytes, bytes]:
    """The first numbered variant of a candidate (:func:`_numbered_iso`, n = 1, 2, ...)
    whose clash key is neither ``used`` nor ``wanted``: (identifier, clash key).

    The variants with k-digit numbers are one prefix and extension followed by ``_n``,
    whatever the candidate they come from, so ``resume`` keeps, per such prefix, where the
    last search stopped: the numbers below were taken then and still are (``used`` only
    grows).  The result is that of counting from 1 every time, without its quadratic walk
    when thousands of names collide (level 1's 8.3 names of "file00001.txt" ...)."""
    n = 1
    while True:
        digits = len(str(n))
        first, e = _numbered_iso(stem, ext, n, is_dir, level)
        prefix = first[:len(first) - digits - 1]
        at = (prefix, e, is_dir, digits)
        n = max(n, resume.get(at, n))
        end = 10 ** digits
        while n < end:
            ident = format_iso_identifier(f"{prefix}_{n}", e, is_dir)
            ck = clash_key(ident)
            if ck not in used and ck not in wanted:
                resume[at] = n + 1
                return ident, ck
            n += 1
        resume[at] = end


def clash_key(ident: bytes) -> bytes:
    """A file NAME.EXT;1 and a directory NAME.EXT would be confused by readers: compare without version."""
    return ident.split(b";", 1)[0].rstrip(b".")


def iso_sort_key(ident: bytes) -> tuple[bytes, bytes, int]:
    """ECMA-119 9.3: order by name, then extension (both padded with spaces), then version descending.

    Every d-character sorts after the space, so comparing unpadded byte strings gives
    the same order as the padded comparison of the standard.
    """
    if ident in (b"\x00", b"\x01"):
        return (ident, b"", 0)
    body, _, version = ident.partition(b";")
    name, _, ext = body.partition(b".")
    return (name, ext, -int(version or b"0"))


IsoKey = tuple[str, str, int]
"""What ECMA-119 9.3 orders records by (see :func:`iso_sort_key`), as text."""


def directory_iso_names(kids: Sequence[tuple[str, bool, str | None]], level: int,
                        where: str = "") -> tuple[list[str], list[IsoKey]]:
    """The ISO 9660 identifiers of one directory's children, given as (basename, is_dir,
    ISO9660_shortname or None), and the key each record sorts by; both in the order given.

    The identifiers are those of :func:`assign_iso_names`, which decides whenever a name is
    given or two candidates collide; otherwise every child keeps its candidate
    (:func:`iso_candidate`), found here without the bookkeeping of collisions: what almost
    every directory is."""
    out: list[str] = []
    keys: list[IsoKey] = []
    seen: set[str] = set()
    file_max = 8 if level == 1 else 30
    dir_max = 8 if level == 1 else 31
    to_d, to_d_dot = _ASCII_TO_D, _ASCII_TO_D_DOT
    for name, is_dir, override in kids:
        if override is not None:
            break
        if is_dir:
            stem = (name.upper().translate(to_d) if name.isascii() else to_d_characters(name))[:dir_max] or "_"
            if stem in seen:
                break
            seen.add(stem)
            out.append(stem)
            keys.append((stem, "", 0))
            continue
        if name.isascii():
            mapped = ("_" + name[1:] if name[:1] == "." else name).upper().translate(to_d_dot)
            stem, dot, ext = mapped.rpartition(".")
            if dot:
                stem = stem.replace(".", "_")
            else:
                stem, ext = mapped, ""
            if level == 1:
                ext = ext[:3]
                stem = stem[:8]
            else:
                if len(stem) + len(ext) > file_max:
                    ext = ext[:8]
                stem = stem[:file_max - len(ext)]
            if not stem and not ext:
                stem = "_"
        else:
            stem, ext = iso_candidate(name, False, level)
        clash = f"{stem}.{ext}" if ext else stem        # clash_key() of the identifier
        if clash in seen:
            break
        seen.add(clash)
        out.append(f"{stem}.{ext};1")
        keys.append((stem, ext, -1))
    else:
        return out, keys
    named = assign_iso_names([(i, name, is_dir, override) for i, (name, is_dir, override) in enumerate(kids)],
                             level, where)
    idents = [named[i] for i in range(len(kids))]
    return [x.decode("ascii") for x in idents], [_text_key(x) for x in idents]


def _text_key(ident: bytes) -> IsoKey:
    name, ext, version = iso_sort_key(ident)
    return name.decode("ascii"), ext.decode("ascii"), version


_JOLIET_CHANGED = re.compile("[\x00-\x1f" + re.escape("".join(sorted(JOLIET_FORBIDDEN))) + "\ud800-\udfff\U00010000-\U0010ffff]")
"""A character joliet_candidate() replaces."""


def directory_joliet_names(kids: Sequence[tuple[str, bool, str | None]], where: str = "") -> list[bytes] | None:
    """The Joliet identifiers of one directory's children, given as (basename, is_dir,
    joliet_name or None), in the order given; None when each is its child's name in UCS-2
    (no name given, none changed by :func:`joliet_candidate` or shortened: no two can then
    collide, and the identifiers sort as the names do, UCS-2 code units being code
    points in the Basic Multilingual Plane).  Otherwise :func:`assign_joliet_names`."""
    names = [k[0] for k in kids]
    if (all(k[2] is None for k in kids) and (not names or max(map(len, names)) <= JOLIET_MAX_CHARS)
            and _JOLIET_CHANGED.search("".join(names)) is None):
        return None
    named = assign_joliet_names([(i, name, is_dir, given) for i, (name, is_dir, given) in enumerate(kids)], where)
    return [named[i] for i in range(len(kids))]


def joliet_candidate(basename: str) -> str:
    """Replace what Joliet forbids (controls, ``* / : ; ? \\``, characters outside the BMP) with '_'."""
    if basename.isascii():
        return basename.translate(_ASCII_TO_JOLIET)
    out = []
    for ch in basename:
        code = ord(ch)
        if code < 0x20 or ch in JOLIET_FORBIDDEN or code > 0xFFFF or 0xD800 <= code <= 0xDFFF:
            out.append("_")
        else:
            out.append(ch)
    return "".join(out)


def _split_joliet(name: str, is_dir: bool) -> tuple[str, str]:
    if is_dir:
        return name, ""
    stem, dot, ext = name.rpartition(".")
    if dot and stem and len(ext) + 1 <= JOLIET_KEEP_EXT_MAX:
        return stem, "." + ext
    return name, ""


def _shorten_joliet(stem: str, ext: str, suffix: str = "") -> str:
    room = JOLIET_MAX_CHARS - len(ext) - len(suffix)
    return stem[:room] + suffix + ext


JolietChild = tuple[Hashable, str, bool] | tuple[Hashable, str, bool, str | None]
"""(key, basename, is_dir[, joliet_name or None]) of one child, for :func:`assign_joliet_names`."""


def assign_joliet_names(children: Sequence[JolietChild], where: str = "") -> dict[Hashable, bytes]:
    """Unique Joliet identifiers (UCS-2 big-endian bytes) for the children of one directory.

    ``children``: (key, basename, is_dir[, joliet_name]).  A ``joliet_name`` is kept as
    given (checked by fileinfo.check_joliet_name); two equal ones are an
    InvalidInputError; the derived names make way for them."""
    items = [(c[0], c[1], c[2], c[3] if len(c) > 3 else None) for c in children]
    ordered = sorted(items, key=lambda c: c[1].encode("utf-8", "surrogateescape"))
    cand: dict[Hashable, tuple[str, str]] = {}
    full: dict[Hashable, str] = {}
    used: set[str] = set()
    result: dict[Hashable, bytes] = {}
    given: dict[str, str] = {}
    for key, name, is_dir, override in ordered:
        if override is not None:
            other = given.get(override)
            if other is not None:
                raise InvalidInputError(f"{f'{where}/{name}'.lstrip('/')}: joliet_name {override!r} is also the "
                                        f"Joliet name of {f'{where}/{other}'.lstrip('/')} (one directory, one name)")
            given[override] = name
            used.add(override)
            result[key] = override.encode("utf-16-be")
            continue
        stem, ext = _split_joliet(joliet_candidate(name), is_dir)
        cand[key] = (stem, ext)
        full[key] = _shorten_joliet(stem, ext)
    wanted = set(full.values()) | used
    later = []
    # Names that need no change get their name before names that were changed into it.
    for key, _name, _d, _o in sorted((c for c in ordered if c[0] in full), key=lambda c: full[c[0]] != c[1]):
        if full[key] in used:
            later.append(key)
        else:
            used.add(full[key])
            result[key] = full[key].encode("utf-16-be")
    resume: dict[tuple[str, str], int] = {}     # as in assign_iso_names: the same names, no quadratic search
    for key in later:
        stem, ext = cand[key]
        n = resume.get((stem, ext), 1)
        while True:
            text = _shorten_joliet(stem, ext, f"~{n}")
            if text not in used and text not in wanted:
                break
            n += 1
        resume[stem, ext] = n + 1
        used.add(text)
        result[key] = text.encode("utf-16-be")
    return result


def joliet_text(value: str, size_bytes: int) -> bytes:
    """A Joliet descriptor text field: UCS-2 big-endian, padded with UCS-2 spaces (odd byte 0)."""
    data = joliet_candidate(value).encode("utf-16-be")[: size_bytes - size_bytes % 2]
    data += " ".encode("utf-16-be") * ((size_bytes - len(data)) // 2)
    return data.ljust(size_bytes, b"\x00")


def a_text(value: str, size_bytes: int, d_only: bool = False) -> bytes:
    """An ECMA-119 a-/d-character descriptor field, upper case, padded with spaces (7.4)."""
    text = to_d_characters(value) if d_only else "".join(
        ch if 0x20 <= ord(ch) < 0x7F else "_" for ch in unicodedata.normalize("NFKD", value.upper())
        if not unicodedata.combining(ch))
    return text.encode("ascii")[:size_bytes].ljust(size_bytes, b" ")


# --- volume labels ------------------------------------------------------------------------

VOLUME_ID_BYTES = 32
"""ECMA-119 8.4.5 / 8.5.5: the Volume Identifier field of a volume descriptor."""
JOLIET_LABEL_UNITS = VOLUME_ID_BYTES // 2
"""The same field in the Joliet descriptor holds 16 UCS-2 code units."""


def check_volume_label(value: object) -> str:
    """Validate a volume label the way xorriso's ``-volid`` takes it: any text of at most 32
    bytes of UTF-8, recorded as given in the primary descriptor (xorriso warns that it is
    not d-characters, keeps it, and refuses a longer one: "Text too long (33 > 32)").
    Control characters are refused too: no reader shows them."""
    if not isinstance(value, str) or not value:
        raise InvalidInputError(f"volume_label: expected a non-empty str, found {value!r}")
    bad = [ch for ch in value if ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0]
    if bad:
        raise InvalidInputError(f"volume_label {value!r}: control character {bad[0]!r} is not allowed")
    try:
        data = value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInputError(f"volume_label {value!r}: not valid UTF-8 text") from None
    if len(data) > VOLUME_ID_BYTES:
        raise InvalidInputError(f"volume_label {value!r}: {len(data)} bytes (UTF-8); the volume identifier of "
                                f"the primary volume descriptor holds {VOLUME_ID_BYTES} (ECMA-119 8.4.5)")
    return value


def pvd_volume_id(label: str) -> bytes:
    """The primary descriptor's Volume Identifier: the label's UTF-8 bytes, padded with
    spaces (what xorriso records for ``-volid "My Live 2026"``; ECMA-119 asks for
    d-characters, but upper-casing and '_' for spaces lose what the user named, and blkid,
    udev, GRUB and the Linux kernel take the bytes as they are)."""
    return label.encode("utf-8").ljust(VOLUME_ID_BYTES, b" ")


def joliet_label(label: str) -> str:
    """The label the Joliet descriptor holds: its first 16 UCS-2 code units, case and spaces
    kept (xorriso cuts it there too, with a warning), a character outside the BMP (which
    UCS-2 cannot hold) as '_'.  blkid joins a longer primary label onto it."""
    return "".join(ch if ord(ch) <= 0xFFFF else "_" for ch in label)[:JOLIET_LABEL_UNITS]


def joliet_volume_id(label: str) -> bytes:
    """The Joliet descriptor's Volume Identifier field: :func:`joliet_label` in UCS-2
    big-endian, padded with UCS-2 spaces."""
    return joliet_label(label).ljust(JOLIET_LABEL_UNITS).encode("utf-16-be")
