"""sysexport.iso9660: structure declarations, hot-path packers, names and El Torito arithmetic.

Unit level: names follow ECMA-119 / Joliet limits and stay unique and stable; the El Torito
checksums are checked against values computed here by other means.  (That the struct.Struct
packers equal the construct declarations is tests/test_fastcodecs.py's property test.)
"""
from __future__ import annotations

import random
import struct

import pytest

from sysexport.errors import InvalidInputError
from sysexport.iso9660 import _structs as S
from sysexport.iso9660 import eltorito as et
from sysexport.iso9660 import layout as lay
from sysexport.iso9660 import names


def test_both_endian_rejects_mismatch():
    with pytest.raises(Exception):
        S.Int32lsbmsb.parse(struct.pack("<I", 5) + struct.pack(">I", 6))
    assert S.Int32lsbmsb.build(0x01020304) == bytes.fromhex("0403020101020304")


def test_dates():
    assert lay.dec_datetime(1700000000) == b"2023111422132000\x00"
    assert lay.dir_datetime(1700000000) == bytes([123, 11, 14, 22, 13, 20, 0])
    assert lay.dec_datetime(None) == b"0" * 16 + b"\x00"


def test_level1_mangling_unique_and_stable():
    kids = [(f"longfilename{i:02d}.txt", f"longfilename{i:02d}.txt", False, None) for i in range(60)]
    kids.append(("LONGFI_1.TXT", "LONGFI_1.TXT", False, None))   # a natural name equal to a mangled one
    a = names.assign_iso_names(kids, 1)
    b = names.assign_iso_names(list(reversed(kids)), 1)
    assert a == b
    assert len(set(a.values())) == len(kids)
    for ident in a.values():
        stem, ext = ident[:-2].split(b".")
        assert len(stem) <= 8 and len(ext) <= 3 and ident.endswith(b";1")
        assert set(stem + ext) <= set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
    assert a["LONGFI_1.TXT"] == b"LONGFI_1.TXT;1"
    assert a["longfilename00.txt"] == b"LONGFILE.TXT;1"


def test_level3_names_and_overrides():
    kids = [("a", "My File.tar.gz", False, None), ("b", "café", True, None), ("c", "x", False, "BOOT.CAT"),
            ("d", ".bashrc", False, None)]
    got = names.assign_iso_names(kids, 3)
    assert got == {"a": b"MY_FILE_TAR.GZ;1", "b": b"CAFE", "c": b"BOOT.CAT;1", "d": b"_BASHRC.;1"}
    with pytest.raises(InvalidInputError, match="d-characters"):
        names.check_iso_override("p", "boot.cat", False, 3)
    with pytest.raises(InvalidInputError, match="too long"):
        names.check_iso_override("p", "ABCDEFGHI.TXT", False, 1)
    with pytest.raises(InvalidInputError, match="used twice"):
        names.assign_iso_names([("a", "x", False, "A.B"), ("b", "y", False, "A.B")], 3)


def test_iso_sort_order():
    idents = [b"B.;1", b"A.TXT;1", b"AB", b"A.T;1", b"A_1.TXT;1"]
    ordered = sorted(idents, key=names.iso_sort_key)
    # ECMA-119 9.3: name padded with spaces first ("A" < "AB" < "A_1"), then extension.
    assert ordered == [b"A.T;1", b"A.TXT;1", b"AB", b"A_1.TXT;1", b"B.;1"]


def test_joliet_names():
    long = "x" * 70 + ".conf"
    kids = [(i, n, False) for i, n in enumerate(["a:b?c.txt", "a_b_c.txt", "emoji\U0001F600.txt", long,
                                                 "x" * 71 + ".conf", "y" * 70 + ".conf"])]
    got = {k: v.decode("utf-16-be") for k, v in names.assign_joliet_names(kids).items()}
    assert got[1] == "a_b_c.txt"            # the unchanged name keeps it
    assert got[0] == "a_b_c~1.txt"
    assert got[2] == "emoji_.txt"
    assert all(len(v) <= 64 for v in got.values())
    assert got[3].endswith(".conf") and got[4].endswith(".conf") and got[3] != got[4]
    assert len(set(got.values())) == len(got)
    assert got == {k: v.decode("utf-16-be") for k, v in names.assign_joliet_names(list(reversed(kids))).items()}


def test_validation_checksum_and_catalog():
    from sysexport.extent import Extent
    entries = [et.BootEntry(et.BOOT_X86, data=b"x" * 3000), et.BootEntry(et.BOOT_EFI, extent=Extent(4096, 70_000_000)),
               et.BootEntry(et.BOOT_EFI, extent=Extent(8192, 4096), load_size=3, section_id=b"efi2"),
               et.BootEntry(et.BOOT_PPC, extent=Extent(2048, 2048), bootable=False)]
    cat = et.build_catalog(entries, lambda e: e.extent or Extent(20480, 3000))
    words = struct.unpack("<16H", cat[:32])
    assert sum(words) % 0x10000 == 0 and cat[30:32] == b"\x55\xaa"
    assert cat[32] == 0x88 and struct.unpack_from("<HI", cat, 38) == (6, 10)   # 3000 bytes = 6 sectors
    assert cat[64] == 0x90 and cat[65] == 0xEF and struct.unpack_from("<H", cat, 66)[0] == 2
    assert cat[68:72] == bytes(4)
    assert struct.unpack_from("<HI", cat, 96 + 6) == (0, 2)     # past 65535 sectors: 0 (xorriso)
    assert struct.unpack_from("<HI", cat, 128 + 6) == (3, 4)
    assert cat[160] == 0x91 and cat[161] == 1 and cat[192] == 0x00


def test_boot_info_table():
    rng = random.Random(3)
    image = bytes(rng.randrange(256) for _ in range(5001))
    patched = et.patch_boot_info_table(image, 16, 1234)
    pvd, lba, length, csum = struct.unpack_from("<4I", patched, 8)
    tail = image[64:] + bytes(3)
    expect = sum(int.from_bytes(tail[i:i + 4], "little") for i in range(0, len(tail) - 3, 4)) % (1 << 32)
    assert (pvd, lba, length, csum) == (16, 1234, 5001, expect)
    assert patched[:8] == image[:8] and patched[64:] == image[64:] and patched[24:64] == bytes(40)
