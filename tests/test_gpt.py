"""GPT: hand-derived header bytes and CRCs, whole disks checked by sgdisk/fdisk/parted/blkid,
the 512 + 4K pair in one file, reproducibility, and bad input."""
from __future__ import annotations

import os
import struct
import uuid
import zlib

import pytest

from helpers import need, out, run, sha256_file
from sysexport.errors import InvalidImageError, InvalidInputError, LayoutError
from sysexport.partition import (GPT, GPT_ATTR_LEGACY_BIOS_BOOTABLE, GPT_ATTR_NO_BLOCK_IO_PROTOCOL,
                                 GPT_ATTR_REQUIRED_PARTITION, GPT_TYPE_BIOS_BOOT, GPT_TYPE_ESP, GPT_TYPE_LINUX_FS,
                                 GPT_TYPE_MS_BASIC_DATA, MBR, GPTPartition)
from sysexport.partition._structs import GPT_HEADER, GPT_PARTITION_ENTRY

MiB = 1 << 20
ESP_DATA = b"ESP!" * 3000 + b"end"          # 12,003 bytes
DATA_10000 = bytes(range(256)) * 39 + b"x" * 16  # 10,000 bytes: size_bytes None -> rounded up

# (type, size_bytes, name, attributes, data)
SPECS = [
    (GPT_TYPE_ESP, 3 * MiB, "EFI system", GPT_ATTR_REQUIRED_PARTITION, ESP_DATA),
    (GPT_TYPE_BIOS_BOOT, 1 * MiB, "BIOS boot", GPT_ATTR_LEGACY_BIOS_BOOTABLE, None),
    (GPT_TYPE_LINUX_FS, 2 * MiB + 8192, "rööt ☃", 0, None),
    (GPT_TYPE_MS_BASIC_DATA, None, "data", 0, DATA_10000),
    (GPT_TYPE_LINUX_FS, 1 * MiB, "n" * 36, GPT_ATTR_NO_BLOCK_IO_PROTOCOL | (1 << 60), None),
]


def align_up(v: int, a: int) -> int:
    return (v + a - 1) // a * a


def expected_ranges(n: int, block_size: int) -> list[tuple[int, int]]:
    """Byte (offset, size) of the first n SPECS partitions, derived by hand: 1 MiB aligned, in order."""
    ranges, pos = [], MiB
    for _type, size, _name, _attrs, data in SPECS[:n]:
        size = size if size is not None else align_up(len(data), block_size)
        ranges.append((pos, size))
        pos = align_up(pos + size, MiB)
    return ranges


def build(path, n: int, block_size: int, seed="test-seed", **kw) -> GPT:
    g = GPT(path, block_size=block_size, guid_seed=seed, **kw)
    for type_guid, size, name, attrs, data in SPECS[:n]:
        g.add_partition(type_guid, size, name=name, attributes=attrs, data=data)
    g.finish()
    return g


def fdisk_rows(img, block_size: int) -> list[tuple[int, int, int, str, str, str]]:
    text = out(["fdisk", "-b", str(block_size), "-l", "-o", "Device,Start,End,Sectors,Type-UUID,UUID,Name", str(img)])
    assert "Disklabel type: gpt" in text, text
    rows = []
    for line in text.splitlines():
        if line.startswith(str(img)):
            f = line[len(str(img)):].split(None, 6)
            rows.append((int(f[1]), int(f[2]), int(f[3]), f[4], f[5], f[6] if len(f) > 6 else ""))
    return rows


# ------------------------------------------------------------------ hand-derived bytes

