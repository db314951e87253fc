"""On-disk structures of the legacy/protective MBR and of the GUID Partition Table.

Declarations only, with the field names of the UEFI specification (2.10, chapter 5,
"GUID Partition Table (GPT) Disk Layout"), and their sizes and signatures; the values that
fill the fields (type GUIDs, MBR types, attribute bits) are in :mod:`.enums`.  Every
integer is little-endian.  A GUID is stored "mixed-endian" (EFI_GUID, Appendix A): its
first three fields little-endian, the last eight bytes as they are, which is what
``uuid.UUID(bytes_le=...)`` reads and writes.  Nothing here is built in bulk, so no
hand-written fast copy stands beside these declarations.
"""
from __future__ import annotations

import uuid

from construct import Array, Bytes, Const, ExprAdapter, Int8ul, Int32ul, Int64ul, Struct

GUID = ExprAdapter(
    Bytes(16),
    decoder=lambda obj, ctx: uuid.UUID(bytes_le=bytes(obj)),
    encoder=lambda obj, ctx: obj.bytes_le,
)
"""EFI_GUID (UEFI Appendix A): 16 bytes, Data1..Data3 little-endian, Data4 as bytes."""

# UEFI 5.2.1, Table 5-2 "Legacy MBR Partition Record" (16 bytes).
MBR_PARTITION_RECORD = Struct(
    "BootIndicator" / Int8ul,       # 0: enums.BOOT_INDICATOR_ACTIVE (0x80) = bootable (legacy), 0x00 otherwise
    "StartingCHS" / Bytes(3),       # 1: head, sector | cylinder bits 8-9 << 6, cylinder bits 0-7
    "OSType" / Int8ul,              # 4: partition type, enums.MBR_TYPE_* (0xEE = GPT protective)
    "EndingCHS" / Bytes(3),         # 5: same encoding as StartingCHS
    "StartingLBA" / Int32ul,        # 8: first sector, in 512-byte (logical block) units
    "SizeInLBA" / Int32ul,          # 12: number of logical blocks
)

# UEFI 5.2.1, Table 5-1 "Legacy MBR" (and 5.2.3, Table 5-3 "Protective MBR"): 512 bytes at LBA 0.
MBR_BOOT_CODE_BYTES = 440
"""Bytes of x86 boot code before the disk signature (UEFI Table 5-1)."""
MBR_SIGNATURE = b"\x55\xaa"
"""Bytes 510-511 of an MBR (0xAA55 little-endian)."""
MBR_PARTITION_RECORDS = 4
LEGACY_MBR = Struct(
    "BootCode" / Bytes(MBR_BOOT_CODE_BYTES),            # 0: x86 code, unused by UEFI
    "UniqueMBRDiskSignature" / Int32ul,                 # 440: disk signature
    "Unknown" / Bytes(2),                               # 444: zero (some tools: copy-protect 0x5A5A)
    "PartitionRecord" / Array(MBR_PARTITION_RECORDS, MBR_PARTITION_RECORD),  # 446: four 16-byte records
    "Signature" / Const(MBR_SIGNATURE),                 # 510: 0xAA55 little-endian
)
MBR_SIZE_BYTES = LEGACY_MBR.sizeof()   # 512
MBR_SIGNATURE_OFFSET = MBR_SIZE_BYTES - len(MBR_SIGNATURE)   # 510

GPT_SIGNATURE = b"EFI PART"
GPT_REVISION = 0x00010000

# UEFI 5.3.2, Table 5-5 "GPT Header" (92 bytes; the rest of the block is reserved, zero).
GPT_HEADER = Struct(
    "Signature" / Const(GPT_SIGNATURE),         # 0: "EFI PART"
    "Revision" / Int32ul,                       # 8: 0x00010000
    "HeaderSize" / Int32ul,                     # 12: 92 .. block size
    "HeaderCRC32" / Int32ul,                    # 16: CRC32 of HeaderSize bytes, this field zeroed
    "Reserved" / Int32ul,                       # 20: must be zero
    "MyLBA" / Int64ul,                          # 24: LBA of this header
    "AlternateLBA" / Int64ul,                   # 32: LBA of the other header
    "FirstUsableLBA" / Int64ul,                 # 40: first LBA a partition may use
    "LastUsableLBA" / Int64ul,                  # 48: last LBA a partition may use
    "DiskGUID" / GUID,                          # 56: the disk's GUID
    "PartitionEntryLBA" / Int64ul,              # 72: first LBA of this header's entry array
    "NumberOfPartitionEntries" / Int32ul,       # 80: entries in the array
    "SizeOfPartitionEntry" / Int32ul,           # 84: 128 * 2**n
    "PartitionEntryArrayCRC32" / Int32ul,       # 88: CRC32 of Number * Size bytes of the array
)
GPT_HEADER_SIZE = GPT_HEADER.sizeof()   # 92

# UEFI 5.3.3, Table 5-6 "GPT Partition Entry" (128 bytes).
GPT_NAME_BYTES = 72
GPT_NAME_MAX_UNITS = GPT_NAME_BYTES // 2   # PartitionName: 36 UTF-16 code units
GPT_PARTITION_ENTRY = Struct(
    "PartitionTypeGUID" / GUID,                 # 0: enums.GPT_TYPE_*; zero = unused entry
    "UniquePartitionGUID" / GUID,               # 16
    "StartingLBA" / Int64ul,                    # 32
    "EndingLBA" / Int64ul,                      # 40: inclusive
    "Attributes" / Int64ul,                     # 48: Table 5-8 bits, enums.GPT_ATTR_*
    "PartitionName" / Bytes(GPT_NAME_BYTES),    # 56: UTF-16LE, NUL padded (36 code units)
)
GPT_ENTRY_SIZE = GPT_PARTITION_ENTRY.sizeof()   # 128
GPT_ENTRY_ARRAY_MIN_BYTES = 16384
"""UEFI 5.3.1: at least 16,384 bytes must be reserved for each partition entry array."""
