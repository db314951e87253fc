"""Reading partition tables (sysexport/partition/probe.py, GPT.parse) against the tools that
made them: sgdisk GPTs for 512-byte blocks (an image file) and 4096-byte blocks (a loop
device with 4096-byte sectors), sfdisk and fdisk MBRs with logical partitions; every field
compared with ``sgdisk -p``/``sgdisk -i``, ``fdisk -l`` and ``sfdisk --json``.  Then the
faults: a bad primary GPT with a good backup is read from the backup (as sgdisk does), a
FAT boot sector is not an MBR (as libblkid decides), and hostile headers give
InvalidImageError naming the field."""
from __future__ import annotations

import io
import json
import os
import re
import struct
import subprocess
import time
import uuid
import zlib
from contextlib import contextmanager
from typing import Iterator

import pytest

from helpers import NO_SKIP, need, out, run
from sysexport.errors import InvalidImageError
from sysexport.partition.gpt import GPT
from sysexport.partition.probe import looks_like_fat, read_gpt, read_mbr, read_partition_tables

MiB = 1 << 20


def tables(path: str):
    with open(path, "rb") as f:
        return read_partition_tables(f)


def sgdisk_layout(dev: str) -> dict:
    """sgdisk -p and -i N, parsed: disk GUID, usable range, entry count, partitions."""
    text = out(["sgdisk", "-p", dev])
    info = {"disk_guid": uuid.UUID(re.search(r"Disk identifier \(GUID\): (\S+)", text).group(1)),
            "entries": int(re.search(r"holds up to (\d+) entries", text).group(1)),
            "array_lba": int(re.search(r"Main partition table begins at sector (\d+)", text).group(1))}
    m = re.search(r"First usable sector is (\d+), last usable sector is (\d+)", text)
    info["first_usable"], info["last_usable"] = int(m.group(1)), int(m.group(2))
    parts = {}
    for n in re.findall(r"^\s+(\d+)\s+\d+\s+\d+", text, re.M):
        t = out(["sgdisk", "-i", n, dev])
        parts[int(n)] = {
            "type": uuid.UUID(re.search(r"Partition GUID code: (\S+)", t).group(1)),
            "unique": uuid.UUID(re.search(r"Partition unique GUID: (\S+)", t).group(1)),
            "first": int(re.search(r"First sector: (\d+)", t).group(1)),
            "last": int(re.search(r"Last sector: (\d+)", t).group(1)),
            "attributes": int(re.search(r"Attribute flags: ([0-9A-Fa-f]+)", t).group(1), 16),
            "name": re.search(r"Partition name: '(.*)'", t).group(1),
        }
    info["partitions"] = parts
    return info


SGDISK_ARGS = ["-o", "-n", "1:0:+4M", "-t", "1:ef00", "-c", "1:EFI System", "-n", "2:0:+8M", "-t", "2:8300",
               "-c", "2:Grüße root ☃", "-A", "2:set:2", "-A", "2:set:60", "-n", "3:0:+1M", "-t", "3:ef02",
               "-n", "5:0:0", "-t", "5:0700", "-c", "5:a name of thirty-six characters max"]


def check_against_sgdisk(t, info, blocks: int) -> None:
    assert t is not None and t.used == "primary" and t.problems == []
    h, b = t.primary, t.backup
    assert h.disk_guid == b.disk_guid == info["disk_guid"]
    assert h.number_of_partition_entries == info["entries"] and h.size_of_partition_entry == 128
    assert h.partition_entry_lba == info["array_lba"] == 2
    assert (h.first_usable_lba, h.last_usable_lba) == (info["first_usable"], info["last_usable"])
    assert h.my_lba == 1 and h.alternate_lba == blocks - 1 == b.my_lba and b.alternate_lba == 1
    assert b.partition_entry_lba == blocks - 1 - h.array_bytes // h.block_size
    assert h.revision == 0x00010000 and h.header_size == 92 and h.reserved == 0
    assert h.header_crc32 == h.computed_header_crc32 and h.partition_entry_array_crc32 == h.computed_array_crc32
    got = {e.index: {"type": e.type_guid, "unique": e.unique_guid, "first": e.starting_lba, "last": e.ending_lba,
                     "attributes": e.attributes, "name": e.name} for e in t.entries}
    assert got == info["partitions"]


