"""On-disk structures of FAT12/16/32 (Microsoft "FAT: General Overview of On-Disk Format",
fatgen103, version 1.03), declared once with ``construct``.

Field names follow fatgen103.  Offsets in the comments are bytes from the start of the
structure; the values that fill the fields are beside them.  The hot paths (directory
entries, long-name entries, FAT tables) also have precompiled :class:`struct.Struct` /
:mod:`array` equivalents; :data:`FAST_CODECS` at the end lists each with what the property
test (tests/test_fastcodecs.py) checks it against.
"""
from __future__ import annotations

import random
import struct
from array import array

from construct import (Array, BitsInteger, BitStruct, Bytes, ByteSwapped, Const, Construct, Int8ul, Int16ul,
                       Int32ul, Padding, Struct)

from .._fastcodec import FastCodec, struct_twin

BYTES_PER_SECTOR = (512, 1024, 2048, 4096)   # fatgen103: the legal values of BPB_BytsPerSec
JMP_BOOT_OPCODES = (0xEB, 0xE9)    # fatgen103 BS_jmpBoot: a short (EB xx 90) or near (E9 xx xx) jump
BOOT_SIGNATURE = b"\x55\xAA"       # fatgen103: bytes 510-511 of the boot sector

# --- Boot sector and BPB (fatgen103 "Boot Sector and BPB") -------------------------------
BPB_COMMON = Struct(
    "BS_jmpBoot" / Bytes(3),        # 0   jump to boot code: EB xx 90
    "BS_OEMName" / Bytes(8),        # 3
    "BPB_BytsPerSec" / Int16ul,     # 11  512, 1024, 2048 or 4096
    "BPB_SecPerClus" / Int8ul,      # 13  power of two
    "BPB_RsvdSecCnt" / Int16ul,     # 14  reserved sectors (boot sector included)
    "BPB_NumFATs" / Int8ul,         # 16  2
    "BPB_RootEntCnt" / Int16ul,     # 17  FAT12/16 root directory entries; 0 on FAT32
    "BPB_TotSec16" / Int16ul,       # 19  total sectors if < 0x10000, else 0
    "BPB_Media" / Int8ul,           # 21  0xF8 fixed media (also the low byte of FAT[0])
    "BPB_FATSz16" / Int16ul,        # 22  sectors per FAT (FAT12/16); 0 on FAT32
    "BPB_SecPerTrk" / Int16ul,      # 24  geometry for int 13h
    "BPB_NumHeads" / Int16ul,       # 26
    "BPB_HiddSec" / Int32ul,        # 28  sectors before this volume on the device
    "BPB_TotSec32" / Int32ul,       # 32  total sectors if >= 0x10000, else 0
)

BS_EXT_16 = Struct(                 # fatgen103 "FAT12 and FAT16 Structure Starting at Offset 36"
    "BS_DrvNum" / Int8ul,           # 36  0x80
    "BS_Reserved1" / Int8ul,        # 37  0 (Windows NT dirty flags)
    "BS_BootSig" / Int8ul,          # 38  0x29: the next three fields are present
    "BS_VolID" / Int32ul,           # 39  volume serial number
    "BS_VolLab" / Bytes(11),        # 43  label, space padded ("NO NAME    " when none)
    "BS_FilSysType" / Bytes(8),     # 54  "FAT12   " / "FAT16   " (informational only)
)

BS_EXT_32 = Struct(                 # fatgen103 "FAT32 Structure Starting at Offset 36"
    "BPB_FATSz32" / Int32ul,        # 36  sectors per FAT
    "BPB_ExtFlags" / Int16ul,       # 40  0: FAT mirrored into every copy
    "BPB_FSVer" / Int16ul,          # 42  0.0
    "BPB_RootClus" / Int32ul,       # 44  first cluster of the root directory (2)
    "BPB_FSInfo" / Int16ul,         # 48  sector of the FSInfo structure (1)
    "BPB_BkBootSec" / Int16ul,      # 50  sector of the backup boot sector (6)
    "BPB_Reserved" / Bytes(12),     # 52  zero
    "BS_DrvNum" / Int8ul,           # 64  0x80
    "BS_Reserved1" / Int8ul,        # 65  0
    "BS_BootSig" / Int8ul,          # 66  0x29
    "BS_VolID" / Int32ul,           # 67
    "BS_VolLab" / Bytes(11),        # 71
    "BS_FilSysType" / Bytes(8),     # 82  "FAT32   "
)

