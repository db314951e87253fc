"""Read a FAT12/16/32 volume (fatgen103) as the Linux kernel and libblkid read it.

:class:`FATVolume` is the reader: the boot sector's BPB, the geometry, the FAT (read lazily,
never more than the image holds), cluster chains as runs of clusters, and directories as
:class:`DirRecord` values with their long or short names.  Everything is parsed from the
image with the declarations of ``_structs.py`` (directory entries, long-name entries and
FAT tables through their precompiled equivalents in ``_structs.FAST_CODECS``), independent
of the writer.  :class:`sysexport.vfat.view.FATView` is the view built on it (walk, stat,
open, extract); :class:`VFATReader` is the older list-and-read interface the tests and
``inspect`` use.

What is decided as whom (what an entry's Stat holds is in sysexport/vfat/view.py):

* The type: FAT32 when the BPB has the FAT32 layout (BPB_FATSz16 == 0 and BPB_FATSz32 != 0),
  whatever the cluster count, as Linux's ``fat_fill_super`` and libblkid decide (so a small
  FAT32, as ``mkfs.fat -F 32`` makes on 40 MiB, opens); otherwise FAT12 up to 4,084 clusters
  and FAT16 above, by the cluster count (fatgen103, Linux).
* The label: :attr:`FATVolume.label` is the root directory's volume-label entry (where
  Windows, mlabel and fatlabel write it; libblkid's ``LABEL``, mtools' and fatlabel's
  label), None when there is none; :attr:`FATVolume.boot_label` is BS_VolLab of the boot
  sector (libblkid's ``LABEL_FATBOOT``; None for "NO NAME" or without the 0x29 signature).
* Short names: decoded in the OEM code page (``codepage``, cp437 by default, as Linux's
  ``codepage=437``), a first byte 0x05 read as 0xE5, the NT case bits (DIR_NTRes 0x08
  base, 0x10 extension in lower case) applied when there is no long name.
* Long names: the slots before a short entry are used when their ordinals run down to 1
  and every checksum matches the short name (fatgen103 ChkSum); otherwise the short name
  is shown, as Linux does, and the mismatch is recorded as a problem.
* Times: the stored local times read as UTC (what Linux's vfat shows with ``tz=UTC``, and
  with its default when the kernel's timezone is unset; mtools prints the stored fields as
  they are), computed with the kernel's ``fat_time_fat2unix`` arithmetic, so out-of-range
  fields give the same instant as on Linux.  See :func:`fat_time`.

Hostile images: every offset and size is checked against the image before it is read;
the FAT is read in bounded pages; chains are bounded by the cluster count (files: by
their size), loops detected, and every cluster claimed by one entry (a chain running into
another's stops there as a cross-link, so a volume whose entries all lead into one long
chain costs one walk of it); a directory is at most 2 MiB (65,536 entries, fatgen103).
A BPB that cannot describe a volume raises :class:`InvalidImageError` naming the field and
its byte offset; anything else wrong (a bad chain, an orphaned long name, a name that
cannot be a path component) is recorded in :attr:`FATVolume.problems` and that entry is
skipped or marked, while the rest of the volume is read.
"""
from __future__ import annotations

import os
import struct
import sys
from bisect import bisect_right
from array import array
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Iterator

from construct import ConstructError

from ..errors import InvalidImageError, InvalidInputError
from ._structs import (ATTR_ARCHIVE, ATTR_DIRECTORY, ATTR_HIDDEN, ATTR_LONG_NAME, ATTR_LONG_NAME_MASK,
                       ATTR_READ_ONLY, ATTR_SYSTEM, ATTR_VOLUME_ID, BOOT_SIGNATURE, BPB_COMMON, BS_EXT_16,
                       BS_EXT_32, DIR_ENTRY_BYTES, DIR_ENTRY_FAST, DIR_NAME_END, DIR_NAME_FREE, DIR_NAME_KANJI,
                       DOT_NAME, DOTDOT_NAME, EOC_MIN, FAT32_ENTRY_MASK, LFN_ENTRY_FAST, LFN_LAST_FLAG,
                       LFN_ORDINAL_MASK, NTRES_LOWER_BASE, NTRES_LOWER_EXT)

BOOT_SECTOR_BYTES = 512
"""The BPB and the signature lie in the first 512 bytes, whatever the sector size."""
SIGNATURE_OFFSET = 510
EXT_BOOT_SIGNATURE = 0x29           # BS_BootSig: BS_VolID, BS_VolLab and BS_FilSysType are present
NO_NAME = b"NO NAME    "            # BS_VolLab of a volume without a label
FAT12_MAX_CLUSTERS = 0xFF4          # Linux MAX_FAT12, fatgen103: up to 4,084 clusters is FAT12
FAT16_MAX_CLUSTERS = 0xFFF4         # Linux MAX_FAT16: a FAT16 layout with more is clamped
FAT32_MAX_CLUSTERS = 0x0FFFFFF5     # cluster numbers stay below the bad-cluster mark 0x0FFFFFF7
MAX_CLUSTERS = {12: FAT12_MAX_CLUSTERS, 16: FAT16_MAX_CLUSTERS, 32: FAT32_MAX_CLUSTERS}
BAD_CLUSTER = {12: 0xFF7, 16: 0xFFF7, 32: 0x0FFFFFF7}
ENTRY_BITS = {12: 12, 16: 16, 32: 32}
MAX_DIR_BYTES = 65536 * DIR_ENTRY_BYTES
"""fatgen103: a directory holds at most 65,536 entries (2 MiB); longer chains are cut."""
LFN_MAX_SLOTS = 20                  # 255 UTF-16 units in 13-unit slots (Linux: ceil(256 * 2 / 26))
MEDIA_VALID = frozenset((0xF0, *range(0xF8, 0x100)))   # Linux fat_valid_media, libblkid
FAT32_PAGE_ENTRIES = 16384          # FAT32 is read in pages of 64 KiB ...
FAT32_PAGES_CACHED = 64             # ... of which at most 4 MiB are kept
ROOT_OWNER = -1                     # the root directory's chain has no directory entry
CHAIN_CACHE_RUNS = 262144           # cluster runs of entry chains remembered at most (then forgotten)
FSINFO_LEAD = 0x41615252            # FSI_LeadSig "RRaA"
FSINFO_STRUC = 0x61417272           # FSI_StrucSig "rrAa"
FSINFO_TRAIL = 0xAA550000           # FSI_TrailSig
_DAYS_BEFORE_MONTH = (0, 0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334, 0, 0, 0)
"""Linux fs/fat/misc.c days_in_year[]: days before month 1..12 (0 for the invalid 0, 13-15)."""
_DAYS_1970_TO_1980 = 365 * 10 + 2
_YEAR_2100 = 120
_U32 = struct.Struct("<I")
_U32_CODE = "I" if array("I").itemsize == 4 else "L"