def test_gpt_512_as_sgdisk(tmp_path):
    need("sgdisk")
    img = str(tmp_path / "g.img")
    with open(img, "wb") as f:
        f.truncate(64 * MiB)
    run(["sgdisk", *SGDISK_ARGS, img])
    t = tables(img)
    check_against_sgdisk(t.gpt512, sgdisk_layout(img), 64 * MiB // 512)
    assert t.gpt4096 is None and t.mbr is not None and t.mbr.protective and t.problems == []
    e = {e.index: e for e in t.gpt512.entries}
    assert e[2].attributes == (1 << 2) | (1 << 60) and e[2].name == "Grüße root ☃"
    assert e[5].device_offset == e[5].starting_lba * 512 and e[5].end_offset == (e[5].ending_lba + 1) * 512
    g = GPT.parse(img)                                   # the strict reader agrees
    assert [(p.index, p.type_guid, p.unique_guid, p.name, p.device_offset, p.size_bytes) for p in g.partitions] == \
        [(x.index, x.type_guid, x.unique_guid, x.name, x.device_offset, x.size_bytes) for x in t.gpt512.entries]
    assert g.table is not None and g.table.primary == t.gpt512.primary


@contextmanager
def loop4k(path: str) -> Iterator[str]:
    """A loop device with 4096-byte logical sectors on ``path`` (losetup -b 4096), detached after."""
    need("losetup", "/dev/loop-control")
    if os.geteuid() != 0:
        msg = "a loop device needs root"
        if NO_SKIP:
            pytest.fail(msg)
        pytest.skip(msg)
    dev = ""
    for attempt in range(5):                  # another test may take the free device first
        p = subprocess.run(["losetup", "-f", "--show", "-b", "4096", path], capture_output=True, text=True)
        if p.returncode == 0:
            dev = p.stdout.strip()
            break
        time.sleep(0.2 * (attempt + 1))
    assert dev, f"losetup failed: {p.stderr}"
    try:
        yield dev
    finally:
        subprocess.run(["losetup", "-d", dev], check=True)


def test_gpt_4096_as_sgdisk_on_a_4k_loop_device(tmp_path):
    need("sgdisk", "fdisk")
    img = str(tmp_path / "g4k.img")
    with open(img, "wb") as f:
        f.truncate(64 * MiB)
    with loop4k(img) as dev:
        run(["sgdisk", *SGDISK_ARGS, dev])
        info = sgdisk_layout(dev)
    t = tables(img)
    check_against_sgdisk(t.gpt4096, info, 64 * MiB // 4096)
    assert t.gpt512 is None
    text = out(["fdisk", "-b", "4096", "-l", img])
    assert "Disklabel type: gpt" in text and str(info["disk_guid"]).upper() in text.upper()
    rows = re.findall(r"^\S+img(\d+)\s+(\d+)\s+(\d+)\s+(\d+)", text, re.M)
    assert {int(n): (int(s), int(e)) for n, s, e, _ in rows} == \
        {x.index: (x.starting_lba, x.ending_lba) for x in t.gpt4096.entries}
    g = GPT.parse(img, 4096)
    assert [p.device_offset for p in g.partitions] == [x.starting_lba * 4096 for x in t.gpt4096.entries]


# --- a bad copy ------------------------------------------------------------------------------------------------

def sgdisk_image(tmp_path, size=16 * MiB) -> tuple[str, bytearray]:
    need("sgdisk")
    img = str(tmp_path / "g.img")
    with open(img, "wb") as f:
        f.truncate(size)
    run(["sgdisk", "-o", "-n", "1:0:+2M", "-t", "1:ef00", "-c", "1:one", "-n", "2:0:+2M", "-c", "2:two", img])
    with open(img, "rb") as f:
        return img, bytearray(f.read())


def rewrite(data: bytearray, lba: int, bs: int = 512, **fields: int) -> None:
    """Set header fields (by offset) at ``lba`` and recompute its HeaderCRC32."""
    at = lba * bs
    offsets = {"Revision": (8, "<I"), "HeaderSize": (12, "<I"), "Reserved": (20, "<I"), "MyLBA": (24, "<Q"),
               "AlternateLBA": (32, "<Q"), "FirstUsableLBA": (40, "<Q"), "LastUsableLBA": (48, "<Q"),
               "PartitionEntryLBA": (72, "<Q"), "NumberOfPartitionEntries": (80, "<I"),
               "SizeOfPartitionEntry": (84, "<I"), "PartitionEntryArrayCRC32": (88, "<I")}
    for k, v in fields.items():
        off, fmt = offsets[k]
        struct.pack_into(fmt, data, at + off, v)
    size = min(struct.unpack_from("<I", data, at + 12)[0], bs)
    struct.pack_into("<I", data, at + 16, 0)
    struct.pack_into("<I", data, at + 16, zlib.crc32(bytes(data[at:at + size])))


def write(path: str, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)


@pytest.mark.parametrize("fault", ["header_crc", "array_crc", "signature", "my_lba"])
def test_bad_primary_reads_the_backup_as_sgdisk(tmp_path, fault):
    img, data = sgdisk_image(tmp_path)
    good = read_gpt(lambda o, n: bytes(data[o:o + n]), len(data), 512)
    if fault == "header_crc":
        data[512 + 40] ^= 1
    elif fault == "array_crc":
        data[1024 + 60] ^= 1
    elif fault == "signature":
        data[512:520] = b"EFI PARX"
    else:
        rewrite(data, 1, MyLBA=7)
    write(img, bytes(data))
    t = tables(img)
    g = t.gpt512
    assert g is not None and g.used == "backup" and g.backup.my_lba == len(data) // 512 - 1
    assert [(e.index, e.name, e.starting_lba, e.ending_lba, e.unique_guid) for e in g.entries] == \
        [(e.index, e.name, e.starting_lba, e.ending_lba, e.unique_guid) for e in good.entries]
    assert any("the backup header at byte" in p and "is used" in p for p in t.problems)
    p = run(["sgdisk", "-p", img])                       # sgdisk, too, lists the backup's partitions
    said = (p.stdout + p.stderr).decode()
    rows = re.findall(r"^\s+(\d+)\s+(\d+)\s+(\d+)\s+\S+ \S+\s+\S+\s+(\S+)$", said, re.M)
    assert [(int(n), int(a), int(b), name) for n, a, b, name in rows] == \
        [(e.index, e.starting_lba, e.ending_lba, e.name) for e in g.entries]
    if fault != "my_lba":                                 # (sgdisk repairs MyLBA silently in -p)
        assert re.search(r"[Ll]oaded backup partition table|valid backup", said), said
    with pytest.raises(InvalidImageError, match={"header_crc": "HeaderCRC32", "array_crc": "PartitionEntryArrayCRC32",
                                                 "signature": "Signature", "my_lba": "MyLBA"}[fault]):
        GPT.parse(img)


def test_bad_backup_is_a_problem_and_the_primary_is_used(tmp_path):
    img, data = sgdisk_image(tmp_path)
    data[len(data) - 512 + 40] ^= 1
    write(img, bytes(data))
    t = tables(img)
    assert t.gpt512.used == "primary" and t.gpt512.backup is None
    assert any("backup header" in p and "HeaderCRC32" in p for p in t.problems)
    with pytest.raises(InvalidImageError, match="backup header.*HeaderCRC32"):
        GPT.parse(img)
    assert len(GPT.parse(img, check_backup=False).partitions) == 2


def test_backup_found_at_the_end_when_alternate_lba_lies(tmp_path):
    img, data = sgdisk_image(tmp_path)
    rewrite(data, 1, AlternateLBA=100)
    write(img, bytes(data))
    t = tables(img)
    assert t.gpt512.used == "primary" and t.gpt512.backup.my_lba == len(data) // 512 - 1
    assert any("not at the primary's AlternateLBA 100" in p for p in t.problems)


def test_grown_image_backup_through_alternate_lba(tmp_path):
    img, data = sgdisk_image(tmp_path)
    write(img, bytes(data) + bytes(MiB))                 # the image grew: the backup is no longer last
    t = tables(img)
    g = t.gpt512
    assert g.used == "primary" and g.backup.my_lba == len(data) // 512 - 1
    assert any("is not the image's last LBA" in p for p in t.problems)
    assert "Problem" in run(["sgdisk", "-v", img], ok_codes=(0, 2, 3, 4, 5)).stdout.decode()


def test_copies_compared(tmp_path):
    img, data = sgdisk_image(tmp_path)
    last = len(data) // 512 - 1
    rewrite(data, last, FirstUsableLBA=40)
    write(img, bytes(data))
    t = tables(img)
    assert any("backup header's first_usable_lba is 40" in p for p in t.problems)
    with pytest.raises(InvalidImageError, match="first_usable_lba"):
        GPT.parse(img)


@pytest.mark.parametrize("fields,message", [
    (dict(NumberOfPartitionEntries=0xFFFFFFFF), "more than 16777216"),
    (dict(SizeOfPartitionEntry=100), "SizeOfPartitionEntry is 100"),
    (dict(SizeOfPartitionEntry=0), "SizeOfPartitionEntry is 0"),
    (dict(SizeOfPartitionEntry=384), "SizeOfPartitionEntry is 384"),
    (dict(PartitionEntryLBA=1 << 62), "lies outside the image"),
    (dict(PartitionEntryLBA=0), "lies outside the image"),
    (dict(HeaderSize=91), "HeaderSize is 91"),
    (dict(HeaderSize=4096), "HeaderSize is 4096"),
    (dict(MyLBA=(1 << 64) - 1), "MyLBA"),
])
def test_hostile_headers(tmp_path, fields, message):
    """Each field broken in both copies (CRCs right): InvalidImageError naming it, from the
    strict and the probing reader; read_partition_tables records it and goes on."""
    img, data = sgdisk_image(tmp_path)
    last = len(data) // 512 - 1
    rewrite(data, 1, **fields)
    rewrite(data, last, **{k: v for k, v in fields.items()})
    write(img, bytes(data))
    with pytest.raises(InvalidImageError, match=message):
        GPT.parse(img)
    with pytest.raises(InvalidImageError, match=message):
        read_gpt(lambda o, n: bytes(data[o:o + n]), len(data), 512)
    t = tables(img)
    assert t.gpt512 is None and any(message in p for p in t.problems)
    assert t.mbr is not None and t.mbr.protective


def test_hostile_entries_are_problems(tmp_path):
    img, data = sgdisk_image(tmp_path)
    blocks = len(data) // 512
    guids = uuid.uuid4().bytes_le + uuid.uuid4().bytes_le
    for base, lba in ((1024, 1), ((blocks - 33) * 512, blocks - 1)):
        struct.pack_into("<QQ", data, base + 128 + 32, 100, 50)           # entry 2 ends before it starts
        struct.pack_into("<QQ", data, base + 256 + 32, 2048, blocks + 10)  # entry 3 overlaps 1, ends past the disk
        data[base + 256:base + 288] = guids
        crc = zlib.crc32(bytes(data[base:base + 128 * 128]))
        rewrite(data, lba, PartitionEntryArrayCRC32=crc)
    write(img, bytes(data))
    t = tables(img)
    assert [e.index for e in t.gpt512.entries] == [1, 3]
    problems = " | ".join(t.problems)
    assert "entry 2" in problems and "EndingLBA 50 < StartingLBA 100" in problems
    assert "entries 1 and 3 overlap" in problems and "end past the image's last LBA" in problems
    with pytest.raises(InvalidImageError, match="EndingLBA 50 < StartingLBA 100"):
        GPT.parse(img)


def test_no_gpt_no_problem(tmp_path):
    assert read_gpt(lambda o, n: bytes(n), 10 * MiB, 512) is None
    t = read_partition_tables(io.BytesIO(bytes(2 * MiB)))
    assert t.mbr is None and t.gpts == {} and t.problems == []


# --- MBR --------------------------------------------------------------------------------------------------------

SFDISK_SCRIPT = """label: dos
label-id: 0x1234abcd
unit: sectors

start=2048, size=4096, type=83, bootable
start=6144, size=8192, type=c
start=14336, size=40960, type=5
start=20480, size=4096, type=ef
start=16384, size=2048, type=83
start=26624, size=8192, type=7
"""


def sfdisk_json(img: str) -> dict:
    return json.loads(out(["sfdisk", "--json", img]))["partitiontable"]


def test_mbr_with_logical_partitions_as_sfdisk(tmp_path):
    need("sfdisk")
    img = str(tmp_path / "m.img")
    with open(img, "wb") as f:
        f.truncate(32 * MiB)
    run(["sfdisk", img], input=SFDISK_SCRIPT.encode())
    want = sfdisk_json(img)
    t = tables(img)
    m = t.mbr
    assert m is not None and not m.protective and t.problems == [] and t.gpts == {}
    assert f"0x{m.disk_signature:08x}" == want["id"] == "0x1234abcd"
    got = [{"node": f"{img}{p.number}", "start": p.first_lba, "size": p.sector_count,
            "type": f"{p.type_id:x}", **({"bootable": True} if p.bootable else {})} for p in m.partitions]
    assert sorted(got, key=lambda d: d["node"]) == sorted(want["partitions"], key=lambda d: d["node"])
    assert [p.number for p in m.partitions] == [1, 2, 3, 5, 6, 7]
    logical = [p for p in m.partitions if p.logical]
    assert all(p.ebr_lba is not None and p.ebr_lba < p.first_lba for p in logical)
    dump = out(["sfdisk", "--dump", img])
    assert "label-id: 0x1234abcd" in dump and f"{img}6 : start=       16384, size=        2048, type=83" in dump
    mbr = m.to_mbr()
    assert mbr.disk_signature == 0x1234ABCD and [p.first_lba for p in mbr.partitions if p] == [2048, 6144, 14336]


def test_mbr_made_by_fdisk(tmp_path):
    need("fdisk")
    img = str(tmp_path / "f.img")
    with open(img, "wb") as f:
        f.truncate(16 * MiB)
    run(["fdisk", img], input=b"o\nn\np\n1\n\n+4M\nt\nef\na\nn\np\n2\n\n\nw\n")
    want = sfdisk_json(img)
    m = tables(img).mbr
    assert [(p.first_lba, p.sector_count, f"{p.type_id:x}", p.bootable) for p in m.partitions] == \
        [(p["start"], p["size"], p["type"], bool(p.get("bootable"))) for p in want["partitions"]]


def test_fat_boot_sector_is_not_an_mbr(tmp_path):
    """A FAT boot sector ends in 0x55 0xAA too: libblkid says vfat, no PTTYPE; so do we."""
    need("mkfs.fat", "blkid")
    for fat in ("12", "16", "32"):
        img = str(tmp_path / f"f{fat}.img")
        run(["mkfs.fat", "-C", "-F", fat, img, str({"12": 1024, "16": 20480, "32": 40960}[fat])])
        tags = out(["blkid", "-p", "-o", "export", img])
        assert "TYPE=vfat" in tags and "PTTYPE" not in tags
        with open(img, "rb") as f:
            head = f.read(512)
        assert looks_like_fat(head)
        assert tables(img).mbr is None
        # the same boot sector with its BPB emptied is one (its boot code holds 0x00/0x80 bytes
        # where the records are? mkfs.fat's message text is not: then it is no MBR either)
        blank = bytearray(head)
        blank[11:36] = bytes(25)
        assert not looks_like_fat(bytes(blank))


def test_not_an_mbr_or_a_bad_one():
    base = bytearray(512)
    base[510:512] = b"\x55\xaa"
    struct.pack_into("<B3sB3sII", base, 446, 0x80, b"\0\0\0", 0x83, b"\0\0\0", 2048, 4096)
    disk = 8 * MiB
    read = lambda b: (lambda o, n: bytes(b[o:o + n]))  # noqa: E731
    assert read_mbr(read(base), disk).partitions[0].first_lba == 2048
    bad = bytearray(base)
    bad[446] = 0x12                                      # a BootIndicator not 0x00/0x80: not an MBR
    assert read_mbr(read(bad), disk) is None
    far = bytearray(base)
    struct.pack_into("<I", far, 446 + 8, 1 << 30)        # the only record starts past the disk
    assert read_mbr(read(far), disk) is None
    over = bytearray(base)
    struct.pack_into("<B3sB3sII", over, 462, 0, b"\0\0\0", 0x07, b"\0\0\0", 4096, 100000)
    m = read_mbr(read(over), disk)
    assert m is not None and any("overlap" in p for p in m.problems) and any("end past" in p for p in m.problems)


def test_ebr_chain_loop_and_escape():
    disk = 64 * MiB
    data = bytearray(disk // 64)                          # what is read past it: zeros
    data[510:512] = b"\x55\xaa"
    struct.pack_into("<B3sB3sII", data, 446, 0, b"\0\0\0", 0x05, b"\0\0\0", 100, 10000)
    for ebr, nxt in ((100, 200), (200, 100)):              # two EBRs pointing at each other
        at = ebr * 512
        data[at + 510:at + 512] = b"\x55\xaa"
        struct.pack_into("<B3sB3sII", data, at + 446, 0, b"\0\0\0", 0x83, b"\0\0\0", 1, 10)
        struct.pack_into("<B3sB3sII", data, at + 462, 0, b"\0\0\0", 0x05, b"\0\0\0", nxt - 100, 20)
    read = lambda o, n: bytes(data[o:o + n]) if o < len(data) else bytes(n)  # noqa: E731
    m = read_mbr(read, disk)
    assert [p.number for p in m.partitions] == [1, 5, 6] and any("loops" in p for p in m.problems)
    struct.pack_into("<I", data, 200 * 512 + 462 + 8, 1 << 31)   # the next EBR far outside
    m = read_mbr(read, disk)
    assert [p.number for p in m.partitions] == [1, 5, 6] and any("outside the extended" in p for p in m.problems)


def test_our_hybrid_reads_clean(tmp_path):
    from sysexport import ISO9660Hybrid
    img = str(tmp_path / "h.img")
    h = ISO9660Hybrid(img)
    h.add(("file", "a.txt", b"a"))
    h.finish()
    t = tables(img)
    assert t.problems == [] and t.mbr.protective and set(t.gpts) == {512, 4096}
    assert [e.device_offset for e in t.gpt512.entries] == [e.device_offset for e in t.gpt4096.entries]
