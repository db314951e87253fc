"""The GUID Partition Table for one logical block size (UEFI 2.10 section 5.3).

Plan, then write: :meth:`GPT.add_partition` records a partition, :meth:`GPT.layout`
(:meth:`GPT.plan`) places and checks everything for a device size and returns a
:class:`GPTLayout`, :meth:`GPT.structures` builds the headers and entry arrays of a
layout, :meth:`GPT.write` / :meth:`GPT.finish` put them on disk.

A hybrid image holds a 512-byte and a 4096-byte GPT describing the same partitions
(:meth:`GPT.derive`); the layout knobs (``primary_entries_offset``,
``backup_entries_offset``, ``backup_header_offset``, ``first_usable_lba``,
``last_usable_lba``), given to the constructor or to :meth:`GPT.layout`, let it keep the
two tables' structures apart, and ``extents``/``data`` let it place the partitions itself.
"""
from __future__ import annotations

import hashlib
import math
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, BinaryIO, Callable

import crcmod.predefined

from ..data import BytesData, DataSource, _pwrite_all, make_source
from ..fileinfo import source_date_epoch
from ..identity import BuildIdentity, sde_is_set
from ..errors import InternalError, InvalidImageError, InvalidInputError, LayoutError
from ..extent import Allocator, Extent, align_up, check_no_overlap
from ..output import Output
from ..writer import Lifecycle
from ._structs import (GPT_ENTRY_SIZE, GPT_HEADER, GPT_HEADER_SIZE, GPT_PARTITION_ENTRY, GPT_REVISION,
                       GPT_SIGNATURE)
from ._structs import GPT_ENTRY_ARRAY_MIN_BYTES as ENTRY_ARRAY_MIN_BYTES
from ._structs import GPT_NAME_MAX_UNITS as NAME_MAX_UNITS
from .enums import (GPT_ATTR_LEGACY_BIOS_BOOTABLE, GPT_ATTR_NO_BLOCK_IO_PROTOCOL,  # noqa: F401  (public here)
                    GPT_ATTR_REQUIRED_PARTITION, GPT_TYPE_BIOS_BOOT, GPT_TYPE_ESP, GPT_TYPE_LINUX_FS,
                    GPT_TYPE_MS_BASIC_DATA)
from .mbr import MBR

DEFAULT_ENTRY_COUNT = 128
_U64_MAX = (1 << 64) - 1
_PARSE_ARRAY_MAX_BYTES = 16 << 20

_crc32 = crcmod.predefined.mkCrcFun("crc-32")


def _as_guid(value: object, where: str) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    if isinstance(value, str):
        try:
            return uuid.UUID(value)
        except ValueError:
            pass
    raise InvalidInputError(f"{where}: expected a GUID (uuid.UUID or its string), found {value!r}")


def _check_block_size(block_size: object, where: str) -> int:
    if not isinstance(block_size, int) or block_size not in (512, 1024, 2048, 4096):
        raise InvalidInputError(f"{where}: block_size must be 512, 1024, 2048 or 4096, found {block_size!r}")
    return block_size


ENTRY_COUNT_MAX = _PARSE_ARRAY_MAX_BYTES // GPT_ENTRY_SIZE
ATTR_RESERVED_BITS = ((1 << 48) - 1) & ~0b111
"""Attributes bits 3..47: reserved by UEFI 5.3.3 (Table 5-8), must be zero."""


def validate_entry_count(value: object, partitions: int = 0) -> int:
    """NumberOfPartitionEntries: 1..131072 (a 16 MiB array), and room for ``partitions``."""
    if isinstance(value, bool) or not isinstance(value, int) or not max(1, partitions) <= value <= ENTRY_COUNT_MAX:
        raise InvalidInputError(f"GPT entry_count: must be an integer {max(1, partitions)}..{ENTRY_COUNT_MAX}"
                                f"{f' (the table holds {partitions} partitions)' if partitions else ''}, "
                                f"found {value!r}")
    return value


def validate_block_multiple(field: str, value: object, block_size: int, positive: bool = False) -> int:
    """A byte count or offset that must be a (positive) multiple of the block size."""
    if (isinstance(value, bool) or not isinstance(value, int) or value < (1 if positive else 0)
            or value % block_size):
        kind = "positive" if positive else "non-negative"
        raise InvalidInputError(f"GPT {field}: must be a {kind} multiple of the block size {block_size}, "
                                f"found {value!r}")
    return value


def validate_knob(field: str, value: object, multiple_of: int) -> int | None:
    """A layout knob: None (the default place) or a non-negative multiple of ``multiple_of``."""
    if value is None:
        return None
    if multiple_of == 1 and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise InvalidInputError(f"GPT {field}: must be None or a non-negative integer (an LBA), found {value!r}")
    return validate_block_multiple(field, value, multiple_of)


