"""VFAT structures: the precompiled hot-path packers equal the construct declarations;
hand-derived values from fatgen103."""
from __future__ import annotations

from array import array

from hypothesis import given, settings, strategies as st

from sysexport.vfat._structs import (BOOT_SECTOR_16, DIR_ENTRY, DIR_ENTRY_FAST, FAT12_PAIR, FSINFO,
                                     LFN_ENTRY, LFN_ENTRY_FAST, fat12_table, fat16_table, fat32_table)
from sysexport.vfat.names import lfn_checksum, lfn_entries
from sysexport.vfat.writer import FAT32_TYPECODE, fat_datetime, pack_fat

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)


@settings(max_examples=300)
@given(st.binary(min_size=11, max_size=11), u8, u8, u8, u16, u16, u16, u16, u16, u16, u16, u32)
def test_dir_entry_fast_equals_construct(name, attr, ntres, tenth, ctime, cdate, adate, hi, wtime, wdate,
                                         lo, size):
    fast = DIR_ENTRY_FAST.pack(name, attr, ntres, tenth, ctime, cdate, adate, hi, wtime, wdate, lo, size)
    slow = DIR_ENTRY.build(dict(DIR_Name=name, DIR_Attr=attr, DIR_NTRes=ntres, DIR_CrtTimeTenth=tenth,
                                DIR_CrtTime=ctime, DIR_CrtDate=cdate, DIR_LstAccDate=adate,
                                DIR_FstClusHI=hi, DIR_WrtTime=wtime, DIR_WrtDate=wdate,
                                DIR_FstClusLO=lo, DIR_FileSize=size))
    assert fast == slow and len(fast) == 32


@settings(max_examples=300)
@given(u8, st.binary(min_size=10, max_size=10), u8, u8, u8, st.binary(min_size=12, max_size=12), u16,
       st.binary(min_size=4, max_size=4))
def test_lfn_entry_fast_equals_construct(ordinal, n1, attr, typ, csum, n2, clus, n3):
    fast = LFN_ENTRY_FAST.pack(ordinal, n1, attr, typ, csum, n2, clus, n3)
    slow = LFN_ENTRY.build(dict(LDIR_Ord=ordinal, LDIR_Name1=n1, LDIR_Attr=attr, LDIR_Type=typ,
                                LDIR_Chksum=csum, LDIR_Name2=n2, LDIR_FstClusLO=clus, LDIR_Name3=n3))
    assert fast == slow


@settings(max_examples=100)
@given(st.lists(st.integers(0, 0xFFF), min_size=2, max_size=300).filter(lambda v: len(v) % 2 == 0))
def test_fat12_pack_equals_construct(values):
    fast = pack_fat(array("H", values), 12)
    slow = fat12_table(len(values)).build([dict(even=values[i], odd=values[i + 1])
                                           for i in range(0, len(values), 2)])
    assert fast == slow


@settings(max_examples=100)
@given(st.lists(u16, min_size=1, max_size=300))
def test_fat16_pack_equals_construct(values):
    assert pack_fat(array("H", values), 16) == fat16_table(len(values)).build(values)


@settings(max_examples=100)
@given(st.lists(st.integers(0, 0x0FFFFFFF), min_size=1, max_size=300))
def test_fat32_pack_equals_construct(values):
    assert pack_fat(array(FAT32_TYPECODE, values), 32) == fat32_table(len(values)).build(values)


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
