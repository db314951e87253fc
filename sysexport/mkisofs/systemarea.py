"""The system area of a mkisofs-style image: the MBR and the GPT as xorriso writes them.

xorriso (libisofs) writes one of these partition tables in the first 32 KiB, chosen by
the options (as ``xorriso -report_system_area plain`` names them):

``MBR isohybrid`` (``-isohybrid-mbr`` without ``-appended_part_as_gpt``)
    partition 1 active (0x80), from ``-partition_offset`` (0) over the ISO (the whole
    image when nothing is appended), type 0x17, or 0x00 when a GPT is there too; the
    appended partitions in their slots; an 0xEF entry for each boot image marked
    ``-isohybrid-gpt-basdat`` (the El Torito entry being described when it was given,
    whatever its platform) in the slots left, when nothing is appended.  CHS with 64 heads and 32 sectors; the image is padded to a
    whole cylinder (1 MiB).
``MBR`` (appended partitions, neither an isohybrid MBR nor a GPT)
    partition 1 over the ISO, type 0x83, not active; the appended ones in their slots.
    Without any of these options the system area stays zero: no MBR at all.
``protective-msdos-label`` with ``--protective-msdos-label`` (grub-mkrescue's), no GPT
    one active entry of type 0xCD from LBA 1 over the image.
``protective-msdos-label`` (a GPT without an isohybrid partition table)
    one 0xEE entry from LBA 1 over the image; ``--mbr-force-bootable`` adds an active entry
    of type 0x00 over LBA 0.
``GPT`` (``-isohybrid-gpt-basdat`` or ``-appended_part_as_gpt``)
    512-byte blocks, 248 entries at LBA 2..63, first usable LBA 64; a "basic data"
    partition over the ISO (attributes: read-only, required), the appended ones, and
    "Gap1" over the padding after them; with ``-efi-boot-part --efi-boot-image``
    (grub-mkrescue) instead "Gap0", the EFI El Torito image as "EFI boot partition" and
    "Gap1", which tile the ISO.

One choice differs from xorriso, on purpose: xorriso's GPT partition over the ISO starts
at LBA 0 without ``-partition_offset`` (overlapping the GPT itself, so sgdisk and parted
refuse the table), and lists the boot images marked ``-isohybrid-gpt-basdat`` inside it
again; ours starts at the first usable LBA and lists each byte once, so the GPT is valid.
The MBR, which is what BIOSes and UEFI read on such a disk, is as xorriso's.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass

from ..errors import InvalidInputError
from ..identity import BuildIdentity
from ..partition.enums import (GPT_TYPE_ESP, GPT_TYPE_LINUX_FS, GPT_TYPE_MS_BASIC_DATA, MBR_TYPE_EFI_SYSTEM,
                               MBR_TYPE_EMPTY, MBR_TYPE_GPT_PROTECTIVE)
from ..partition.gpt import GPT, GPTLayout
from ..partition.mbr import (CHS_PROTECTIVE_OUT_OF_RANGE, CHS_PROTECTIVE_START, ISOHYBRID_HEADS,
                             ISOHYBRID_SECTORS_PER_TRACK, MBR, MBRPartition, lba_to_chs)

CYLINDER_BYTES = ISOHYBRID_HEADS * ISOHYBRID_SECTORS_PER_TRACK * 512
"""1 MiB: an isohybrid image is padded to whole cylinders (xorriso "cyl-align-on")."""
GPT_ENTRY_COUNT = 248
"""xorriso's GPT: 248 entries of 128 bytes, LBA 2..63, all inside the system area."""
GPT_ENTRIES_OFFSET = 1024
GPT_FIRST_USABLE_LBA = 64
GPT_BACKUP_BYTES = (GPT_ENTRY_COUNT * 128 + 512)
"""The backup array and header at the end of the image (63 blocks of 512)."""
MBR_TYPE_LINUX = 0x83
"""xorriso's type of the partition over the ISO in a plain MBR (appended partitions only)."""
MBR_TYPE_MSDOS_LABEL = 0xCD
"""xorriso --protective-msdos-label (grub-mkrescue): one active entry of this type from LBA 1."""
MBR_TYPE_ISOHYBRID = 0x17
"""syslinux isohybrid's and xorriso's type of the partition over the ISO (without a GPT)."""
GPT_ATTR_ISO = (1 << 60) | 1
"""xorriso's attributes of the GPT partition over the ISO: read-only (bit 60), required (0)."""
CHS_UNKNOWN = b"\xfe\xff\xff"
MBR_TYPE_OF_GUID = {GPT_TYPE_ESP: MBR_TYPE_EFI_SYSTEM, GPT_TYPE_LINUX_FS: 0x83, GPT_TYPE_MS_BASIC_DATA: 0x0C}
"""The MBR type an appended partition gets for its GPT type (others: 0xDA, non-FS data)."""
GUID_OF_MBR_TYPE = {MBR_TYPE_EFI_SYSTEM: GPT_TYPE_ESP, 0x83: GPT_TYPE_LINUX_FS}
"""The GPT type an appended partition gets for its MBR type (others: basic data)."""


