"""The master boot record: legacy partition table and the GPT protective MBR.

UEFI 2.10 section 5.2.1 (legacy MBR) and 5.2.3 (protective MBR).  LBA 0 holds 440
bytes of x86 boot code, a 4-byte disk signature, two zero bytes, four 16-byte partition
records and the signature 0x55 0xAA.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

from construct import ConstructError

from ..data import DataSource, _pwrite_all
from ..errors import InvalidImageError, InvalidInputError
from ._structs import LEGACY_MBR, MBR_PARTITION_RECORDS, MBR_SIGNATURE_OFFSET, MBR_SIZE_BYTES
from ._structs import MBR_BOOT_CODE_BYTES as BOOT_CODE_MAX_BYTES
from .enums import (BOOT_INDICATOR_ACTIVE, BOOT_INDICATOR_INACTIVE, MBR_TYPE_EFI_SYSTEM,  # noqa: F401
                    MBR_TYPE_EMPTY, MBR_TYPE_GPT_PROTECTIVE)

CHS_HEADS = 255
CHS_SECTORS_PER_TRACK = 63
CHS_MAX_CYLINDER = 1023
CHS_OUT_OF_RANGE = b"\xfe\xff\xff"
"""CHS 1023/254/63, what fdisk and sgdisk write for an address CHS cannot reach."""
CHS_PROTECTIVE_OUT_OF_RANGE = b"\xff\xff\xff"
"""UEFI 5.2.3: the protective record's EndingCHS when the last block cannot be expressed."""
CHS_PROTECTIVE_START = b"\x00\x02\x00"
"""UEFI 5.2.3: StartingCHS 0x000200 (cylinder 0, head 0, sector 2 = LBA 1)."""

_U32_MAX = 0xFFFFFFFF
LBA_LIMIT = 1 << 32
"""StartingLBA and SizeInLBA are 32-bit: a partition must end by LBA 2**32 (2 TiB of
512-byte sectors), where every reader (Windows, fdisk, parted) can still reach it."""


ISOHYBRID_HEADS = 64
ISOHYBRID_SECTORS_PER_TRACK = 32
"""The geometry isohybrid images describe themselves with (syslinux isohybrid's and
xorriso's default: 64 heads, 32 sectors, so a cylinder is 1 MiB)."""


def lba_to_chs(lba: int, out_of_range: bytes = CHS_OUT_OF_RANGE, *, heads: int = CHS_HEADS,
               sectors_per_track: int = CHS_SECTORS_PER_TRACK) -> bytes:
    """The 3-byte CHS address of ``lba`` with the usual 255-head, 63-sector geometry (or
    the one given: isohybrid images use 64 and 32).

    Byte 0 is the head, byte 1 the sector (1-63) with cylinder bits 8-9 in its top two
    bits, byte 2 cylinder bits 0-7.  Beyond cylinder 1023, ``out_of_range`` is returned.
    """
    cylinder, rest = divmod(lba, heads * sectors_per_track)
    if cylinder > CHS_MAX_CYLINDER:
        return out_of_range
    head, sector0 = divmod(rest, sectors_per_track)
    return bytes((head, (sector0 + 1) | ((cylinder >> 2) & 0xC0), cylinder & 0xFF))


