"""MBR: hand-derived bytes, round trips, and real readers (sfdisk/fdisk/blkid) on MBR disks."""
from __future__ import annotations

import re

import pytest

from helpers import need, out
from sysexport.data import BytesData
from sysexport.errors import InvalidImageError, InvalidInputError
from sysexport.partition import MBR, MBRPartition
from sysexport.partition._structs import LEGACY_MBR, MBR_PARTITION_RECORD
from sysexport.partition.mbr import lba_to_chs


def test_empty_mbr_is_zeros_and_signature():
    assert MBR().to_bytes() == bytes(510) + b"\x55\xaa"


def test_protective_mbr_hand_derived_bytes():
    # 16 MiB disk of 512-byte blocks: last LBA 32767.
    # CHS of 32767 with 255 heads, 63 sectors: cylinder 32767 // 16065 = 2, rest 637,
    # head 637 // 63 = 10, sector 637 % 63 + 1 = 8 -> bytes 0A 08 02.
    mbr = MBR.protective(16 << 20).to_bytes()
    assert len(mbr) == 512
    assert mbr[:446] == bytes(446)
    assert mbr[446:462] == bytes.fromhex("00" "000200" "ee" "0a0802" "01000000" "ff7f0000")
    assert mbr[462:510] == bytes(48)
    assert mbr[510:] == b"\x55\xaa"


def test_protective_mbr_large_disk_caps_size_and_chs():
    mbr = MBR.protective(4 << 40).to_bytes()  # 4 TiB: 2**33 blocks of 512 bytes
    assert mbr[446:462] == bytes.fromhex("00" "000200" "ee" "ffffff" "01000000" "ffffffff")
    # 4 KiB blocks: counted in 4096-byte units.
    mbr4 = MBR.protective(64 << 20, block_size=4096).to_bytes()
    assert int.from_bytes(mbr4[458:462], "little") == (64 << 20) // 4096 - 1


def test_protective_mbr_bootable_sets_active_flag():
    assert MBR.protective(16 << 20, bootable=True).to_bytes()[446] == 0x80
    assert MBR.protective(16 << 20).to_bytes()[446] == 0x00


@pytest.mark.parametrize("lba, chs", [
    (0, "000100"),
    (1, "000200"),
    (62, "003f00"),
    (63, "010100"),
    (2048, "202100"),           # 2048 = 32 * 63 + 32: head 32, sector 33
    (16065 * 256, "004100"),     # cylinder 256: bits 8-9 go to the sector byte: 0x40 | 1
    (16065 * 1024 - 1, "feffff"),  # last CHS-addressable block: 1023/254/63
    (16065 * 1024, "feffff"),      # beyond: the value tools write
])
def test_lba_to_chs(lba, chs):
    assert lba_to_chs(lba).hex() == chs


def test_partition_chs_computed_and_round_trip():
    boot = bytes(range(256)) + bytes(range(184))
    mbr = MBR(boot_code=boot, disk_signature=0xDEADBEEF, partitions=[
        MBRPartition(0x0C, 2048, 4096, bootable=True),
        None,
        MBRPartition(0x83, 20_000_000, 1_000_000),
    ])
    raw = mbr.to_bytes()
    assert raw[:440] == boot
    assert raw[440:444] == bytes.fromhex("efbeadde")
    assert raw[444:446] == b"\0\0"
    # record 1: active, CHS of 2048 (20 21 00) and of 6143 = 97*63+32 (61 21 00)
    assert raw[446:462] == bytes.fromhex("80" "202100" "0c" "612100" "00080000" "00100000")
    assert raw[462:478] == bytes(16)
    assert raw[478:494] == bytes.fromhex("00" "feffff" "83" "feffff") + (20_000_000).to_bytes(4, "little") \
        + (1_000_000).to_bytes(4, "little")
    back = MBR.parse(raw)
    assert back.disk_signature == 0xDEADBEEF
    assert back.boot_code == boot
    assert back.partitions[1] is None
    assert (back.partitions[0].type_id, back.partitions[0].first_lba, back.partitions[0].sector_count,
            back.partitions[0].bootable) == (0x0C, 2048, 4096, True)
    assert back.to_bytes() == raw
    # the construct declaration reads the same fields
    c = LEGACY_MBR.parse(raw)
    assert c.PartitionRecord[2].StartingLBA == 20_000_000 and c.PartitionRecord[0].OSType == 0x0C
    assert MBR_PARTITION_RECORD.sizeof() == 16 and LEGACY_MBR.sizeof() == 512


