"""Read an ISO 9660 image: sessions, descriptors, the Rock Ridge, Joliet and plain ISO 9660
trees, zisofs files, El Torito: any image, not only our own.

Everything is parsed from the image bytes (ECMA-119, SUSP 1.12, RRIP 1.09/1.12, Joliet, El
Torito, zisofs), independently of the writer.  The volume may start at any byte
``offset`` of the image; every extent reported is in bytes of the whole image.

Lenient where the readers users trust are (the Linux kernel's isofs, libisofs/xorriso,
libarchive), strict where they are; every deviation seen is a :class:`Problem` in
:attr:`ISO9660Reader.problems` (``verify`` reports them):

* the descriptors: a non-zero reserved or unused byte, both-endian fields whose halves
  differ (the little-endian half is used, as Linux does), a missing terminator, a root
  directory record whose length field lies (its 34 bytes are read anyway, and the root's
  "." record gives the size as in Linux) are problems, not errors;
* one bad directory record (a length that does not fit, an identifier that runs past the
  record, an extent outside the image, a name that is not one path component) skips that
  entry, with a problem naming the structure and its byte offset; the rest is read;
* names: version suffixes (";1", other numbers, none) and an empty extension's '.' are
  dropped from plain names (kept where dropping them would make two names one: a
  directory ``X`` and a file ``X.;1`` are ``X`` and ``X.``), lower case is taken, Joliet
  names are UCS-2 (UTF-16) with ";1" and trailing dots dropped as Linux does; a name that
  is still twice in a directory keeps its first entry;
* Rock Ridge: NM and SL of every shape, CE areas (bounded chains, loops, lengths checked
  against the image), PX (mode, links, owner, RRIP 1.12 serial number as the inode), PN as
  both writer conventions encode it (susp.decode_pn), TF (short and long form), relocated
  directories (CL/PL/RE) shown in place, ZF (zisofs) files decompressed;
* hostile input: every size and offset is checked against the image before it is read or
  allocated, loops (CE chains, directories via extents) end in an InvalidImageError or a
  problem, never a hang; nothing but InvalidImageError comes out of a read.

:class:`ISO9660Reader` is the volume (``sessions``, ``volume``, ``problems``,
``boot_catalog()``, ``path_table()``); its trees are views (:mod:`.view`: ``ISOView``),
named "rr", "joliet" and "iso9660".  The methods of the older internal API (``walk``,
``listdir``, ``find``, ``iter_content``, ``read`` with ``ISOEntry`` values and the view
names "rr", "joliet", "iso") stay, for ``sysexport inspect``.
"""
from __future__ import annotations

import bisect
import os
import re
import stat as _stat
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import IO, Any, BinaryIO, Iterator, Literal, cast

from construct import ConstructError

from ..errors import InvalidImageError, InvalidInputError
from ..image.view import ExtentReader, Stat
from . import _rrstructs as _rs
from . import susp as _susp
from ._fastread import _Date, parse_directory_record, parse_su_entries  # noqa: F401  (re-exported)
from ._structs import (CATALOG_ENTRY_BYTES, DIRECTORY_RECORD_FIXED_BYTES, FIRST_DESCRIPTOR_LBA,
                       PATH_TABLE_RECORD_FIXED_BYTES, SECTOR_BYTES, STANDARD_IDENTIFIER, BootInfoTable,
                       InitialEntry, SectionEntry, SectionHeader, ValidationEntry)
from .enums import (BOOTABLE, EL_TORITO_ID, EXTENSION_INDICATOR, FLAG_ASSOCIATED, FLAG_DIRECTORY,  # noqa: F401
                    FLAG_HIDDEN, FLAG_MULTI_EXTENT, HEADER_LAST, HEADER_MORE, JOLIET_ESCAPES, NOT_BOOTABLE,
                    PLATFORM_NAMES, VD_TYPE_BOOT_RECORD, VD_TYPE_PRIMARY, VD_TYPE_SUPPLEMENTARY,
                    VD_TYPE_TERMINATOR)
from .sessions import Session, find_sessions
from .zisofs import UnsupportedCompression, ZisofsInfo, ZisofsReader  # noqa: F401

VIEWS = ("rr", "joliet", "iso")
"""The view names of the older API (``walk(view)``...); "iso" is the "iso9660" view."""
VIEW_KINDS = ("rr", "joliet", "iso9660")
"""The views of a volume, as :class:`~sysexport.iso9660.view.ISOView` names them."""
MAX_DESCRIPTORS = 100                 # the Linux kernel looks at most 100 blocks for descriptors
RR_ER_IDS = {_rs.ER_ID_109: "1.09", _rs.ER_ID_112: "1.12", _rs.ER_ID_1282: "1.12"}
"""RRIP section 5 / SUSP 5.5: the ER identifiers of Rock Ridge, and the version each announces."""
RR_MOVED_NAMES = ("rr_moved", ".rr_moved")
DEFAULT_DIR_MODE = 0o40555            # the older API's mode where a view has none (Linux's default)
DEFAULT_FILE_MODE = 0o100444
ROOT_RECORD_OFFSET = 156             # BP 157 of a volume descriptor: the root's record (ECMA-119 8.4.18)
ROOT_RECORD_BYTES = 34
MAX_DIR_RECORDS = 250_000
"""Records read from one directory at most (bounded memory); the rest is a problem."""
MAX_PROBLEMS = 10_000
CACHE_RECORDS = 400_000
"""Directory records kept parsed (in the directory and listing caches) at most."""
MAX_CATALOG_SECTORS = 4
MAX_PATH_TABLE_BYTES = 32 << 20
"""A path table larger than this is not read (one of a million directories takes ~20 MiB)."""
CE_CACHE_AREAS = 1024
CHUNK_SECTORS = 32
_VERSION = re.compile(r";[0-9]*$")
_D_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.;")


@dataclass(frozen=True)
class Problem:
    """One deviation from the standards seen while reading: in which ``structure``, at which
    byte ``offset`` of the image (None when it has none), what."""

    structure: str
    offset: int | None
    message: str

    def __str__(self) -> str:
        where = f" at byte {self.offset}" if self.offset is not None else ""
        return f"{self.structure}{where}: {self.message}"


@dataclass
class ISOEntry:
    """One file as the older API's views show it.  ``extents`` are (device_offset,
    size_bytes) pairs; ``stat`` is the entry as the views of :mod:`.view` give it."""

    path: str
    name: str
    mode: int
    size_bytes: int
    extents: list[tuple[int, int]] = field(default_factory=list)
    mtime: float | None = None
    atime: float | None = None
    ctime: float | None = None
    uid: int = 0
    gid: int = 0
    nlink: int = 1
    target: str | None = None
    rdev: tuple[int, int] | None = None
    flags: int = 0
    dir_lba: int | None = None
    stat: Stat | None = None

    @property
    def is_dir(self) -> bool:
        return _stat.S_ISDIR(self.mode)

    @property
    def is_file(self) -> bool:
        return _stat.S_ISREG(self.mode)

    @property
    def is_symlink(self) -> bool:
        return _stat.S_ISLNK(self.mode)


@dataclass
class VolumeInfo:
    """What the primary (and Joliet) volume descriptors of a session say (ECMA-119 8.4, 8.5)."""

    system_identifier: str
    volume_identifier: str
    volume_set_identifier: str
    publisher_identifier: str
    data_preparer_identifier: str
    application_identifier: str
    volume_space_size: int
    logical_block_size: int
    creation_date: str
    modification_date: str
    joliet_level: int | None
    joliet_volume_identifier: str | None
    rock_ridge: str | None
    expiration_date: str = ""
    effective_date: str = ""
    copyright_file_identifier: str = ""
    abstract_file_identifier: str = ""
    bibliographic_file_identifier: str = ""
    volume_set_size: int = 1
    volume_sequence_number: int = 1
    file_structure_version: int = 1
    path_table_size: int = 0
    type_l_path_table: int = 0
    type_m_path_table: int = 0
    root_lba: int = 0
    root_size: int = 0
    session: int = 0
    el_torito_catalog_lba: int | None = None
    creation_time: float | None = None
    modification_time: float | None = None

    @property
    def size_bytes(self) -> int:
        return self.volume_space_size * self.logical_block_size

    @property
    def label(self) -> str:
        return self.volume_identifier

    @property
    def uuid(self) -> str | None:
        """The UUID blkid shows: the modification date, else the creation date, as
        YYYY-MM-DD-HH-MM-SS-cc (libblkid's iso9660 prober)."""
        for digits in (self.modification_date, self.creation_date):
            if digits and digits.strip("0\x00 "):
                d = digits
                return f"{d[0:4]}-{d[4:6]}-{d[6:8]}-{d[8:10]}-{d[10:12]}-{d[12:14]}-{d[14:16]}"
        return None