def test_header_and_entry_bytes_hand_derived():
    disk = uuid.UUID("01234567-89AB-CDEF-0123-456789ABCDEF")
    part = uuid.UUID("FEDCBA98-7654-3210-FEDC-BA9876543210")
    g = GPT(block_size=512, disk_guid=disk)
    g.add_partition(GPT_TYPE_ESP, 1 * MiB, name="ESP", unique_guid=part, attributes=GPT_ATTR_REQUIRED_PARTITION)
    g.layout(4 * MiB)
    (h_off, hdr), (a_off, arr), (b_off, barr), (bh_off, bhdr) = g.structures()
    assert (h_off, a_off, b_off, bh_off) == (512, 1024, 4 * MiB - 512 - 16384, 4 * MiB - 512)
    assert len(hdr) == 512 and hdr[92:] == bytes(420) and len(arr) == 128 * 128 and arr == barr
    last_lba = 4 * MiB // 512 - 1
    fields = struct.unpack_from("<8sIIIIQQQQ16sQIII", hdr)
    assert fields[:9] == (b"EFI PART", 0x00010000, 92, fields[3], 0, 1, last_lba, 34, last_lba - 33)
    # Mixed-endian GUID: first three fields little-endian, the last 8 bytes as written.
    assert fields[9] == bytes.fromhex("67452301" "ab89" "efcd" "0123456789abcdef")
    assert fields[10:] == (2, 128, 128, fields[13])
    # CRCs recomputed with zlib (an implementation independent of crcmod).
    assert fields[13] == zlib.crc32(arr)
    assert fields[3] == zlib.crc32(hdr[:16] + bytes(4) + hdr[20:92])
    entry = arr[:128]
    assert entry[:16] == bytes.fromhex("28732ac1" "1ff8" "d211" "ba4b00a0c93ec93b")   # C12A7328-F81F-11D2-...
    assert entry[16:32] == bytes.fromhex("98badcfe" "5476" "1032" "fedcba9876543210")
    assert struct.unpack_from("<QQQ", entry, 32) == (2048, 4095, 1)
    assert entry[56:128] == "ESP".encode("utf-16-le").ljust(72, b"\0")
    assert arr[128:] == bytes(127 * 128)
    # Backup header: MyLBA and AlternateLBA swapped, its own entry LBA, same array CRC.
    b = GPT_HEADER.parse(bhdr)
    assert (b.MyLBA, b.AlternateLBA, b.PartitionEntryLBA) == (last_lba, 1, last_lba - 32)
    assert b.HeaderCRC32 == zlib.crc32(bhdr[:16] + bytes(4) + bhdr[20:92])
    assert GPT_PARTITION_ENTRY.parse(entry).PartitionTypeGUID == GPT_TYPE_ESP


def test_small_entry_count_still_reserves_16k_and_4k_layout():
    g = GPT(block_size=4096, entry_count=4, disk_guid=uuid.UUID(int=1))
    lay = g.layout(8 * MiB)
    assert (lay.primary_entries_offset, lay.entries_reserved_bytes, lay.first_usable_lba) == (8192, 16384, 6)
    assert lay.backup_header_offset == 8 * MiB - 4096 and lay.backup_entries_offset == 8 * MiB - 4096 - 16384
    assert lay.last_usable_lba == (8 * MiB - 4096 - 16384) // 4096 - 1
    structs = dict(g.structures())
    assert len(structs[8192]) == 4096  # 4 * 128 bytes padded to one block
    assert GPT_HEADER.parse(structs[4096]).NumberOfPartitionEntries == 4


# ------------------------------------------------------------------ whole disks, real readers

