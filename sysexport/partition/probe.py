"""Reading partition tables as they are found: the MBR (with its logical partitions) and
the GPT for 512- and 4096-byte blocks, every field, every problem.

:func:`read_partition_tables` is what ``sysexport.open()`` uses; :func:`read_gpt` and
:func:`read_mbr` are its parts (``GPT.parse`` and ``MBR.parse`` are the strict readers
built on them).  Nothing here raises for a table that is merely wrong: what a reader can
still use is returned and the deviation is recorded in ``problems``; InvalidImageError
only when a structure that is there cannot be read at all (a GPT whose two copies are both
unusable).

How the tools' rules are followed:

* An MBR is LBA 0 with 0x55 0xAA at byte 510, four records whose BootIndicator is 0x00 or
  0x80, that is not a FAT boot sector (libblkid's ``probe_dos_pt`` and the kernel's msdos
  parser reject the other indicators; libblkid rejects a sector with a valid BPB,
  :func:`looks_like_fat`), and whose records do not all start past the end of the disk.
  A record of type 0xEE makes it a protective MBR.  Extended partitions (0x05, 0x0F, 0x85)
  are followed through their EBR chain; logical partitions are numbered from 5, as Linux
  and sfdisk number them.
* A GPT is looked for at LBA 1 and, for its backup, at the primary's AlternateLBA and at
  the last LBA of the image.  A header counts when its Signature, HeaderSize (92..block
  size), HeaderCRC32, MyLBA, SizeOfPartitionEntry (128 * 2**n), entry array (at most
  16 MiB, inside the image) and PartitionEntryArrayCRC32 are right.  A bad primary with a
  good backup reads the backup, as sgdisk does ("Loaded backup partition table"), and the
  problem is recorded; the two copies are compared field by field.
"""
from __future__ import annotations

import os
import stat
import struct
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, BinaryIO, Callable

import crcmod.predefined

from ..errors import InvalidImageError, InvalidInputError
from ._structs import (GPT_ENTRY_SIZE, GPT_HEADER_SIZE, GPT_NAME_BYTES, GPT_REVISION, GPT_SIGNATURE,
                       MBR_PARTITION_RECORDS, MBR_SIGNATURE, MBR_SIGNATURE_OFFSET, MBR_SIZE_BYTES)
from .enums import BOOT_INDICATOR_ACTIVE, BOOT_INDICATOR_INACTIVE, MBR_TYPE_EMPTY, MBR_TYPE_GPT_PROTECTIVE

if TYPE_CHECKING:
    from .gpt import GPT
    from .mbr import MBR

Reader = Callable[[int, int], bytes]
"""``read(offset, n)``: up to ``n`` bytes at byte ``offset`` of the image (fewer at its end)."""

GPT_BLOCK_SIZES = (512, 4096)
GPT_ARRAY_MAX_BYTES = 16 << 20
"""An entry array larger than this is refused (131,072 entries of 128 bytes)."""
MBR_SECTOR_BYTES = 512
MBR_TYPES_EXTENDED = frozenset((0x05, 0x0F, 0x85))
"""OSType of an extended partition (DOS, Windows LBA, Linux): its sectors hold an EBR chain."""
EBR_MAX_LOGICAL = 256
"""Logical partitions followed at most (a longer EBR chain is cut, with a problem)."""
_MBR_RECORDS_OFFSET = 446
_MBR_RECORD = struct.Struct("<B3sB3sII")
_GPT_HEADER = struct.Struct("<8sIIIIQQQQ16sQIII")
_GPT_ENTRY = struct.Struct("<16s16sQQQ72s")
_crc32 = crcmod.predefined.mkCrcFun("crc-32")
_MEDIA_VALID = frozenset((0xF0, *range(0xF8, 0x100)))


# ------------------------------------------------------------------------------ FAT or MBR