@dataclass(frozen=True)
class Descriptor:
    """One volume descriptor of a session's set (ECMA-119 8): its type, what it is
    ("primary", "joliet", "supplementary", "el torito", "boot record", "partition",
    "terminator", "unknown"), its LBA and byte offset in the image."""

    type: int
    kind: str
    lba: int
    offset: int


@dataclass
class BootCatalogEntry:
    """One El Torito catalog entry (El Torito 1.0, 2.2 and 2.4)."""

    platform_id: int
    bootable: bool
    media_type: int
    load_segment: int
    system_type: int
    sector_count: int
    load_rba: int
    device_offset: int
    id_string: bytes = b""
    selection_criteria_type: int = 0
    catalog_offset: int = 0
    boot_indicator: int = 0
    section: int = 0

    @property
    def platform_name(self) -> str:
        return PLATFORM_NAMES.get(self.platform_id, f"{self.platform_id:#04x}")


class _Rec:
    """One directory record (ECMA-119 9.1) as the reader keeps it: ``at`` its byte offset."""

    __slots__ = ("at", "lba", "size", "flags", "ident", "date", "su", "ear", "unit", "gap")

    def __init__(self, at: int, lba: int, size: int, flags: int, ident: bytes, date: bytes, su: bytes,
                 ear: int, unit: int = 0, gap: int = 0) -> None:
        self.at, self.lba, self.size, self.flags = at, lba, size, flags
        self.ident, self.date, self.su, self.ear = ident, date, su, ear
        self.unit, self.gap = unit, gap