def _check_u32(value: object, field: str, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= _U32_MAX:
        raise InvalidInputError(f"{where}: {field} must be an integer 0..0xFFFFFFFF, found {value!r}")
    return value


@dataclass
class MBRPartition:
    """One legacy MBR partition record (UEFI 5.2.1, Table 5-2).

    ``first_lba`` and ``sector_count`` are in 512-byte units (32 bits each).  The CHS
    fields are computed from them unless given (``start_chs``/``end_chs``: 3 raw bytes,
    kept when a record is parsed so that it writes back unchanged).
    """

    type_id: int
    first_lba: int
    sector_count: int
    bootable: bool = False
    start_chs: bytes | None = None
    end_chs: bytes | None = None
    type_zero_ok: bool = field(default=False, repr=False, compare=False)
    """Allow type 0x00 on a record that is not empty: xorriso's isohybrid tables mark the
    partition over the ISO (and --mbr-force-bootable's record) so, beside a GPT."""

    def __post_init__(self) -> None:
        where = "MBR partition"
        low = 0 if self.type_zero_ok else 1
        if isinstance(self.type_id, bool) or not isinstance(self.type_id, int) or not low <= self.type_id <= 0xFF:
            raise InvalidInputError(f"{where}: type_id must be 0x01..0xFF (0x00 marks an empty record), "
                                    f"found {self.type_id!r}")
        _check_u32(self.first_lba, "first_lba", where)
        _check_u32(self.sector_count, "sector_count", where)
        if not isinstance(self.bootable, bool):
            raise InvalidInputError(f"{where}: bootable must be True or False, found {self.bootable!r}")
        for field in ("start_chs", "end_chs"):
            value = getattr(self, field)
            if value is not None and (not isinstance(value, (bytes, bytearray)) or len(value) != 3):
                raise InvalidInputError(f"{where}: {field} must be 3 bytes, found {value!r}")

    def to_record(self) -> dict:
        """The construct container for MBR_PARTITION_RECORD."""
        last_lba = self.first_lba + max(self.sector_count, 1) - 1
        return dict(
            BootIndicator=BOOT_INDICATOR_ACTIVE if self.bootable else BOOT_INDICATOR_INACTIVE,
            StartingCHS=bytes(self.start_chs) if self.start_chs is not None else lba_to_chs(self.first_lba),
            OSType=self.type_id,
            EndingCHS=bytes(self.end_chs) if self.end_chs is not None else lba_to_chs(last_lba),
            StartingLBA=self.first_lba,
            SizeInLBA=self.sector_count,
        )


def validate_boot_code(value: object) -> bytes:
    """MBR boot code: bytes of at most 440 (what fits before the disk signature)."""
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise InvalidInputError(f"MBR boot_code: expected bytes, found {type(value).__name__} "
                                "(use MBR.set_boot_code() for a path or a DataSource)")
    code = bytes(value)
    if len(code) > BOOT_CODE_MAX_BYTES:
        raise InvalidInputError(
            f"MBR boot_code: at most {BOOT_CODE_MAX_BYTES} bytes fit before the disk signature, "
            f"found {len(code)} (use MBR.set_boot_code() to keep only the first {BOOT_CODE_MAX_BYTES})")
    return code


def check_partition_layout(partitions: list[MBRPartition | None]) -> None:
    """The rules of a table this writer makes: every record covers at least one sector,
    starts after the MBR (LBA 0), ends by LBA 2**32 (the 32-bit fields: 2 TiB of 512-byte
    sectors), and overlaps no other record."""
    spans: list[tuple[int, int, int]] = []
    for i, p in enumerate(partitions):
        if p is None:
            continue
        where = f"MBR partition {i + 1} (type {p.type_id:#04x})"
        if p.sector_count == 0:
            raise InvalidInputError(f"{where}: sector_count is 0; a partition covers at least one sector")
        if p.first_lba == 0:
            raise InvalidInputError(f"{where}: first_lba is 0, the MBR's own sector; a partition starts at LBA 1 "
                                    "or later (MBR(..., strict=False) writes such a table as given)")
        end = p.first_lba + p.sector_count
        if end > LBA_LIMIT:
            raise InvalidInputError(
                f"{where}: LBAs {p.first_lba}..{end - 1} end past LBA {LBA_LIMIT - 1}; the 32-bit fields reach "
                f"{LBA_LIMIT * 512} bytes (2 TiB) of 512-byte sectors, use a GPT for more")
        for j, first, stop in spans:
            if p.first_lba < stop and first < end:
                raise InvalidInputError(
                    f"{where}: LBAs {p.first_lba}..{end - 1} overlap MBR partition {j + 1} (LBAs {first}..{stop - 1})")
        spans.append((i, p.first_lba, end))


_EMPTY_RECORD = dict(BootIndicator=BOOT_INDICATOR_INACTIVE, StartingCHS=bytes(3), OSType=MBR_TYPE_EMPTY,
                     EndingCHS=bytes(3), StartingLBA=0, SizeInLBA=0)


class MBR:
    """A master boot record (UEFI 5.2.1): boot code, disk signature, four records.

    ``partitions`` holds up to four :class:`MBRPartition` (``None`` = an empty slot,
    keeping the slot numbers of the ones after it).
    """

    def __init__(self, boot_code: bytes = b"", disk_signature: int = 0,
                 partitions: list[MBRPartition | None] | None = None, *, strict: bool = True) -> None:
        self.strict = strict
        self.boot_code = boot_code
        self.disk_signature = disk_signature
        if partitions is not None and not isinstance(partitions, (list, tuple)):
            raise InvalidInputError(f"MBR partitions: expected a list of MBRPartition or None, "
                                    f"found {type(partitions).__name__}")
        self.partitions: list[MBRPartition | None] = list(partitions or [])
        self._check_partitions()

    @property
    def boot_code(self) -> bytes:
        """The x86 boot code of bytes 0..439 (validated when set, see :func:`validate_boot_code`)."""
        return self._boot_code

    @boot_code.setter
    def boot_code(self, value: bytes) -> None:
        self._boot_code = validate_boot_code(value)

    @property
    def disk_signature(self) -> int:
        """UniqueMBRDiskSignature, a 32-bit number (validated when set)."""
        return self._disk_signature

    @disk_signature.setter
    def disk_signature(self, value: int) -> None:
        self._disk_signature = _check_u32(value, "disk_signature", "MBR")

    def _check_partitions(self) -> None:
        """At most four records of MBRPartition or None; with ``strict`` (all but a parsed
        MBR), each non-empty, past LBA 0, ending by LBA 2**32 and overlapping no other."""
        if len(self.partitions) > MBR_PARTITION_RECORDS:
            raise InvalidInputError(f"MBR partitions: at most {MBR_PARTITION_RECORDS} records, "
                                    f"found {len(self.partitions)}")
        for i, p in enumerate(self.partitions):
            if p is not None and not isinstance(p, MBRPartition):
                raise InvalidInputError(f"MBR partitions[{i}]: expected MBRPartition or None, found {type(p).__name__}")
        if self.strict:
            check_partition_layout(self.partitions)

    def set_boot_code(self, data: bytes | DataSource | str | os.PathLike) -> None:
        """Take boot code of any length, keeping only its first 440 bytes.

        This is what Sys::Export does with a full 512-byte MBR image (e.g. GRUB's
        boot.img or isohybrid's mbr): the disk signature and partition records that
        follow in such a file are ours to write.  ``data`` may be bytes, a
        :class:`DataSource` or a host path.
        """
        if isinstance(data, (bytes, bytearray, memoryview)):
            code = bytes(data[:BOOT_CODE_MAX_BYTES])
        elif isinstance(data, DataSource):
            code = b""
            for chunk in data.iter_chunks(BOOT_CODE_MAX_BYTES):
                code += chunk
                if len(code) >= BOOT_CODE_MAX_BYTES:
                    break
            code = code[:BOOT_CODE_MAX_BYTES]
        elif isinstance(data, (str, os.PathLike)):
            try:
                with open(data, "rb") as f:
                    code = f.read(BOOT_CODE_MAX_BYTES)
            except OSError as e:
                raise InvalidInputError(f"{os.fsdecode(data)}: cannot read MBR boot code: {e.strerror}") from e
        else:
            raise InvalidInputError(f"MBR boot code: expected bytes, a DataSource or a path, found {type(data).__name__}")
        self.boot_code = code

    @classmethod
    def protective(cls, device_size_bytes: int, block_size: int = 512, bootable: bool = False) -> "MBR":
        """The protective MBR of a GPT disk (UEFI 5.2.3, Table 5-4).

        One record of type 0xEE from LBA 1 to the last block of the disk (SizeInLBA capped
        at 0xFFFFFFFF), StartingCHS 0x000200, EndingCHS the last block's CHS address or
        0xFFFFFF.  ``bootable=True`` sets BootIndicator 0x80, which UEFI says to leave at 0
        but which some BIOSes want before they boot from a disk (archiso's reason); the GPT
        itself stays valid either way.
        """
        if block_size < 512 or block_size & (block_size - 1):
            raise InvalidInputError(f"protective MBR: block_size must be a power of two >= 512, found {block_size}")
        if not isinstance(device_size_bytes, int) or device_size_bytes < 2 * block_size:
            raise InvalidInputError(
                f"protective MBR: device_size_bytes must be at least two blocks ({2 * block_size}), "
                f"found {device_size_bytes!r}")
        last_lba = device_size_bytes // block_size - 1
        record = MBRPartition(MBR_TYPE_GPT_PROTECTIVE, 1, min(last_lba, _U32_MAX), bootable=bootable,
                              start_chs=CHS_PROTECTIVE_START,
                              end_chs=lba_to_chs(last_lba, CHS_PROTECTIVE_OUT_OF_RANGE))
        return cls(partitions=[record])

    def to_bytes(self) -> bytes:
        """The 512 bytes of LBA 0."""
        self._check_partitions()
        records = [p.to_record() if p is not None else _EMPTY_RECORD for p in self.partitions]
        records += [_EMPTY_RECORD] * (MBR_PARTITION_RECORDS - len(records))
        return LEGACY_MBR.build(dict(
            BootCode=self.boot_code.ljust(BOOT_CODE_MAX_BYTES, b"\0"),
            UniqueMBRDiskSignature=self.disk_signature,
            Unknown=b"\0\0",
            PartitionRecord=records,
        ))

    @classmethod
    def parse(cls, data: bytes) -> "MBR":
        """Read an MBR from (at least) its 512 bytes; InvalidImageError when it is not one."""
        if len(data) < MBR_SIZE_BYTES:
            raise InvalidImageError(f"MBR: expected {MBR_SIZE_BYTES} bytes, found {len(data)}")
        try:
            c = LEGACY_MBR.parse(bytes(data[:MBR_SIZE_BYTES]))
        except ConstructError as e:
            raise InvalidImageError(
                f"MBR: no 0x55 0xAA signature at byte {MBR_SIGNATURE_OFFSET} "
                f"(found {bytes(data[MBR_SIGNATURE_OFFSET:MBR_SIZE_BYTES]).hex()})") from e
        partitions: list[MBRPartition | None] = []
        for i, r in enumerate(c.PartitionRecord):
            if r.OSType == MBR_TYPE_EMPTY:
                partitions.append(None)
                continue
            if r.BootIndicator not in (BOOT_INDICATOR_INACTIVE, BOOT_INDICATOR_ACTIVE):
                raise InvalidImageError(f"MBR record {i}: BootIndicator must be 0x00 or 0x80, found {r.BootIndicator:#04x}")
            partitions.append(MBRPartition(r.OSType, r.StartingLBA, r.SizeInLBA,
                                           bootable=r.BootIndicator == BOOT_INDICATOR_ACTIVE,
                                           start_chs=bytes(r.StartingCHS), end_chs=bytes(r.EndingCHS)))
        while partitions and partitions[-1] is None:
            partitions.pop()
        boot_code = bytes(c.BootCode).rstrip(b"\0")
        # What is on a disk is read as it is (isohybrid's records start at LBA 0 and overlap).
        return cls(boot_code=boot_code, disk_signature=c.UniqueMBRDiskSignature, partitions=partitions, strict=False)

    def write(self, fd: int, device_offset: int = 0) -> None:
        """Write the 512 bytes at ``device_offset`` of the open file descriptor ``fd``."""
        _pwrite_all(fd, self.to_bytes(), device_offset)

    def __repr__(self) -> str:
        return (f"MBR(boot_code=<{len(self.boot_code)} bytes>, disk_signature={self.disk_signature:#010x}, "
                f"partitions={self.partitions!r})")
