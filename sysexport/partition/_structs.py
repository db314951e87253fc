"""On-disk structures of the legacy/protective MBR and of the GUID Partition Table.

Declarations only, with the field names of the UEFI specification (2.10, chapter 5,
"GUID Partition Table (GPT) Disk Layout").  Every integer is little-endian.  A GUID is
stored "mixed-endian" (EFI_GUID, Appendix A): its first three fields little-endian, the
last eight bytes as they are, which is what ``uuid.UUID(bytes_le=...)`` reads and writes.
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
    "BootIndicator" / Int8ul,       # 0: 0x80 = bootable (legacy), 0x00 otherwise
    "StartingCHS" / Bytes(3),       # 1: head, sector | cylinder bits 8-9 << 6, cylinder bits 0-7
    "OSType" / Int8ul,              # 4: partition type (0xEE = GPT protective)
    "EndingCHS" / Bytes(3),         # 5: same encoding as StartingCHS
    "StartingLBA" / Int32ul,        # 8: first sector, in 512-byte (logical block) units
    "SizeInLBA" / Int32ul,          # 12: number of logical blocks
)

# UEFI 5.2.1, Table 5-1 "Legacy MBR" (and 5.2.3, Table 5-3 "Protective MBR"): 512 bytes at LBA 0.
LEGACY_MBR = Struct(
    "BootCode" / Bytes(440),                            # 0: x86 code, unused by UEFI
    "UniqueMBRDiskSignature" / Int32ul,                 # 440: disk signature
    "Unknown" / Bytes(2),                               # 444: zero (some tools: copy-protect 0x5A5A)
    "PartitionRecord" / Array(4, MBR_PARTITION_RECORD),  # 446: four 16-byte records
    "Signature" / Const(b"\x55\xaa"),                   # 510: 0xAA55 little-endian
)

GPT_SIGNATURE = b"EFI PART"
GPT_REVISION = 0x00010000
GPT_HEADER_SIZE = 92

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

GPT_ENTRY_SIZE = 128

# UEFI 5.3.3, Table 5-6 "GPT Partition Entry" (128 bytes).
GPT_PARTITION_ENTRY = Struct(
    "PartitionTypeGUID" / GUID,                 # 0: zero = unused entry
    "UniquePartitionGUID" / GUID,               # 16
    "StartingLBA" / Int64ul,                    # 32
    "EndingLBA" / Int64ul,                      # 40: inclusive
    "Attributes" / Int64ul,                     # 48: Table 5-7 bits
    "PartitionName" / Bytes(72),                # 56: UTF-16LE, NUL padded (36 code units)
)
