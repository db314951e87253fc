"""Read an ISO 9660 image: descriptors, the ISO9660, Joliet and Rock Ridge views, El Torito.

Independent of the writer: everything is parsed from the image bytes with the
declarations of :mod:`._structs` (ECMA-119, El Torito) and :mod:`.rockridge`'s SUSP
parser (SUSP 1.12, RRIP 1.09/1.12).  The volume may start at any byte ``offset`` of the
image; every extent an entry reports is in bytes of the whole image (``device_offset``).

Views (ECMA-119 and extensions):

* ``"iso"``: the primary volume descriptor's tree, plain identifiers ("FOO.TXT;1" read as
  "FOO.TXT"), no modes;
* ``"joliet"``: the supplementary descriptor with a Joliet escape sequence, UCS-2 names;
* ``"rr"``: the primary tree read through Rock Ridge: NM names, PX modes and ids, SL
  targets, TF times, PN devices, CE continuation areas followed, and deep directories
  shown where CL points them (RE records and an emptied rr_moved hidden): the true tree.

Used by ``sysexport inspect/ls/extract/verify`` and tests; never the only check of an
image our writers made.
"""
from __future__ import annotations

import calendar
import os
import stat
from dataclasses import dataclass, field
from typing import BinaryIO, Iterator, Protocol

from construct import Construct, ConstructError, Container

from ..errors import InvalidImageError, InvalidInputError
from . import _rrstructs as _rs
from . import rockridge as _rr
from ._fastread import _Date, parse_directory_record, parse_su_entries  # noqa: F401  (re-exported)
from ._structs import (CATALOG_ENTRY_BYTES, DIRECTORY_RECORD_FIXED_BYTES, FIRST_DESCRIPTOR_LBA,
                       PATH_TABLE_RECORD_FIXED_BYTES, SECTOR_BYTES, STANDARD_IDENTIFIER, BootRecordDescriptor,
                       DirectoryRecord, InitialEntry, PathTableRecordL, SectionEntry, SectionHeader,
                       ValidationEntry, VolumeDescriptor)
from .enums import (BOOTABLE, EL_TORITO_ID, EXTENSION_INDICATOR, FLAG_ASSOCIATED, FLAG_DIRECTORY,  # noqa: F401
                    FLAG_HIDDEN, FLAG_MULTI_EXTENT, HEADER_LAST, HEADER_MORE, JOLIET_ESCAPES, NOT_BOOTABLE,
                    VD_TYPE_BOOT_RECORD, VD_TYPE_PRIMARY, VD_TYPE_SUPPLEMENTARY, VD_TYPE_TERMINATOR)

VIEWS = ("rr", "joliet", "iso")
MAX_DESCRIPTORS = 64                  # guard against a set without terminator
RR_ER_IDS = {_rs.ER_ID_109: _rr.RRIP_109, _rs.ER_ID_112: _rr.RRIP_112, _rs.ER_ID_1282: _rr.RRIP_112}
"""RRIP section 5 / SUSP 5.5: the ER identifiers of Rock Ridge, and the version each announces."""
RR_MOVED_NAMES = ("rr_moved", ".rr_moved")
MAX_CE_CHAIN = 32
DEFAULT_DIR_MODE = 0o40555            # shown for the "iso"/"joliet" views (no POSIX data)
DEFAULT_FILE_MODE = 0o100444
ROOT_RECORD_OFFSET = 156             # BP 157 of a volume descriptor: the root's record (ECMA-119 8.4.18)


class DirRecord(Protocol):
    """A parsed directory record (ECMA-119 9.1): what _fastread's decoder and the
    ``DirectoryRecord`` declaration both give, with the fields the reader uses."""

    @property
    def location_of_extent(self) -> int: ...
    @property
    def data_length(self) -> int: ...
    @property
    def extended_attribute_record_length(self) -> int: ...
    @property
    def file_flags(self) -> int: ...
    @property
    def file_identifier(self) -> bytes: ...
    @property
    def system_use(self) -> bytes: ...
    @property
    def recording_date_and_time(self) -> Container: ...


@dataclass
class ISOEntry:
    """One file as a view shows it.  ``extents`` are (device_offset, size_bytes) pairs."""

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

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.mode)

    @property
    def is_file(self) -> bool:
        return stat.S_ISREG(self.mode)

    @property
    def is_symlink(self) -> bool:
        return stat.S_ISLNK(self.mode)