@dataclass(frozen=True)
class PlacedAppended:
    """An appended partition where the plan put it (bytes), with both of its types."""

    number: int
    device_offset: int
    size_bytes: int
    mbr_type: int
    type_guid: uuid.UUID


@dataclass(frozen=True)
class SystemAreaRequest:
    """What the system area describes: everything in bytes of the image."""

    device_size_bytes: int
    iso_start: int                      # -partition_offset * 2048
    iso_end: int                        # the end of the ISO part (before appended partitions)
    boot_code: bytes | None             # 440 bytes, patched isohybrid code (or None)
    style: str                          # "isohybrid", "plain", "msdos-label", "protective" or "none"
    gpt: bool
    marked_efi: tuple[tuple[int, int], ...]     # boot images marked -isohybrid-gpt-basdat: (offset, size)
    appended: tuple[PlacedAppended, ...]
    force_bootable: bool
    disk_signature: int
    gap: tuple[int, int] | None = None  # the padding after appended partitions: (offset, size)
    efi_image: tuple[int, int] | None = None    # -efi-boot-part --efi-boot-image: (offset, size)


def _chs(lba: int) -> bytes:
    return lba_to_chs(lba, heads=ISOHYBRID_HEADS, sectors_per_track=ISOHYBRID_SECTORS_PER_TRACK)


def _record(type_id: int, first_lba: int, count: int, bootable: bool = False,
            chs: bool = True) -> MBRPartition:
    return MBRPartition(type_id, first_lba, count, bootable=bootable,
                        start_chs=_chs(first_lba) if chs else CHS_UNKNOWN,
                        end_chs=_chs(first_lba + count - 1) if chs else CHS_UNKNOWN, type_zero_ok=True)