def fat_time(date: int, time: int = 0, centiseconds: int = 0) -> float:
    """Seconds since 1970 (UTC) of a FAT date, time and 10 ms count, as Linux computes them
    (fs/fat/misc.c ``fat_time_fat2unix`` with no timezone offset): year 1980 + bits 9-15,
    month bits 5-8 (0 taken as 1), day bits 0-4 (0 taken as 1), hours bits 11-15, minutes
    bits 5-10, two-second units bits 0-4, plus ``centiseconds`` (DIR_CrtTimeTenth,
    0..199).  Fields out of range are not refused: they add up as on Linux."""
    year = date >> 9
    month = max(1, (date >> 5) & 0xF)
    day = max(1, date & 0x1F) - 1
    leap_days = (year + 3) // 4
    if year > _YEAR_2100:
        leap_days -= 1
    if year & 3 == 0 and year != _YEAR_2100 and month > 2:
        leap_days += 1
    seconds = ((time & 0x1F) << 1) + ((time >> 5) & 0x3F) * 60 + (time >> 11) * 3600
    days = year * 365 + leap_days + _DAYS_BEFORE_MONTH[month] + day + _DAYS_1970_TO_1980
    return float(seconds + days * 86400) + centiseconds / 100


def lfn_checksum(short: bytes) -> int:
    """fatgen103 ChkSum(): rotate right and add, over the 11 bytes of the short name."""
    s = 0
    for b in short:
        s = (((s & 1) << 7) + (s >> 1) + b) & 0xFF
    return s


def _component(name: str) -> bool:
    """Whether a name can be one path component (not empty, '.', '..', no '/' or NUL)."""
    return bool(name) and name not in (".", "..") and "/" not in name and "\0" not in name


def _power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


@dataclass(slots=True)
class DirRecord:
    """One entry of a directory as read (not '.', '..', deleted entries or the label).

    ``name`` is the long name when valid long-name slots precede the short entry, else the
    decoded 8.3 name with the NT case bits applied; ``short_name`` the 8.3 name as stored
    (upper case, "BASE.EXT").  ``offset`` is the image byte offset of the short entry,
    ``lfn_offset`` that of its first long-name slot (None without).  Times are the raw
    fields of the entry (see :func:`fat_time`).
    """

    name: str
    short_name: str
    attr: int
    ntres: int
    first_cluster: int
    size_bytes: int
    crt_tenth: int
    crt_time: int
    crt_date: int
    acc_date: int
    wrt_time: int
    wrt_date: int
    offset: int
    lfn_offset: int | None = None
    has_long_name: bool = False

    @property
    def is_dir(self) -> bool:
        return bool(self.attr & ATTR_DIRECTORY)

    @property
    def mtime(self) -> float:
        return fat_time(self.wrt_date, self.wrt_time)

    @property
    def atime(self) -> float:
        return fat_time(self.acc_date)

    @property
    def ctime(self) -> float:
        """The creation time with its 10 ms field (what Linux 6.1's vfat reports as ctime)."""
        return fat_time(self.crt_date, self.crt_time, self.crt_tenth)


@dataclass(frozen=True, slots=True)
class Chain:
    """A cluster chain as far as it could be followed: ``runs`` of (first cluster, count),
    contiguous clusters merged; ``error`` says why it stopped early (None when it ended
    where it should), naming the FAT entry and its byte offset."""

    runs: tuple[tuple[int, int], ...]
    error: str | None = None
    clusters: int = 0
    continues: bool = False
    """For a chain cut at a wanted length: whether the FAT goes on past it (not end-of-chain)."""


@dataclass
class Directory:
    """A directory as read: its records in order, its byte extents (image offset, bytes) and
    size, and for the root the volume label entry (decoded, and its image byte offset)."""

    records: list[DirRecord] = field(default_factory=list)
    extents: tuple[tuple[int, int], ...] = ()
    size_bytes: int = 0
    label: str | None = None
    label_offset: int | None = None


