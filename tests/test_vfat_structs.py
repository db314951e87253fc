"""VFAT structures: hand-derived values from fatgen103.  (That the precompiled hot-path
packers and decoders equal the declarations is tests/test_fastcodecs.py's property test.)"""
from __future__ import annotations

from array import array

from sysexport.vfat._structs import BOOT_SECTOR_16, FAT12_PAIR, FSINFO, LFN_ENTRY
from sysexport.vfat.names import lfn_checksum, lfn_entries
from sysexport.vfat.writer import fat_datetime, pack_fat


def test_fat12_hand_derived():
    # fatgen103: entries 0xFF8, 0xFFF -> bytes F8 FF FF; 0x003, 0x004 -> 03 40 00
    assert pack_fat(array("H", [0xFF8, 0xFFF, 0x003, 0x004]), 12) == bytes.fromhex("f8ffff034000")
    parsed = FAT12_PAIR.parse(bytes.fromhex("034000"))
    assert (parsed.even, parsed.odd) == (3, 4)


def test_lfn_checksum_and_entries():
    # checksum hand-computed with fatgen103's rotate-right-and-add over "README  TXT"
    s = 0
    for b in b"README  TXT":
        s = ((s >> 1) | ((s & 1) << 7)) + b & 0xFF
    assert lfn_checksum(b"README  TXT") == s
    raw = lfn_entries("Readme.txt".encode("utf-16-le"), b"README  TXT")
    assert len(raw) == 32
    e = LFN_ENTRY.parse(raw)
    assert e.LDIR_Ord == 0x41 and e.LDIR_Attr == 0x0F and e.LDIR_Chksum == s
    units = e.LDIR_Name1 + e.LDIR_Name2 + e.LDIR_Name3
    assert units == "Readme.txt".encode("utf-16-le") + b"\0\0" + b"\xff\xff" * 2
    # 26 units: two full entries, no terminator; stored last part first
    raw = lfn_entries(("x" * 26).encode("utf-16-le"), b"XXXXXX~1   ")
    first, second = LFN_ENTRY.parse(raw[:32]), LFN_ENTRY.parse(raw[32:])
    assert (first.LDIR_Ord, second.LDIR_Ord) == (0x42, 0x01)
    assert b"\xff" not in raw[:32] and b"\0\0" not in first.LDIR_Name3


def test_fat_datetime_hand_derived():
    # 2023-11-14 22:13:20 UTC -> date (43<<9)|(11<<5)|14, time (22<<11)|(13<<5)|10
    assert fat_datetime(1700000000) == ((43 << 9) | (11 << 5) | 14, (22 << 11) | (13 << 5) | 10, 0)
    assert fat_datetime(-5) == ((0 << 9) | (1 << 5) | 1, 0, 0)


def test_boot_sector_and_fsinfo_round_trip():
    fs = FSINFO.build(dict(FSI_Free_Count=7, FSI_Nxt_Free=3))
    assert len(fs) == 512 and fs[:4] == b"RRaA" and fs[484:488] == b"rrAa" and fs[510:] == b"\x55\xaa"
    assert FSINFO.parse(fs).FSI_Free_Count == 7
    assert BOOT_SECTOR_16.sizeof() == 512
