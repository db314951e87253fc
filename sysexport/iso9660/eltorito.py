"""El Torito boot catalog (El Torito Bootable CD-ROM Format Specification 1.0) and boot info table.

The catalog is one validation entry, the initial/default entry (the first entry added),
then, for the remaining entries grouped by platform in the order first seen, a section
header (0x90, or 0x91 for the last) followed by its section entries.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Callable

from construct import Construct

from ..errors import InvalidInputError
from ..extent import Extent
from ._structs import (BOOT_INFO_CHECKSUM_START, BOOT_INFO_TABLE_OFFSET, CATALOG_ENTRY_BYTES, SECTION_ID_BYTES,
                       SECTOR_BYTES, VALIDATION_CHECKSUM_OFFSET, BootInfoTable, InitialEntry, SectionEntry,
                       SectionHeader, ValidationEntry)
from .enums import (BOOT_EFI, BOOT_MAC, BOOT_PPC, BOOT_X86, BOOTABLE, EMU_FLOPPY12,  # noqa: F401  (public here)
                    EMU_FLOPPY144, EMU_FLOPPY288, EMU_HDD, EMU_NONE, HEADER_LAST, HEADER_MORE, MEDIA_TYPE_NAMES,
                    NOT_BOOTABLE, VIRTUAL_SECTOR_BYTES)

MEDIA_TYPES = tuple(MEDIA_TYPE_NAMES)
MAX_SECTOR_COUNT = 0xFFFF       # El Torito 2.2: sector_count is a 16-bit field
FLOPPY_BYTES = {EMU_FLOPPY12: 1_228_800, EMU_FLOPPY144: 1_474_560, EMU_FLOPPY288: 2_949_120}
"""El Torito 2.2 boot media types 1-3: the diskette each emulates, byte for byte (80
cylinders, 2 heads, 15, 18 or 36 sectors of 512 bytes); libisofs accepts these sizes only."""
# El Torito 1.0 section 3.3 (hard disk emulation): the image is a disk whose sector 0 is a
# master boot record holding exactly one partition, whose type byte the entry's System Type
# copies (2.2, offset 4).  The partition table is the PC one: four 16-byte entries from
# byte 446, each with its type at +4, first LBA at +8 and sector count at +12 (both 32-bit
# little-endian), and the signature 55 AA at 510.
MBR_BYTES = 512
MBR_TABLE_OFFSET = 446
MBR_ENTRY_BYTES = 16
MBR_ENTRIES = 4
MBR_SIGNATURE = b"\x55\xaa"
HDD_SECTOR_BYTES = 512


@dataclass(eq=False)
class BootEntry:
    """One boot catalog entry.  Exactly one of ``data`` (bytes, stored as a hidden extent),
    ``path`` (a file of the image) or ``extent`` (bytes of the device) names the image.
    ``extent`` may be set after plan() (the hybrid points an EFI entry at its ESP)."""

    platform: int = BOOT_X86
    data: bytes | None = None
    path: str | None = None
    extent: Extent | None = None
    media_type: int = EMU_NONE
    load_segment: int = 0
    load_size: int | None = None
    boot_info_table: bool = False
    system_type: int = 0
    section_id: bytes = b""
    bootable: bool = True
    own_extent: Extent | None = field(default=None, repr=False)   # where ``data`` is stored

    def check(self) -> None:
        """Reject what the catalog cannot express (El Torito 2.2-2.4)."""
        where = f"boot catalog entry (platform {self.platform:#x})"
        given = [x is not None for x in (self.data, self.path, self.extent)]
        if sum(given) != 1:
            raise InvalidInputError(f"{where}: give exactly one of data, path or extent")
        if self.platform not in range(256):
            raise InvalidInputError(f"{where}: platform must be 0..255")
        if self.media_type not in MEDIA_TYPES:
            raise InvalidInputError(f"{where}: media_type must be one of EMU_NONE..EMU_HDD, found {self.media_type}")
        for name, value, hi in (("load_segment", self.load_segment, 0xFFFF), ("system_type", self.system_type, 0xFF)):
            if not isinstance(value, int) or not 0 <= value <= hi:
                raise InvalidInputError(f"{where}: {name} must be 0..{hi:#x}, found {value!r}")
        if self.load_size is not None and not 0 <= self.load_size <= MAX_SECTOR_COUNT:
            raise InvalidInputError(f"{where}: load_size is a 16-bit count of 512-byte sectors, found {self.load_size}")
        if len(self.section_id) > SECTION_ID_BYTES:
            raise InvalidInputError(f"{where}: section_id holds at most {SECTION_ID_BYTES} bytes, "
                                    f"found {len(self.section_id)}")
        if self.boot_info_table and self.extent is not None:
            raise InvalidInputError(f"{where}: a boot info table needs data or path, not a raw extent")
        if self.extent is not None and self.extent.device_offset % SECTOR_BYTES:
            raise InvalidInputError(f"{where}: extent offset {self.extent.device_offset} is not 2048-aligned")

    def check_emulation(self, size_bytes: int, head: bytes) -> None:
        """Check the image of a floppy or hard-disk emulation entry (``head``: its first
        512 bytes, needed for a hard disk): a floppy image is exactly the diskette's size; a
        hard-disk image starts with a master boot record holding exactly one partition,
        which lies inside the image.  The entry's System Type is then that partition's type
        (set here when 0, as libisofs does; another value is an error).  Raises
        InvalidInputError naming the image and the rule."""
        image = self.path if self.path is not None else "data"
        where = f"boot catalog entry ({MEDIA_TYPE_NAMES[self.media_type]} emulation, image {image})"
        if self.media_type in FLOPPY_BYTES:
            want = FLOPPY_BYTES[self.media_type]
            if size_bytes != want:
                raise InvalidInputError(f"{where}: a {MEDIA_TYPE_NAMES[self.media_type]} image must be exactly "
                                        f"{want} bytes (El Torito 2.2, boot media type {self.media_type}), "
                                        f"found {size_bytes}")
            return
        if self.media_type != EMU_HDD:
            return
        if size_bytes < MBR_BYTES or head[MBR_BYTES - len(MBR_SIGNATURE):MBR_BYTES] != MBR_SIGNATURE:
            raise InvalidInputError(f"{where}: a hard-disk emulation image must start with a master boot record "
                                    "(signature 55 AA at byte 510; El Torito 1.0 section 3.3)")
        used = []
        for i in range(MBR_ENTRIES):
            entry = head[MBR_TABLE_OFFSET + i * MBR_ENTRY_BYTES:MBR_TABLE_OFFSET + (i + 1) * MBR_ENTRY_BYTES]
            if entry[4]:
                used.append((i + 1, entry[4]) + struct.unpack_from("<II", entry, 8))
        if len(used) != 1:
            raise InvalidInputError(f"{where}: the master boot record of a hard-disk emulation image must hold "
                                    f"exactly one partition (El Torito 1.0 section 3.3), found {len(used)}")
        number, ptype, first, count = used[0]
        sectors = size_bytes // HDD_SECTOR_BYTES
        if count == 0 or first == 0 or first + count > sectors:
            raise InvalidInputError(f"{where}: partition {number} (sectors {first}..{first + count - 1}) must lie "
                                    f"inside the image's {sectors} sectors, after its master boot record")
        if self.system_type == 0:
            self.system_type = ptype
        elif self.system_type != ptype:
            raise InvalidInputError(f"{where}: system_type {self.system_type:#04x} must be the partition's type "
                                    f"{ptype:#04x} (El Torito 2.2: a copy of the partition table's System "
                                    "Indicator)")

    def sector_count(self, size_bytes: int) -> int:
        """The 16-bit count of 512-byte sectors; 0 past 65535 (xorriso's convention, docs/booting.md
        "Each path": OVMF then reads from the entry to the end of the volume)."""
        if self.load_size is not None:
            return self.load_size
        if self.media_type != EMU_NONE:
            return 1
        count = -(-size_bytes // VIRTUAL_SECTOR_BYTES)
        return count if count <= MAX_SECTOR_COUNT else 0


def validation_checksum(entry: bytes) -> int:
    """El Torito 2.1: the 16-bit word that makes the sum of the entry's 16 LE words zero."""
    words = struct.unpack("<16H", entry[:CATALOG_ENTRY_BYTES])
    return (-(sum(words) - words[VALIDATION_CHECKSUM_OFFSET // 2])) & 0xFFFF


def catalog_size_bytes(entry_count: int) -> int:
    """Bytes of a catalog with ``entry_count`` entries (sector multiple)."""
    groups = max(0, entry_count - 1)
    n_records = 2 + groups * 2   # upper bound: one section header per further entry
    return -(-n_records * CATALOG_ENTRY_BYTES // SECTOR_BYTES) * SECTOR_BYTES


def build_catalog(entries: list[BootEntry], locate: Callable[[BootEntry], Extent]) -> bytes:
    """The catalog bytes; ``locate(entry)`` gives the extent of each entry's boot image."""
    if not entries:
        raise InvalidInputError("boot catalog: no entries")
    first = entries[0]
    validation = bytearray(ValidationEntry.build(dict(platform_id=first.platform, id_string=bytes(24),
                                                      checksum=0)))
    struct.pack_into("<H", validation, VALIDATION_CHECKSUM_OFFSET, validation_checksum(bytes(validation)))
    out = [bytes(validation), _entry_bytes(first, locate(first), InitialEntry)]
    groups: dict[int, list[BootEntry]] = {}
    for entry in entries[1:]:
        groups.setdefault(entry.platform, []).append(entry)
    platforms = list(groups)
    for i, platform in enumerate(platforms):
        members = groups[platform]
        out.append(SectionHeader.build(dict(
            header_indicator=HEADER_LAST if i == len(platforms) - 1 else HEADER_MORE,
            platform_id=platform, number_of_section_entries=len(members),
            id_string=members[0].section_id.ljust(SECTION_ID_BYTES, b"\x00"))))
        for entry in members:
            out.append(_entry_bytes(entry, locate(entry), SectionEntry))
    data = b"".join(out)
    size = catalog_size_bytes(len(entries))
    if len(data) > size:
        raise InvalidInputError(f"boot catalog: {len(entries)} entries do not fit")
    return data.ljust(size, b"\x00")


def _entry_bytes(entry: BootEntry, extent: Extent, struct_: Construct) -> bytes:
    fields: dict[str, int | bytes] = dict(
        boot_indicator=BOOTABLE if entry.bootable else NOT_BOOTABLE, boot_media_type=entry.media_type,
        load_segment=entry.load_segment, system_type=entry.system_type,
        sector_count=entry.sector_count(extent.size_bytes), load_rba=extent.device_offset // SECTOR_BYTES)
    if struct_ is SectionEntry:
        fields.update(selection_criteria_type=0, vendor_unique_selection_criteria=bytes(19))
    return struct_.build(fields)


def boot_info_checksum(image: bytes) -> int:
    """Sum (mod 2**32) of the 32-bit little-endian words from byte 64 to the end (zero padded)."""
    tail = image[BOOT_INFO_CHECKSUM_START:]
    tail += bytes(-len(tail) % 4)
    return sum(struct.unpack(f"<{len(tail) // 4}I", tail)) & 0xFFFFFFFF


def patch_boot_info_table(image: bytes, pvd_lba: int, file_lba: int) -> bytes:
    """Return the boot image with its boot info table (bytes 8..63) filled in."""
    if len(image) < BOOT_INFO_CHECKSUM_START:
        raise InvalidInputError(f"boot image of {len(image)} bytes is too small for a boot info table (64 bytes)")
    table = BootInfoTable.build(dict(bi_pvd=pvd_lba, bi_file=file_lba, bi_length=len(image),
                                     bi_csum=boot_info_checksum(image)))
    return image[:BOOT_INFO_TABLE_OFFSET] + table + image[BOOT_INFO_TABLE_OFFSET + len(table):]