class _VD(dict[str, Any]):
    """A volume descriptor's fields (attribute access, as the older construct Container gave)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def _text(raw: bytes) -> str:
    return raw.decode("latin-1").rstrip(" \x00")


def _ucs2(raw: bytes) -> str:
    if len(raw) % 2:
        raw = raw[:-1]
    return raw.decode("utf-16-be", "replace").rstrip(" \x00")


def _date_digits(raw: bytes) -> str:
    return raw[:16].decode("latin-1")


def _record_time(date: bytes) -> float | None:
    return _susp.date7(date[0], date[1], date[2], date[3], date[4], date[5], date[6]) if len(date) == 7 else None


def _valid_name(name: str) -> bool:
    return bool(name) and "/" not in name and "\0" not in name and name not in (".", "..")


def _plain_names(ident: bytes, is_dir: bool) -> list[str]:
    """The names a plain ISO 9660 identifier may show as, best first (see the module docstring)."""
    raw = ident.decode("utf-8", "surrogateescape")
    if is_dir:
        return [raw]
    base = _VERSION.sub("", raw)
    out = [base[:-1] if len(base) > 1 and base.endswith(".") else base, base, raw]
    return list(dict.fromkeys(n for n in out if n))


def _joliet_names(ident: bytes, is_dir: bool) -> list[str]:
    raw = ident.decode("utf-16-be", "replace")
    base = _VERSION.sub("", raw) if not is_dir else raw
    stripped = base.rstrip(".") or base
    return list(dict.fromkeys(n for n in (stripped, base, raw) if n))


class ISO9660Reader:
    """Open the ISO 9660 volume at byte ``offset`` of ``image`` (a path or a seekable binary
    file; ``image_size`` its size, found by seeking when not given), in session ``session``
    (an index into :attr:`sessions`, negative from the end; default the newest).

    Raises InvalidImageError naming the byte offset and field when there is no ISO 9660
    volume there (no "CD001" at LBA 16, no primary descriptor, a block size other than
    2048); every other deviation is a :class:`Problem` in :attr:`problems`.
    """

    def __init__(self, image: str | os.PathLike[str] | BinaryIO | IO[bytes], offset: int = 0, *,
                 session: int | None = None, image_size: int | None = None) -> None:
        self._own = isinstance(image, (str, os.PathLike))
        self.f: IO[bytes] = open(image, "rb") if isinstance(image, (str, os.PathLike)) else image
        try:
            self.offset = int(offset)
            self.image_size_bytes = self.f.seek(0, os.SEEK_END) if image_size is None else int(image_size)
            if self.offset < 0 or self.offset > self.image_size_bytes:
                raise InvalidInputError(f"ISO 9660 volume offset {self.offset} outside the image "
                                        f"({self.image_size_bytes} bytes)")
            self.problems: list[Problem] = []
            self._problem_keys: set[tuple[str, int | None, str]] = set()
            self._problems_dropped = 0
            self._dir_cache: OrderedDict[tuple[int, int], list[_Rec]] = OrderedDict()
            self._dir_cached = 0
            self._list_cache: OrderedDict[tuple[Any, ...], list[Stat]] = OrderedDict()
            self._list_cached = 0
            self._zisofs_map: dict[int, dict[str, Any]] | None = None
            self._rr_moved_empty: dict[tuple[int, int], bool] = {}
            self._skipped: dict[tuple[Any, ...], list[str]] = {}
            self._roots: dict[str, Stat] = {}
            self._ce_cache: dict[tuple[int, int, int], tuple[int, bytes] | str] = {}
            self.ce_areas: set[tuple[int, int]] = set()
            """(image byte offset, length) of every continuation area read so far (for modify)."""
            self._dir_sizes: dict[int, int] = {}
            self._dir_starts: list[int] = []
            self._root_dirs: dict[bool, tuple[int, int, bytes, int] | InvalidImageError] = {}
            first = self.read_at(self.lba_offset(FIRST_DESCRIPTOR_LBA), SECTOR_BYTES, "volume descriptor") \
                if self.lba_offset(FIRST_DESCRIPTOR_LBA) + SECTOR_BYTES <= self.image_size_bytes else b""
            if first[1:6] != STANDARD_IDENTIFIER:
                raise InvalidImageError(f"volume descriptor at byte {self.lba_offset(FIRST_DESCRIPTOR_LBA)}: "
                                        f"standard identifier is {first[1:6]!r}, expected "
                                        f"{STANDARD_IDENTIFIER!r} (ECMA-119 8.1.2)")
            image_blocks = (self.image_size_bytes - self.offset) // SECTOR_BYTES
            self.sessions: list[Session] = find_sessions(self._sector_or_none, image_blocks,
                                                         lambda m: self._note("sessions", None, m), self._blocks)
            if not self.sessions:
                self.sessions = [Session(0, 0, 0, "", "single")]
            if session is None:
                self.session = self.sessions[-1]
            else:
                if isinstance(session, bool) or not isinstance(session, int):
                    raise InvalidInputError(f"session: expected an index (int), found {session!r}")
                if not -len(self.sessions) <= session < len(self.sessions):
                    raise InvalidInputError(f"session {session}: this volume has {len(self.sessions)} "
                                            f"session(s), 0 to {len(self.sessions) - 1}")
                self.session = self.sessions[session]
            self.svd: _VD | None = None
            self.joliet_level: int | None = None
            self.boot_catalog_lba: int | None = None
            self.descriptors: list[Descriptor] = []
            self.pvd: _VD = self._read_descriptors()
            self.len_skp = 0
            self.rock_ridge: str | None = None
            self._root_error: InvalidImageError | None = None
            self.rock_ridge = self._detect_rock_ridge()
        except BaseException:
            self.close()
            raise

    # -- basics -------------------------------------------------------------------------
    def close(self) -> None:
        if self._own:
            self.f.close()

    def __enter__(self) -> "ISO9660Reader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def read_at(self, device_offset: int, size_bytes: int, what: str = "data") -> bytes:
        """``size_bytes`` bytes at ``device_offset`` of the image; InvalidImageError when they
        are not all inside the image (checked before anything is read or allocated)."""
        if device_offset < 0 or size_bytes < 0 or device_offset + size_bytes > self.image_size_bytes:
            raise InvalidImageError(f"{what} at byte {device_offset} ({size_bytes} bytes) lies outside the "
                                    f"image ({self.image_size_bytes} bytes)")
        self.f.seek(device_offset)
        data = self.f.read(size_bytes)
        if len(data) != size_bytes:
            raise InvalidImageError(f"{what} at byte {device_offset}: image ends after {len(data)} of "
                                    f"{size_bytes} bytes (image size {self.image_size_bytes})")
        return data

    def lba_offset(self, lba: int) -> int:
        """Device offset of a logical block of this volume (ECMA-119 6.1.2)."""
        return self.offset + lba * SECTOR_BYTES

    def _inside(self, start: int, size: int) -> bool:
        return start >= 0 and size >= 0 and start + size <= self.image_size_bytes

    def _blocks(self, lba: int, count: int) -> bytes:
        """Up to ``count`` blocks from ``lba``, as many as the image holds."""
        at = self.lba_offset(lba)
        n = max(0, min(count * SECTOR_BYTES, self.image_size_bytes - at) // SECTOR_BYTES * SECTOR_BYTES)
        return self.read_at(at, n, "blocks") if n else b""

    def _sector_or_none(self, lba: int) -> bytes | None:
        at = self.lba_offset(lba)
        if not self._inside(at, SECTOR_BYTES):
            return None
        return self.read_at(at, SECTOR_BYTES, "block")

    def _note(self, structure: str, offset: int | None, message: str) -> None:
        key = (structure, offset, message)
        if key in self._problem_keys:
            return
        if len(self.problems) >= MAX_PROBLEMS:
            self._problems_dropped += 1
            return
        self._problem_keys.add(key)
        self.problems.append(Problem(structure, offset, message))

    def _susp_note(self, offset: int | None, message: str) -> None:
        self._note("system use entry", offset, message)

    # -- descriptors (ECMA-119 8) ---------------------------------------------------------------
    def _both(self, raw: bytes, pos: int, width: int, what: str, at: int) -> int:
        le = int.from_bytes(raw[pos:pos + width], "little")
        be = int.from_bytes(raw[pos + width:pos + 2 * width], "big")
        if le != be:
            self._note("volume descriptor", at + pos, f"{what}: little-endian {le}, big-endian {be} (ECMA-119 "
                       f"7.{2 if width == 2 else 3}.3); the little-endian value is used, as Linux does")
        return le

    def _parse_vd(self, raw: bytes, at: int) -> _VD:
        """A primary or supplementary volume descriptor (ECMA-119 8.4, 8.5), leniently:
        reserved bytes that are not zero and both-endian halves that differ are problems."""
        kind = raw[0]
        primary = kind == VD_TYPE_PRIMARY
        name = "primary" if primary else "supplementary"
        vd = _VD(
            volume_descriptor_type=kind, volume_descriptor_version=raw[6], volume_flags=raw[7],
            system_identifier=raw[8:40], volume_identifier=raw[40:72],
            volume_space_size=self._both(raw, 80, 4, "volume_space_size", at),
            escape_sequences=raw[88:120],
            volume_set_size=self._both(raw, 120, 2, "volume_set_size", at),
            volume_sequence_number=self._both(raw, 124, 2, "volume_sequence_number", at),
            logical_block_size=self._both(raw, 128, 2, "logical_block_size", at),
            path_table_size=self._both(raw, 132, 4, "path_table_size", at),
            location_of_type_l_path_table=int.from_bytes(raw[140:144], "little"),
            location_of_optional_type_l_path_table=int.from_bytes(raw[144:148], "little"),
            location_of_type_m_path_table=int.from_bytes(raw[148:152], "big"),
            location_of_optional_type_m_path_table=int.from_bytes(raw[152:156], "big"),
            directory_record_for_root_directory=raw[156:190],
            volume_set_identifier=raw[190:318], publisher_identifier=raw[318:446],
            data_preparer_identifier=raw[446:574], application_identifier=raw[574:702],
            copyright_file_identifier=raw[702:739], abstract_file_identifier=raw[739:776],
            bibliographic_file_identifier=raw[776:813],
            volume_creation_date_and_time=raw[813:830], volume_modification_date_and_time=raw[830:847],
            volume_expiration_date_and_time=raw[847:864], volume_effective_date_and_time=raw[864:881],
            file_structure_version=raw[881], application_use=raw[883:1395], at=at)
        if raw[6] != 1 and not (not primary and raw[6] == 2):
            self._note("volume descriptor", at + 6, f"{name} descriptor version {raw[6]} (ECMA-119 8.4.3: 1)")
        checks = [(72, 80, "BP 73-80 (unused)"), (882, 883, "BP 883 (reserved)"), (1395, 2048, "BP 1396-2048 (reserved)")]
        if primary:
            checks += [(7, 8, "BP 8 (unused)"), (88, 120, "BP 89-120 (unused)")]
        for a, b, what in checks:
            if any(raw[a:b]):
                first = next(i for i in range(a, b) if raw[i])
                self._note("volume descriptor", at + first, f"{name} descriptor: {what} not zero "
                           f"(byte {first + 1} is {raw[first]:#04x}); read anyway, as Linux and libisofs do")
        return vd

    def _read_descriptors(self) -> _VD:
        """Read the chosen session's volume descriptor set (ECMA-119 8); returns the primary."""
        pvd = None
        base = self.session.start_lba
        end_seen = False
        for i in range(MAX_DESCRIPTORS):
            lba = base + FIRST_DESCRIPTOR_LBA + i
            at = self.lba_offset(lba)
            if not self._inside(at, SECTOR_BYTES):
                self._note("volume descriptor set", at, "the image ends before the set's terminator")
                break
            raw = self.read_at(at, SECTOR_BYTES, "volume descriptor")
            if raw[1:6] != STANDARD_IDENTIFIER:
                if i == 0:
                    raise InvalidImageError(f"volume descriptor at byte {at}: standard identifier is {raw[1:6]!r}, "
                                            f"expected {STANDARD_IDENTIFIER!r} (ECMA-119 8.1.2)")
                self._note("volume descriptor set", at, f"no terminator (type {VD_TYPE_TERMINATOR}) before a block "
                           "without 'CD001'; the set is taken to end here")
                break
            kind = raw[0]
            if kind == VD_TYPE_TERMINATOR:
                self.descriptors.append(Descriptor(kind, "terminator", lba, at))
                end_seen = True
                break
            if kind == VD_TYPE_PRIMARY:
                if pvd is None:
                    pvd = self._parse_vd(raw, at)
                    self.descriptors.append(Descriptor(kind, "primary", lba, at))
                else:
                    self._note("volume descriptor", at, "a second primary volume descriptor; the first is used")
                    self.descriptors.append(Descriptor(kind, "primary (ignored)", lba, at))
            elif kind == VD_TYPE_SUPPLEMENTARY:
                level = JOLIET_ESCAPES.get(bytes(raw[88:91]))
                if level is not None and self.svd is None:
                    self.svd = self._parse_vd(raw, at)
                    self.joliet_level = level
                    self.descriptors.append(Descriptor(kind, "joliet", lba, at))
                else:
                    self.descriptors.append(Descriptor(kind, "supplementary", lba, at))
            elif kind == VD_TYPE_BOOT_RECORD:
                if raw[7:7 + len(EL_TORITO_ID)] == EL_TORITO_ID and self.boot_catalog_lba is None:
                    if any(raw[7 + len(EL_TORITO_ID):39]):
                        self._note("volume descriptor", at, "El Torito boot record: the boot system identifier "
                                   "is not zero padded")
                    self.boot_catalog_lba = int.from_bytes(raw[71:75], "little")
                    self.descriptors.append(Descriptor(kind, "el torito", lba, at))
                else:
                    self.descriptors.append(Descriptor(kind, "boot record", lba, at))
            elif kind == 3:
                self.descriptors.append(Descriptor(kind, "partition", lba, at))
            else:
                self._note("volume descriptor", at, f"unknown volume descriptor type {kind}; skipped")
                self.descriptors.append(Descriptor(kind, "unknown", lba, at))
        else:
            self._note("volume descriptor set", self.lba_offset(base + FIRST_DESCRIPTOR_LBA),
                       f"no terminator in the first {MAX_DESCRIPTORS} blocks")
        del end_seen
        if pvd is None:
            raise InvalidImageError(f"no primary volume descriptor (type {VD_TYPE_PRIMARY}) in the set at byte "
                                    f"{self.lba_offset(base + FIRST_DESCRIPTOR_LBA)}")
        if pvd.logical_block_size != SECTOR_BYTES:
            raise InvalidImageError(f"primary volume descriptor at byte {pvd.at}: logical_block_size "
                                    f"{pvd.logical_block_size}, expected {SECTOR_BYTES} (the only size Linux, "
                                    "libisofs and this reader take on 2048-byte media)")
        if self.svd is not None and self.svd.logical_block_size != SECTOR_BYTES:
            self._note("volume descriptor", self.svd.at, f"Joliet descriptor: logical_block_size "
                       f"{self.svd.logical_block_size}; the Joliet tree is not read")
            self.svd, self.joliet_level = None, None
        vss_end = self.lba_offset(self.session.start_lba + pvd.volume_space_size) \
            if self.session.found_by in ("emulated TOC", "scan") else self.lba_offset(pvd.volume_space_size)
        if vss_end > self.image_size_bytes:
            self._note("volume descriptor", pvd.at + 80, f"volume space size {pvd.volume_space_size} blocks: the "
                       f"volume would end at byte {vss_end}, past the image's end ({self.image_size_bytes}); the "
                       "image is truncated")
        return pvd

    # -- the root directories ---------------------------------------------------------------
    def _root_dir(self, joliet: bool) -> tuple[int, int, bytes, int]:
        """(lba, size, recording date, byte offset) of a tree's root directory, from the 34
        bytes at BP 157 of its descriptor whatever their length field says; the root's "."
        record gives the size when the two disagree (Linux reads the root from it)."""
        known = self._root_dirs.get(joliet)
        if known is None:
            try:
                known = self._root_dirs[joliet] = self._find_root_dir(joliet)
            except InvalidImageError as e:
                known = self._root_dirs[joliet] = e
        if isinstance(known, InvalidImageError):
            raise InvalidImageError(str(known))
        return known

    def _find_root_dir(self, joliet: bool) -> tuple[int, int, bytes, int]:
        vd = self.svd if joliet and self.svd is not None else self.pvd
        raw = bytes(vd.directory_record_for_root_directory)
        at = vd.at + ROOT_RECORD_OFFSET
        what = "Joliet" if joliet else "primary"
        if raw[0] != ROOT_RECORD_BYTES:
            self._note("root directory record", at, f"{what} descriptor: length_of_directory_record {raw[0]}, "
                       f"expected {ROOT_RECORD_BYTES}; its {ROOT_RECORD_BYTES} bytes are read anyway")
        lba = int.from_bytes(raw[2:6], "little")
        size = int.from_bytes(raw[10:14], "little")
        ear = raw[1]
        for pos, name in ((2, "location_of_extent"), (10, "data_length")):
            if raw[pos:pos + 4] != raw[pos + 4:pos + 8][::-1]:
                self._note("root directory record", at + pos, f"{name}: the little- and big-endian copies differ; "
                           "the little-endian one is used")
        if not raw[25] & FLAG_DIRECTORY:
            self._note("root directory record", at + 25, "the directory flag is not set")
        lba += ear
        start = self.lba_offset(lba)
        if not self._inside(start, SECTOR_BYTES):
            raise InvalidImageError(f"root directory record at byte {at} ({what} descriptor): its extent at byte "
                                    f"{start} lies outside the image ({self.image_size_bytes} bytes)")
        first = self.read_at(start, SECTOR_BYTES, "root directory")
        dot_size = None
        if first[0] >= DIRECTORY_RECORD_FIXED_BYTES and first[32] == 1 and first[33] == 0:
            dot_size = int.from_bytes(first[10:14], "little")
        if dot_size is not None and dot_size != size:
            usable_dot = DIRECTORY_RECORD_FIXED_BYTES < dot_size and self._inside(start, dot_size)
            self._note("root directory record", at + 10, f"{what} descriptor: data_length {size}, but the root's "
                       f"'.' record says {dot_size}; {'the latter' if usable_dot else 'the former'} is used")
            if usable_dot:
                size = dot_size
        if size <= 0 or not self._inside(start, size):
            raise InvalidImageError(f"root directory record at byte {at} ({what} descriptor): extent of {size} "
                                    f"bytes at byte {start} does not fit the image ({self.image_size_bytes} bytes)")
        try:
            lba, size = self._directory(lba, size)
        except InvalidImageError as e:
            raise InvalidImageError(f"root directory record at byte {at} ({what} descriptor): {e}") from None
        return lba, size, raw[18:25], at

    # -- Rock Ridge (SUSP 1.12, RRIP) --------------------------------------------------------
    def _detect_rock_ridge(self) -> str | None:
        """SUSP 5.3/5.5: an SP entry at the start of the root's "." record (its LEN_SKP), and an
        ER entry naming RRIP; or RRIP entries there without either (old writers)."""
        try:
            lba, size, _, _ = self._root_dir(False)
            recs = self._dir_records(lba, min(size, SECTOR_BYTES))
        except InvalidImageError as e:
            self._root_error = e
            self._note("root directory", None, f"the primary tree cannot be read: {e}")
            return None
        if not recs or recs[0].ident != b"\x00":
            return None
        dot = recs[0]
        su = dot.su
        if su[:2] == b"SP" and len(su) >= 7 and su[2] >= 7 and su[4:6] == _rs.SP_CHECK_BYTES:
            self.len_skp = su[6]
        items = _susp.entries(su, dot.at, self._read_area, self._susp_note)
        for sig, fields in items:
            if sig == "ER":
                version = RR_ER_IDS.get(bytes(fields.get("ext_id", b"")))
                if version:
                    return version
        sigs = {sig for sig, _ in items}
        if sigs & {"RR", "PX", "NM", "TF", "SL", "PN"}:
            return "1.09"
        return None

    def _read_area(self, block: int, offset: int, length: int) -> tuple[int, bytes] | str:
        """A continuation area (SUSP 5.1), checked against the image before it is read (the
        last CE_CACHE_AREAS read are kept: many records naming one area cost one read)."""
        key = (block, offset, length)
        got = self._ce_cache.get(key)
        if got is None:
            got = self._ce_cache[key] = self._read_area_uncached(block, offset, length)
            if len(self._ce_cache) > CE_CACHE_AREAS:
                self._ce_cache.pop(next(iter(self._ce_cache)))
        return got

    def _read_area_uncached(self, block: int, offset: int, length: int) -> tuple[int, bytes] | str:
        at = self.lba_offset(block) + offset
        if not self._inside(at, length):
            return (f"its continuation area at block {block} offset {offset} ({length} bytes) lies outside "
                    f"the image ({self.image_size_bytes} bytes)")
        if offset + length > SECTOR_BYTES:
            self._note("CE entry", at, f"continuation area at block {block} offset {offset} of {length} bytes "
                       "crosses its block's end (SUSP 5.1; Linux refuses it); read anyway")
        self.ce_areas.add((at, length))
        return at, self.read_at(at, length, "continuation area")

    def _rr(self, rec: _Rec, skip: int | None = None) -> _susp.RRInfo:
        su = rec.su[self.len_skp if skip is None else skip:]
        return _susp.decode(_susp.entries(su, rec.at, self._read_area, self._susp_note), rec.at, self._susp_note)

    # -- directory records -------------------------------------------------------------------
    def _decode_record(self, raw: bytes, at: int) -> _Rec | None:
        """One record, exactly its length: by struct (_fastread) when well formed, else
        leniently with problems; None (and a problem) when it cannot be one entry."""
        r = parse_directory_record(raw)
        if r is not None:
            return _Rec(at, r.location_of_extent, r.data_length, r.file_flags, r.file_identifier, raw[18:25],
                        r.system_use, r.extended_attribute_record_length, raw[26], raw[27])
        length = raw[0]
        len_fi = raw[32]
        if len_fi == 0:
            self._note("directory record", at, "length_of_file_identifier 0; entry skipped")
            return None
        if DIRECTORY_RECORD_FIXED_BYTES + len_fi > length:
            self._note("directory record", at, f"a file identifier of {len_fi} bytes runs past the record's "
                       f"{length} bytes; entry skipped")
            return None
        lba = int.from_bytes(raw[2:6], "little")
        size = int.from_bytes(raw[10:14], "little")
        for pos, name, value in ((2, "location_of_extent", lba), (10, "data_length", size)):
            be = int.from_bytes(raw[pos + 4:pos + 8], "big")
            if be != value:
                self._note("directory record", at, f"{name}: little-endian {value}, big-endian {be} (ECMA-119 "
                           "7.3.3); the little-endian value is used, as Linux does")
        pad = 1 - len_fi % 2
        su_start = min(length, DIRECTORY_RECORD_FIXED_BYTES + len_fi + pad)
        if pad and DIRECTORY_RECORD_FIXED_BYTES + len_fi < length and raw[DIRECTORY_RECORD_FIXED_BYTES + len_fi]:
            self._note("directory record", at, "the padding byte after the file identifier is not zero")
        ident = raw[DIRECTORY_RECORD_FIXED_BYTES:DIRECTORY_RECORD_FIXED_BYTES + len_fi]
        return _Rec(at, lba, size, raw[25], ident, raw[18:25], raw[su_start:length], raw[1], raw[26], raw[27])

    def _dir_records(self, lba: int, size: int) -> list[_Rec]:
        """Every record of the directory extent at ``lba`` of ``size`` bytes (ECMA-119
        6.8.1.1: records never cross a block; a zero length byte ends a block's records)."""
        key = (lba, size)
        cached = self._dir_cache.get(key)
        if cached is not None:
            self._dir_cache.move_to_end(key)
            return cached
        start = self.lba_offset(lba)
        if not self._inside(start, size):
            raise InvalidImageError(f"directory at byte {start} ({size} bytes) lies outside the image "
                                    f"({self.image_size_bytes} bytes)")
        out: list[_Rec] = []
        done = 0
        while done < size:
            n = min(size - done, CHUNK_SECTORS * SECTOR_BYTES)
            data = self.read_at(start + done, n, "directory")
            for sector in range(0, n, SECTOR_BYTES):
                end = min(n, sector + SECTOR_BYTES)
                pos = sector
                while pos < end:
                    length = data[pos]
                    if length == 0:
                        break
                    at = start + done + pos
                    if length < DIRECTORY_RECORD_FIXED_BYTES + 1:
                        self._note("directory record", at, f"length_of_directory_record {length} (at least 34); "
                                   "the rest of this block is skipped")
                        break
                    if pos + length > end:
                        self._note("directory record", at, f"length_of_directory_record {length} runs past the "
                                   "end of its block (ECMA-119 6.8.1.1); the rest of this block is skipped")
                        break
                    rec = self._decode_record(data[pos:pos + length], at)
                    if rec is not None:
                        out.append(rec)
                        if len(out) >= MAX_DIR_RECORDS:
                            self._note("directory", start, f"more than {MAX_DIR_RECORDS} records; the rest is "
                                       "not read")
                            return out
                    pos += length
            done += n
        if not out or out[0].ident != b"\x00":
            self._note("directory", start, "the first record is not '.' (ECMA-119 6.8.2.2)")
        self._dir_cache[key] = out
        self._dir_cached += len(out)
        while self._dir_cached > CACHE_RECORDS and len(self._dir_cache) > 1:
            _, old = self._dir_cache.popitem(last=False)
            self._dir_cached -= len(old)
        return out

    # -- the trees as Stat entries -------------------------------------------------------------
    def _kind(self, view: str) -> str:
        kind = "iso9660" if view == "iso" else view
        if kind not in VIEW_KINDS:
            raise InvalidInputError(f"view {view!r}: an ISO 9660 volume has the views {', '.join(VIEW_KINDS)}")
        if kind != "joliet" and self._root_error is not None:
            raise InvalidImageError(str(self._root_error))
        if kind not in self.view_names:
            raise InvalidInputError(f"view {view!r}: this volume has the views {', '.join(self.view_names)}")
        return kind

    @property
    def view_names(self) -> list[str]:
        """The views this volume has, among "rr", "joliet", "iso9660" (the best first)."""
        return [k for k in VIEW_KINDS if k == "iso9660" or (k == "rr" and self.rock_ridge)
                or (k == "joliet" and self.svd is not None)]

    @property
    def views(self) -> list[str]:
        """The older API's view names ("iso" for "iso9660")."""
        return ["iso" if k == "iso9660" else k for k in self.view_names]

    def root_stat(self, view: str) -> Stat:
        """The root directory of a view as a Stat (path "/")."""
        kind = self._kind(view)
        root = self._roots.get(kind)
        if root is None:
            root = self._roots[kind] = self._make_root(kind)
        return root

    def _make_root(self, kind: str) -> Stat:
        lba, size, date, at = self._root_dir(kind == "joliet")
        t = _record_time(date)
        fields: dict[str, Any] = {"lba": lba, "record_offset": at, "_dir": (lba, size)}
        extents = ((self.lba_offset(lba), size),)
        link = ("dir", self.lba_offset(lba))
        if kind != "rr":
            return Stat("/", "dir", size, mtime=t, extents=extents, link_id=link, fields=fields)
        recs = self._dir_records(lba, size)
        if not recs or recs[0].ident != b"\x00":
            return Stat("/", "dir", size, mtime=t, atime=t, ctime=t, extents=extents, link_id=link, fields=fields)
        info = self._rr(recs[0], skip=0)
        mode = info.mode
        if mode is not None and not _stat.S_ISDIR(mode):
            self._note("system use entry", recs[0].at, f"PX of the root says mode {mode:#o}, not a directory")
            mode = _stat.S_IFDIR | (mode & 0o7777)
        times = self._times(info, t)
        fields["rr"] = info.signatures
        return Stat("/", "dir", size, mode=mode, uid=info.uid, gid=info.gid, mtime=times[0], atime=times[1],
                    ctime=times[2], nlink=info.nlink, inode=info.inode, extents=extents, link_id=link, fields=fields)

    @staticmethod
    def _times(info: _susp.RRInfo, recorded: float | None) -> tuple[float | None, float | None, float | None]:
        """(mtime, atime, ctime): TF's modify, access and attributes times (creation where a
        writer put ctime there, as Linux reads it); the record's date where TF has none."""
        tm = info.times
        ctime = tm.get("attributes", tm.get("creation", recorded))
        return tm.get("modify", recorded), tm.get("access", recorded), ctime

    def children(self, view: str, directory: Stat) -> list[Stat]:
        """The entries of a directory of a view (not '.', '..', associated files, Rock Ridge's
        relocated originals), in record order, each with its full path."""
        kind = self._kind(view)
        loc = directory.fields.get("_dir")
        if loc is None:
            raise InvalidInputError(f"{kind}:{directory.path}: not a directory of this volume")
        key = (kind, directory.path, loc)
        cached = self._list_cache.get(key)
        if cached is not None:
            self._list_cache.move_to_end(key)
            return cached
        out = self._listing(kind, directory, loc[0], loc[1])
        self._list_cache[key] = out
        self._list_cached += len(out) + 1
        while self._list_cached > CACHE_RECORDS and len(self._list_cache) > 1:
            _, old = self._list_cache.popitem(last=False)
            self._list_cached -= len(old) + 1
        return out

    def _listing(self, kind: str, directory: Stat, lba: int, size: int) -> list[Stat]:
        recs = self._dir_records(lba, size)
        skipped: list[str] = []
        prefix = directory.path.rstrip("/") + "/"
        pending: list[tuple[list[str], dict[str, Any], int, bool]] = []   # (names, Stat args, record offset, exact)
        i = 0
        n = len(recs)
        while i < n:
            rec = recs[i]
            if rec.ident in (b"\x00", b"\x01"):
                i += 1
                continue
            group = [rec]
            while group[-1].flags & FLAG_MULTI_EXTENT and not group[-1].flags & FLAG_DIRECTORY:
                if i + 1 >= n:
                    self._note("directory record", group[-1].at, "the multi-extent flag is set on the directory's "
                               "last record; the file ends there")
                    break
                i += 1
                if recs[i].ident != rec.ident:
                    self._note("directory record", recs[i].at, "a section of a multi-extent file has another "
                               "identifier than its first (ECMA-119 6.5.1)")
                group.append(recs[i])
            i += 1
            if rec.flags & FLAG_ASSOCIATED:
                continue
            try:
                made = self._entry(kind, group)
            except InvalidImageError as e:
                self._note("directory record", rec.at, f"{e}; entry skipped")
                skipped.append(f"directory record at byte {rec.at}: {e}")
                continue
            if made is not None:
                pending.append(made)
        if kind == "iso9660":
            self._check_d_characters(recs, self.lba_offset(lba))
        taken: set[str] = set()
        chosen: dict[int, str] = {}
        order = sorted(range(len(pending)), key=lambda k: (not pending[k][3], k))
        for k in order:
            names, _, at, _ = pending[k]
            for name in names:
                if name not in taken:
                    taken.add(name)
                    chosen[k] = name
                    break
            else:
                self._note("directory record", at, f"name {names[0]!r} is already in this directory "
                           f"({kind} view); this entry is skipped")
                skipped.append(f"directory record at byte {at}: name {names[0]!r} appears twice in "
                               f"{directory.path} ({kind} view)")
        out = []
        for k, (_, args, _, _) in enumerate(pending):
            picked = chosen.get(k)
            if picked is not None:
                out.append(Stat(prefix + picked, **args))
        if skipped:
            self._skipped[(kind, directory.path, (lba, size))] = skipped
        if kind == "rr" and directory.path == "/":
            out = [e for e in out if not (e.is_dir and e.name in RR_MOVED_NAMES and self._rr_moved_is_empty(e))]
        return out

    def _check_d_characters(self, recs: list[_Rec], at: int) -> None:
        odd = [r.ident for r in recs if r.ident not in (b"\x00", b"\x01")
               and not set(r.ident.decode("latin-1")) <= _D_CHARS]
        if odd:
            self._note("directory", at, f"{len(odd)} identifier(s) with characters other than d-characters "
                       f"(ECMA-119 7.4.1; first {odd[0].decode('latin-1')!r}); read as they are")

    def _rr_moved_is_empty(self, e: Stat) -> bool:
        loc = e.fields["_dir"]
        known = self._rr_moved_empty.get(loc)
        if known is None:
            try:
                known = not self._listing("rr", e, loc[0], loc[1])
            except InvalidImageError:
                known = False
            self._rr_moved_empty[loc] = known
        return known

    def _check_interleave(self, group: list[_Rec]) -> None:
        """ECMA-119 6.4.3: an interleaved file (file unit size, interleave gap) is not read,
        as Linux does not read one either."""
        for r in group:
            if r.unit or r.gap:
                raise InvalidImageError(f"an interleaved file (file unit size {r.unit}, interleave gap {r.gap} "
                                        "blocks, ECMA-119 9.1.7-8) is not supported")

    def _file_extents(self, group: list[_Rec]) -> tuple[tuple[int, int], ...]:
        out = []
        for r in group:
            if r.size:
                start = self.lba_offset(r.lba + r.ear)
                if not self._inside(start, r.size):
                    raise InvalidImageError(f"its extent at byte {start} ({r.size} bytes) lies outside the image "
                                            f"({self.image_size_bytes} bytes)")
                out.append((start, r.size))
        return tuple(out)

    def _dir_location(self, rec: _Rec) -> tuple[int, int]:
        return self._directory(rec.lba + rec.ear, rec.size, rec.at)

    def _directory(self, lba: int, size: int, at: int | None = None) -> tuple[int, int]:
        """A directory extent (LBA, size) as every reference to it will read it.

        A directory is known by where it starts: a second reference with another size reads
        the size first seen (a problem), and an extent that overlaps another directory's is
        refused, so that every byte of the image is parsed as directory records once per
        tree, whatever sizes a hostile image gives (walk() sees a directory met twice as a
        loop through its link_id)."""
        start = self.lba_offset(lba)
        known = self._dir_sizes.get(lba)
        if known is not None:
            if known != size:
                self._note("directory record", at, f"the directory at byte {start} is referred to with sizes "
                           f"{known} and {size}; {known} is read")
            return lba, known
        if size < DIRECTORY_RECORD_FIXED_BYTES + 1 or not self._inside(start, size):
            raise InvalidImageError(f"directory extent at byte {start} ({size} bytes) does not fit the image "
                                    f"({self.image_size_bytes} bytes)")
        blocks = -(-size // SECTOR_BYTES)
        i = bisect.bisect_left(self._dir_starts, lba)
        if i > 0:
            before = self._dir_starts[i - 1]
            if before + -(-self._dir_sizes[before] // SECTOR_BYTES) > lba:
                raise InvalidImageError(f"directory extent at byte {start} lies inside the directory at byte "
                                        f"{self.lba_offset(before)}")
        if i < len(self._dir_starts) and self._dir_starts[i] < lba + blocks:
            raise InvalidImageError(f"directory extent at byte {start} ({size} bytes) overlaps the directory at "
                                    f"byte {self.lba_offset(self._dir_starts[i])}")
        self._dir_starts.insert(i, lba)
        self._dir_sizes[lba] = size
        return lba, size

    def _entry(self, kind: str, group: list[_Rec]) -> tuple[list[str], dict[str, Any], int, bool] | None:
        """(candidate names, Stat arguments, record offset, exact name) of one entry, or None
        when the view hides it; InvalidImageError when the record cannot be an entry."""
        rec = group[0]
        is_dir = bool(rec.flags & FLAG_DIRECTORY)
        t = _record_time(rec.date)
        fields: dict[str, Any] = {"lba": rec.lba, "record_offset": rec.at, "iso_flags": rec.flags}
        if rec.flags & FLAG_HIDDEN:
            fields["hidden"] = True
        if rec.ear:
            fields["extended_attribute_record_length"] = rec.ear
        # Every record of the entry (a multi-extent file has one per section): (record byte
        # offset, extent byte offset, data_length), for changing sizes in place (image/modify.py).
        fields["_records"] = tuple((r.at, self.lba_offset(r.lba + r.ear), r.size) for r in group)
        if kind == "rr":
            return self._rr_entry(group, fields, t)
        if kind == "joliet":
            names = _joliet_names(rec.ident, is_dir)
            if len(rec.ident) % 2:
                self._note("directory record", rec.at, "a Joliet identifier of an odd number of bytes")
        else:
            names = _plain_names(rec.ident, is_dir)
        exact = bool(names) and names[0] == (rec.ident.decode("utf-8", "surrogateescape") if kind != "joliet"
                                             else rec.ident.decode("utf-16-be", "replace"))
        names = [nm for nm in names if _valid_name(nm)]
        if not names:
            raise InvalidImageError(f"file identifier {rec.ident!r} is not a single path component")
        if is_dir:
            loc = self._dir_location(rec)
            fields["_dir"] = loc
            return names, dict(type="dir", size=loc[1], mtime=t, extents=((self.lba_offset(loc[0]), loc[1]),),
                               link_id=("dir", self.lba_offset(loc[0])), fields=fields), rec.at, exact
        self._check_interleave(group)
        extents = self._file_extents(group)
        size = sum(s for _, s in extents)
        zf = None
        if kind == "iso9660" and self.rock_ridge and (b"ZF" in rec.su or b"CE" in rec.su):
            zf = self._rr(rec).zf
        elif kind == "joliet" and self.rock_ridge and extents:
            zf = self._zisofs_by_lba().get(rec.lba)
        if zf is not None:
            size = self._zisofs_fields(zf, size, fields)
        return names, dict(type="file", size=size, mtime=t, extents=extents, fields=fields), rec.at, exact

    def _zisofs_fields(self, zf: dict[str, Any], stored: int, fields: dict[str, Any]) -> int:
        info = ZisofsInfo.from_zf(zf)
        fields["zisofs"] = info.fields(stored)
        fields["_zisofs"] = info
        return info.uncompressed_size

    def _rr_entry(self, group: list[_Rec], fields: dict[str, Any],
                  t: float | None) -> tuple[list[str], dict[str, Any], int, bool] | None:
        rec = group[0]
        info = self._rr(rec)
        if info.re:
            return None                                 # shown where its CL placeholder is (RRIP 4.1.5.3)
        if info.name is not None:
            name = info.name.decode("utf-8", "surrogateescape")
            if not _valid_name(name):
                raise InvalidImageError(f"Rock Ridge name {info.name!r} is not a single path component "
                                        "(empty, '.', '..', or containing '/' or NUL)")
            names, exact = [name], True
        else:
            names = [nm for nm in _plain_names(rec.ident, bool(rec.flags & FLAG_DIRECTORY)) if _valid_name(nm)]
            if not names:
                raise InvalidImageError(f"file identifier {rec.ident!r} is not a single path component")
            exact = False
        fields["rr"] = info.signatures
        is_dir = bool(rec.flags & FLAG_DIRECTORY)
        attrs = info
        loc: tuple[int, int] | None = None
        if info.cl is not None:
            attrs, loc = self._relocated(rec, info)
            fields["relocated_from"] = loc[0]
            is_dir = True
        mode = attrs.mode
        kind_bits = _stat.S_IFMT(mode) if mode is not None else 0
        if mode is not None:
            if is_dir and kind_bits != _stat.S_IFDIR:
                self._note("system use entry", rec.at, f"PX mode {mode:#o} on a directory record; a directory")
                mode = _stat.S_IFDIR | (mode & 0o7777)
            elif not is_dir and kind_bits == _stat.S_IFDIR:
                self._note("system use entry", rec.at, f"PX mode {mode:#o} on a record that is not a directory; "
                           "a regular file")
                mode = _stat.S_IFREG | (mode & 0o7777)
            elif not is_dir and kind_bits not in TYPES_BY_BITS:
                self._note("system use entry", rec.at, f"PX mode {mode:#o} has no known file type; a regular file")
                mode = _stat.S_IFREG | (mode & 0o7777)
        kind_bits = _stat.S_IFMT(mode) if mode is not None else (_stat.S_IFDIR if is_dir else _stat.S_IFREG)
        type_ = TYPES_BY_BITS[kind_bits]
        mtime, atime, ctime = self._times(attrs, t)
        args: dict[str, Any] = dict(type=type_, mode=mode, uid=attrs.uid, gid=attrs.gid, mtime=mtime, atime=atime,
                                    ctime=ctime, nlink=attrs.nlink, inode=attrs.inode, fields=fields)
        if type_ == "dir":
            if loc is None:
                loc = self._dir_location(rec)
            fields["_dir"] = loc
            args.update(size=loc[1], extents=((self.lba_offset(loc[0]), loc[1]),),
                        link_id=("dir", self.lba_offset(loc[0])))
            return names, args, rec.at, exact
        if type_ == "file":
            self._check_interleave(group)
            extents = self._file_extents(group)
            size = sum(s for _, s in extents)
            if info.zf is not None:
                size = self._zisofs_fields(info.zf, size, fields)
            args.update(size=size, extents=extents, link_id=self._link_id(rec, extents, attrs))
        elif type_ == "symlink":
            if info.target is None:
                self._note("system use entry", rec.at, "a symbolic link without SL entries; its target is empty")
            target = info.target or b""
            args.update(size=len(target), target=target.decode("utf-8", "surrogateescape"))
        elif type_ in ("chardev", "blockdev"):
            if info.pn is None:
                self._note("system use entry", rec.at, "a device without a PN entry; device number 0, 0")
                args.update(rdev=(0, 0))
            else:
                args.update(rdev=_susp.decode_pn(*info.pn))
        if type_ != "file" and attrs.inode is not None and (attrs.nlink or 0) > 1:
            args.update(link_id=("inode", attrs.inode))
        return names, args, rec.at, exact

    @staticmethod
    def _link_id(rec: _Rec, extents: tuple[tuple[int, int], ...], info: _susp.RRInfo) -> Any:
        """Hard-link identity: the same extent and the same RRIP 1.12 serial number, or (no
        serial number) the same extent and a link count above 1."""
        if info.inode is not None:
            return ("extent", extents[0][0] if extents else None, info.inode)
        if extents and (info.nlink or 0) > 1:
            return ("extent", extents[0][0])
        return None

    def _relocated(self, rec: _Rec, info: _susp.RRInfo) -> tuple[_susp.RRInfo, tuple[int, int]]:
        """RRIP 4.1.5.1: the placeholder stands for the directory at CL's block, whose "."
        record gives its attributes (as Linux reads it)."""
        assert info.cl is not None
        at = self.lba_offset(info.cl)
        if not self._inside(at, SECTOR_BYTES):
            raise InvalidImageError(f"CL points at block {info.cl}, outside the image")
        first = self.read_at(at, SECTOR_BYTES, "relocated directory")
        length = first[0]
        dot = self._decode_record(first[:length], at) if DIRECTORY_RECORD_FIXED_BYTES < length else None
        if dot is None or dot.ident != b"\x00" or not dot.flags & FLAG_DIRECTORY:
            raise InvalidImageError(f"CL points at block {info.cl}, which does not start with a '.' record")
        loc = self._directory(info.cl, dot.size, rec.at)
        attrs = self._rr(dot)
        return attrs, loc

    def _zisofs_by_lba(self) -> dict[int, dict[str, Any]]:
        """{extent LBA: ZF fields} of every file of the primary tree that has a ZF entry
        (read once, for the Joliet tree, whose records have no system use entries)."""
        if self._zisofs_map is not None:
            return self._zisofs_map
        found: dict[int, dict[str, Any]] = {}
        self._zisofs_map = found
        try:
            lba, size, _, _ = self._root_dir(False)
        except InvalidImageError:
            return found
        stack = [(lba, size)]
        seen = {lba}
        while stack and len(seen) < MAX_DIR_RECORDS:
            lba, size = stack.pop()
            try:
                recs = self._dir_records(lba, size)
            except InvalidImageError:
                continue
            for r in recs:
                if r.ident in (b"\x00", b"\x01"):
                    continue
                if r.flags & FLAG_DIRECTORY:
                    try:
                        loc = self._dir_location(r)
                    except InvalidImageError:
                        continue
                    if loc[0] not in seen:
                        seen.add(loc[0])
                        stack.append(loc)
                elif r.size and (b"ZF" in r.su or b"CE" in r.su):
                    zf = self._rr(r).zf
                    if zf is not None:
                        found[r.lba] = zf
        return found

    def content(self, view: str, entry: Stat) -> IO[bytes]:
        """A binary stream (read, seek, tell) of a regular file's bytes, zisofs decompressed."""
        what = f"{view}:{entry.path}"
        info = entry.fields.get("_zisofs")
        if info is None:
            return cast(IO[bytes], ExtentReader(self.f, entry.extents, entry.size, what, self.image_size_bytes))
        stored = sum(s for _, s in entry.extents)
        at = entry.extents[0][0] if entry.extents else None
        raw = cast(IO[bytes], ExtentReader(self.f, entry.extents, stored, what, self.image_size_bytes))
        try:
            return cast(IO[bytes], ZisofsReader(raw, stored, info, what, lambda m: self._note("zisofs file", at, m)))
        except InvalidImageError as e:
            self._note("zisofs file", at, str(e))
            raise

    # -- the older API (sysexport inspect) -----------------------------------------------------
    @staticmethod
    def _legacy(e: Stat, kind: str) -> ISOEntry:
        default = DEFAULT_DIR_MODE if e.is_dir else DEFAULT_FILE_MODE
        mode = e.mode if e.mode is not None else default
        if e.mode is None and e.type not in ("dir", "file"):
            mode = _stat.S_IFREG | 0o444
        loc = e.fields.get("_dir")
        return ISOEntry(path=e.path.lstrip("/"), name=e.name if e.path != "/" else "", mode=mode, size_bytes=e.size,
                        extents=list(e.extents) if e.type == "file" else [], mtime=e.mtime,
                        atime=e.atime if e.atime is not None else e.mtime,
                        ctime=e.ctime if e.ctime is not None else e.mtime, uid=e.uid or 0, gid=e.gid or 0,
                        nlink=e.nlink if e.nlink is not None else 1, target=e.target, rdev=e.rdev,
                        flags=e.fields.get("iso_flags", FLAG_DIRECTORY if e.is_dir else 0),
                        dir_lba=loc[0] if loc else None, stat=e)

    def _strict_children(self, view: str, directory: Stat) -> list[Stat]:
        """children(), but an entry skipped there is an InvalidImageError (the older API is
        strict: it checks images made here)."""
        kids = self.children(view, directory)
        skipped = self._skipped.get((self._kind(view), directory.path, directory.fields["_dir"]))
        if skipped:
            raise InvalidImageError(skipped[0])
        return kids

    def _stat_of(self, entry: ISOEntry) -> Stat:
        if entry.stat is None:
            raise InvalidInputError(f"{entry.path}: not an entry this reader made")
        return entry.stat

    def root(self, view: str = "rr") -> ISOEntry:
        """The root directory of a view."""
        return self._legacy(self.root_stat(view), self._kind(view))

    def listdir(self, directory: ISOEntry, view: str = "rr") -> list[ISOEntry]:
        """The entries of a directory (without '.', '..', associated files), in record order."""
        st = self._stat_of(directory)
        if not st.is_dir:
            raise InvalidInputError(f"{directory.path or '/'}: not a directory")
        kind = self._kind(view)
        return [self._legacy(c, kind) for c in self._strict_children(view, st)]

    def walk(self, view: str = "rr") -> Iterator[ISOEntry]:
        """Every entry of a view, parents before children (the root itself not included)."""
        kind = self._kind(view)
        root = self.root_stat(view)
        seen = {root.fields["_dir"]}
        stack = [root]
        count = 0
        while stack:
            d = stack.pop()
            kids = self._strict_children(view, d)
            count += len(kids)
            if count > MAX_DIR_RECORDS * 10:
                raise InvalidImageError(f"{kind} view: more than {MAX_DIR_RECORDS * 10} entries")
            for c in kids:
                yield self._legacy(c, kind)
            for c in reversed(kids):
                if c.is_dir:
                    loc = c.fields["_dir"]
                    if loc in seen:
                        raise InvalidImageError(f"{c.path} ({kind} view): directory at block {loc[0]} appears "
                                                "twice (a loop)")
                    seen.add(loc)
                    stack.append(c)

    def find(self, path: str, view: str = "rr") -> ISOEntry:
        """The entry at ``path`` ("" or "/" for the root)."""
        entry = self.root_stat(view)
        kind = self._kind(view)
        for part in [p for p in path.split("/") if p]:
            if not entry.is_dir:
                raise InvalidInputError(f"{path}: {entry.path} is not a directory ({kind} view)")
            match = [e for e in self._strict_children(view, entry) if e.name == part]
            if not match:
                raise InvalidInputError(f"{path}: no {part!r} in {entry.path} ({kind} view)")
            entry = match[0]
        return self._legacy(entry, kind)

    def iter_content(self, entry: ISOEntry, chunk_bytes: int = 1 << 20) -> Iterator[bytes]:
        """The bytes of a regular file, streamed (zisofs decompressed)."""
        st = self._stat_of(entry)
        with self.content("rr", st) as f:
            while True:
                chunk = f.read(chunk_bytes)
                if not chunk:
                    return
                yield chunk

    def read(self, entry: ISOEntry) -> bytes:
        """The whole content of a (small) regular file."""
        return b"".join(self.iter_content(entry))

    # -- volume facts --------------------------------------------------------------------------
    @property
    def volume(self) -> VolumeInfo:
        """The chosen session's primary descriptor's identifiers, dates and size (ECMA-119 8.4)."""
        p = self.pvd
        try:
            root = self._root_dir(False)[:2]
        except InvalidImageError:
            root = (0, 0)
        created = _date_digits(p.volume_creation_date_and_time)
        modified = _date_digits(p.volume_modification_date_and_time)
        return VolumeInfo(
            system_identifier=_text(p.system_identifier), volume_identifier=_text(p.volume_identifier),
            volume_set_identifier=_text(p.volume_set_identifier),
            publisher_identifier=_text(p.publisher_identifier),
            data_preparer_identifier=_text(p.data_preparer_identifier),
            application_identifier=_text(p.application_identifier),
            volume_space_size=p.volume_space_size, logical_block_size=p.logical_block_size,
            creation_date=created, modification_date=modified,
            joliet_level=self.joliet_level,
            joliet_volume_identifier=_ucs2(self.svd.volume_identifier) if self.svd is not None else None,
            rock_ridge=self.rock_ridge,
            expiration_date=_date_digits(p.volume_expiration_date_and_time),
            effective_date=_date_digits(p.volume_effective_date_and_time),
            copyright_file_identifier=_text(p.copyright_file_identifier),
            abstract_file_identifier=_text(p.abstract_file_identifier),
            bibliographic_file_identifier=_text(p.bibliographic_file_identifier),
            volume_set_size=p.volume_set_size, volume_sequence_number=p.volume_sequence_number,
            file_structure_version=p.file_structure_version, path_table_size=p.path_table_size,
            type_l_path_table=p.location_of_type_l_path_table, type_m_path_table=p.location_of_type_m_path_table,
            root_lba=root[0], root_size=root[1], session=self.session.index,
            el_torito_catalog_lba=self.boot_catalog_lba,
            creation_time=_volume_time(p.volume_creation_date_and_time),
            modification_time=_volume_time(p.volume_modification_date_and_time))

    def path_table(self, kind: str = "L") -> list[tuple[str, int, int]]:
        """The type L (or "M") path table (ECMA-119 9.4): (identifier, extent LBA, parent
        number) records; a record that does not fit ends the table, with a problem."""
        p = self.pvd
        lba = p.location_of_type_l_path_table if kind == "L" else p.location_of_type_m_path_table
        at = self.lba_offset(lba)
        size = p.path_table_size
        if size > MAX_PATH_TABLE_BYTES:
            raise InvalidImageError(f"type {kind} path table at byte {at}: {size} bytes (more than "
                                    f"{MAX_PATH_TABLE_BYTES} are not read)")
        if not self._inside(at, size):
            raise InvalidImageError(f"type {kind} path table at byte {at} ({size} bytes) lies outside the image "
                                    f"({self.image_size_bytes} bytes)")
        raw = self.read_at(at, size, f"type {kind} path table")
        order: Literal["little", "big"] = "little" if kind == "L" else "big"
        out: list[tuple[str, int, int]] = []
        pos = 0
        while pos + PATH_TABLE_RECORD_FIXED_BYTES <= len(raw):
            n = raw[pos]
            if n == 0 or pos + PATH_TABLE_RECORD_FIXED_BYTES + n > len(raw):
                self._note("path table record", at + pos, f"length_of_directory_identifier {n} does not fit the "
                           f"table's {size} bytes; the rest of the table is not read")
                break
            ident = raw[pos + PATH_TABLE_RECORD_FIXED_BYTES:pos + PATH_TABLE_RECORD_FIXED_BYTES + n]
            out.append((ident.decode("latin-1"), int.from_bytes(raw[pos + 2:pos + 6], order),
                        int.from_bytes(raw[pos + 6:pos + 8], order)))
            pos += PATH_TABLE_RECORD_FIXED_BYTES + n + n % 2
        return out

    # -- El Torito ---------------------------------------------------------------------------
    def boot_catalog(self) -> list[BootCatalogEntry]:
        """The El Torito catalog's entries (El Torito 1.0, 2.1-2.5): the default entry first.

        A catalog whose validation entry is not one (header id, key bytes) is an
        InvalidImageError; a checksum that does not sum to 0, an unknown boot indicator, a
        load RBA outside the image and a section that runs past the catalog are problems."""
        if self.boot_catalog_lba is None:
            return []
        at = self.lba_offset(self.boot_catalog_lba)
        if not self._inside(at, SECTOR_BYTES):
            raise InvalidImageError(f"El Torito boot catalog at block {self.boot_catalog_lba} (byte {at}) lies "
                                    f"outside the image ({self.image_size_bytes} bytes)")
        sectors = 1
        while sectors < MAX_CATALOG_SECTORS and self._inside(at, (sectors + 1) * SECTOR_BYTES):
            sectors += 1
        raw = self.read_at(at, sectors * SECTOR_BYTES, "boot catalog")
        n = CATALOG_ENTRY_BYTES
        try:
            ValidationEntry.parse(raw[:n])
        except ConstructError as e:
            raise InvalidImageError(f"boot catalog validation entry at byte {at}: "
                                    f"{str(e).splitlines()[0]}") from None
        words = [int.from_bytes(raw[i:i + 2], "little") for i in range(0, n, 2)]
        if sum(words) & 0xFFFF:
            self._note("boot catalog validation entry", at, "the checksum does not make the 16 words sum to 0 "
                       "(El Torito 2.1); firmware may refuse the catalog")
        platform = raw[1]
        out = [self._catalog_entry(InitialEntry, raw[n:2 * n], at + n, platform, b"", 0)]
        pos = 2 * n
        section = 0
        while pos + n <= len(raw) and raw[pos] in (HEADER_MORE, HEADER_LAST):
            h = SectionHeader.parse(raw[pos:pos + n])
            section += 1
            pos += n
            count = h.number_of_section_entries
            while count:
                if pos + n > len(raw):
                    self._note("boot catalog section header", at + pos - n, f"section {section} announces "
                               f"{h.number_of_section_entries} entries; the catalog ends first")
                    break
                if raw[pos] == EXTENSION_INDICATOR:
                    pos += n
                    continue
                out.append(self._catalog_entry(SectionEntry, raw[pos:pos + n], at + pos, h.platform_id,
                                               bytes(h.id_string).rstrip(b"\x00"), section))
                pos += n
                count -= 1
            if h.header_indicator == HEADER_LAST:
                break
        return out

    def _catalog_entry(self, struct_: Any, raw: bytes, at: int, platform: int, ident: bytes,
                       section: int) -> BootCatalogEntry:
        try:
            e = struct_.parse(raw)
        except ConstructError:
            self._note("boot catalog entry", at, "its unused bytes are not zero (El Torito 2.2, 2.4)")
            e = SectionEntry.parse(raw[:5] + b"\x00" + raw[6:]) if section else \
                InitialEntry.parse(raw[:5] + b"\x00" + raw[6:12] + bytes(20))
        if e.boot_indicator not in (NOT_BOOTABLE, BOOTABLE):
            self._note("boot catalog entry", at, f"boot_indicator {e.boot_indicator:#04x}, expected "
                       f"{BOOTABLE:#04x} or {NOT_BOOTABLE:#04x} (El Torito 2.2)")
        device_offset = self.lba_offset(e.load_rba)
        if not self._inside(device_offset, 1):
            self._note("boot catalog entry", at, f"load_rba {e.load_rba} (byte {device_offset}) lies outside the "
                       "image")
        return BootCatalogEntry(platform_id=platform, bootable=e.boot_indicator == BOOTABLE,
                                media_type=e.boot_media_type, load_segment=e.load_segment,
                                system_type=e.system_type, sector_count=e.sector_count, load_rba=e.load_rba,
                                device_offset=device_offset, id_string=ident,
                                selection_criteria_type=e.get("selection_criteria_type", 0) if section else 0,
                                catalog_offset=at, boot_indicator=e.boot_indicator, section=section)

    def boot_info_table(self, entry: BootCatalogEntry, image_bytes: int | None = None) -> dict[str, Any] | None:
        """The boot info table (mkisofs -boot-info-table) of a no-emulation boot image, with
        ``ok`` telling whether it names this volume's PVD, the image's LBA and (when
        ``image_bytes`` is given) its length and checksum; None when the image has none."""
        at = entry.device_offset
        if not self._inside(at, 64):
            return None
        head = self.read_at(at, 64, "boot image")
        t = BootInfoTable.parse(head[8:64]) if not any(head[24:64]) else None
        if t is None or t.bi_pvd != self.session.descriptor_lba or t.bi_file != entry.load_rba:
            return None
        out: dict[str, Any] = {"bi_pvd": t.bi_pvd, "bi_file": t.bi_file, "bi_length": t.bi_length,
                               "bi_csum": t.bi_csum, "ok": True}
        if image_bytes is not None:
            out["ok"] = t.bi_length == image_bytes
            if self._inside(at, image_bytes) and image_bytes >= 64:
                data = self.read_at(at + 64, image_bytes - 64, "boot image")
                data += bytes(-len(data) % 4)
                csum = sum(memoryview(data).cast("I")) & 0xFFFFFFFF
                out["checksum"] = csum
                out["ok"] = out["ok"] and csum == t.bi_csum
        return out


TYPES_BY_BITS = {_stat.S_IFREG: "file", _stat.S_IFDIR: "dir", _stat.S_IFLNK: "symlink", _stat.S_IFCHR: "chardev",
                 _stat.S_IFBLK: "blockdev", _stat.S_IFIFO: "fifo", _stat.S_IFSOCK: "socket"}


def _volume_time(raw: bytes) -> float | None:
    fields = {"year": raw[0:4], "month": raw[4:6], "day": raw[6:8], "hour": raw[8:10], "minute": raw[10:12],
              "second": raw[12:14], "hundredths": raw[14:16], "gmt_offset": raw[16] if len(raw) > 16 else 0}
    return _susp.date17(fields, None, None)


def looks_like_iso9660(image: str | os.PathLike[str] | BinaryIO | IO[bytes], offset: int = 0) -> bool:
    """True if a volume descriptor with "CD001" sits at sector 16 of the volume at ``offset``."""
    own = isinstance(image, (str, os.PathLike))
    f: IO[bytes] = open(image, "rb") if isinstance(image, (str, os.PathLike)) else image
    try:
        f.seek(offset + FIRST_DESCRIPTOR_LBA * SECTOR_BYTES)
        return f.read(1 + len(STANDARD_IDENTIFIER))[1:] == STANDARD_IDENTIFIER
    finally:
        if own:
            f.close()