def test_boot_code_limits(tmp_path):
    with pytest.raises(InvalidInputError, match=r"boot_code.*440.*441"):
        MBR(boot_code=bytes(441))
    full = bytes([0x90]) * 446 + bytes(64) + b"\x55\xaa"  # a whole 512-byte MBR image
    m = MBR(disk_signature=7)
    m.set_boot_code(full)
    assert m.boot_code == bytes([0x90]) * 440
    p = tmp_path / "boot.img"
    p.write_bytes(bytes([0xEB]) * 512)
    m.set_boot_code(p)
    assert m.boot_code == bytes([0xEB]) * 440
    m.set_boot_code(BytesData(bytes([0xCC]) * 1000))
    raw = m.to_bytes()
    assert raw[:440] == bytes([0xCC]) * 440 and raw[440:444] == b"\x07\0\0\0"


def test_bad_input_and_bad_image():
    with pytest.raises(InvalidInputError, match="type_id"):
        MBRPartition(0, 1, 1)
    with pytest.raises(InvalidInputError, match="sector_count"):
        MBRPartition(0x83, 1, 1 << 32)
    with pytest.raises(InvalidInputError, match="at most 4"):
        MBR(partitions=[MBRPartition(0x83, 1, 1)] * 5)
    with pytest.raises(InvalidImageError, match="55"):
        MBR.parse(bytes(512))
    with pytest.raises(InvalidImageError, match="512"):
        MBR.parse(bytes(100))


def test_readers_list_mbr_partitions(tmp_path):
    need("sfdisk", "blkid")
    img = tmp_path / "mbr.img"
    size = 64 << 20
    mbr = MBR(disk_signature=0x12345678, partitions=[
        MBRPartition(0xEF, 2048, 8192, bootable=True),
        MBRPartition(0x83, 10240, 20480),
        MBRPartition(0x0C, 30720, size // 512 - 30720),
    ])
    with open(img, "wb") as f:
        f.truncate(size)
        mbr.write(f.fileno())
    dump = out(["sfdisk", "-d", str(img)])
    assert "label: dos" in dump and "label-id: 0x12345678" in dump
    rows = re.findall(r"start=\s*(\d+), size=\s*(\d+), type=(\w+)(, bootable)?", dump)
    assert rows == [("2048", "8192", "ef", ", bootable"), ("10240", "20480", "83", ""),
                    ("30720", str(size // 512 - 30720), "c", "")]
    blk = out(["blkid", "-p", "-o", "export", str(img)])
    assert "PTTYPE=dos" in blk and "PTUUID=12345678" in blk
    with open(img, "rb") as f:
        assert MBR.parse(f.read(512)).to_bytes() == mbr.to_bytes()


def test_table_rules_overlap_2tib_lba0_and_parse_leniency():
    with pytest.raises(InvalidInputError, match=r"partition 2 .*overlap MBR partition 1"):
        MBR(partitions=[MBRPartition(0x83, 2048, 4096), MBRPartition(0x0C, 6143, 10)])
    MBR(partitions=[MBRPartition(0x83, 2048, 4096), MBRPartition(0x0C, 6144, 10)])       # adjacent: fine
    MBR(partitions=[MBRPartition(0x83, 1, (1 << 32) - 1)])                            # ends at LBA 2**32 - 1
    with pytest.raises(InvalidInputError, match="2 TiB"):
        MBR(partitions=[MBRPartition(0x83, 2, (1 << 32) - 1)])
    with pytest.raises(InvalidInputError, match="first_lba is 0"):
        MBR(partitions=[MBRPartition(0x17, 0, 100)])
    with pytest.raises(InvalidInputError, match="bootable"):
        MBRPartition(0x83, 1, 1, bootable=1)
    # isohybrid's table (partition 1 from LBA 0, partition 2 inside it) is read as it is
    iso = MBR(partitions=[MBRPartition(0x00 + 0x17, 0, 1000), MBRPartition(0xEF, 100, 50)], strict=False)
    raw = iso.to_bytes()
    back = MBR.parse(raw)
    assert back.to_bytes() == raw and back.partitions[0].first_lba == 0


def test_attributes_validate_when_set():
    m = MBR()
    with pytest.raises(InvalidInputError, match="boot_code.*441"):
        m.boot_code = bytes(441)
    with pytest.raises(InvalidInputError, match="disk_signature"):
        m.disk_signature = 1 << 32
    m.partitions.append(MBRPartition(0x83, 10, 10))
    m.partitions.append(MBRPartition(0x83, 15, 10))
    with pytest.raises(InvalidInputError, match="overlap"):
        m.to_bytes()