class FATVolume:
    """A FAT12/16/32 volume at ``volume_offset`` of ``file`` (a seekable binary file).

    ``image_size`` bounds every read (the file's size when None); ``volume_size`` is the
    space the volume may use (a partition's size; by default the rest of the image): a BPB
    claiming more is recorded as a problem, and clusters past the end cannot be read.
    ``codepage`` decodes 8.3 names and labels (a Python codec name: "cp437", "cp850", ...).

    Raises InvalidImageError when the boot sector cannot describe a FAT volume (Linux
    refuses it too): BPB_BytsPerSec not a power of two 512..4096, BPB_SecPerClus not a
    power of two, BPB_RsvdSecCnt or BPB_NumFATs 0, an invalid BPB_Media, no FAT size, no
    total sector count, regions that end past the volume, a FAT starting past the image.
    """

    def __init__(self, file: BinaryIO, image_size: int | None = None, volume_offset: int = 0, *,
                 volume_size: int | None = None, codepage: str = "cp437") -> None:
        self.file = file
        if image_size is None:
            image_size = file.seek(0, os.SEEK_END)
        self.image_size = int(image_size)
        self.volume_offset = int(volume_offset)
        self.codepage = codepage
        try:
            bytes(range(256)).decode(codepage, "replace")
        except LookupError:
            raise InvalidInputError(f"FAT codepage: {codepage!r} is not a text encoding Python knows") from None
        self.problems: list[str] = []
        self._problem_set: set[str] = set()
        if self.volume_offset < 0 or self.volume_offset + BOOT_SECTOR_BYTES > self.image_size:
            raise InvalidImageError(f"FAT boot sector at byte {self.volume_offset}: the image ends at byte "
                                    f"{self.image_size}")
        available = self.image_size - self.volume_offset
        if volume_size is not None:
            available = min(available, int(volume_size))
        self.available_bytes = available
        self._parse_boot_sector(self.read(self.volume_offset, BOOT_SECTOR_BYTES))
        self._fat_cache: OrderedDict[int, array[int]] = OrderedDict()
        self._small_fat: array[int] | list[int] | None = None
        self._marks: bytearray | None = None
        self._claimed: bytearray | None = None
        self._chains: dict[int, tuple[int, Chain]] = {}
        self._cached_runs = 0
        self.fsinfo_free_count: int | None = None
        self.fsinfo_next_free: int | None = None
        if self.fat_type != 32:
            self._load_small_fat()
        else:
            self._check_fsinfo()
        self._check_backup_boot_sector()
        self._root_dir: Directory | None = None

    # --- the boot sector ----------------------------------------------------------------------
    def _parse_boot_sector(self, raw: bytes) -> None:
        at = self.volume_offset
        where = f"FAT boot sector at byte {at}"
        try:
            bpb = BPB_COMMON.parse(raw[:36])
            ext16 = BS_EXT_16.parse(raw[36:62])
            ext32 = BS_EXT_32.parse(raw[36:90])
        except ConstructError as e:          # cannot happen on 512 bytes; kept as a guard
            raise InvalidImageError(f"{where}: {e}") from None
        self.bpb: dict[str, Any] = {k: v for k, v in bpb.items() if not k.startswith("_")}
        ss = bpb.BPB_BytsPerSec
        if not _power_of_two(ss) or not 512 <= ss <= 4096:
            raise InvalidImageError(f"{where}: BPB_BytsPerSec (byte {at + 11}) is {ss}, not a power of two "
                                    "512..4096: not a FAT volume")
        spc = bpb.BPB_SecPerClus
        if not _power_of_two(spc):
            raise InvalidImageError(f"{where}: BPB_SecPerClus (byte {at + 13}) is {spc}, not a power of two")
        if bpb.BPB_RsvdSecCnt == 0:
            raise InvalidImageError(f"{where}: BPB_RsvdSecCnt (byte {at + 14}) is 0 (the boot sector is reserved)")
        if bpb.BPB_NumFATs == 0:
            raise InvalidImageError(f"{where}: BPB_NumFATs (byte {at + 16}) is 0")
        if bpb.BPB_Media not in MEDIA_VALID:
            raise InvalidImageError(f"{where}: BPB_Media (byte {at + 21}) is {bpb.BPB_Media:#04x}, not 0xF0 "
                                    "or 0xF8..0xFF")
        is32 = bpb.BPB_FATSz16 == 0
        if is32 and ext32.BPB_FATSz32 == 0:
            raise InvalidImageError(f"{where}: BPB_FATSz16 (byte {at + 22}) and BPB_FATSz32 (byte {at + 36}) "
                                    "are both 0")
        ext = ext32 if is32 else ext16
        self.bpb.update({k: v for k, v in ext.items() if not k.startswith("_")})
        total = bpb.BPB_TotSec16 or bpb.BPB_TotSec32
        if total == 0:
            raise InvalidImageError(f"{where}: BPB_TotSec16 (byte {at + 19}) and BPB_TotSec32 (byte {at + 32}) "
                                    "are both 0")
        if raw[SIGNATURE_OFFSET:BOOT_SECTOR_BYTES] != BOOT_SIGNATURE:
            self.problem(f"{where}: no 0x55 0xAA signature at byte {at + SIGNATURE_OFFSET} "
                         f"(found {raw[SIGNATURE_OFFSET:BOOT_SECTOR_BYTES].hex()}); Linux reads it anyway")
        fat_sectors = ext32.BPB_FATSz32 if is32 else bpb.BPB_FATSz16
        root_entries = bpb.BPB_RootEntCnt
        if (root_entries * DIR_ENTRY_BYTES) % ss:
            self.problem(f"{where}: BPB_RootEntCnt {root_entries} does not fill whole sectors (Linux refuses "
                         "such a volume)")
        if is32 and root_entries:
            self.problem(f"{where}: BPB_RootEntCnt is {root_entries} on FAT32 (should be 0)")
        root_sectors = (root_entries * DIR_ENTRY_BYTES + ss - 1) // ss
        first_data = bpb.BPB_RsvdSecCnt + bpb.BPB_NumFATs * fat_sectors + root_sectors
        if first_data > total:
            raise InvalidImageError(
                f"{where}: the reserved sectors ({bpb.BPB_RsvdSecCnt}), {bpb.BPB_NumFATs} FATs of {fat_sectors} "
                f"sectors and the root directory ({root_sectors} sectors) end at sector {first_data}, past the "
                f"volume's {total} sectors")
        clusters = (total - first_data) // spc
        fat_type = 32 if is32 else (12 if clusters <= FAT12_MAX_CLUSTERS else 16)
        capacity = fat_sectors * ss * 8 // ENTRY_BITS[fat_type] - 2
        if clusters > capacity:
            self.problem(f"{where}: {clusters} clusters but the FAT of {fat_sectors} sectors holds entries for "
                         f"{max(capacity, 0)}; only those are used (as Linux does)")
            clusters = max(capacity, 0)
        if clusters > MAX_CLUSTERS[fat_type]:
            self.problem(f"{where}: {clusters} clusters, more than FAT{fat_type} can number; only "
                         f"{MAX_CLUSTERS[fat_type]} are used")
            clusters = MAX_CLUSTERS[fat_type]
        # A FAT32 BPB with fewer than 65,525 clusters is no problem: Linux and blkid decide FAT32 by
        # the layout (mkfs.fat -F 32 makes such volumes on small sizes).
        self.fat_type = fat_type
        self.sector_size = ss
        self.cluster_size = ss * spc
        self.cluster_count = clusters
        self.total_sectors = total
        self.volume_bytes = total * ss
        self.fat_sectors = fat_sectors
        self.fat_count = bpb.BPB_NumFATs
        self.fat_bytes = fat_sectors * ss
        self.fat_offset = bpb.BPB_RsvdSecCnt * ss                       # all offsets: bytes in the volume
        self.root_offset = (bpb.BPB_RsvdSecCnt + bpb.BPB_NumFATs * fat_sectors) * ss
        self.root_bytes = root_sectors * ss
        self.root_entries = root_entries
        self.data_offset = first_data * ss
        self.root_cluster = ext32.BPB_RootClus if is32 else 0
        self.volume_id: int = ext.BS_VolID
        self.oem_name = bytes(bpb.BS_OEMName).decode(self.codepage, "replace").rstrip()
        self.boot_signature = ext.BS_BootSig
        self.fs_type_string = bytes(ext.BS_FilSysType).decode("ascii", "replace").rstrip()
        self.boot_label: str | None = None
        if ext.BS_BootSig == EXT_BOOT_SIGNATURE and bytes(ext.BS_VolLab) != NO_NAME:
            self.boot_label = self._decode_label(bytes(ext.BS_VolLab))
        self.active_fat = 0
        if is32 and ext32.BPB_ExtFlags & 0x80:
            active = ext32.BPB_ExtFlags & 0x0F
            if active >= self.fat_count:
                self.problem(f"{where}: BPB_ExtFlags names FAT {active} active, but there are {self.fat_count}; "
                             "FAT 0 is used")
            else:
                self.active_fat = active
        if self.volume_bytes > self.available_bytes:
            self.problem(f"{where}: the volume claims {self.volume_bytes} bytes ({total} sectors), but only "
                         f"{self.available_bytes} are there")
        fat_start = self.volume_offset + self.fat_offset + self.active_fat * self.fat_bytes
        if fat_start >= self.image_size:
            raise InvalidImageError(f"{where}: the FAT at byte {fat_start} starts past the end of the image "
                                    f"({self.image_size} bytes)")
        self._fat_start = fat_start
        present = min(self.fat_bytes, self.image_size - fat_start) * 8 // ENTRY_BITS[fat_type]
        self.fat_entries = min(self.cluster_count + 2, present)
        if self.fat_entries < self.cluster_count + 2:
            self.problem(f"FAT at byte {fat_start}: the image ends after {self.fat_entries} of its "
                         f"{self.cluster_count + 2} entries")

    def _decode_label(self, raw: bytes) -> str:
        if raw[:1] == bytes((DIR_NAME_KANJI,)):
            raw = bytes((DIR_NAME_FREE,)) + raw[1:]
        return raw.decode(self.codepage, "replace").rstrip(" ")

    def _check_fsinfo(self) -> None:
        sector = self.bpb.get("BPB_FSInfo", 0)
        if not sector or sector in (0xFFFF,):
            return
        at = self.volume_offset + sector * self.sector_size
        if sector >= self.bpb["BPB_RsvdSecCnt"] or at + 512 > self.image_size:
            self.problem(f"FAT32 FSInfo: BPB_FSInfo {sector} is not a reserved sector of the image")
            return
        raw = self.read(at, 512)
        lead, = _U32.unpack_from(raw, 0)
        struc, free, nxt = struct.unpack_from("<III", raw, 484)
        trail, = _U32.unpack_from(raw, 508)
        self.fsinfo_free_count = free
        self.fsinfo_next_free = nxt
        if lead != FSINFO_LEAD or struc != FSINFO_STRUC or trail != FSINFO_TRAIL:
            self.problem(f"FAT32 FSInfo at byte {at}: signatures {lead:#010x} {struc:#010x} {trail:#010x}, "
                         f"expected {FSINFO_LEAD:#010x} {FSINFO_STRUC:#010x} {FSINFO_TRAIL:#010x}")

    def _check_backup_boot_sector(self) -> None:
        if self.fat_type != 32:
            return
        sector = self.bpb.get("BPB_BkBootSec", 0)
        if not sector or sector == 0xFFFF:
            return
        at = self.volume_offset + sector * self.sector_size
        if sector >= self.bpb["BPB_RsvdSecCnt"] or at + 512 > self.image_size:
            self.problem(f"FAT32 boot sector: BPB_BkBootSec {sector} is not a reserved sector of the image")
            return
        if self.read(at, 90) != self.read(self.volume_offset, 90):
            self.problem(f"FAT32 backup boot sector at byte {at}: its BPB differs from the boot sector's")

    # --- reading ------------------------------------------------------------------------------
    def problem(self, message: str) -> None:
        """Record a problem (once)."""
        if message not in self._problem_set and len(self.problems) < 100_000:
            self._problem_set.add(message)
            self.problems.append(message)

    def read(self, offset: int, length: int) -> bytes:
        """``length`` bytes at image byte ``offset``; InvalidImageError when they are not all there."""
        if offset < 0 or length < 0 or offset + length > self.image_size:
            raise InvalidImageError(f"FAT volume at byte {self.volume_offset}: [{offset}, {offset + length}) lies "
                                    f"outside the image ({self.image_size} bytes)")
        self.file.seek(offset)
        data = self.file.read(length)
        if len(data) != length:
            raise InvalidImageError(f"FAT volume at byte {self.volume_offset}: the image ends inside "
                                    f"[{offset}, {offset + length})")
        return data

    def cluster_offset(self, cluster: int) -> int:
        """Image byte offset of a data cluster (2 ..)."""
        return self.volume_offset + self.data_offset + (cluster - 2) * self.cluster_size

    def fat_entry_offset(self, cluster: int) -> int:
        """Image byte offset of a cluster's FAT entry (its first byte)."""
        return self._fat_start + cluster * ENTRY_BITS[self.fat_type] // 8

    def fat_entry(self, cluster: int) -> int:
        """The FAT entry of ``cluster`` (FAT32's reserved high bits cleared); callers check
        0 <= cluster < fat_entries."""
        if self.fat_type == 32:
            page_no = cluster // FAT32_PAGE_ENTRIES
            page = self._fat_cache.get(page_no)
            if page is None:
                page = self._load_page(page_no)
            else:
                self._fat_cache.move_to_end(page_no)
            return page[cluster % FAT32_PAGE_ENTRIES] & FAT32_ENTRY_MASK
        assert self._small_fat is not None
        return self._small_fat[cluster]

    def _load_small_fat(self) -> None:
        """FAT12 and FAT16 tables are read whole: at most 4,086 or 65,526 entries (128 KiB)."""
        if self.fat_type == 12:
            nbytes = min((self.fat_entries + 1) // 2 * 3, self.fat_bytes, self.image_size - self._fat_start)
        else:
            nbytes = self.fat_entries * 2
        table = _unpack_fat(self.read(self._fat_start, nbytes), self.fat_type, self.fat_entries)
        self.fat_entries = min(self.fat_entries, len(table))
        self._small_fat = table

    def _load_page(self, page_no: int) -> array[int]:
        first = page_no * FAT32_PAGE_ENTRIES
        count = min(FAT32_PAGE_ENTRIES, self.fat_entries - first)
        page = array(_U32_CODE, self.read(self._fat_start + first * 4, count * 4))
        if sys.byteorder != "little":
            page.byteswap()
        self._fat_cache[page_no] = page
        if len(self._fat_cache) > FAT32_PAGES_CACHED:
            self._fat_cache.popitem(last=False)
        return page

    def _mark_bits(self, runs: list[list[int]]) -> bytearray:
        marks = self._marks
        if marks is None:
            marks = self._marks = bytearray((self.fat_entries + 7) // 8)
        top = self.fat_entries
        for start, count in runs:
            for c in range(start, min(start + count, top)):
                marks[c >> 3] |= 1 << (c & 7)
        return marks

    def _clear_bits(self, runs: list[list[int]]) -> None:
        marks = self._marks
        if marks is None:
            return
        for start, count in runs:
            end = min(start + count, self.fat_entries)
            if start >= end:
                continue
            lo, hi = (start + 7) >> 3, end >> 3
            if hi > lo:
                marks[lo:hi] = bytes(hi - lo)
                for c in range(start, lo << 3):
                    marks[c >> 3] &= ~(1 << (c & 7)) & 0xFF
                for c in range(hi << 3, end):
                    marks[c >> 3] &= ~(1 << (c & 7)) & 0xFF
            else:
                for c in range(start, end):
                    marks[c >> 3] &= ~(1 << (c & 7)) & 0xFF

    def chain(self, first: int, want: int | None = None, what: str = "cluster chain", *,
              claim: bool = False) -> Chain:
        """Follow the chain from cluster ``first``: ``want`` clusters (a file's size), or to its
        end (a directory; at most the cluster count).  Never raises for a bad chain: the
        result says where and why it stopped.  With ``claim`` the clusters are marked as
        taken (:meth:`entry_chain`), and a cluster another chain took ends this one as a
        cross-link."""
        limit = self.cluster_count if want is None else min(want, self.cluster_count + 1)
        runs: list[list[int]] = []
        eoc = EOC_MIN[self.fat_type]
        bad = BAD_CLUSTER[self.fat_type]
        top = self.cluster_count + 2
        entries = self.fat_entries
        c = first
        taken = 0
        error: str | None = None
        claimed = self._claimed_bits() if claim else None
        checking = False          # set once the chain jumps backwards: from then on look for repeats
        marks: bytearray | None = None
        prev = -1
        while True:
            if not 2 <= c < top:
                error = f"{what}: cluster {c:#x} is out of range (2..{top - 1:#x})"
                break
            if claimed is not None and c < entries:
                if claimed[c >> 3] & (1 << (c & 7)):
                    if any(a <= c < a + n for a, n in runs):
                        error = f"{what}: the chain loops back to cluster {c:#x}"
                    else:
                        error = f"{what}: cluster {c:#x} belongs to another entry's chain too (a cross-link)"
                    break
                claimed[c >> 3] |= 1 << (c & 7)
            elif claimed is None and c < entries:
                if c <= prev and not checking:
                    checking = True
                    marks = self._mark_bits(runs)
                if checking:
                    assert marks is not None
                    if marks[c >> 3] & (1 << (c & 7)):
                        error = f"{what}: the chain loops back to cluster {c:#x}"
                        break
                    marks[c >> 3] |= 1 << (c & 7)
            if runs and runs[-1][0] + runs[-1][1] == c:
                runs[-1][1] += 1
            else:
                runs.append([c, 1])
            taken += 1
            prev = c
            if c >= entries:
                error = (f"{what}: the FAT entry of cluster {c:#x} (byte {self.fat_entry_offset(c)}) lies past "
                         "the end of the image")
                break
            nxt = self.fat_entry(c)
            if want is not None and taken >= want:
                if checking:
                    self._clear_bits(runs)
                return Chain(tuple((a, n) for a, n in runs), None, taken, not nxt >= bad)
            if nxt >= eoc or nxt == bad:
                if nxt == bad:
                    error = (f"{what}: cluster {c:#x} is followed by the bad-cluster mark (FAT entry at byte "
                             f"{self.fat_entry_offset(c)})")
                elif want is not None:
                    error = (f"{what}: the chain ends after {taken} clusters (FAT entry of cluster {c:#x} at "
                             f"byte {self.fat_entry_offset(c)}), {want} are needed")
                break
            if nxt == 0:
                error = (f"{what}: cluster {c:#x} is followed by a free cluster (FAT entry at byte "
                         f"{self.fat_entry_offset(c)} is 0)")
                break
            if taken >= limit:
                error = f"{what}: the chain is longer than the volume's {self.cluster_count} clusters (a loop)"
                break
            c = nxt
        if checking:
            self._clear_bits(runs)
        return Chain(tuple((a, n) for a, n in runs), error, taken, False)

    def _claimed_bits(self) -> bytearray:
        if self._claimed is None:
            self._claimed = bytearray((self.fat_entries + 7) // 8)
        return self._claimed

    def entry_chain(self, owner: int, first: int, want: int | None, what: str) -> Chain:
        """The chain of the directory entry at image byte ``owner`` (-1: the root), read once
        and remembered: every cluster is claimed by one entry, so a chain that runs into
        another's (a cross-link) stops there with an error, and a hostile volume whose
        entries all lead into one long chain costs one walk of it, not one per entry."""
        cached = self._chains.get(first)
        if cached is not None:
            if cached[0] == owner:
                return cached[1]
            return Chain((), f"{what}: its first cluster {first:#x} is also that of the entry at byte {cached[0]} "
                             "(a cross-link)", 0)
        ch = self.chain(first, want, what, claim=True)
        self._chains[first] = (owner, ch)
        self._cached_runs += len(ch.runs) + 1
        if self._cached_runs > CHAIN_CACHE_RUNS:          # bounded memory: start again
            self._chains.clear()
            self._cached_runs = 0
            self._claimed = None
        return ch

    def extents(self, runs: tuple[tuple[int, int], ...], size: int | None = None) -> tuple[tuple[int, int], ...]:
        """Image byte ranges of cluster runs, cut to ``size`` bytes when given."""
        out: list[tuple[int, int]] = []
        left = size
        cs = self.cluster_size
        for start, count in runs:
            n = count * cs if left is None else min(count * cs, left)
            if n <= 0:
                break
            out.append((self.cluster_offset(start), n))
            if left is not None:
                left -= n
        return tuple(out)

    def extents_beyond(self, extents: tuple[tuple[int, int], ...]) -> int | None:
        """The first byte of ``extents`` past the volume's space or the image, else None."""
        end_allowed = min(self.image_size, self.volume_offset + self.available_bytes,
                          self.volume_offset + self.volume_bytes)
        for off, size in extents:
            if off + size > end_allowed:
                return max(off, end_allowed)
        return None

    # --- directories --------------------------------------------------------------------------
    def root(self) -> Directory:
        """The root directory (read once)."""
        if self._root_dir is None:
            self._root_dir = self._read_directory(None, "/", ROOT_OWNER)
        return self._root_dir

    @property
    def label(self) -> str | None:
        """The volume label of the root directory's ATTR_VOLUME_ID entry (libblkid's LABEL);
        None when there is none (:attr:`boot_label` is the boot sector's)."""
        return self.root().label

    def directory(self, first_cluster: int, path: str, owner: int | None = None) -> Directory:
        """The directory whose chain starts at ``first_cluster`` (0 or the root cluster: the
        root); ``owner``, the image byte offset of its directory entry, makes its chain an
        :meth:`entry_chain` (claimed, remembered)."""
        if first_cluster == 0 or (self.fat_type == 32 and first_cluster == self.root_cluster):
            return self.root()
        return self._read_directory(first_cluster, path, owner)

    def _read_directory(self, first: int | None, path: str, owner: int | None = None) -> Directory:
        d = Directory()
        if first is None and self.fat_type != 32:
            start = self.volume_offset + self.root_offset
            length = self.root_bytes
            if start + length > self.image_size:
                self.problem(f"FAT root directory at byte {start}: the image ends at byte {self.image_size}")
                length = max(0, self.image_size - start) // DIR_ENTRY_BYTES * DIR_ENTRY_BYTES
            d.extents = ((start, length),) if length else ()
            d.size_bytes = length
            raw = self.read(start, length) if length else b""
        else:
            cluster = self.root_cluster if first is None else first
            what = f"FAT directory {path} (first cluster {cluster:#x})"
            max_clusters = max(1, MAX_DIR_BYTES // self.cluster_size)
            ch = self.chain(cluster, None, what) if owner is None else self.entry_chain(owner, cluster, None, what)
            runs = ch.runs
            if ch.error:
                self.problem(f"{ch.error}; the directory is read up to there")
            if ch.clusters > max_clusters:
                self.problem(f"{what}: longer than {MAX_DIR_BYTES} bytes (65,536 entries); the rest is ignored")
                cut: list[tuple[int, int]] = []
                left = max_clusters
                for a, n in runs:
                    if left <= 0:
                        break
                    cut.append((a, min(n, left)))
                    left -= min(n, left)
                runs = tuple(cut)
            exts = self.extents(runs)
            beyond = self.extents_beyond(exts)
            if beyond is not None:
                self.problem(f"{what}: its clusters reach byte {beyond}, past the end of the volume or image; "
                             "the directory is read up to there")
                kept: list[tuple[int, int]] = []
                for off, size in exts:
                    if off + size > self.image_size:
                        size = max(0, self.image_size - off) // DIR_ENTRY_BYTES * DIR_ENTRY_BYTES
                        if size:
                            kept.append((off, size))
                        break
                    kept.append((off, size))
                exts = tuple(kept)
            d.extents = exts
            d.size_bytes = sum(s for _, s in exts)
            raw = b"".join(self.read(off, size) for off, size in exts)
        self._parse_entries(d, raw, path, first is None)
        return d

    def _parse_entries(self, d: Directory, raw: bytes, path: str, is_root: bool) -> None:
        """Directory entries into records (fatgen103 "FAT Directory Structure" and "FAT Long
        Directory Entries"; Linux fs/fat/dir.c fat_parse_long for what is accepted)."""
        starts: list[int] = []                   # where each extent begins in ``raw`` ...
        offsets: list[int] = []                  # ... and in the image
        pos = 0
        for off, size in d.extents:
            starts.append(pos)
            offsets.append(off)
            pos += size

        def where(p: int) -> int:
            i = bisect_right(starts, p) - 1
            return offsets[i] + p - starts[i] if i >= 0 else -1

        where_dir = f"FAT directory {path}"
        parts: dict[int, bytes] = {}
        count = 0                                # slots of the pending long name (0: none)
        expect = 0                               # the ordinal the next slot must have
        csum = 0
        lfn_at = -1

        def drop(reason: str) -> None:
            nonlocal count
            if count:
                self.problem(f"{where_dir}: long-name slots at byte {where(lfn_at)} {reason}; ignored")
            parts.clear()
            count = 0

        n = len(raw) - len(raw) % DIR_ENTRY_BYTES
        for p in range(0, n, DIR_ENTRY_BYTES):
            first = raw[p]
            if first == DIR_NAME_END:
                later = next((i for i in range(p + DIR_ENTRY_BYTES, n, DIR_ENTRY_BYTES) if raw[i]), None)
                if later is not None:
                    self.problem(f"{where_dir}: entries after the end marker at byte {where(p)} (the first at "
                                 f"byte {where(later)}) are ignored, as fatgen103 says (Linux shows them)")
                drop("end the directory")
                return
            if first == DIR_NAME_FREE:
                drop("are followed by a deleted entry")
                continue
            if raw[p + 11] & ATTR_LONG_NAME_MASK == ATTR_LONG_NAME:
                ordinal, n1, _, _, slot_csum, n2, _, n3 = LFN_ENTRY_FAST.unpack_from(raw, p)
                seq = ordinal & LFN_ORDINAL_MASK
                if ordinal & LFN_LAST_FLAG:
                    drop("are not followed by their short entry")
                    if not 1 <= seq <= LFN_MAX_SLOTS:
                        self.problem(f"{where_dir}: long-name slot at byte {where(p)} has the ordinal "
                                     f"{ordinal:#04x}; ignored")
                        continue
                    count, expect, csum, lfn_at = seq, seq - 1, slot_csum, p
                    parts[seq] = n1 + n2 + n3
                elif count and seq == expect and seq >= 1 and slot_csum == csum:
                    parts[seq] = n1 + n2 + n3
                    expect -= 1
                else:
                    drop("are broken by an out-of-sequence slot")
                    self.problem(f"{where_dir}: long-name slot at byte {where(p)} (ordinal {ordinal:#04x}) belongs "
                                 "to no name; ignored")
                continue
            (name11, attr, ntres, crt_tenth, crt_time, crt_date, acc_date, hi, wrt_time, wrt_date, lo,
             size) = DIR_ENTRY_FAST.unpack_from(raw, p)
            if attr & ATTR_VOLUME_ID:
                drop("precede a volume label")
                if is_root and d.label is None and not attr & ATTR_DIRECTORY and hi == 0 and lo == 0:
                    d.label = self._decode_label(name11)
                    d.label_offset = where(p)
                continue
            if name11 in (DOT_NAME, DOTDOT_NAME):
                drop("precede a '.' or '..' entry")
                continue
            if name11[0] == DIR_NAME_KANJI:
                name11 = bytes((DIR_NAME_FREE,)) + name11[1:]
            base = name11[:8].decode(self.codepage, "replace").rstrip(" ")
            ext = name11[8:].decode(self.codepage, "replace").rstrip(" ")
            short = base + ("." + ext if ext else "")
            at = where(p)
            name: str | None = None
            lfn_offset: int | None = None
            if count:
                if expect != 0:
                    drop(f"miss {expect} of their {count} slots before the short entry {short!r} at byte {at}")
                elif csum != lfn_checksum(name11):
                    drop(f"have the checksum {csum:#04x}, the short entry {short!r} at byte {at} "
                         f"{lfn_checksum(name11):#04x}: its 8.3 name is used")
                else:
                    name, lfn_offset = self._long_name(parts, count, where_dir, where(lfn_at), short)
                    parts.clear()
                    count = 0
            has_long = name is not None
            if name is None:
                if ntres & NTRES_LOWER_BASE:
                    base = base.lower()
                if ntres & NTRES_LOWER_EXT:
                    ext = ext.lower()
                name = base + ("." + ext if ext else "")
                if not _component(name):
                    self.problem(f"{where_dir}: entry at byte {at} has the name {name!r}, which cannot be a "
                                 "path component; skipped")
                    continue
            cluster = lo | (hi << 16 if self.fat_type == 32 else 0)
            d.records.append(DirRecord(name, short, attr, ntres, cluster, size, crt_tenth, crt_time, crt_date,
                                       acc_date, wrt_time, wrt_date, at, lfn_offset, has_long))
        drop("end the directory")

    def _long_name(self, parts: dict[int, bytes], count: int, where_dir: str, at: int,
                   short: str) -> tuple[str | None, int | None]:
        """The long name of complete slots (UTF-16LE up to a NUL), or (None, None) when it cannot
        be a path component (the 8.3 name is used then, with a problem recorded)."""
        units = b"".join(parts[i] for i in range(1, count + 1))
        for i in range(0, len(units), 2):
            if units[i:i + 2] == b"\0\0":
                units = units[:i]
                break
        try:
            name = units.decode("utf-16-le")
        except UnicodeDecodeError:
            name = units.decode("utf-16-le", "replace")
            self.problem(f"{where_dir}: the long name at byte {at} is not valid UTF-16 (replacement characters "
                         "shown)")
        if not _component(name):
            self.problem(f"{where_dir}: the long name {name!r} at byte {at} cannot be a path component; the 8.3 "
                         f"name {short!r} is used")
            return None, None
        return name, at

    # --- the volume's layout, for inspect -------------------------------------------------------
    def structures(self) -> list[tuple[str, int, int]]:
        """(name, image byte offset, size) of the boot sector, reserved area, each FAT, the
        FAT12/16 root directory and the data region."""
        v = self.volume_offset
        out = [("FAT boot sector", v, self.sector_size),
               ("FAT reserved sectors", v, self.fat_offset)]
        for i in range(self.fat_count):
            out.append((f"FAT {i + 1}", v + self.fat_offset + i * self.fat_bytes, self.fat_bytes))
        if self.root_bytes:
            out.append(("FAT root directory", v + self.root_offset, self.root_bytes))
        out.append(("FAT data region", v + self.data_offset, self.cluster_count * self.cluster_size))
        return out

    def compare_fats(self, chunk: int = 1 << 20) -> None:
        """Record a problem for each FAT copy that differs from the active one (read in chunks;
        at most the entries the volume uses)."""
        used = (self.cluster_count + 2) * ENTRY_BITS[self.fat_type] // 8
        for i in range(self.fat_count):
            if i == self.active_fat:
                continue
            other = self.volume_offset + self.fat_offset + i * self.fat_bytes
            if other + used > self.image_size:
                self.problem(f"FAT {i + 1} at byte {other}: the image ends inside it")
                continue
            for pos in range(0, used, chunk):
                n = min(chunk, used - pos)
                a, b = self.read(self._fat_start + pos, n), self.read(other + pos, n)
                if a != b:
                    k = next(j for j in range(n) if a[j] != b[j])
                    self.problem(f"FAT {i + 1} at byte {other}: differs from FAT {self.active_fat + 1} at byte "
                                 f"{other + pos + k}")
                    break



# --- the older interface ------------------------------------------------------------------------

@dataclass(slots=True)
class Entry:
    """One directory entry as read: full path, long (or short) name, 8.3 name, attributes."""

    path: str
    name: str
    short_name: str
    attr: int
    first_cluster: int
    size_bytes: int
    record: DirRecord | None = None

    @property
    def is_dir(self) -> bool:
        return bool(self.attr & ATTR_DIRECTORY)


class VFATReader:
    """Open a FAT volume in ``image`` (a path or binary file) at ``volume_offset``: list the
    tree (:meth:`walk`, :meth:`list_dir`) and read files (:meth:`read`, :meth:`iter_content`).

    Built on :class:`FATVolume` (its :attr:`problems` are those it met); a broken chain of
    a file raises InvalidImageError when the file is read."""

    def __init__(self, image: str | os.PathLike[str] | BinaryIO, volume_offset: int = 0, *,
                 codepage: str = "cp437") -> None:
        self._own = isinstance(image, (str, os.PathLike))
        self.f: BinaryIO = open(image, "rb") if isinstance(image, (str, os.PathLike)) else image
        try:
            self.volume = FATVolume(self.f, None, volume_offset, codepage=codepage)
        except BaseException:
            self.close()
            raise
        v = self.volume
        self.volume_offset = volume_offset
        self.fat_type = v.fat_type
        self.cluster_count = v.cluster_count
        self.sector_size = v.sector_size
        self.cluster_size = v.cluster_size
        self.volume_id = v.volume_id
        self.fat_offset = v.fat_offset
        self.root_offset = v.root_offset
        self.root_bytes = v.root_bytes
        self.data_offset = v.data_offset
        self.root_cluster = v.root_cluster
        self.boot_label = v.boot_label

    @property
    def label(self) -> str:
        """The root directory's label, else the boot sector's, else ""."""
        return self.volume.label or self.volume.boot_label or ""

    @property
    def problems(self) -> list[str]:
        return self.volume.problems

    def close(self) -> None:
        if self._own:
            self.f.close()

    def __enter__(self) -> "VFATReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def chain(self, first: int) -> list[int]:
        """Clusters of a chain (fatgen103 "FAT Data Structure"); InvalidImageError when it
        loops, leaves the volume or meets a free cluster."""
        ch = self.volume.chain(first)
        if ch.error:
            raise InvalidImageError(ch.error)
        return [c for a, n in ch.runs for c in range(a, a + n)]

    def list_dir(self, first: int, parent: str = "") -> list[Entry]:
        """Entries of one directory (without '.', '..' and the volume label)."""
        d = self.volume.directory(first, "/" + parent)
        return [Entry(f"{parent}/{r.name}" if parent else r.name, r.name, r.short_name, r.attr, r.first_cluster,
                      r.size_bytes, r) for r in d.records]

    def walk(self) -> Iterator[Entry]:
        """Every entry, parents before children (a directory met twice is not entered again)."""
        seen = {0, self.root_cluster}
        stack = [(0, "")]
        while stack:
            first, path = stack.pop()
            entries = self.list_dir(first, path)
            yield from entries
            for e in reversed(entries):
                if e.is_dir and e.first_cluster not in seen:
                    seen.add(e.first_cluster)
                    stack.append((e.first_cluster, e.path))

    def read(self, entry: Entry) -> bytes:
        """Content of a file entry (small files; use iter_content for large ones)."""
        return b"".join(self.iter_content(entry))

    def iter_content(self, entry: Entry) -> Iterator[bytes]:
        size = entry.size_bytes
        if size == 0:
            return iter(())
        cs = self.cluster_size
        ch = self.volume.chain(entry.first_cluster, -(-size // cs), f"FAT file /{entry.path}")
        if ch.error:
            raise InvalidImageError(ch.error)
        exts = self.volume.extents(ch.runs, size)
        return self._iter_extents(exts)

    def _iter_extents(self, exts: tuple[tuple[int, int], ...]) -> Iterator[bytes]:
        for off, size in exts:
            for pos in range(0, size, 1 << 20):
                yield self.volume.read(off + pos, min(1 << 20, size - pos))


def _unpack_fat(raw: bytes, fat_type: int, entries: int) -> array[int] | list[int]:
    """The first ``entries`` entries of a FAT (fatgen103 "FAT Data Structure"), FAT32's
    reserved high 4 bits cleared (``_structs.FAST_CODECS`` ties it to the declarations)."""
    if fat_type == 12:
        out = []
        for j in range(0, min(len(raw) - 2, (entries + 1) // 2 * 3), 3):
            b0, b1, b2 = raw[j], raw[j + 1], raw[j + 2]
            out.append(b0 | ((b1 & 0xF) << 8))
            out.append((b1 >> 4) | (b2 << 4))
        return out
    code = "H" if fat_type == 16 else _U32_CODE
    size = array(code).itemsize
    table = array(code, raw[:entries * size])
    if sys.byteorder != "little":
        table.byteswap()
    if fat_type == 32:
        table = array(code, (v & FAT32_ENTRY_MASK for v in table))
    return table


__all__ = ["FATVolume", "DirRecord", "Directory", "Chain", "VFATReader", "Entry", "fat_time", "lfn_checksum",
           "ATTR_READ_ONLY", "ATTR_HIDDEN", "ATTR_SYSTEM", "ATTR_ARCHIVE"]