def build_mbr(req: SystemAreaRequest) -> MBR | None:
    """The MBR of the image in its style (see the module docstring), None for "none".  The
    records of an isohybrid table may start at LBA 0 and enclose each other, as xorriso's
    do, so the table is made with ``strict=False``."""
    size_lba = req.device_size_bytes // 512
    records: list[MBRPartition | None] = []
    if req.style == "none":
        return None
    if req.style == "msdos-label":
        records.append(_record(MBR_TYPE_MSDOS_LABEL, 1, size_lba - 1, bootable=True))
    elif req.style in ("isohybrid", "plain"):
        start = req.iso_start // 512
        end = (req.iso_end if req.appended else req.device_size_bytes) // 512
        if req.style == "isohybrid":
            records.append(_record(MBR_TYPE_EMPTY if req.gpt else MBR_TYPE_ISOHYBRID, start, end - start,
                                   bootable=True))
        else:
            records.append(_record(MBR_TYPE_LINUX, start, end - start))
        records += [None, None, None]
        for part in req.appended:        # appended partitions in their numbered slots first
            if 2 <= part.number <= 4:
                records[part.number - 1] = _record(part.mbr_type, part.device_offset // 512,
                                                   part.size_bytes // 512)
        for offset, size in (req.marked_efi if not req.appended else ()):
            # the marked boot images, where a slot is free; not beside appended partitions
            # (xorriso lists them in its GPT only then)
            free = next((i for i in range(1, 4) if records[i] is None), None)
            if free is not None:
                records[free] = _record(MBR_TYPE_EFI_SYSTEM, offset // 512, -(-size // 512), chs=False)
        while records and records[-1] is None:
            records.pop()
    else:
        records.append(MBRPartition(MBR_TYPE_GPT_PROTECTIVE, 1, min(size_lba - 1, 0xFFFFFFFF),
                                    start_chs=CHS_PROTECTIVE_START,
                                    end_chs=lba_to_chs(size_lba - 1, CHS_PROTECTIVE_OUT_OF_RANGE)))
        if req.force_bootable:
            records.append(_forced_bootable_record())
    mbr = MBR(disk_signature=req.disk_signature, partitions=records[:4], strict=False)
    if req.boot_code:
        mbr.set_boot_code(req.boot_code)
    return mbr


def check_slots(style: str, gpt: bool, numbers: list[int]) -> None:
    """Appended partition numbers an MBR table can hold: slot 1 is the ISO's; past slot 4
    only a GPT lists them.  (Boot images marked -isohybrid-gpt-basdat take the slots left.)"""
    if style not in ("isohybrid", "plain"):
        return
    for n in sorted(numbers):
        if n == 1:
            raise InvalidInputError("-append_partition 1: MBR slot 1 holds the ISO; give a number from 2 on")
        if n > 4 and not gpt:
            raise InvalidInputError(f"-append_partition {n}: an MBR has 4 slots; a partition numbered past 4 "
                                    "needs a GPT (-appended_part_as_gpt or -isohybrid-gpt-basdat)")


def _forced_bootable_record() -> MBRPartition:
    """--mbr-force-bootable beside a protective entry: xorriso adds an active record of
    type 0x00 over LBA 0 (some BIOSes boot only a disk with an active entry)."""
    return MBRPartition(MBR_TYPE_EMPTY, 0, 1, bootable=True, start_chs=b"\x00\x01\x00", end_chs=b"\x00\x01\x00",
                        type_zero_ok=True)


def build_gpt(req: SystemAreaRequest, identity: BuildIdentity) -> tuple[GPT, GPTLayout]:
    """The 512-byte GPT: the ISO as basic data (from the first usable LBA or the partition
    offset), then the appended partitions by number; arrays and backup as xorriso places
    them."""
    gpt = GPT(block_size=512, entry_count=GPT_ENTRY_COUNT, alignment_bytes=512)
    iso_first = max(req.iso_start, GPT_FIRST_USABLE_LBA * 512)
    iso_end = req.iso_end if req.appended else req.device_size_bytes - GPT_BACKUP_BYTES
    if req.efi_image is not None:
        _efi_image_partitions(gpt, iso_first, iso_end, req.efi_image)
    else:
        gpt.add_partition(GPT_TYPE_MS_BASIC_DATA, iso_end - iso_first, device_offset=iso_first,
                          name="ISOHybrid" if req.style == "isohybrid" else "ISO9660", attributes=GPT_ATTR_ISO)
    for part in sorted(req.appended, key=lambda p: p.number):
        gpt.add_partition(part.type_guid, part.size_bytes, device_offset=part.device_offset,
                          name=f"Appended{part.number}")
    if req.gap is not None:
        gpt.add_partition(GPT_TYPE_MS_BASIC_DATA, req.gap[1], device_offset=req.gap[0], name="Gap1",
                          attributes=GPT_ATTR_ISO)
    size = req.device_size_bytes
    layout = gpt.layout(size, identity=identity, primary_entries_offset=GPT_ENTRIES_OFFSET,
                        backup_header_offset=size - 512, backup_entries_offset=size - GPT_BACKUP_BYTES,
                        first_usable_lba=GPT_FIRST_USABLE_LBA, last_usable_lba=(size - GPT_BACKUP_BYTES) // 512 - 1)
    return gpt, layout


def _efi_image_partitions(gpt: GPT, first: int, end: int, efi: tuple[int, int]) -> None:
    """grub-mkrescue's GPT (-efi-boot-part --efi-boot-image): the EFI El Torito image, a
    file inside the ISO, as "EFI boot partition" of the ESP type, and "Gap0"/"Gap1" of
    basic data over the rest of the ISO before and after it, so that nothing overlaps."""
    offset, size = efi
    size = -(-size // 512) * 512
    if offset > first:
        gpt.add_partition(GPT_TYPE_MS_BASIC_DATA, offset - first, device_offset=first, name="Gap0",
                          attributes=GPT_ATTR_ISO)
    gpt.add_partition(GPT_TYPE_ESP, size, device_offset=offset, name="EFI boot partition", attributes=GPT_ATTR_ISO)
    if end > offset + size:
        gpt.add_partition(GPT_TYPE_MS_BASIC_DATA, end - offset - size, device_offset=offset + size, name="Gap1",
                          attributes=GPT_ATTR_ISO)


def partition_types(mbr_type: int | None, type_guid: uuid.UUID | None) -> tuple[int, uuid.UUID]:
    """Both types of an appended partition from the one ``-append_partition`` gave."""
    if type_guid is not None:
        return MBR_TYPE_OF_GUID.get(type_guid, 0xDA), type_guid
    if mbr_type is None:
        raise ValueError("an appended partition needs a type")
    return mbr_type, GUID_OF_MBR_TYPE.get(mbr_type, GPT_TYPE_MS_BASIC_DATA)