@dataclass
class VolumeInfo:
    """What the primary (and Joliet) volume descriptors say (ECMA-119 8.4, 8.5)."""

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

    @property
    def size_bytes(self) -> int:
        return self.volume_space_size * self.logical_block_size

    @property
    def uuid(self) -> str | None:
        """The UUID blkid shows: the modification date, else the creation date, as
        YYYY-MM-DD-HH-MM-SS-cc (libblkid's iso9660 prober)."""
        for digits in (self.modification_date, self.creation_date):
            if digits and digits.strip("0\x00 "):
                d = digits
                return f"{d[0:4]}-{d[4:6]}-{d[6:8]}-{d[8:10]}-{d[10:12]}-{d[12:14]}-{d[14:16]}"
        return None


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


def _text(raw: bytes) -> str:
    return raw.decode("latin-1").rstrip(" \x00")


def _ucs2(raw: bytes) -> str:
    if len(raw) % 2:
        raw = raw[:-1]
    return raw.decode("utf-16-be", "replace").rstrip(" \x00")


def _dir_time(d) -> float | None:
    """ECMA-119 9.1.5 (and RRIP TF short form): 7-byte date to epoch seconds."""
    if d.month == 0:
        return None
    try:
        t = calendar.timegm((1900 + d.years_since_1900, d.month, d.day, d.hour, d.minute, d.second))
    except (ValueError, OverflowError):
        return None
    off = d.get("offset_from_gmt", d.get("gmt_offset", 0))
    return t - off * 15 * 60


def _long_time(d) -> float | None:
    """ECMA-119 8.4.26.1 (RRIP TF long form): 17-byte date to epoch seconds."""
    try:
        vals = [int(d[k]) for k in ("year", "month", "day", "hour", "minute", "second", "hundredths")]
    except ValueError:
        return None
    if vals[1] == 0:
        return None
    t = calendar.timegm(tuple(vals[:6]))
    return t + vals[6] / 100 - d["gmt_offset"] * 15 * 60