def _power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def looks_like_fat(sector: bytes) -> bool:
    """Whether 512 bytes are a FAT boot sector, as libblkid's ``fat_valid_superblock``
    decides (its MBR probe calls it to tell a FAT boot sector, which ends in 0x55 0xAA too,
    from a partition table): a FAT magic (a file-system type string at byte 54 or 82; or a
    jump opcode at byte 0 or the signature, with 0x55 0xAA at byte 510 and neither "JFS" nor
    "HPFS" at byte 54), at least one FAT and one reserved sector, a media byte 0xF0 or
    0xF8..0xFF, power-of-two sector (512..4096) and cluster sizes, and a cluster count its
    type can hold."""
    if len(sector) < 512:
        return False
    s = bytes(sector[:512])
    strong = (s[82:87] == b"MSWIN" or s[82:90] == b"FAT32   " or s[54:59] == b"MSDOS"
              or s[54:62] in (b"FAT16   ", b"FAT12   ", b"FAT     "))
    if not strong:
        if s[0] not in (0xEB, 0xE9) and s[510:512] != MBR_SIGNATURE:
            return False
        if s[510:512] != MBR_SIGNATURE or s[54:62] in (b"JFS     ", b"HPFS    "):
            return False
    ss, spc, rsvd, nfats, root_entries, tot16, media, fatsz16 = struct.unpack_from("<HBHBHHBH", s, 11)
    tot32, fatsz32 = struct.unpack_from("<I", s, 32)[0], struct.unpack_from("<I", s, 36)[0]
    if not nfats or not rsvd or media not in _MEDIA_VALID or not _power_of_two(spc):
        return False
    if not _power_of_two(ss) or not 512 <= ss <= 4096:
        return False
    total = tot16 or tot32
    data = total - (rsvd + (fatsz16 or fatsz32) * nfats + (root_entries * 32 + ss - 1) // ss)
    if data < 0:
        return False
    clusters = data // spc
    if not fatsz16 and fatsz32:
        limit = 0x0FFFFFF6                              # libblkid FAT32_MAX
    else:
        limit = 0xFFF4 if clusters > 0xFF4 else 0xFF4   # FAT16_MAX, FAT12_MAX
    return clusters <= limit


# ------------------------------------------------------------------------------ MBR

@dataclass(frozen=True)
class MBREntry:
    """One partition of an MBR disk as Linux numbers it: 1-4 the records of LBA 0, 5 and up
    the logical partitions of the extended partition's EBR chain.  ``first_lba`` is
    absolute (for a logical partition: its EBR's LBA plus the record's StartingLBA), in
    512-byte sectors; ``record_offset`` the image byte offset of its 16-byte record."""

    number: int
    type_id: int
    first_lba: int
    sector_count: int
    bootable: bool
    boot_indicator: int
    start_chs: bytes
    end_chs: bytes
    record_offset: int
    logical: bool = False
    ebr_lba: int | None = None

    @property
    def device_offset(self) -> int:
        return self.first_lba * MBR_SECTOR_BYTES

    @property
    def size_bytes(self) -> int:
        return self.sector_count * MBR_SECTOR_BYTES

    @property
    def end_offset(self) -> int:
        return self.device_offset + self.size_bytes

    @property
    def extended(self) -> bool:
        return self.type_id in MBR_TYPES_EXTENDED


@dataclass
class MBRTable:
    """LBA 0 as an MBR: the boot code, disk signature, the two bytes after it, the four
    records (``records``, None for an empty one) and every partition numbered as Linux does
    (``partitions``: primary, then logical); ``problems`` what was wrong."""

    boot_code: bytes
    disk_signature: int
    reserved: bytes
    records: list[MBREntry | None]
    partitions: list[MBREntry]
    protective: bool
    problems: list[str] = field(default_factory=list)

    def to_mbr(self) -> "MBR":
        """The four records as an :class:`~sysexport.partition.mbr.MBR` (what ``MBR.parse`` gives)."""
        from .mbr import MBR, MBRPartition
        parts: list[MBRPartition | None] = []
        for r in self.records:
            parts.append(None if r is None else MBRPartition(r.type_id, r.first_lba, r.sector_count,
                                                             bootable=r.bootable, start_chs=r.start_chs,
                                                             end_chs=r.end_chs))
        while parts and parts[-1] is None:
            parts.pop()
        try:
            return MBR(boot_code=self.boot_code.rstrip(b"\0"), disk_signature=self.disk_signature,
                       partitions=parts, strict=False)
        except InvalidInputError as e:
            raise InvalidImageError(f"MBR: {e}") from None


def read_mbr(read: Reader, image_size: int) -> MBRTable | None:
    """LBA 0 as an MBR, or None when it is not one (no 0x55 0xAA, a BootIndicator other than
    0x00/0x80, a FAT boot sector, or every record starting past the disk): see the module
    docstring.  Logical partitions are read from the EBR chain, loops and records leaving
    the disk recorded as problems."""
    sector = read(0, MBR_SIZE_BYTES)
    if len(sector) < MBR_SIZE_BYTES or sector[MBR_SIGNATURE_OFFSET:MBR_SIZE_BYTES] != MBR_SIGNATURE:
        return None
    raw = [_MBR_RECORD.unpack_from(sector, _MBR_RECORDS_OFFSET + 16 * i) for i in range(MBR_PARTITION_RECORDS)]
    if any(r[0] not in (BOOT_INDICATOR_INACTIVE, BOOT_INDICATOR_ACTIVE) for r in raw):
        return None
    if looks_like_fat(sector):
        return None
    disk_sectors = image_size // MBR_SECTOR_BYTES
    used = [r for r in raw if r[2] != MBR_TYPE_EMPTY]
    if used and all(r[4] >= disk_sectors for r in used):
        return None
    problems: list[str] = []
    records: list[MBREntry | None] = []
    for i, (boot, schs, typ, echs, start, count) in enumerate(raw):
        off = _MBR_RECORDS_OFFSET + 16 * i
        if typ == MBR_TYPE_EMPTY:
            records.append(None)
            if start or count:
                problems.append(f"MBR record {i + 1} at byte {off}: type 0x00 (empty) but StartingLBA {start}, "
                                f"SizeInLBA {count}")
            continue
        e = MBREntry(i + 1, typ, start, count, boot == BOOT_INDICATOR_ACTIVE, boot, schs, echs, off)
        records.append(e)
        _check_span(e, disk_sectors, problems, f"MBR partition {i + 1} (record at byte {off})")
    protective = any(r is not None and r.type_id == MBR_TYPE_GPT_PROTECTIVE for r in records)
    partitions = [r for r in records if r is not None]
    spans = sorted((r.first_lba, r.first_lba + r.sector_count, r.number) for r in partitions
                   if r.sector_count and r.type_id != MBR_TYPE_GPT_PROTECTIVE)
    for (a0, a1, an), (b0, b1, bn) in zip(spans, spans[1:]):
        if b0 < a1:
            problems.append(f"MBR partitions {an} and {bn} overlap (LBAs {a0}..{a1 - 1} and {b0}..{b1 - 1})")
    extended = [r for r in partitions if r.extended]
    if len(extended) > 1:
        problems.append(f"MBR: {len(extended)} extended partitions; only the first ({extended[0].number}) is "
                        "followed")
    if extended and not protective:
        partitions += _read_ebr_chain(read, extended[0], disk_sectors, problems)
    return MBRTable(bytes(sector[:440]), struct.unpack_from("<I", sector, 440)[0], bytes(sector[444:446]),
                    records, partitions, protective, problems)


def _check_span(e: MBREntry, disk_sectors: int, problems: list[str], where: str) -> None:
    if e.sector_count == 0:
        problems.append(f"{where}: SizeInLBA is 0")
    if e.first_lba >= disk_sectors:
        problems.append(f"{where}: starts at LBA {e.first_lba}, past the disk's {disk_sectors} sectors")
    elif e.first_lba + e.sector_count > disk_sectors and e.type_id != MBR_TYPE_GPT_PROTECTIVE:
        problems.append(f"{where}: LBAs {e.first_lba}..{e.first_lba + e.sector_count - 1} end past the disk's "
                        f"{disk_sectors} sectors")


def _read_ebr_chain(read: Reader, ext: MBREntry, disk_sectors: int, problems: list[str]) -> list[MBREntry]:
    """The logical partitions of an extended partition: each EBR's first record is a logical
    partition (relative to that EBR), its second the next EBR (relative to the extended
    partition's start); a loop, an EBR outside the extended partition or the disk, or one
    without 0x55 0xAA ends the chain with a problem."""
    out: list[MBREntry] = []
    seen: set[int] = set()
    ebr = ext.first_lba
    number = 5
    while True:
        where = f"MBR EBR at LBA {ebr}"
        if ebr in seen:
            problems.append(f"{where}: the EBR chain loops back to it; the chain ends")
            break
        if len(out) >= EBR_MAX_LOGICAL:
            problems.append(f"{where}: more than {EBR_MAX_LOGICAL} logical partitions; the chain is cut")
            break
        if not ext.first_lba <= ebr < ext.first_lba + max(ext.sector_count, 1) or ebr >= disk_sectors:
            problems.append(f"{where}: outside the extended partition {ext.number} or the disk; the chain ends")
            break
        seen.add(ebr)
        sector = read(ebr * MBR_SECTOR_BYTES, MBR_SIZE_BYTES)
        if len(sector) < MBR_SIZE_BYTES or sector[MBR_SIGNATURE_OFFSET:MBR_SIZE_BYTES] != MBR_SIGNATURE:
            if not (ebr == ext.first_lba and sector == bytes(MBR_SIZE_BYTES)):   # an empty extended partition
                problems.append(f"{where}: no 0x55 0xAA signature; the chain ends")
            break
        base = ebr * MBR_SECTOR_BYTES + _MBR_RECORDS_OFFSET
        boot, schs, typ, echs, start, count = _MBR_RECORD.unpack_from(sector, _MBR_RECORDS_OFFSET)
        if typ != MBR_TYPE_EMPTY and count:
            e = MBREntry(number, typ, ebr + start, count, boot == BOOT_INDICATOR_ACTIVE, boot, schs, echs, base,
                         logical=True, ebr_lba=ebr)
            if boot not in (BOOT_INDICATOR_INACTIVE, BOOT_INDICATOR_ACTIVE):
                problems.append(f"{where}: logical partition {number} has the BootIndicator {boot:#04x}")
            _check_span(e, disk_sectors, problems, f"MBR logical partition {number} (record at byte {base})")
            if not (ext.first_lba <= e.first_lba and e.first_lba + count <= ext.first_lba + ext.sector_count):
                problems.append(f"MBR logical partition {number}: LBAs {e.first_lba}..{e.first_lba + count - 1} "
                                f"are not inside the extended partition {ext.number}")
            out.append(e)
            number += 1
        _, _, ntyp, _, nstart, ncount = _MBR_RECORD.unpack_from(sector, _MBR_RECORDS_OFFSET + 16)
        if ntyp == MBR_TYPE_EMPTY or ncount == 0:
            break
        if ntyp not in MBR_TYPES_EXTENDED:
            problems.append(f"{where}: its second record has type {ntyp:#04x}, not an extended type; "
                            "followed anyway")
        ebr = ext.first_lba + nstart
    return out


# ------------------------------------------------------------------------------ GPT

@dataclass(frozen=True)
class GPTHeader:
    """Every field of one GPT header as read (UEFI 5.3.2, Table 5-5), where it lies (image
    byte ``offset``) and the CRC32s computed over it and its entry array."""

    offset: int
    block_size: int
    signature: bytes
    revision: int
    header_size: int
    header_crc32: int
    reserved: int
    my_lba: int
    alternate_lba: int
    first_usable_lba: int
    last_usable_lba: int
    disk_guid: uuid.UUID
    partition_entry_lba: int
    number_of_partition_entries: int
    size_of_partition_entry: int
    partition_entry_array_crc32: int
    computed_header_crc32: int
    computed_array_crc32: int | None = None

    @property
    def array_offset(self) -> int:
        return self.partition_entry_lba * self.block_size

    @property
    def array_bytes(self) -> int:
        return self.number_of_partition_entries * self.size_of_partition_entry


@dataclass(frozen=True)
class GPTEntry:
    """One used partition entry (UEFI 5.3.3, Table 5-6): ``index`` 1-based as sgdisk and
    Linux number them, LBAs in the table's block size, ``offset`` its image byte offset."""

    index: int
    type_guid: uuid.UUID
    unique_guid: uuid.UUID
    starting_lba: int
    ending_lba: int
    attributes: int
    name: str
    block_size: int
    offset: int
    raw_name: bytes = b""

    @property
    def first_lba(self) -> int:
        return self.starting_lba

    @property
    def last_lba(self) -> int:
        return self.ending_lba

    @property
    def device_offset(self) -> int:
        return self.starting_lba * self.block_size

    @property
    def size_bytes(self) -> int:
        return (self.ending_lba - self.starting_lba + 1) * self.block_size

    @property
    def end_offset(self) -> int:
        return self.device_offset + self.size_bytes


@dataclass
class GPTTable:
    """A GPT for one block size as read: both headers (None when that copy is missing or
    unusable), which one the entries come from (``used``: "primary" or "backup"), the used
    entries, and every problem seen (the unusable copy's reason, disagreements between the
    copies, entries outside the usable range or the disk, overlaps)."""

    block_size: int
    primary: GPTHeader | None
    backup: GPTHeader | None
    used: str
    entries: list[GPTEntry]
    problems: list[str] = field(default_factory=list)
    primary_error: str | None = None
    """Why the primary copy cannot be used (None when it can)."""
    backup_error: str | None = None
    """Why no backup copy could be used (None when one was)."""
    mismatches: list[str] = field(default_factory=list)
    """Where the two copies disagree (or the backup is not where the primary says)."""
    entry_errors: list[str] = field(default_factory=list)
    """Entries that had to be skipped (EndingLBA before StartingLBA)."""
    broken_primary: GPTHeader | None = None
    """The primary header as read when it cannot be used (a CRC, MyLBA or its array wrong),
    for ``inspect``; None when it is usable or could not be parsed at all."""

    @property
    def header(self) -> GPTHeader:
        """The header whose entries are used."""
        h = self.primary if self.used == "primary" else self.backup
        assert h is not None
        return h

    @property
    def disk_guid(self) -> uuid.UUID:
        return self.header.disk_guid

    @property
    def partitions(self) -> list[GPTEntry]:
        return self.entries

    def to_gpt(self) -> "GPT":
        """The table as a :class:`~sysexport.partition.gpt.GPT` object (what ``GPT.parse``
        returns), with its headers: InvalidImageError when its fields are beyond what a GPT
        object can hold."""
        from .gpt import GPT, GPTPartition
        h = self.header
        bs = self.block_size
        try:
            gpt = GPT(block_size=bs, disk_guid=h.disk_guid, entry_count=h.number_of_partition_entries,
                      alignment_bytes=bs,
                      primary_entries_offset=self.primary.array_offset if self.primary else 2 * bs,
                      backup_header_offset=(self.primary.alternate_lba if self.primary else h.my_lba) * bs,
                      first_usable_lba=h.first_usable_lba, last_usable_lba=h.last_usable_lba)
            gpt.device_size_bytes = ((self.primary.alternate_lba if self.primary else h.my_lba) + 1) * bs
            if self.backup is not None:
                gpt.backup_entries_offset = self.backup.array_offset
            for e in self.entries:
                gpt.partitions.append(GPTPartition(e.type_guid, e.unique_guid, e.name, e.attributes,
                                                   e.device_offset, e.size_bytes, block_size=bs, index=e.index))
        except InvalidInputError as err:
            raise InvalidImageError(f"GPT ({bs}-byte blocks): {err}") from None
        return gpt


def _parse_header(read: Reader, image_size: int, block_size: int, lba: int,
                  which: str) -> tuple[GPTHeader | None, bytes, str | None]:
    """(header, entry array, None) when the header at ``lba`` and its array are usable;
    (header or None, b"", why not) otherwise; (None, b"", None) when there is no signature."""
    offset = lba * block_size
    where = f"GPT {which} header (block size {block_size}, byte {offset})"
    if offset < 0 or offset + block_size > image_size:
        return None, b"", f"{where}: lies outside the image ({image_size} bytes)"
    block = read(offset, block_size)
    if len(block) < block_size:
        return None, b"", f"{where}: the image ends inside it"
    if block[:8] != GPT_SIGNATURE:
        return None, b"", None
    (sig, rev, hsize, hcrc, reserved, my_lba, alt_lba, first_u, last_u, guid, entries_lba, count, esize,
     acrc) = _GPT_HEADER.unpack_from(block, 0)
    if not GPT_HEADER_SIZE <= hsize <= block_size:
        return None, b"", f"{where}: HeaderSize is {hsize}, expected {GPT_HEADER_SIZE}..{block_size}"
    computed = _crc32(block[:16] + b"\0\0\0\0" + block[20:hsize])
    h = GPTHeader(offset, block_size, sig, rev, hsize, hcrc, reserved, my_lba, alt_lba, first_u, last_u,
                  uuid.UUID(bytes_le=guid), entries_lba, count, esize, acrc, computed)
    if computed != hcrc:
        return h, b"", f"{where}: HeaderCRC32 is {hcrc:#010x}, computed {computed:#010x}"
    if my_lba != lba:
        return h, b"", f"{where}: MyLBA is {my_lba}, expected {lba}"
    if esize < GPT_ENTRY_SIZE or not _power_of_two(esize // GPT_ENTRY_SIZE) or esize % GPT_ENTRY_SIZE:
        return h, b"", f"{where}: SizeOfPartitionEntry is {esize}, expected 128 * 2**n"
    nbytes = count * esize
    if nbytes > GPT_ARRAY_MAX_BYTES:
        return h, b"", (f"{where}: NumberOfPartitionEntries {count} * SizeOfPartitionEntry {esize} = {nbytes} "
                        f"bytes, more than {GPT_ARRAY_MAX_BYTES}")
    aoff = entries_lba * block_size
    if aoff + nbytes > image_size or entries_lba < 1:
        return h, b"", (f"{where}: the entry array at LBA {entries_lba} ({nbytes} bytes) lies outside the image "
                        f"({image_size} bytes)")
    array = read(aoff, nbytes)
    if len(array) < nbytes:
        return h, b"", f"{where}: the image ends inside the entry array at LBA {entries_lba}"
    acomputed = _crc32(array)
    h = GPTHeader(offset, block_size, sig, rev, hsize, hcrc, reserved, my_lba, alt_lba, first_u, last_u,
                  uuid.UUID(bytes_le=guid), entries_lba, count, esize, acrc, computed, acomputed)
    if acomputed != acrc:
        return h, b"", f"{where}: PartitionEntryArrayCRC32 is {acrc:#010x}, computed {acomputed:#010x}"
    return h, array, None


def _header_problems(h: GPTHeader, image_blocks: int, which: str) -> list[str]:
    """Deviations of a usable header that do not stop it being read."""
    where = f"GPT {which} header (block size {h.block_size}, byte {h.offset})"
    out = []
    if h.revision != GPT_REVISION:
        out.append(f"{where}: Revision is {h.revision:#010x}, expected {GPT_REVISION:#010x}")
    if h.reserved:
        out.append(f"{where}: Reserved is {h.reserved:#x}, must be 0")
    if h.first_usable_lba > h.last_usable_lba + 1:
        out.append(f"{where}: FirstUsableLBA {h.first_usable_lba} > LastUsableLBA {h.last_usable_lba}")
    if h.last_usable_lba >= image_blocks:
        out.append(f"{where}: LastUsableLBA {h.last_usable_lba} is past the image's last LBA {image_blocks - 1}")
    a0, a1 = h.partition_entry_lba, h.partition_entry_lba + -(-h.array_bytes // h.block_size)
    if a0 <= h.my_lba < a1:
        out.append(f"{where}: the entry array (LBAs {a0}..{a1 - 1}) covers the header itself")
    if a0 <= h.last_usable_lba and a1 > h.first_usable_lba:
        out.append(f"{where}: the entry array (LBAs {a0}..{a1 - 1}) overlaps the usable LBAs "
                   f"{h.first_usable_lba}..{h.last_usable_lba}")
    return out


def read_gpt(read: Reader, image_size: int, block_size: int = 512) -> GPTTable | None:
    """The GPT for ``block_size`` (see the module docstring), None when neither LBA 1 nor the
    last LBA holds "EFI PART".  InvalidImageError when a signature is there but neither copy
    can be used, naming both reasons."""
    if block_size not in (512, 1024, 2048, 4096):
        raise InvalidInputError(f"GPT block_size: must be 512, 1024, 2048 or 4096, found {block_size!r}")
    blocks = image_size // block_size
    if blocks < 3:
        return None
    last = blocks - 1
    problems: list[str] = []
    primary, parray, perr = _parse_header(read, image_size, block_size, 1, "primary")
    candidates = []
    if perr is None and primary is not None:
        candidates.append(primary.alternate_lba)
    if last not in candidates:
        candidates.append(last)
    backup: GPTHeader | None = None
    barray = b""
    berrs: list[str] = []
    for lba in candidates:
        if lba == 1 or lba > last:
            if primary is not None and perr is None:
                berrs.append(f"GPT primary header (block size {block_size}): AlternateLBA {lba} is "
                             f"{'the primary itself' if lba == 1 else 'past the end of the image'}")
            continue
        h, arr, err = _parse_header(read, image_size, block_size, lba, "backup")
        if err is None and h is not None:
            backup, barray = h, arr
            break
        if err is not None:
            berrs.append(err)
        elif primary is not None and perr is None:
            berrs.append(f"GPT backup header (block size {block_size}, byte {lba * block_size}): no Signature "
                         f"{GPT_SIGNATURE!r}")
    p_ok = perr is None and primary is not None
    if not p_ok and backup is None:
        if perr is None and not berrs:
            return None                      # no signature anywhere
        reasons = [r for r in [perr, *berrs] if r]
        if perr is None:
            reasons.insert(0, f"GPT primary header (block size {block_size}, byte {block_size}): no Signature")
        raise InvalidImageError("; ".join(reasons) + "; neither GPT copy can be used")
    mismatches: list[str] = []
    backup_error = None if backup is not None else (berrs[0] if berrs else
                                                    f"GPT ({block_size}-byte blocks): no backup header")
    if p_ok:
        assert primary is not None
        used, header, array = "primary", primary, parray
        if backup is None:
            problems.extend(berrs or [f"GPT ({block_size}-byte blocks): no backup header"])
            primary_only = True
        else:
            primary_only = False
            if backup.my_lba != primary.alternate_lba:
                mismatches.append(f"GPT ({block_size}-byte blocks): the backup header is at LBA {backup.my_lba} "
                                  f"(the last LBA), not at the primary's AlternateLBA {primary.alternate_lba}")
        if primary.alternate_lba != last and not primary_only:
            problems.append(f"GPT primary header (block size {block_size}): AlternateLBA {primary.alternate_lba} "
                            f"is not the image's last LBA {last}")
    else:
        assert backup is not None
        used, header, array = "backup", backup, barray
        problems.append(f"{perr or f'GPT primary header (block size {block_size}, byte {block_size}): no Signature'}"
                        f"; the backup header at byte {backup.offset} is used (as sgdisk does)")
    if primary is not None and backup is not None and p_ok:
        _compare_headers(primary, backup, parray, barray, mismatches)
    problems.extend(mismatches)
    for h, which in ((primary if p_ok else None, "primary"), (backup, "backup")):
        if h is not None:
            problems.extend(_header_problems(h, blocks, which))
    entry_errors: list[str] = []
    entries = _parse_entries(header, array, blocks, problems, entry_errors)
    return GPTTable(block_size, primary if p_ok else None, backup, used, entries, problems,
                    primary_error=None if p_ok else (perr or f"GPT primary header (block size {block_size}, byte "
                                                     f"{block_size}): no Signature"),
                    backup_error=backup_error, mismatches=mismatches, entry_errors=entry_errors,
                    broken_primary=None if p_ok else primary)


def _compare_headers(p: GPTHeader, b: GPTHeader, parray: bytes, barray: bytes, problems: list[str]) -> None:
    where = f"GPT ({p.block_size}-byte blocks)"
    for name in ("revision", "header_size", "first_usable_lba", "last_usable_lba", "disk_guid",
                 "number_of_partition_entries", "size_of_partition_entry", "partition_entry_array_crc32"):
        pv, bv = getattr(p, name), getattr(b, name)
        if pv != bv:
            problems.append(f"{where}: the backup header's {name} is {bv}, the primary's {pv}")
    if b.alternate_lba != p.my_lba:
        problems.append(f"{where}: the backup header's AlternateLBA is {b.alternate_lba}, expected {p.my_lba}")
    if parray != barray and p.partition_entry_array_crc32 == b.partition_entry_array_crc32:
        problems.append(f"{where}: the two entry arrays differ")
    if b.partition_entry_lba <= p.last_usable_lba and b.partition_entry_lba >= p.first_usable_lba:
        problems.append(f"{where}: the backup entry array at LBA {b.partition_entry_lba} lies in the usable range")


def _parse_entries(h: GPTHeader, array: bytes, blocks: int, problems: list[str],
                   entry_errors: list[str]) -> list[GPTEntry]:
    where = f"GPT ({h.block_size}-byte blocks)"
    out: list[GPTEntry] = []
    esize = h.size_of_partition_entry
    zero = bytes(16)
    for i in range(h.number_of_partition_entries):
        pos = i * esize
        if array[pos:pos + 16] == zero:
            continue
        tguid, uguid, start, end, attrs, raw_name = _GPT_ENTRY.unpack_from(array, pos)
        at = h.array_offset + pos
        we = f"GPT entry {i + 1} ({h.block_size}-byte blocks, byte {at})"
        if end < start:
            entry_errors.append(f"{we}: EndingLBA {end} < StartingLBA {start}")
            problems.append(f"{we}: EndingLBA {end} < StartingLBA {start}; skipped")
            continue
        units = raw_name
        for j in range(0, GPT_NAME_BYTES, 2):
            if units[j:j + 2] == b"\0\0":
                units = units[:j]
                break
        try:
            name = units.decode("utf-16-le")
        except UnicodeDecodeError:
            name = units.decode("utf-16-le", "replace")
            problems.append(f"{we}: PartitionName is not valid UTF-16")
        e = GPTEntry(i + 1, uuid.UUID(bytes_le=tguid), uuid.UUID(bytes_le=uguid), start, end, attrs, name,
                     h.block_size, at, bytes(raw_name))
        if start < h.first_usable_lba or end > h.last_usable_lba:
            problems.append(f"{we}: LBAs {start}..{end} are outside the usable LBAs {h.first_usable_lba}.."
                            f"{h.last_usable_lba}")
        if end >= blocks:
            problems.append(f"{we}: LBAs {start}..{end} end past the image's last LBA {blocks - 1}")
        if e.unique_guid.int == 0:
            problems.append(f"{we}: UniquePartitionGUID is zero")
        out.append(e)
    spans = sorted((e.starting_lba, e.ending_lba, e.index) for e in out)
    reach, reach_index = -1, 0
    for s, t, idx in spans:
        if s <= reach:
            problems.append(f"{where}: entries {reach_index} and {idx} overlap")
        if t > reach:
            reach, reach_index = t, idx
    guids: dict[uuid.UUID, int] = {}
    for e in out:
        if e.unique_guid.int and guids.setdefault(e.unique_guid, e.index) != e.index:
            problems.append(f"{where}: entries {guids[e.unique_guid]} and {e.index} have the same "
                            "UniquePartitionGUID")
    return out


# ------------------------------------------------------------------------------ all of them

@dataclass
class PartitionTables:
    """What LBA 0 and the GPT locations hold: the MBR (None when LBA 0 is not one), the GPT
    for 512- and 4096-byte blocks (None when absent) and every problem met, each naming
    the structure and byte offset (a GPT neither of whose copies could be used is a
    problem here, its table None)."""

    mbr: MBRTable | None
    gpt512: GPTTable | None
    gpt4096: GPTTable | None
    problems: list[str] = field(default_factory=list)

    @property
    def gpts(self) -> dict[int, GPTTable]:
        return {bs: g for bs, g in ((512, self.gpt512), (4096, self.gpt4096)) if g is not None}


def file_reader(file: BinaryIO | int) -> Reader:
    """``read(offset, n)`` over a binary file object or a file descriptor (short at its end)."""
    if isinstance(file, int):
        fd = file

        def read_fd(offset: int, n: int) -> bytes:
            parts, got = [], 0
            while got < n:
                piece = os.pread(fd, n - got, offset + got)
                if not piece:
                    break
                parts.append(piece)
                got += len(piece)
            return b"".join(parts)
        return read_fd

    def read_obj(offset: int, n: int) -> bytes:
        file.seek(offset)
        return file.read(n)
    return read_obj


def image_size(file: BinaryIO | int) -> int:
    """The size of an image file or block device (a file object or a descriptor), its
    position left as it was."""
    if isinstance(file, int):
        st = os.fstat(file)
        if st.st_size or not (stat.S_ISBLK(st.st_mode) or stat.S_ISCHR(st.st_mode)):
            return st.st_size
        pos = os.lseek(file, 0, os.SEEK_CUR)
        try:
            return os.lseek(file, 0, os.SEEK_END)
        finally:
            os.lseek(file, pos, os.SEEK_SET)
    pos = file.tell()
    try:
        return file.seek(0, os.SEEK_END)
    finally:
        file.seek(pos)


def read_partition_tables(file: BinaryIO | int, size: int | None = None) -> PartitionTables:
    """The MBR and both GPTs of an image (a binary file object or a descriptor, ``size``
    bytes long, found when None); never raises for what the image holds: a GPT neither of
    whose copies can be used is a problem, its table None."""
    if size is None:
        size = image_size(file)
    read = file_reader(file)
    mbr = read_mbr(read, size)
    problems = list(mbr.problems) if mbr else []
    gpts: dict[int, GPTTable | None] = {}
    for bs in GPT_BLOCK_SIZES:
        try:
            gpts[bs] = read_gpt(read, size, bs)
        except InvalidImageError as e:
            gpts[bs] = None
            problems.append(str(e))
        else:
            t = gpts[bs]
            if t is not None:
                problems.extend(t.problems)
    return PartitionTables(mbr, gpts.get(512), gpts.get(4096), problems)


__all__ = ["read_partition_tables", "read_gpt", "read_mbr", "looks_like_fat", "file_reader", "image_size",
           "PartitionTables", "MBRTable", "MBREntry", "GPTTable", "GPTHeader", "GPTEntry", "MBR_TYPES_EXTENDED"]