@pytest.mark.parametrize("block_size", [512, 4096])
@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
def test_whole_disk_readers(tmp_path, n, block_size):
    need("sgdisk", "fdisk", "parted", "blkid")
    img = tmp_path / "disk.img"
    g = build(img, n, block_size)
    ranges = expected_ranges(n, block_size)
    size = os.path.getsize(img)
    assert size == align_up(ranges[-1][0] + ranges[-1][1] + 16384 + block_size, MiB)
    assert [(p.device_offset, p.size_bytes) for p in g.partitions] == ranges

    rows = fdisk_rows(img, block_size)
    assert [(r[0], r[1], r[2]) for r in rows] == [
        (off // block_size, (off + sz) // block_size - 1, sz // block_size) for off, sz in ranges]
    assert [(r[3], r[4], r[5]) for r in rows] == [
        (str(s[0]).upper(), str(p.unique_guid).upper(), s[2]) for s, p in zip(SPECS, g.partitions)]

    if block_size == 512:
        v = out(["sgdisk", "-v", str(img)])
        assert "No problems found" in v, v
        for i, spec in enumerate(SPECS[:n], 1):
            info = out(["sgdisk", "-i", str(i), str(img)])
            assert f"Attribute flags: {spec[3]:016X}" in info, info
        p = run(["parted", "-s", "-m", str(img), "unit", "B", "print"])
        assert p.stderr == b"", p.stderr
        lines = p.stdout.decode().splitlines()
        assert lines[1].startswith(f"{img}:{size}B:file:512:512:gpt:")
        got = [tuple(int(x.rstrip("B")) for x in line.split(":")[1:4]) for line in lines[2:]]
        assert got == [(off, off + sz - 1, sz) for off, sz in ranges]
        blk = out(["blkid", "-p", "-o", "export", str(img)])
        assert "PTTYPE=gpt" in blk and f"PTUUID={g.disk_guid}" in blk, blk
    else:
        # libparted and libblkid read an image file as 512-byte sectors: they see the
        # protective MBR only (parted and sgdisk cannot be told the sector size of a file).
        blk = out(["blkid", "-p", "-o", "export", str(img)])
        assert "PTTYPE=PMBR" in blk, blk

    with open(img, "rb") as f:
        raw_mbr = f.read(512)
        f.seek(MiB)
        assert f.read(len(ESP_DATA)) == ESP_DATA
        if n >= 4:
            f.seek(ranges[3][0])
            assert f.read(len(DATA_10000)) == DATA_10000
    assert raw_mbr[446:462] == MBR.protective(size, block_size).to_bytes()[446:462]
    assert raw_mbr[450] == 0xEE

    back = GPT.parse(img, block_size)
    assert back.disk_guid == g.disk_guid and back.entry_count == 128
    assert [(p.type_guid, p.unique_guid, p.name, p.attributes, p.device_offset, p.size_bytes)
            for p in back.partitions] == [
        (p.type_guid, p.unique_guid, p.name, p.attributes, p.device_offset, p.size_bytes) for p in g.partitions]
    back.layout(size)
    assert back.structures() == g.structures()


def test_fill_partition_and_bootable_protective_mbr(tmp_path):
    need("sgdisk")
    img = tmp_path / "fill.img"
    g = GPT(img, guid_seed=1, device_size_bytes=8 * MiB)
    g.add_partition(GPT_TYPE_ESP, 2 * MiB, name="ESP")
    rest = g.add_partition(GPT_TYPE_LINUX_FS, name="rest")
    with pytest.raises(InvalidInputError, match="fills the rest"):
        g.add_partition(GPT_TYPE_LINUX_FS, MiB)
    g.finish(mbr_bootable=True)
    assert rest.device_offset == 3 * MiB and rest.last_lba == (8 * MiB - 512 - 16384) // 512 - 1
    assert "No problems found" in out(["sgdisk", "-v", str(img)])
    with open(img, "rb") as f:
        assert f.read(512)[446] == 0x80


def test_pair_512_and_4k_in_one_file(tmp_path):
    need("sgdisk", "fdisk", "blkid")
    D = 12 * MiB
    g4 = GPT(block_size=4096, guid_seed="pair", device_size_bytes=D,
             primary_entries_offset=8192, backup_header_offset=D - 4096, backup_entries_offset=D - 4096 - 16384,
             first_usable_lba=40960 // 4096, last_usable_lba=(D - 36864) // 4096 - 1)
    for type_guid, size, name, attrs, data in SPECS[:3]:
        g4.add_partition(type_guid, size, name=name, attributes=attrs, data=data)
    g5 = g4.derive(512)
    # 512 GPT: header at 512, array after the 4K array, backup array before the 4K one,
    # backup header in the last 512 bytes of the 4K backup header's block.
    g5.primary_entries_offset, g5.first_usable_lba = 24576, 40960 // 512
    g5.backup_header_offset, g5.backup_entries_offset = D - 512, D - 36864
    g5.last_usable_lba = (D - 36864) // 512 - 1
    l4, l5 = g4.layout(D), g5.layout(D)
    ext = sorted(g4.extents() + g5.extents(), key=lambda e: e.device_offset)
    assert all(a.end <= b.device_offset for a, b in zip(ext, ext[1:])
               if not (a.what.endswith("4096 backup header") and b.what.endswith("512 backup header")))
    assert l5.backup_header_offset == D - 512 and l4.backup_header_offset == D - 4096
    img = tmp_path / "pair.img"
    fd = os.open(img, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.ftruncate(fd, D)
        MBR.protective(D, 512).write(fd)
        g4.write(fd)
        g5.write(fd, with_data=False)
    finally:
        os.close(fd)
    assert "No problems found" in out(["sgdisk", "-v", str(img)])
    r5, r4 = fdisk_rows(img, 512), fdisk_rows(img, 4096)
    assert len(r5) == len(r4) == 3
    assert [(a[0] * 512, (a[1] + 1) * 512) for a in r5] == [(b[0] * 4096, (b[1] + 1) * 4096) for b in r4] == [
        (off, off + sz) for off, sz in expected_ranges(3, 4096)]
    assert [a[3:] for a in r5] == [b[3:] for b in r4]   # same types, GUIDs, names
    blk = out(["blkid", "-p", "-o", "export", str(img)])
    assert "PTTYPE=gpt" in blk and f"PTUUID={g4.disk_guid}" in blk
    b4, b5 = GPT.parse(img, 4096), GPT.parse(img, 512)
    assert b4.disk_guid == b5.disk_guid == g4.disk_guid == g5.disk_guid
    assert [(p.unique_guid, p.device_offset, p.size_bytes) for p in b4.partitions] == \
           [(p.unique_guid, p.device_offset, p.size_bytes) for p in b5.partitions]
    with open(img, "rb") as f:
        f.seek(MiB)
        assert f.read(len(ESP_DATA)) == ESP_DATA


# ------------------------------------------------------------------ GUIDs, determinism

def test_reproducible_bytes_and_guids(tmp_path):
    a, b, c = tmp_path / "a.img", tmp_path / "b.img", tmp_path / "c.img"
    ga, gb = build(a, 3, 512, seed="same"), build(b, 3, 512, seed="same")
    gc = build(c, 3, 512, seed="other")
    assert sha256_file(a) == sha256_file(b) != sha256_file(c)
    guids = [ga.disk_guid] + [p.unique_guid for p in ga.partitions]
    assert len(set(guids)) == 4 and ga.disk_guid != gc.disk_guid
    assert [gb.disk_guid] + [p.unique_guid for p in gb.partitions] == guids
    assert all(g.version == 4 and g.variant == uuid.RFC_4122 for g in guids)
    # No seed, SOURCE_DATE_EPOCH set: GUIDs from the content and the time, the same for the
    # same input and for both block sizes, other for other content.  Without either: random.
    def unseeded(bs, name="x"):
        g = GPT(block_size=bs)
        g.add_partition(GPT_TYPE_ESP, 4 * MiB, name=name)
        g.add_partition(GPT_TYPE_LINUX_FS, 4 * MiB, name=name)
        g.layout(16 * MiB)
        return [g.disk_guid] + [p.unique_guid for p in g.partitions]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SOURCE_DATE_EPOCH", "1700000000")
        assert unseeded(512) == unseeded(512) == unseeded(4096) != unseeded(512, "y")
        assert len(set(unseeded(512))) == 3
        mp.setenv("SOURCE_DATE_EPOCH", "1700000001")
        first = unseeded(512)
        mp.delenv("SOURCE_DATE_EPOCH")
        assert unseeded(512) != unseeded(512) and first != unseeded(512)


def test_derive_keeps_guids_and_byte_ranges():
    g = GPT(block_size=512, guid_seed="d")
    for type_guid, size, name, attrs, data in SPECS:
        g.add_partition(type_guid, size, name=name, attributes=attrs, data=data)
    with pytest.raises(InvalidInputError, match=r"partition 4 \('data'\): size_bytes 10240 is not a multiple"):
        g.derive(4096)
    g2 = GPT(block_size=512, guid_seed="d")
    for type_guid, size, name, attrs, data in SPECS[:3]:
        g2.add_partition(type_guid, size, name=name, attributes=attrs, data=data)
    d = g2.derive(4096)
    assert d.block_size == 4096 and d.disk_guid == g2.disk_guid
    key = lambda p: (p.type_guid, p.unique_guid, p.name, p.attributes, p.device_offset, p.size_bytes)
    assert [key(p) for p in d.partitions] == [key(p) for p in g2.partitions]
    assert [p.first_lba for p in d.partitions] == [p.device_offset // 4096 for p in g2.partitions]
    back = d.derive(512)
    back.layout(16 * MiB)
    g2.layout(16 * MiB)
    assert back.structures() == g2.structures()


def test_parse_detects_corruption(tmp_path):
    img = tmp_path / "c.img"
    build(img, 2, 512)
    data = bytearray(img.read_bytes())
    assert len(GPT.parse(bytes(data)).partitions) == 2
    bad = bytearray(data)
    bad[1024 + 60] ^= 1                        # a name byte of entry 1
    with pytest.raises(InvalidImageError, match="PartitionEntryArrayCRC32"):
        GPT.parse(bytes(bad))
    bad = bytearray(data)
    bad[512 + 40] ^= 1                         # FirstUsableLBA of the primary header
    with pytest.raises(InvalidImageError, match="HeaderCRC32"):
        GPT.parse(bytes(bad))
    bad = bytearray(data)
    bad[len(bad) - 512 + 40] ^= 1             # the backup header
    with pytest.raises(InvalidImageError, match="backup header.*HeaderCRC32"):
        GPT.parse(bytes(bad))
    assert len(GPT.parse(bytes(bad), check_backup=False).partitions) == 2
    with pytest.raises(InvalidImageError, match="Signature"):
        GPT.parse(bytes(data), 4096)


# ------------------------------------------------------------------ bad input

def _name_too_long(path):
    g = GPT(path)
    g.add_partition(GPT_TYPE_ESP, MiB, name="n" * 37)
    g.finish()


def _overlap(path):
    g = GPT(path, device_size_bytes=8 * MiB)
    g.add_partition(GPT_TYPE_ESP, 2 * MiB, name="first", device_offset=MiB)
    g.add_partition(GPT_TYPE_LINUX_FS, 2 * MiB, name="second", device_offset=2 * MiB)
    g.finish()


def _past_end(path):
    g = GPT(path, device_size_bytes=4 * MiB)
    g.add_partition(GPT_TYPE_LINUX_FS, 4 * MiB, name="big")
    g.finish()


def _misaligned(path):
    g = GPT(path, block_size=4096)
    g.add_partition(GPT_TYPE_LINUX_FS, MiB, name="odd", device_offset=MiB + 512)
    g.finish()


def _boot_code(path):
    g = GPT(path)
    g.add_partition(GPT_TYPE_ESP, MiB)
    g.finish(mbr=MBR(boot_code=bytes(441)))


def _too_many(path):
    g = GPT(path, entry_count=2)
    for i in range(3):
        g.add_partition(GPT_TYPE_LINUX_FS, MiB, name=f"p{i}")
    g.finish()


@pytest.mark.parametrize("make, error, pattern", [
    (_name_too_long, InvalidInputError, r"GPT partition 1 \('n+'\): name is 37 UTF-16 code units.*36"),
    (_overlap, LayoutError, r"partition 1 \('first'\) \[1048576, 3145728\) overlaps GPT partition 2 "
                            r"\('second'\) \[2097152, 4194304\)"),
    (_past_end, LayoutError, r"partition 1 \('big'\) spans LBA 2048\.\.10239 .*usable LBAs 34\.\.8158"),
    (_misaligned, InvalidInputError, r"partition 1 \('odd'\): device_offset 1049088 is not a multiple of the "
                                     r"block size 4096"),
    (_boot_code, InvalidInputError, r"boot_code: at most 440 .* found 441"),
    (_too_many, InvalidInputError, r"partition 3 \('p2'\).*only 2 entries"),
])
def test_bad_input_leaves_nothing(tmp_path, make, error, pattern):
    target = tmp_path / "out.img"
    with pytest.raises(error, match=pattern):
        make(target)
    assert os.listdir(tmp_path) == []


def test_partition_record_checks():
    with pytest.raises(InvalidInputError, match="zero GUID"):
        GPTPartition(uuid.UUID(int=0))
    with pytest.raises(InvalidInputError, match="attributes"):
        GPTPartition(GPT_TYPE_ESP, attributes=1 << 64)
    with pytest.raises(InvalidInputError, match="more than size_bytes"):
        GPTPartition(GPT_TYPE_ESP, size_bytes=512, data=bytes(513))
    # 36 UTF-16 units, one of them a surrogate pair: 35 characters fit, a 37th unit does not.
    GPTPartition(GPT_TYPE_ESP, name="\U0001F600" + "a" * 34)
    with pytest.raises(InvalidInputError, match="37 UTF-16"):
        GPTPartition(GPT_TYPE_ESP, name="\U0001F600" + "a" * 35)
    with pytest.raises(InvalidInputError, match="block_size"):
        GPT(block_size=520)


def test_finish_into_filehandle_with_host_path_data(tmp_path):
    need("sgdisk")
    src = tmp_path / "payload.bin"
    src.write_bytes(b"payload" * 1000)
    img = tmp_path / "fh.img"
    with open(img, "w+b") as f:
        g = GPT(filehandle=f, guid_seed="fh")
        p = g.add_partition(GPT_TYPE_LINUX_FS, name="p", data=str(src))
        lay = g.finish()
    assert p.size_bytes == 7168 and os.path.getsize(img) == lay.device_size_bytes == 2 * MiB
    assert "No problems found" in out(["sgdisk", "-v", str(img)])
    with open(img, "rb") as f:
        f.seek(MiB)
        assert f.read(7000) == b"payload" * 1000


def test_construct_declarations_round_trip():
    hypothesis = pytest.importorskip("hypothesis")
    st = hypothesis.strategies
    u64 = st.integers(0, (1 << 64) - 1)
    guid = st.builds(lambda i: uuid.UUID(int=i), st.integers(0, (1 << 128) - 1))

    @hypothesis.settings(max_examples=200, deadline=None)
    @hypothesis.given(guid, guid, u64, u64, u64, st.binary(min_size=72, max_size=72))
    def check(t, u, first, last, attrs, name):
        c = dict(PartitionTypeGUID=t, UniquePartitionGUID=u, StartingLBA=first, EndingLBA=last,
                 Attributes=attrs, PartitionName=name)
        raw = GPT_PARTITION_ENTRY.build(c)
        assert len(raw) == 128 and raw[:16] == t.bytes_le and raw[16:32] == u.bytes_le
        assert struct.unpack_from("<QQQ", raw, 32) == (first, last, attrs) and raw[56:] == name
        back = GPT_PARTITION_ENTRY.parse(raw)
        assert {k: back[k] for k in c} == c

    check()