@dataclass
class GPTPartition:
    """One partition entry (UEFI 5.3.3, Table 5-6), in bytes of the device.

    ``device_offset`` and ``size_bytes`` must be multiples of ``block_size``; ``None``
    means "placed by :meth:`GPT.layout`" (offset) or "the size of ``data`` rounded up to
    a block, or to the end of the usable space when there is no data" (size).  ``data``
    (a DataSource, bytes, or a host path) is written into the partition by
    :meth:`GPT.write`.  ``unique_guid`` ``None`` is filled in reproducibly by the GPT.
    """

    type_guid: uuid.UUID
    unique_guid: uuid.UUID | None = None
    name: str = ""
    attributes: int = 0
    device_offset: int | None = None
    size_bytes: int | None = None
    data: DataSource | bytes | str | os.PathLike | None = None
    block_size: int = 512
    index: int | None = field(default=None, repr=False, compare=False)
    auto_offset: bool = field(default=False, repr=False, compare=False)
    size_rule: str = field(default="given", repr=False, compare=False)
    auto_guid: bool = field(default=False, repr=False, compare=False)

    @property
    def where(self) -> str:
        num = f" {self.index}" if self.index is not None else ""
        return f"GPT partition{num} ({self.name!r})" if self.name else f"GPT partition{num}"

    def __post_init__(self) -> None:
        where = self.where
        _check_block_size(self.block_size, where)
        self.type_guid = _as_guid(self.type_guid, f"{where}: type_guid")
        if self.type_guid.int == 0:
            raise InvalidInputError(f"{where}: type_guid must not be the zero GUID (it marks an unused entry)")
        if self.unique_guid is not None:
            self.unique_guid = _as_guid(self.unique_guid, f"{where}: unique_guid")
        if not isinstance(self.name, str):
            raise InvalidInputError(f"{where}: name must be a str, found {type(self.name).__name__}")
        if "\0" in self.name:
            raise InvalidInputError(f"{where}: name must not contain NUL characters")
        units = len(self.name.encode("utf-16-le", "surrogatepass")) // 2
        if units > NAME_MAX_UNITS:
            raise InvalidInputError(f"{where}: name is {units} UTF-16 code units long, "
                                    f"PartitionName holds at most {NAME_MAX_UNITS}")
        if not isinstance(self.attributes, int) or not 0 <= self.attributes <= _U64_MAX:
            raise InvalidInputError(f"{where}: attributes must be a 64-bit unsigned integer, found {self.attributes!r}")
        if self.data is not None and not isinstance(self.data, DataSource):
            if isinstance(self.data, (str, os.PathLike)):
                self.data = make_source(data_path=self.data, where=where)
            elif isinstance(self.data, (bytes, bytearray, memoryview)):
                self.data = make_source(data=bytes(self.data), where=where)
            else:
                raise InvalidInputError(f"{where}: data must be a DataSource, bytes or a host path, "
                                        f"found {type(self.data).__name__}")
        bs = self.block_size
        for fname in ("device_offset", "size_bytes"):
            value = getattr(self, fname)
            if value is None:
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise InvalidInputError(f"{where}: {fname} must be a non-negative integer, found {value!r}")
            if value % bs:
                raise InvalidInputError(f"{where}: {fname} {value} is not a multiple of the block size {bs}")
        if self.size_bytes == 0:
            raise InvalidInputError(f"{where}: size_bytes must be at least one block ({bs})")
        if self.data is not None and self.size_bytes is not None and self.data.size_bytes > self.size_bytes:
            raise InvalidInputError(f"{where}: data ({self.data.describe()}) has {self.data.size_bytes} bytes, "
                                    f"more than size_bytes {self.size_bytes}")

    @property
    def source(self) -> DataSource | None:
        """``data`` as the DataSource the constructor made of it."""
        data = self.data
        if data is not None and not isinstance(data, DataSource):
            raise InternalError(f"{self.where}: data was not made a DataSource")
        return data

    @property
    def first_lba(self) -> int:
        """StartingLBA in this partition's block size."""
        if self.device_offset is None:
            raise LayoutError(f"{self.where}: not placed yet (call GPT.layout())")
        return self.device_offset // self.block_size

    @property
    def last_lba(self) -> int:
        """EndingLBA (inclusive) in this partition's block size."""
        if self.device_offset is None or self.size_bytes is None:
            raise LayoutError(f"{self.where}: not placed yet (call GPT.layout())")
        return (self.device_offset + self.size_bytes) // self.block_size - 1

    @property
    def end_offset(self) -> int:
        """Byte offset just past the partition."""
        if self.device_offset is None or self.size_bytes is None:
            raise LayoutError(f"{self.where}: not placed yet (call GPT.layout())")
        return self.device_offset + self.size_bytes


@dataclass(frozen=True, slots=True)
class PlacedPartition:
    """One partition as a layout places it (UEFI 5.3.3, Table 5-6), in bytes of the device."""

    index: int
    type_guid: uuid.UUID
    unique_guid: uuid.UUID
    name: str
    attributes: int
    device_offset: int
    size_bytes: int
    block_size: int
    data: DataSource | None = None

    @property
    def first_lba(self) -> int:
        """StartingLBA in this table's block size."""
        return self.device_offset // self.block_size

    @property
    def last_lba(self) -> int:
        """EndingLBA (inclusive) in this table's block size."""
        return (self.device_offset + self.size_bytes) // self.block_size - 1

    @property
    def end_offset(self) -> int:
        """Byte offset just past the partition."""
        return self.device_offset + self.size_bytes