BOOT_SECTOR_16 = Struct(            # 512 bytes; with larger sectors the rest of the sector is zero
    "bpb" / BPB_COMMON,             # 0
    "ext" / BS_EXT_16,              # 36
    "boot_code" / Bytes(448),       # 62
    "Signature_word" / Const(BOOT_SIGNATURE),  # 510
)

BOOT_SECTOR_32 = Struct(
    "bpb" / BPB_COMMON,             # 0
    "ext" / BS_EXT_32,              # 36
    "boot_code" / Bytes(420),       # 90
    "Signature_word" / Const(BOOT_SIGNATURE),  # 510
)

FSINFO = Struct(                    # fatgen103 "FAT32 FSInfo Sector Structure"
    "FSI_LeadSig" / Const(0x41615252, Int32ul),   # 0   "RRaA"
    "FSI_Reserved1" / Padding(480),               # 4
    "FSI_StrucSig" / Const(0x61417272, Int32ul),  # 484 "rrAa"
    "FSI_Free_Count" / Int32ul,                   # 488 free clusters, 0xFFFFFFFF unknown
    "FSI_Nxt_Free" / Int32ul,                     # 492 hint: where to look for a free cluster
    "FSI_Reserved2" / Padding(12),                # 496
    "FSI_TrailSig" / Const(0xAA550000, Int32ul),  # 508
)

# --- Directory entries (fatgen103 "FAT Directory Structure", "FAT Long Directory Entries") --
DIR_ENTRY = Struct(
    "DIR_Name" / Bytes(11),         # 0   8.3 name, space padded, no dot
    "DIR_Attr" / Int8ul,            # 11  ATTR_* bits
    "DIR_NTRes" / Int8ul,           # 12  Windows NT case flags: 0x08 lower base, 0x10 lower ext
    "DIR_CrtTimeTenth" / Int8ul,    # 13  creation time, 10 ms units 0..199
    "DIR_CrtTime" / Int16ul,        # 14  hours<<11 | minutes<<5 | seconds/2
    "DIR_CrtDate" / Int16ul,        # 16  (year-1980)<<9 | month<<5 | day
    "DIR_LstAccDate" / Int16ul,     # 18
    "DIR_FstClusHI" / Int16ul,      # 20  high word of the first cluster (FAT32)
    "DIR_WrtTime" / Int16ul,        # 22
    "DIR_WrtDate" / Int16ul,        # 24
    "DIR_FstClusLO" / Int16ul,      # 26
    "DIR_FileSize" / Int32ul,       # 28  bytes; 0 for directories
)

DIR_ENTRY_BYTES = DIR_ENTRY.sizeof()   # 32: every directory entry, long-name entries too
DIR_NAME_END = 0x00         # DIR_Name[0]: this entry and all after it are free
DIR_NAME_FREE = 0xE5        # DIR_Name[0]: this entry is free (deleted)
DIR_NAME_KANJI = 0x05       # DIR_Name[0]: stands for a real first byte 0xE5
DOT_NAME = b".          "   # DIR_Name of a directory's "." and ".." entries
DOTDOT_NAME = b"..         "

LFN_ENTRY = Struct(
    "LDIR_Ord" / Int8ul,            # 0   sequence number, 0x40 on the last (first stored) one
    "LDIR_Name1" / Bytes(10),       # 1   UTF-16LE units 1-5
    "LDIR_Attr" / Int8ul,           # 11  ATTR_LONG_NAME (0x0F)
    "LDIR_Type" / Int8ul,           # 12  0
    "LDIR_Chksum" / Int8ul,         # 13  checksum of the short name
    "LDIR_Name2" / Bytes(12),       # 14  units 6-11
    "LDIR_FstClusLO" / Int16ul,     # 26  0
    "LDIR_Name3" / Bytes(4),        # 28  units 12-13
)

LFN_AND_DIR_ENTRY = Struct(*LFN_ENTRY.subcons, *DIR_ENTRY.subcons)
"""One long-name entry followed by its short entry: the pair a name of at most 13 UTF-16
units takes (most names), written as one."""

# --- FAT tables (fatgen103 "FAT Data Structure") ---------------------------------------------
# FAT12 packs two 12-bit entries into three bytes, little-endian: entry n in the low 12 bits.
FAT12_PAIR = ByteSwapped(BitStruct("odd" / BitsInteger(12), "even" / BitsInteger(12)))