class ISO9660Reader:
    """Open the ISO 9660 volume that starts at byte ``offset`` of ``image`` (path or binary file).

    Raises InvalidImageError naming the byte offset and field when the descriptors are
    not those of ECMA-119 8.  ``views`` lists the readable views among "rr", "joliet", "iso".
    """

    def __init__(self, image: str | os.PathLike[str] | BinaryIO, offset: int = 0) -> None:
        self._own = isinstance(image, (str, os.PathLike))
        self.f: BinaryIO = open(image, "rb") if isinstance(image, (str, os.PathLike)) else image
        self.offset = offset
        self.image_size_bytes = self.f.seek(0, os.SEEK_END)
        self.svd: Container | None = None
        self.joliet_level: int | None = None
        self.boot_catalog_lba: int | None = None
        try:
            self.pvd: Container = self._read_descriptors()
            self.len_skp = 0
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

    def __exit__(self, *exc) -> None:
        self.close()

    def read_at(self, device_offset: int, size_bytes: int, what: str = "data") -> bytes:
        """``size_bytes`` bytes at ``device_offset`` of the image; InvalidImageError if short."""
        self.f.seek(device_offset)
        data = self.f.read(size_bytes)
        if len(data) != size_bytes:
            raise InvalidImageError(f"{what} at byte {device_offset}: image ends after {len(data)} of "
                                    f"{size_bytes} bytes (image size {self.image_size_bytes})")
        return data

    def lba_offset(self, lba: int) -> int:
        """Device offset of a logical block of this volume (ECMA-119 6.1.2)."""
        return self.offset + lba * SECTOR_BYTES

    # -- descriptors (ECMA-119 8) ---------------------------------------------------------------
    def _read_descriptors(self) -> Container:
        """Read the volume descriptor set (ECMA-119 8); returns the primary descriptor."""
        pvd = None
        for i in range(MAX_DESCRIPTORS):
            lba = FIRST_DESCRIPTOR_LBA + i
            at = self.lba_offset(lba)
            raw = self.read_at(at, SECTOR_BYTES, "volume descriptor")
            if raw[1:6] != STANDARD_IDENTIFIER:
                raise InvalidImageError(f"volume descriptor at byte {at}: standard identifier is {raw[1:6]!r}, "
                                        f"expected {STANDARD_IDENTIFIER!r} (ECMA-119 8.1.2)")
            kind = raw[0]
            try:
                if kind == VD_TYPE_TERMINATOR:
                    break
                if kind == VD_TYPE_PRIMARY and pvd is None:
                    pvd = VolumeDescriptor.parse(raw)
                elif kind == VD_TYPE_SUPPLEMENTARY and self.svd is None:
                    svd = VolumeDescriptor.parse(raw)
                    level = JOLIET_ESCAPES.get(bytes(svd.escape_sequences[:3]))
                    if level is not None:
                        self.svd, self.joliet_level = svd, level
                elif kind == VD_TYPE_BOOT_RECORD and raw[7:7 + len(EL_TORITO_ID)] == EL_TORITO_ID:
                    self.boot_catalog_lba = BootRecordDescriptor.parse(raw).boot_catalog_pointer
            except ConstructError as e:
                raise InvalidImageError(f"volume descriptor type {kind} at byte {at}: {e}") from None
        else:
            raise InvalidImageError(f"no volume descriptor set terminator in the {MAX_DESCRIPTORS} "
                                    f"sectors after byte {self.lba_offset(FIRST_DESCRIPTOR_LBA)}")
        if pvd is None:
            raise InvalidImageError(f"no primary volume descriptor (type {VD_TYPE_PRIMARY}) after byte "
                                    f"{self.lba_offset(FIRST_DESCRIPTOR_LBA)}")
        if pvd.logical_block_size != SECTOR_BYTES:
            raise InvalidImageError(f"primary volume descriptor: logical_block_size "
                                    f"{pvd.logical_block_size}, expected {SECTOR_BYTES}")
        return pvd

    def _root_record(self, joliet: bool) -> DirRecord:
        vd = self.svd if joliet and self.svd is not None else self.pvd
        return self._parse_record(bytes(vd.directory_record_for_root_directory),
                                  self.lba_offset(FIRST_DESCRIPTOR_LBA) + ROOT_RECORD_OFFSET)

    @property
    def volume(self) -> VolumeInfo:
        """The primary descriptor's identifiers, dates and size (ECMA-119 8.4)."""
        p = self.pvd
        return VolumeInfo(
            system_identifier=_text(p.system_identifier), volume_identifier=_text(p.volume_identifier),
            volume_set_identifier=_text(p.volume_set_identifier),
            publisher_identifier=_text(p.publisher_identifier),
            data_preparer_identifier=_text(p.data_preparer_identifier),
            application_identifier=_text(p.application_identifier),
            volume_space_size=p.volume_space_size, logical_block_size=p.logical_block_size,
            creation_date=p.volume_creation_date_and_time.digits.decode("latin-1"),
            modification_date=p.volume_modification_date_and_time.digits.decode("latin-1"),
            joliet_level=self.joliet_level,
            joliet_volume_identifier=_ucs2(self.svd.volume_identifier) if self.svd is not None else None,
            rock_ridge=self.rock_ridge)

    @property
    def views(self) -> list[str]:
        return [v for v in VIEWS if v == "iso" or (v == "rr" and self.rock_ridge)
                or (v == "joliet" and self.svd is not None)]

    def path_table(self) -> list[tuple[str, int, int]]:
        """The type L path table (ECMA-119 9.4): (identifier, extent LBA, parent number) records."""
        p = self.pvd
        at = self.lba_offset(p.location_of_type_l_path_table)
        raw = self.read_at(at, p.path_table_size, "type L path table")
        out, pos = [], 0
        while pos < len(raw):
            try:
                rec = PathTableRecordL.parse(raw[pos:])
            except ConstructError as e:
                raise InvalidImageError(f"path table record at byte {at + pos}: {e}") from None
            out.append((rec.directory_identifier.decode("latin-1"), rec.location_of_extent,
                        rec.parent_directory_number))
            pos += (PATH_TABLE_RECORD_FIXED_BYTES + rec.length_of_directory_identifier
                    + rec.length_of_directory_identifier % 2)
        return out

    # -- Rock Ridge (SUSP 1.12, RRIP) --------------------------------------------------------
    def _detect_rock_ridge(self) -> str | None:
        root = self._root_record(False)
        dot = self._records(root.location_of_extent, root.data_length)[0][1]
        su = bytes(dot.system_use)
        if su[:2] != b"SP" or len(su) < _rs.SP.sizeof() or su[4:6] != _rs.SP_CHECK_BYTES:
            return None
        self.len_skp = su[6]
        entries = self._su_entries(su, self.lba_offset(dot.location_of_extent), skip=0)
        for sig, fields in entries:
            if sig == "ER":
                version = RR_ER_IDS.get(bytes(fields["ext_id"]))
                if version:
                    return version
        if any(sig in ("RR", "PX", "NM") for sig, _ in entries):
            return _rr.RRIP_109
        return None

    def _su_entries(self, system_use: bytes, where: int, skip: int | None = None) -> list[tuple[str, dict]]:
        """All SUSP entries of a system use field, continuation areas (CE) followed in order."""
        skip = self.len_skp if skip is None else skip
        try:
            entries = parse_su_entries(system_use[skip:])
        except InvalidImageError as e:
            raise InvalidImageError(f"directory record at byte {where}: {e}") from None
        out: list[tuple[str, dict]] = []
        seen: set[tuple[int, int]] = set()
        while True:
            ce = None
            for sig, fields in entries:
                if sig == "CE":
                    ce = fields
                else:
                    out.append((sig, fields))
            if ce is None:
                return out
            key = (ce["block_location"], ce["offset"])
            if key in seen or len(seen) >= MAX_CE_CHAIN:
                raise InvalidImageError(f"directory record at byte {where}: CE continuation areas loop "
                                        f"(block {key[0]}, offset {key[1]})")
            seen.add(key)
            at = self.lba_offset(ce["block_location"]) + ce["offset"]
            area = self.read_at(at, ce["length_of_continuation_area"], "SUSP continuation area")
            try:
                entries = parse_su_entries(area)
            except InvalidImageError as e:
                raise InvalidImageError(f"continuation area at byte {at}: {e}") from None

    # -- directories -------------------------------------------------------------------------
    @staticmethod
    def _parse_record(raw: bytes, where: int) -> DirRecord:
        rec = parse_directory_record(raw)
        if rec is not None:
            return rec
        try:
            parsed: DirRecord = DirectoryRecord.parse(raw)
        except ConstructError as e:
            raise InvalidImageError(f"directory record at byte {where}: {e}") from None
        return parsed

    def _records(self, lba: int, size: int) -> list[tuple[int, DirRecord]]:
        """(device offset, parsed record) of every record of the directory extent at ``lba``
        of ``size`` bytes (ECMA-119 6.8.1.1)."""
        start = self.lba_offset(lba)
        if start + size > self.image_size_bytes:
            raise InvalidImageError(f"directory extent at byte {start} ({size} bytes) goes past the end "
                                    f"of the image ({self.image_size_bytes} bytes)")
        data = self.read_at(start, size, "directory")
        out: list[tuple[int, DirRecord]] = []
        pos = 0
        while pos < size:
            length = data[pos]
            if length == 0:                       # rest of this sector is padding (6.8.1.1)
                pos = (pos // SECTOR_BYTES + 1) * SECTOR_BYTES
                continue
            if length <= DIRECTORY_RECORD_FIXED_BYTES or pos % SECTOR_BYTES + length > SECTOR_BYTES:
                raise InvalidImageError(f"directory record at byte {start + pos}: length_of_directory_record "
                                        f"{length} (expected 34..255, inside one sector)")
            out.append((start + pos, self._parse_record(data[pos:pos + length], start + pos)))
            pos += length
        if not out or out[0][1].file_identifier != b"\x00":
            raise InvalidImageError(f"directory at byte {start}: first record is not '.' (ECMA-119 6.8.2.2)")
        return out

    def _entry(self, view: str, parent: str, rec: DirRecord, where: int) -> ISOEntry | None:
        """An ISOEntry from a record (None: hidden in this view)."""
        ident = bytes(rec.file_identifier)
        is_dir = bool(rec.file_flags & FLAG_DIRECTORY)
        if view == "joliet":
            name = ident.decode("utf-16-be", "replace")
        else:
            name = ident.decode("latin-1")
        if not is_dir and ";" in name:
            name = name.rsplit(";", 1)[0]
        if view == "iso" and not is_dir and name.endswith(".") and len(name) > 1:
            name = name[:-1]
        entry = ISOEntry(path="", name=name, mode=DEFAULT_DIR_MODE if is_dir else DEFAULT_FILE_MODE,
                         size_bytes=rec.data_length, mtime=_dir_time(rec.recording_date_and_time),
                         flags=rec.file_flags)
        entry.ctime = entry.atime = entry.mtime
        if is_dir:
            entry.dir_lba = rec.location_of_extent
            entry.size_bytes = rec.data_length
        if view == "rr" and self.rock_ridge:
            su = self._su_entries(bytes(rec.system_use), where)
            if any(sig == "RE" for sig, _ in su):
                return None
            self._apply_rr(entry, su, where)
            cl = next((f for sig, f in su if sig == "CL"), None)
            if cl is not None:
                self._follow_cl(entry, cl["location_of_child_directory"], where)
        _check_name(entry.name, where)
        entry.path = f"{parent}/{entry.name}" if parent else entry.name
        return entry

    def _apply_rr(self, entry: ISOEntry, su: list[tuple[str, dict]], where: int) -> None:
        nm = [f for sig, f in su if sig == "NM"]
        if nm:
            try:
                entry.name = _rr.nm_name(nm).decode("utf-8", "surrogateescape")
            except UnicodeDecodeError:
                raise InvalidImageError(f"directory record at byte {where}: NM name is not UTF-8") from None
        for sig, f in su:
            if sig == "PX":
                entry.mode, entry.nlink = f["file_mode"], f["file_links"]
                entry.uid, entry.gid = f["file_user_id"], f["file_group_id"]
            elif sig == "PN":
                dev = (f["dev_t_high"] << 32) | f["dev_t_low"]
                entry.rdev = (os.major(dev), os.minor(dev))
            elif sig == "TF":
                _apply_tf(entry, f)
        sl = [f for sig, f in su if sig == "SL"]
        if sl:
            try:
                entry.target = _rr.symlink_target(sl).decode("utf-8", "surrogateescape")
            except InvalidImageError as e:
                raise InvalidImageError(f"directory record at byte {where}: {e}") from None
        if stat.S_ISLNK(entry.mode):
            entry.size_bytes = len((entry.target or "").encode("utf-8", "surrogateescape"))
        elif not stat.S_ISREG(entry.mode) and not stat.S_ISDIR(entry.mode):
            entry.size_bytes = 0

    def _follow_cl(self, entry: ISOEntry, child_lba: int, where: int) -> None:
        """RRIP 4.1.5.1: the placeholder stands for the directory at ``child_lba``."""
        at = self.lba_offset(child_lba)
        first = self.read_at(at, SECTOR_BYTES, "relocated directory")
        dot = self._parse_record(first[:first[0]], at)
        if dot.file_identifier != b"\x00" or not dot.file_flags & FLAG_DIRECTORY:
            raise InvalidImageError(f"directory record at byte {where}: CL points at block {child_lba}, "
                                    "which does not start with a '.' record")
        name = entry.name
        entry.mode, entry.dir_lba, entry.size_bytes = DEFAULT_DIR_MODE, child_lba, dot.data_length
        entry.flags |= FLAG_DIRECTORY
        self._apply_rr(entry, self._su_entries(bytes(dot.system_use), at), at)
        entry.name = name
        if not stat.S_ISDIR(entry.mode):
            raise InvalidImageError(f"directory record at byte {where}: CL target's PX mode "
                                    f"{entry.mode:#o} is not a directory")

    def _file_extents(self, recs: list[tuple[int, DirRecord]]) -> list[tuple[int, int]]:
        out = []
        for where, r in recs:
            if r.data_length:
                start = self.lba_offset(r.location_of_extent + r.extended_attribute_record_length)
                if start + r.data_length > self.image_size_bytes:
                    raise InvalidImageError(f"directory record at byte {where}: extent at byte {start} "
                                            f"({r.data_length} bytes) goes past the end of the image")
                out.append((start, r.data_length))
        return out

    def root(self, view: str = "rr") -> ISOEntry:
        """The root directory of a view."""
        self._check_view(view)
        rec = self._root_record(view == "joliet")
        entry = ISOEntry(path="", name="", mode=DEFAULT_DIR_MODE, size_bytes=rec.data_length,
                         mtime=_dir_time(rec.recording_date_and_time), flags=rec.file_flags,
                         dir_lba=rec.location_of_extent)
        if view == "rr":
            dot_where, dot = self._records(rec.location_of_extent, rec.data_length)[0]
            self._apply_rr(entry, self._su_entries(bytes(dot.system_use), dot_where), dot_where)
            entry.name = ""
        return entry

    def _check_view(self, view: str) -> None:
        if view not in self.views:
            raise InvalidInputError(f"view {view!r}: this image has the views {', '.join(self.views)}")

    def listdir(self, directory: ISOEntry, view: str = "rr") -> list[ISOEntry]:
        """The entries of a directory (without '.', '..', associated files), in record order."""
        self._check_view(view)
        if directory.dir_lba is None:
            raise InvalidInputError(f"{directory.path or '/'}: not a directory")
        recs = self._records(directory.dir_lba, directory.size_bytes)[2:]
        out: list[ISOEntry] = []
        i = 0
        while i < len(recs):
            group = [recs[i]]
            while group[-1][1].file_flags & FLAG_MULTI_EXTENT:   # ECMA-119 6.5.1: sections of one file
                i += 1
                if i >= len(recs):
                    raise InvalidImageError(f"directory record at byte {group[-1][0]}: multi-extent flag "
                                            "set on the last record of the directory")
                group.append(recs[i])
            i += 1
            where, rec = group[0]
            if rec.file_flags & FLAG_ASSOCIATED:
                continue
            entry = self._entry(view, directory.path, rec, where)
            if entry is None:
                continue
            if not entry.is_dir and not entry.is_symlink and entry.rdev is None:
                entry.extents = self._file_extents(group)
                entry.size_bytes = sum(s for _, s in entry.extents)
            out.append(entry)
        if view == "rr" and directory.path == "":
            out = [e for e in out if not (e.is_dir and e.name in RR_MOVED_NAMES and not self.listdir(e, view))]
        names = [e.name for e in out]
        if len(set(names)) != len(names):
            dup = sorted(n for n in set(names) if names.count(n) > 1)[0]
            raise InvalidImageError(f"{directory.path or '/'} ({view} view): name {dup!r} appears twice")
        return out

    def walk(self, view: str = "rr") -> Iterator[ISOEntry]:
        """Every entry of a view, parents before children (the root itself not included)."""
        root = self.root(view)
        seen = {root.dir_lba}
        stack = [root]
        while stack:
            d = stack.pop()
            children = self.listdir(d, view)
            yield from children
            for c in reversed(children):
                if c.is_dir:
                    if c.dir_lba in seen:
                        raise InvalidImageError(f"{c.path} ({view} view): directory at block {c.dir_lba} "
                                                "appears twice (a loop)")
                    seen.add(c.dir_lba)
                    stack.append(c)

    def find(self, path: str, view: str = "rr") -> ISOEntry:
        """The entry at ``path`` ("" or "/" for the root)."""
        entry = self.root(view)
        for part in [p for p in path.split("/") if p]:
            if not entry.is_dir:
                raise InvalidInputError(f"{path}: {entry.path} is not a directory ({view} view)")
            match = [e for e in self.listdir(entry, view) if e.name == part]
            if not match:
                raise InvalidInputError(f"{path}: no {part!r} in /{entry.path} ({view} view)")
            entry = match[0]
        return entry

    # -- file content ------------------------------------------------------------------------
    def iter_content(self, entry: ISOEntry, chunk_bytes: int = 1 << 20) -> Iterator[bytes]:
        """The bytes of a regular file, streamed extent by extent."""
        for start, size in entry.extents:
            done = 0
            while done < size:
                n = min(chunk_bytes, size - done)
                yield self.read_at(start + done, n, entry.path)
                done += n

    def read(self, entry: ISOEntry) -> bytes:
        """The whole content of a (small) regular file."""
        return b"".join(self.iter_content(entry))

    # -- El Torito ---------------------------------------------------------------------------
    def boot_catalog(self) -> list[BootCatalogEntry]:
        """The El Torito catalog's entries (El Torito 1.0, 2.1-2.4): the default entry first."""
        if self.boot_catalog_lba is None:
            return []
        at = self.lba_offset(self.boot_catalog_lba)
        raw = self.read_at(at, SECTOR_BYTES, "boot catalog")
        n = CATALOG_ENTRY_BYTES
        try:
            ValidationEntry.parse(raw[:n])
        except ConstructError as e:
            raise InvalidImageError(f"boot catalog validation entry at byte {at}: {e}") from None
        words = [int.from_bytes(raw[i:i + 2], "little") for i in range(0, n, 2)]
        if sum(words) & 0xFFFF:
            raise InvalidImageError(f"boot catalog validation entry at byte {at}: checksum does not sum to 0")
        platform = raw[1]
        out = [self._catalog_entry(InitialEntry, raw[n:2 * n], at + n, platform, b"")]
        pos = 2 * n
        while pos + n <= len(raw) and raw[pos] in (HEADER_MORE, HEADER_LAST):
            h = SectionHeader.parse(raw[pos:pos + n])
            pos += n
            count = h.number_of_section_entries
            while count and pos + n <= len(raw):
                if raw[pos] == EXTENSION_INDICATOR:
                    pos += n
                    continue
                out.append(self._catalog_entry(SectionEntry, raw[pos:pos + n], at + pos, h.platform_id,
                                               bytes(h.id_string).rstrip(b"\x00")))
                pos += n
                count -= 1
            if h.header_indicator == HEADER_LAST:
                break
        return out

    def _catalog_entry(self, struct_: Construct, raw: bytes, at: int, platform: int,
                       ident: bytes) -> BootCatalogEntry:
        try:
            e = struct_.parse(raw)
        except ConstructError as err:
            raise InvalidImageError(f"boot catalog entry at byte {at}: {err}") from None
        if e.boot_indicator not in (NOT_BOOTABLE, BOOTABLE):
            raise InvalidImageError(f"boot catalog entry at byte {at}: boot_indicator {e.boot_indicator:#04x}, "
                                    f"expected {BOOTABLE:#04x} or {NOT_BOOTABLE:#04x}")
        return BootCatalogEntry(platform_id=platform, bootable=e.boot_indicator == BOOTABLE,
                                media_type=e.boot_media_type, load_segment=e.load_segment,
                                system_type=e.system_type, sector_count=e.sector_count, load_rba=e.load_rba,
                                device_offset=self.lba_offset(e.load_rba), id_string=ident,
                                selection_criteria_type=e.get("selection_criteria_type", 0))


def _apply_tf(entry: ISOEntry, f: dict) -> None:
    """RRIP 4.1.6: time stamps in flag-bit order (creation, modify, access, attributes, ...)."""
    stamps = list(f["time_stamps"])
    conv = _long_time if f["flags"] & _rs.TF_LONG_FORM else _dir_time
    for bit in range(7):
        flag = 1 << bit
        if not f["flags"] & flag:
            continue
        value = conv(_Date(stamps.pop(0))) if stamps else None
        if flag == _rs.TF_MODIFY:
            entry.mtime = value
        elif flag == _rs.TF_ACCESS:
            entry.atime = value
        elif flag == _rs.TF_ATTRIBUTES:
            entry.ctime = value


def _check_name(name: str, where: int) -> None:
    """A name from an image must be one path component: never "/", NUL, "." or ".."."""
    if not name or "/" in name or "\0" in name or name in (".", ".."):
        raise InvalidImageError(f"directory record at byte {where}: file name {name!r} is not a single "
                                "path component (empty, '.', '..', or containing '/' or NUL)")


def looks_like_iso9660(image: str | os.PathLike[str] | BinaryIO, offset: int = 0) -> bool:
    """True if a volume descriptor with "CD001" sits at sector 16 of the volume at ``offset``."""
    own = isinstance(image, (str, os.PathLike))
    f: BinaryIO = open(image, "rb") if isinstance(image, (str, os.PathLike)) else image
    try:
        f.seek(offset + FIRST_DESCRIPTOR_LBA * SECTOR_BYTES)
        return f.read(1 + len(STANDARD_IDENTIFIER))[1:] == STANDARD_IDENTIFIER
    finally:
        if own:
            f.close()