@dataclass(frozen=True)
class GPTLayout:
    """One GPT placed on a device of ``device_size_bytes``: where its structures lie (all
    in bytes but the LBAs), its disk GUID and its partitions (what :meth:`GPT.layout`
    returns, and what :meth:`GPT.structures` and :meth:`GPT.write` take)."""

    block_size: int
    device_size_bytes: int
    primary_header_offset: int
    primary_entries_offset: int
    backup_entries_offset: int
    backup_header_offset: int
    entries_reserved_bytes: int
    first_usable_lba: int
    last_usable_lba: int
    disk_guid: uuid.UUID = uuid.UUID(int=0)
    entry_count: int = DEFAULT_ENTRY_COUNT
    partitions: tuple[PlacedPartition, ...] = ()

    def extents(self) -> list[Extent]:
        """The byte ranges of the headers and (reserved) entry arrays."""
        bs = self.block_size
        return [Extent(self.primary_header_offset, bs, f"GPT{bs} primary header"),
                Extent(self.primary_entries_offset, self.entries_reserved_bytes, f"GPT{bs} primary entries"),
                Extent(self.backup_entries_offset, self.entries_reserved_bytes, f"GPT{bs} backup entries"),
                Extent(self.backup_header_offset, bs, f"GPT{bs} backup header")]


@dataclass(frozen=True)
class _Knobs:
    """The layout knobs in force for one layout(): the constructor's, or layout()'s arguments."""

    primary_entries_offset: int | None
    backup_entries_offset: int | None
    backup_header_offset: int | None
    first_usable_lba: int | None
    last_usable_lba: int | None


KNOBS = ("primary_entries_offset", "backup_entries_offset", "backup_header_offset", "first_usable_lba",
         "last_usable_lba")


def _guid_from(base: bytes, what: bytes) -> uuid.UUID:
    """A version-4-formatted GUID from sha256(base, what): random-looking, reproducible."""
    digest = hashlib.sha256(base + b"\0" + what).digest()
    return uuid.UUID(bytes=digest[:16], version=4)