def fat12_table(entry_count: int) -> Construct:
    """FAT12 table of ``entry_count`` (even) entries as pairs."""
    return Array(entry_count // 2, FAT12_PAIR)


def fat16_table(entry_count: int) -> Construct:
    return Array(entry_count, Int16ul)


def fat32_table(entry_count: int) -> Construct:
    return Array(entry_count, Int32ul)     # high 4 bits reserved, written as 0


FAT32_ENTRY_MASK = 0x0FFFFFFF   # fatgen103: a FAT32 entry is 28 bits, the high 4 are reserved
EOC_MIN = {12: 0xFF8, 16: 0xFFF8, 32: 0x0FFFFFF8}   # fatgen103: an entry at least this ends a chain

# --- Precompiled equivalents for hot paths ----------------------------------------------------
DIR_ENTRY_FAST = struct.Struct("<11sBBBHHHHHHHI")   # DIR_ENTRY, field for field
LFN_ENTRY_FAST = struct.Struct("<B10sBBB12sH4s")    # LFN_ENTRY, field for field
LFN_AND_DIR_ENTRY_FAST = struct.Struct("<B10sBBB12sH4s11sBBBHHHHHHHI")   # LFN_AND_DIR_ENTRY, field for field

# Attribute bits (fatgen103 "FAT 32 Byte Directory Entry Structure")
ATTR_READ_ONLY = 0x01
ATTR_HIDDEN = 0x02
ATTR_SYSTEM = 0x04
ATTR_VOLUME_ID = 0x08
ATTR_DIRECTORY = 0x10
ATTR_ARCHIVE = 0x20
ATTR_LONG_NAME = 0x0F
ATTR_LONG_NAME_MASK = 0x3F          # the bits compared with ATTR_LONG_NAME (fatgen103)

NTRES_LOWER_BASE = 0x08             # Windows NT: show the base name in lower case
NTRES_LOWER_EXT = 0x10              # Windows NT: show the extension in lower case

LFN_LAST_FLAG = 0x40                # LDIR_Ord: the last (first stored) long-name entry
LFN_ORDINAL_MASK = 0x3F             # LDIR_Ord: the sequence number 1..20
LFN_UNITS_PER_ENTRY = 13            # UTF-16 units in LDIR_Name1, 2 and 3


# --- Fast copies: every hand-written codec of the declarations above ---------------------
# tests/test_fastcodecs.py runs each entry on many random samples (docs/architecture.md).

def _fat_codec(fat_type: int) -> "FastCodec[list[int]]":
    bits = {12: 12, 16: 16, 32: 28}[fat_type]

    def sample(rng: random.Random) -> list[int]:
        return [rng.getrandbits(bits) for _ in range(2 * rng.randrange(1, 33))]

    def declaration(values: list[int]) -> Construct:
        return {12: fat12_table, 16: fat16_table, 32: fat32_table}[fat_type](len(values))

    def construct_obj(values: list[int]) -> object:
        if fat_type != 12:
            return values
        return [dict(even=values[i], odd=values[i + 1]) for i in range(0, len(values), 2)]

    def encode(values: list[int]) -> bytes:
        from .table import FAT32_TYPECODE, pack_fat
        return pack_fat(array(FAT32_TYPECODE if fat_type == 32 else "H", values), fat_type)

    def decode(data: bytes) -> object:
        from .reader import _unpack_fat
        per_entry = {12: 1.5, 16: 2, 32: 4}[fat_type]
        values = list(_unpack_fat(data, fat_type, int(len(data) / per_entry)))
        return construct_obj(values)

    return FastCodec(f"FAT{fat_type} table: table.pack_fat, reader._unpack_fat", declaration, sample,
                     construct_obj, encode, decode, decodes_any_bytes=fat_type != 32)


FAST_CODECS = (
    struct_twin("DIR_ENTRY: DIR_ENTRY_FAST (writer packs, reader unpacks)", DIR_ENTRY, DIR_ENTRY_FAST),
    struct_twin("LFN_ENTRY: LFN_ENTRY_FAST (names.lfn_entries packs, reader unpacks)", LFN_ENTRY, LFN_ENTRY_FAST),
    struct_twin("LFN_AND_DIR_ENTRY: LFN_AND_DIR_ENTRY_FAST (entries.directory_bytes packs)", LFN_AND_DIR_ENTRY,
                LFN_AND_DIR_ENTRY_FAST),
    _fat_codec(12),
    _fat_codec(16),
    _fat_codec(32),
)
"""Each hand-written codec of a declaration in this module, with its samples (docs/architecture.md)."""