class GPT(Lifecycle):
    """A GUID Partition Table for one block size (UEFI 5.3): headers, entry arrays, partitions.

    ``filename`` or ``filehandle`` is where :meth:`finish` writes a whole disk (protective
    MBR, both GPT copies, partition data).  Disk and partition GUIDs not given are random,
    every table its own (UEFI 5.3.1 wants them unique), unless the table is reproducible:
    with ``guid_seed`` they derive from the seed; with SOURCE_DATE_EPOCH set, from the
    partitions' description and data and the time; a coordinator (the hybrid) may give
    :meth:`layout` its own :class:`~sysexport.identity.BuildIdentity`.  Once chosen, a
    table's GUIDs stay the same for every later layout.
    """

    def __init__(self, filename: str | os.PathLike | None = None, *, filehandle: BinaryIO | None = None,
                 block_size: int = 512, disk_guid: uuid.UUID | str | None = None,
                 guid_seed: str | bytes | int | None = None, entry_count: int = DEFAULT_ENTRY_COUNT,
                 alignment_bytes: int = 1 << 20, device_size_bytes: int | None = None,
                 primary_entries_offset: int | None = None, backup_entries_offset: int | None = None,
                 backup_header_offset: int | None = None, first_usable_lba: int | None = None,
                 last_usable_lba: int | None = None) -> None:
        if filename is not None and filehandle is not None:
            raise InvalidInputError("GPT: give filename or filehandle, not both")
        self.filename = filename
        self.filehandle = filehandle
        # Validated properties (the validate_* functions): the same checks now and when set later.
        self._block_size: int
        self._alignment_bytes: int
        self._device_size_bytes: int | None
        self.block_size = block_size
        self.entry_count = entry_count
        self.alignment_bytes = alignment_bytes
        self.device_size_bytes = device_size_bytes
        if isinstance(guid_seed, int) and not isinstance(guid_seed, bool):
            guid_seed = str(guid_seed)
        if guid_seed is not None and not isinstance(guid_seed, (str, bytes)):
            raise InvalidInputError(f"GPT: guid_seed must be str, bytes or int, found {type(guid_seed).__name__}")
        self.guid_seed = guid_seed
        self._auto_disk_guid = disk_guid is None
        self.disk_guid: uuid.UUID | None = None if disk_guid is None else _as_guid(disk_guid, "GPT disk_guid")
        self.primary_entries_offset = primary_entries_offset
        self.backup_entries_offset = backup_entries_offset
        self.backup_header_offset = backup_header_offset
        self.first_usable_lba = first_usable_lba
        self.last_usable_lba = last_usable_lba
        self.partitions: list[GPTPartition] = []
        self.resolved_layout: GPTLayout | None = None
        if self.guid_seed is not None:
            self._resolve_guids()

    # ------------------------------------------------------------------ attributes

    @property
    def block_size(self) -> int:
        """The logical block size the table is made for: 512, 1024, 2048 or 4096."""
        return self._block_size

    @block_size.setter
    def block_size(self, value: int) -> None:
        value = _check_block_size(value, "GPT")
        if getattr(self, "partitions", None):
            raise InvalidInputError(f"GPT block_size: cannot change from {self._block_size} to {value} once "
                                    "partitions are added (use derive() for a table of another block size)")
        self._block_size = value

    @property
    def entry_count(self) -> int:
        """NumberOfPartitionEntries: 1..131072, and at least the partitions added."""
        return self._entry_count

    @entry_count.setter
    def entry_count(self, value: int) -> None:
        self._entry_count = validate_entry_count(value, len(getattr(self, "partitions", ())))

    @property
    def alignment_bytes(self) -> int:
        """Where automatically placed partitions start: a positive multiple of the block size."""
        return self._alignment_bytes

    @alignment_bytes.setter
    def alignment_bytes(self, value: int) -> None:
        self._alignment_bytes = validate_block_multiple("alignment_bytes", value, self._block_size, positive=True)

    @property
    def device_size_bytes(self) -> int | None:
        """The device size finish() and plan() lay out for; None for just large enough."""
        return self._device_size_bytes

    @device_size_bytes.setter
    def device_size_bytes(self, value: int | None) -> None:
        self._device_size_bytes = (None if value is None else
                                   validate_block_multiple("device_size_bytes", value, self._block_size, positive=True))

    @property
    def primary_entries_offset(self) -> int | None:
        """Layout knob: byte offset of the primary entry array (None: LBA 2)."""
        return self._knob_primary_entries_offset

    @primary_entries_offset.setter
    def primary_entries_offset(self, value: int | None) -> None:
        self._knob_primary_entries_offset = validate_knob("primary_entries_offset", value, self._block_size)

    @property
    def backup_entries_offset(self) -> int | None:
        """Layout knob: byte offset of the backup entry array (None: before the backup header)."""
        return self._knob_backup_entries_offset

    @backup_entries_offset.setter
    def backup_entries_offset(self, value: int | None) -> None:
        self._knob_backup_entries_offset = validate_knob("backup_entries_offset", value, self._block_size)

    @property
    def backup_header_offset(self) -> int | None:
        """Layout knob: byte offset of the backup header (None: the last block)."""
        return self._knob_backup_header_offset

    @backup_header_offset.setter
    def backup_header_offset(self, value: int | None) -> None:
        self._knob_backup_header_offset = validate_knob("backup_header_offset", value, self._block_size)

    @property
    def first_usable_lba(self) -> int | None:
        """Layout knob: FirstUsableLBA (None: after the primary array)."""
        return self._knob_first_usable_lba

    @first_usable_lba.setter
    def first_usable_lba(self, value: int | None) -> None:
        self._knob_first_usable_lba = validate_knob("first_usable_lba", value, 1)

    @property
    def last_usable_lba(self) -> int | None:
        """Layout knob: LastUsableLBA (None: before the backup array)."""
        return self._knob_last_usable_lba

    @last_usable_lba.setter
    def last_usable_lba(self, value: int | None) -> None:
        self._knob_last_usable_lba = validate_knob("last_usable_lba", value, 1)

    # ------------------------------------------------------------------ recording

    def add_partition(self, type_guid: uuid.UUID | str, size_bytes: int | None = None, *, name: str = "",
                      unique_guid: uuid.UUID | str | None = None, attributes: int = 0,
                      device_offset: int | None = None,
                      data: DataSource | bytes | str | os.PathLike | None = None) -> GPTPartition:
        """Record a partition (UEFI 5.3.3); nothing is placed or written yet.

        ``size_bytes`` None: the size of ``data`` rounded up to a block, or without data
        the rest of the usable space (only for the last partition).  ``device_offset``
        None: placed after the previous partitions at ``alignment_bytes`` by :meth:`layout`.
        """
        self._require_open("add_partition()")
        index = len(self.partitions) + 1
        if index > self.entry_count:
            raise InvalidInputError(f"GPT partition {index} ({name!r}): the entry array holds only "
                                    f"{self.entry_count} entries (entry_count)")
        if self.partitions and self.partitions[-1].size_rule == "fill":
            raise InvalidInputError(f"GPT partition {index} ({name!r}): partition {index - 1} already fills the "
                                    f"rest of the disk (size_bytes None without data); it must be the last one")
        where = f"GPT partition {index} ({name!r})"
        if isinstance(attributes, int) and 0 <= attributes < (1 << 64) and attributes & ATTR_RESERVED_BITS:
            raise InvalidInputError(f"{where}: attributes {attributes:#x} set bits of 3..47, which UEFI 5.3.3 "
                                    "(Table 5-8) reserves and says must be zero (bits 0-2 are defined, "
                                    "48-63 belong to the partition type)")
        if isinstance(name, str) and not name.isascii():
            try:
                name.encode("utf-16-le")
            except UnicodeEncodeError as e:
                raise InvalidInputError(f"{where}: name has a lone surrogate {name[e.start]!r} at {e.start}; "
                                        "PartitionName is UTF-16 text") from None
        p = GPTPartition(_as_guid(type_guid, f"{where}: type_guid"),
                         None if unique_guid is None else _as_guid(unique_guid, f"{where}: unique_guid"),
                         name, attributes, device_offset, size_bytes, data, block_size=self.block_size, index=index)
        p.auto_offset = device_offset is None
        p.auto_guid = unique_guid is None
        if size_bytes is None:
            source = p.source
            if source is not None:
                p.size_rule = "data"
                p.size_bytes = max(align_up(source.size_bytes, self.block_size), self.block_size)
            else:
                p.size_rule = "fill"
        self.partitions.append(p)
        self.resolved_layout = None
        if self.guid_seed is not None:
            self._resolve_guids()
        return p

    def add(self, spec: GPTPartition | Mapping[str, Any], /) -> GPTPartition:
        """The Writer protocol's add(): a partition, as a GPTPartition (its type, name,
        GUID, attributes, offset, size and data are taken) or a mapping of
        :meth:`add_partition`'s arguments."""
        if isinstance(spec, GPTPartition):
            return self.add_partition(spec.type_guid, spec.size_bytes, name=spec.name, unique_guid=spec.unique_guid,
                                      attributes=spec.attributes, device_offset=spec.device_offset, data=spec.data)
        if isinstance(spec, Mapping):
            args = dict(spec)
            try:
                type_guid = args.pop("type_guid")
            except KeyError:
                raise InvalidInputError("GPT.add: a partition needs type_guid") from None
            return self.add_partition(type_guid, **args)
        raise InvalidInputError(f"GPT.add: expected a GPTPartition or a mapping, found {type(spec).__name__}")

    def add_tree(self, host_dir: str | os.PathLike[str], dest: str = "") -> None:
        """A partition table holds partitions, not files: always an error."""
        raise InvalidInputError(f"{os.fspath(host_dir)}: a GPT holds partitions, not files; add the tree to "
                                "a file system writer and its image as a partition")

    # ------------------------------------------------------------------ GUIDs

    @property
    def reproducible(self) -> bool:
        """True when GUIDs not given derive from the input: ``guid_seed`` is given or
        SOURCE_DATE_EPOCH is set."""
        return self.guid_seed is not None or sde_is_set()

    def _description_digest(self) -> bytes:
        """The partitions' description (independent of block size and placement), their
        data's identity and the time: what a reproducible table's GUIDs derive from."""
        desc = [str(source_date_epoch())]
        for p in self.partitions:
            source = p.source
            size = {"given": str(p.size_bytes), "fill": "fill"}.get(
                p.size_rule, f"data:{source.size_bytes if source is not None else 0}")
            content = hashlib.sha256(source.data).hexdigest() if isinstance(source, BytesData) else ""
            desc.append("|".join((str(p.type_guid), p.name, str(p.attributes), size,
                                  "auto" if p.auto_offset else str(p.device_offset), content)))
        return b"sysexport-gpt-content\0" + hashlib.sha256("\n".join(desc).encode("utf-8")).digest()

    def _resolve_guids(self, identity: BuildIdentity | None = None) -> None:
        """Give the disk and every partition without a GUID one (see the class docstring)."""
        if self.guid_seed is not None:
            seed = self.guid_seed.encode("utf-8") if isinstance(self.guid_seed, str) else self.guid_seed
            base = b"sysexport-gpt-seed\0" + seed
            if self._auto_disk_guid:
                self.disk_guid = _guid_from(base, b"disk")
            for i, p in enumerate(self.partitions):
                if p.auto_guid:
                    p.unique_guid = _guid_from(base, b"partition %d" % i)
            return
        if self.disk_guid is not None and all(p.unique_guid is not None for p in self.partitions):
            return
        if identity is None:
            identity = BuildIdentity(self._description_digest() if sde_is_set() else None)
        if self.disk_guid is None:
            self.disk_guid = identity.guid("GPT disk")
        for i, p in enumerate(self.partitions):
            if p.unique_guid is None:
                p.unique_guid = identity.guid(f"GPT partition {i}")

    # ------------------------------------------------------------------ layout

    def _knobs(self, overrides: Mapping[str, int | None] | None = None) -> _Knobs:
        values: dict[str, Any] = {k: getattr(self, k) for k in KNOBS}
        for key, value in (overrides or {}).items():
            if key not in values:
                raise InvalidInputError(f"GPT.layout: unknown layout knob {key!r}")
            if value is not None:
                values[key] = value
        return _Knobs(**values)

    def _entries_reserved_bytes(self) -> int:
        return align_up(max(self.entry_count * GPT_ENTRY_SIZE, ENTRY_ARRAY_MIN_BYTES), self.block_size)

    def _primary_entries_offset(self, k: _Knobs) -> int:
        return 2 * self.block_size if k.primary_entries_offset is None else k.primary_entries_offset

    def _first_usable_lba(self, k: _Knobs) -> int:
        if k.first_usable_lba is not None:
            return k.first_usable_lba
        end = max(2 * self.block_size, self._primary_entries_offset(k) + self._entries_reserved_bytes())
        return -(-end // self.block_size)

    def _fix_extents(self, extents: Mapping[int, tuple[int, int]]) -> None:
        """Partitions a coordinator placed itself: {index: (device_offset, size_bytes)}; they
        are neither moved by the layout nor grown to fill the disk."""
        by_index = {p.index: p for p in self.partitions}
        for index, (device_offset, size_bytes) in extents.items():
            p = by_index.get(index)
            if p is None:
                raise InvalidInputError(f"GPT.layout: no partition {index} to place")
            for fname, value in (("device_offset", device_offset), ("size_bytes", size_bytes)):
                if not isinstance(value, int) or value < 0 or value % self.block_size:
                    raise LayoutError(f"{p.where}: {fname} {value!r} is not a non-negative multiple of the "
                                      f"block size {self.block_size}")
            p.device_offset, p.size_bytes = device_offset, size_bytes
            p.auto_offset = False
            p.size_rule = "given"

    def _place(self, k: _Knobs) -> None:
        """Give every partition recorded with device_offset None its place (device size not needed)."""
        fixed = [Extent(p.device_offset, p.size_bytes or self.block_size, p.where)
                 for p in self.partitions if not p.auto_offset and p.device_offset is not None]
        alloc = Allocator(self._first_usable_lba(k) * self.block_size, reserved=fixed)
        for p in self.partitions:
            if p.auto_offset:
                size = p.size_bytes if p.size_rule != "fill" and p.size_bytes is not None else self.block_size
                p.device_offset = alloc.alloc(size, self.alignment_bytes, p.where).device_offset
            if p.size_rule == "fill":
                p.size_bytes = None

    def minimal_device_size(self, k: _Knobs | None = None) -> int:
        """Just enough bytes for the partitions and the backup structures, rounded up to alignment."""
        k = k or self._knobs()
        self._place(k)
        fill = [p for p in self.partitions if p.size_rule == "fill"]
        if fill:
            raise LayoutError(f"{fill[0].where} fills the rest of the disk: give device_size_bytes")
        end = max([self._first_usable_lba(k) * self.block_size] + [p.end_offset for p in self.partitions])
        for knob in (k.primary_entries_offset, k.backup_entries_offset):
            if knob is not None:
                end = max(end, knob + self._entries_reserved_bytes())
        if k.backup_header_offset is not None:
            return align_up(max(end, k.backup_header_offset + self.block_size), self.block_size)
        return align_up(end + self._entries_reserved_bytes() + self.block_size, self.alignment_bytes)

    def plan(self) -> GPTLayout:
        """:meth:`layout` for the constructor's device size and knobs (the Writer protocol)."""
        return self.layout()

    def layout(self, device_size_bytes: int | None = None, *,
               extents: Mapping[int, tuple[int, int]] | None = None,
               data: Mapping[int, DataSource] | None = None, identity: BuildIdentity | None = None,
               **knobs: int | None) -> GPTLayout:
        """Place and check everything for a device of ``device_size_bytes`` (UEFI 5.3.1).

        Defaults: primary header at LBA 1, its entry array from LBA 2, the backup header at
        the last LBA with its array just before it, the usable range between the arrays.
        ``knobs`` (``primary_entries_offset``, ``backup_entries_offset``,
        ``backup_header_offset``, ``first_usable_lba``, ``last_usable_lba``) override the
        constructor's; ``extents`` ({partition index: (device_offset, size_bytes)}) fixes
        partitions a coordinator placed; ``data`` ({index: DataSource}) gives partitions
        their contents (replacing what add_partition() was given); ``identity`` is where
        GUIDs not yet chosen come from (a coordinator's build identity).  Raises LayoutError
        naming the partition and the numbers when a partition leaves the usable range or
        overlaps another partition or a GPT structure.
        """
        self._require_unfinished("layout()")
        k = self._knobs(knobs)
        if extents:
            self._fix_extents(extents)
        bs = self.block_size
        if device_size_bytes is None:
            device_size_bytes = self.device_size_bytes
        if device_size_bytes is None:
            device_size_bytes = self.minimal_device_size(k)
        if not isinstance(device_size_bytes, int) or device_size_bytes % bs:
            raise LayoutError(f"GPT: device size {device_size_bytes!r} is not a multiple of the block size {bs}")
        for knob in ("primary_entries_offset", "backup_entries_offset", "backup_header_offset"):
            value = getattr(k, knob)
            if value is not None and (not isinstance(value, int) or value < 0 or value % bs):
                raise LayoutError(f"GPT (block size {bs}): {knob} {value!r} is not a non-negative multiple of {bs}")
        self._resolve_guids(identity)
        self._place(k)
        self._mark_planned()
        reserved = self._entries_reserved_bytes()
        primary_entries = self._primary_entries_offset(k)
        backup_header = device_size_bytes - bs if k.backup_header_offset is None else k.backup_header_offset
        backup_entries = backup_header - reserved if k.backup_entries_offset is None else k.backup_entries_offset
        first_usable = self._first_usable_lba(k)
        last_usable = (min(backup_entries, backup_header) // bs - 1 if k.last_usable_lba is None
                       else k.last_usable_lba)
        where = f"GPT (block size {bs}, device {device_size_bytes} bytes)"
        if backup_entries < 0 or first_usable > last_usable:
            raise LayoutError(f"{where}: no usable space: first usable LBA {first_usable}, "
                              f"last usable LBA {last_usable}")
        placed = self._placed_partitions(where, first_usable, last_usable, data or {})
        structures = [
            Extent(0, bs, "protective MBR block (LBA 0)"),
            Extent(bs, bs, "primary GPT header"),
            Extent(primary_entries, reserved, "primary GPT entry array"),
            Extent(backup_entries, reserved, "backup GPT entry array"),
            Extent(backup_header, bs, "backup GPT header"),
        ]
        try:
            check_no_overlap(structures + [Extent(p.device_offset, p.size_bytes, self.partitions[i].where)
                                           for i, p in enumerate(placed)], device_size_bytes)
        except LayoutError as e:
            raise LayoutError(f"{where}: {e}") from None
        if self.disk_guid is None:
            raise LayoutError(f"{where}: no disk GUID")
        self.resolved_layout = GPTLayout(bs, device_size_bytes, bs, primary_entries, backup_entries, backup_header,
                                         reserved, first_usable, last_usable, self.disk_guid, self.entry_count,
                                         tuple(placed))
        return self.resolved_layout

    def _placed_partitions(self, where: str, first_usable: int, last_usable: int,
                           data: Mapping[int, DataSource]) -> list[PlacedPartition]:
        bs = self.block_size
        placed = []
        for p in self.partitions:
            if p.device_offset is None:
                raise LayoutError(f"{p.where}: not placed")
            if p.size_rule == "fill":
                p.size_bytes = (last_usable + 1) * bs - p.device_offset
                if p.size_bytes <= 0:
                    raise LayoutError(f"{where}: {p.where} starts at byte {p.device_offset}, "
                                      f"past the last usable LBA {last_usable}")
            if p.first_lba < first_usable or p.last_lba > last_usable:
                raise LayoutError(
                    f"{where}: {p.where} spans LBA {p.first_lba}..{p.last_lba} (bytes {p.device_offset}.."
                    f"{p.end_offset}), outside the usable LBAs {first_usable}..{last_usable}")
            if p.size_bytes is None or p.unique_guid is None or p.index is None:
                raise LayoutError(f"{p.where}: not fully placed")
            source = data.get(p.index, p.source)
            if source is not None and not isinstance(source, DataSource):
                raise InvalidInputError(f"{p.where}: data must be a DataSource")
            if source is not None and source.size_bytes > p.size_bytes:
                raise LayoutError(f"{p.where}: data ({source.describe()}) has {source.size_bytes} bytes, "
                                  f"more than the partition's {p.size_bytes}")
            placed.append(PlacedPartition(p.index, p.type_guid, p.unique_guid, p.name, p.attributes,
                                          p.device_offset, p.size_bytes, bs, source))
        return placed

    def extents(self) -> list[Extent]:
        """The byte ranges this GPT's headers and (reserved) entry arrays occupy."""
        return (self.resolved_layout or self.layout()).extents()

    # ------------------------------------------------------------------ bytes

    def _entry_array(self, lay: GPTLayout) -> bytes:
        entries = []
        for p in lay.partitions:
            entries.append(GPT_PARTITION_ENTRY.build(dict(
                PartitionTypeGUID=p.type_guid, UniquePartitionGUID=p.unique_guid,
                StartingLBA=p.first_lba, EndingLBA=p.last_lba, Attributes=p.attributes,
                PartitionName=p.name.encode("utf-16-le", "surrogatepass").ljust(72, b"\0"))))
        return b"".join(entries).ljust(lay.entry_count * GPT_ENTRY_SIZE, b"\0")

    def _header(self, my_lba: int, alternate_lba: int, entries_lba: int, entries_crc: int,
                lay: GPTLayout) -> bytes:
        fields = dict(Revision=GPT_REVISION, HeaderSize=GPT_HEADER_SIZE, HeaderCRC32=0, Reserved=0,
                      MyLBA=my_lba, AlternateLBA=alternate_lba, FirstUsableLBA=lay.first_usable_lba,
                      LastUsableLBA=lay.last_usable_lba, DiskGUID=lay.disk_guid,
                      PartitionEntryLBA=entries_lba, NumberOfPartitionEntries=lay.entry_count,
                      SizeOfPartitionEntry=GPT_ENTRY_SIZE, PartitionEntryArrayCRC32=entries_crc)
        fields["HeaderCRC32"] = _crc32(GPT_HEADER.build(fields))
        return GPT_HEADER.build(fields).ljust(lay.block_size, b"\0")

    def structures(self, lay: GPTLayout | None = None) -> list[tuple[int, bytes]]:
        """(device_offset, bytes) of the primary header, primary array, backup array, backup header.

        CRC32s as UEFI 5.3.2 says: the header's over HeaderSize bytes with its CRC field
        zero, the array's over NumberOfPartitionEntries * SizeOfPartitionEntry bytes.
        Arrays are padded with zeros to a whole block; the rest of each reserved array
        region is left alone.  No protective MBR (see :meth:`MBR.protective`).
        ``lay`` defaults to the last layout (or a new one).
        """
        lay = lay or self.resolved_layout or self.layout()
        bs = lay.block_size
        array = self._entry_array(lay)
        array_crc = _crc32(array)
        array_block = array.ljust(align_up(len(array), bs), b"\0")
        primary_lba, backup_lba = lay.primary_header_offset // bs, lay.backup_header_offset // bs
        return [
            (lay.primary_header_offset,
             self._header(primary_lba, backup_lba, lay.primary_entries_offset // bs, array_crc, lay)),
            (lay.primary_entries_offset, array_block),
            (lay.backup_entries_offset, array_block),
            (lay.backup_header_offset,
             self._header(backup_lba, primary_lba, lay.backup_entries_offset // bs, array_crc, lay)),
        ]

    def derive(self, block_size: int, *, filename: str | os.PathLike | None = None,
               filehandle: BinaryIO | None = None) -> "GPT":
        """A GPT for ``block_size`` describing the same disk: same disk GUID, partition GUIDs,
        types, names, attributes, byte ranges and data (layout knobs are not copied)."""
        _check_block_size(block_size, "GPT.derive")
        self._resolve_guids()
        self._place(self._knobs())
        fill = [p for p in self.partitions if p.size_bytes is None]
        if fill:
            raise LayoutError(f"{fill[0].where} fills the rest of the disk: call layout(device_size) before derive()")
        device_size = self.resolved_layout.device_size_bytes if self.resolved_layout else self.device_size_bytes
        if device_size is not None and device_size % block_size:
            raise InvalidInputError(f"GPT.derive: device size {device_size} is not a multiple of {block_size}")
        other = GPT(filename, filehandle=filehandle, block_size=block_size, disk_guid=self.disk_guid,
                    entry_count=self.entry_count, alignment_bytes=math.lcm(self.alignment_bytes, block_size),
                    device_size_bytes=device_size)
        other.guid_seed = self.guid_seed
        for p in self.partitions:
            q = GPTPartition(p.type_guid, p.unique_guid, p.name, p.attributes, p.device_offset, p.size_bytes,
                             p.data, block_size=block_size, index=p.index)
            q.size_rule = "data" if p.size_rule == "data" else "given"
            other.partitions.append(q)
        return other

    # ------------------------------------------------------------------ writing

    def write(self, fd: int, lay: GPTLayout | None = None, *, with_data: bool = True) -> None:
        """Write both GPT copies of ``lay`` (default: the last layout) and, unless
        ``with_data`` is False, the partitions' data into ``fd``, which must already be as
        large as the device."""
        lay = lay or self.resolved_layout or self.layout()
        for offset, blob in self.structures(lay):
            _pwrite_all(fd, blob, offset)
        if with_data:
            for p in lay.partitions:
                if p.data is not None:
                    p.data.write_to(fd, p.device_offset)

    def finish(self, *, mbr: MBR | None = None, mbr_bootable: bool = False,
               backup_at_device_end: bool = False) -> GPTLayout:
        """Write a whole disk to ``filename``/``filehandle``: protective MBR (UEFI 5.2.3, or
        the ``mbr`` given), both GPT copies, partition data.  The device is
        ``device_size_bytes`` long, or just long enough (see :meth:`minimal_device_size`);
        every byte of it is written or zeroed.  Nothing is left behind when it fails.

        ``backup_at_device_end`` (without ``device_size_bytes``): when the target has a size
        (a block device, a caller's file) larger than that, the disk is the whole target:
        the backup header in its last block, a partition without a size filling it.  Then
        only the MBR, the tables and the partitions' data are written or zeroed; the rest of
        the device is left as it was."""
        self._require_unfinished("finish()")
        if self.filename is None and self.filehandle is None:
            raise InvalidInputError("GPT.finish: no filename or filehandle to write to")
        size = self.device_size_bytes
        to_end = backup_at_device_end and size is None
        fills = any(p.size_rule == "fill" for p in self.partitions)
        # Bad input is an error before the output is opened, unless only the device's size can say.
        lay = None if to_end and fills else self.layout(size)
        with Output(filename=self.filename, filehandle=self.filehandle) as out:
            whole = True
            if to_end and out.capacity is not None:
                end = out.capacity - out.capacity % self.block_size
                if lay is None or end > lay.device_size_bytes:
                    lay, whole = self.layout(end), False
            if lay is None:
                lay = self.layout(size)
            if mbr is None:
                mbr = MBR.protective(lay.device_size_bytes, self.block_size, bootable=mbr_bootable)
            if whole:
                out.prepare(lay.device_size_bytes)
            else:
                bs = lay.block_size
                out.prepare(bs)
                for e in lay.extents():
                    out.prepare(e.size_bytes, start=e.device_offset)
                for p in lay.partitions:
                    if p.data is not None:
                        out.prepare(align_up(p.data.size_bytes, bs), start=p.device_offset)
            mbr.write(out.fd)
            self.write(out.fd, lay)
        self._mark_finished()
        return lay

    # ------------------------------------------------------------------ reading

    table: "GPTTable | None" = None
    """For a table read by :meth:`parse`: every field of both headers and entries as found
    (:class:`~sysexport.partition.probe.GPTTable`)."""

    @classmethod
    def parse(cls, source: int | BinaryIO | bytes | str | os.PathLike, block_size: int = 512, *,
              check_backup: bool = True) -> "GPT":
        """Read a GPT (UEFI 5.3.2) strictly: the primary header at LBA 1 and its entries must
        be valid, and unless ``check_backup`` is False the backup (at the primary's
        AlternateLBA) too, agreeing with the primary.  Verifies signature and CRC32s, every
        size and offset against the image; InvalidImageError names the field that is wrong.
        (:func:`sysexport.partition.probe.read_gpt` is the lenient reader: a bad primary
        with a good backup reads the backup, recording the problem, as sgdisk does.)"""
        from .probe import read_gpt
        _check_block_size(block_size, "GPT.parse")
        if isinstance(source, (str, os.PathLike)):
            with open(source, "rb") as f:
                return cls.parse(f.fileno(), block_size, check_backup=check_backup)
        read, size = _reader(source)
        t = read_gpt(read, size, block_size)
        if t is None:
            block = read(block_size, 8)
            raise InvalidImageError(f"GPT primary header (block size {block_size}, byte {block_size}): Signature is "
                                    f"{block!r}, expected {GPT_SIGNATURE!r}")
        if t.primary_error is not None:
            raise InvalidImageError(t.primary_error)
        if check_backup and (t.backup_error or t.mismatches):
            raise InvalidImageError(t.backup_error or t.mismatches[0])
        if t.entry_errors:
            raise InvalidImageError(t.entry_errors[0])
        gpt = t.to_gpt()
        gpt.table = t
        return gpt


def _reader(source: int | BinaryIO | bytes) -> tuple[Callable[[int, int], bytes], int]:
    """``read(offset, n)`` over ``source`` and its size in bytes."""
    from .probe import file_reader, image_size
    if isinstance(source, (bytes, bytearray, memoryview)):
        buf = bytes(source)
        return (lambda offset, n: buf[offset:offset + n]), len(buf)
    if isinstance(source, int) or (hasattr(source, "read") and hasattr(source, "seek")):
        return file_reader(source), image_size(source)
    raise InvalidInputError(f"GPT.parse: expected a file descriptor, file object, bytes or path, "
                            f"found {type(source).__name__}")


if TYPE_CHECKING:
    from .probe import GPTTable
