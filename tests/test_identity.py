"""Every build's identifiers are its own unless the build is reproducible; reproducible builds
derive them from their content, so the same input gives the same bytes and different input
different identifiers.  Identifiers are read back by blkid, sgdisk and the FAT boot sector."""
from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import time

import pytest

from helpers import need
from sysexport import GPT, GPT_TYPE_LINUX_FS, VFAT, ISO9660Hybrid

EPOCH = "1700000000"


def _tree(root, text="hello\n"):
    os.makedirs(os.path.join(root, "etc"), exist_ok=True)
    with open(os.path.join(root, "etc", "motd"), "w") as f:
        f.write(text)
    with open(os.path.join(root, "readme.txt"), "w") as f:
        f.write("readme\n" * 100)
    for p in ("etc/motd", "readme.txt", "etc", "."):
        os.utime(os.path.join(root, p), (1_600_000_000, 1_600_000_000))
    return root


def _ids(image):
    """(disk GUID, ESP partition GUID, FAT serial, ISO UUID) as the tools report them."""
    need("sgdisk", "blkid")
    out = subprocess.run(["sgdisk", "-p", image], capture_output=True, text=True).stdout
    disk = re.search(r"Disk identifier \(GUID\): (\S+)", out).group(1)
    part = subprocess.run(["sgdisk", "-i", "1", image], capture_output=True, text=True).stdout
    part_guid = re.search(r"Partition unique GUID: (\S+)", part).group(1)
    with open(image, "rb") as f:
        raw = f.read(1 << 20)
    # The ESP's boot sector: the first partition's first LBA (4096-byte GPT: LBA 1 header).
    esp_lba = int(re.search(r"First sector: (\d+)", part).group(1))
    with open(image, "rb") as f:
        f.seek(esp_lba * 512)
        boot = f.read(512)
    serial_at = 67 if boot[82:87] == b"FAT32" else 39
    serial = struct.unpack_from("<I", boot, serial_at)[0]
    iso_uuid = subprocess.run(["blkid", "-p", "-o", "value", "-s", "UUID", image],
                              capture_output=True, text=True).stdout.strip()
    assert raw  # the image is there
    return disk, part_guid, serial, iso_uuid


def _build(path, tree, **attrs):
    img = ISO9660Hybrid(path, **attrs)
    img.add_tree(tree)
    img.finish()
    return _ids(path)


def test_every_build_has_its_own_identifiers(tmp_path, monkeypatch):
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    tree = _tree(str(tmp_path / "t"))
    ids = [_build(str(tmp_path / f"{i}.img"), tree) for i in range(3)]
    for field in range(4):
        values = [i[field] for i in ids]
        if field == 3:
            # blkid's ISO UUID is the creation date with centiseconds: random centiseconds
            # may repeat by chance (1 in 100): ask only that not all three are equal.
            assert len(set(values)) > 1, values
        else:
            assert len(set(values)) == 3, (field, values)
    # The 512-byte and the 4096-byte GPT still agree with each other.
    need("sgdisk")
    for i in range(3):
        out512 = subprocess.run(["sgdisk", "-p", str(tmp_path / f"{i}.img")], capture_output=True, text=True).stdout
        assert ids[i][0] in out512


def test_reproducible_builds_repeat_and_differ_by_content(tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", EPOCH)
    a = _tree(str(tmp_path / "a"))
    b = _tree(str(tmp_path / "b"), text="another motd\n")
    first = str(tmp_path / "a1.img")
    ids_a1 = _build(first, a)
    ids_a2 = _build(str(tmp_path / "a2.img"), a)
    ids_b = _build(str(tmp_path / "b.img"), b)
    assert ids_a1 == ids_a2
    assert open(first, "rb").read() == open(str(tmp_path / "a2.img"), "rb").read()
    assert ids_b[0] != ids_a1[0] and ids_b[1] != ids_a1[1] and ids_b[2] != ids_a1[2]
    # touch: every time past SOURCE_DATE_EPOCH is clamped to it, so the image is the same.
    now = time.time()
    for p in ("etc/motd", "readme.txt", "etc", "."):
        os.utime(os.path.join(a, p), (now, now))
    _build(str(tmp_path / "a3.img"), a)
    before = open(first, "rb").read()
    # Clamping: the first build's times (1600000000) were before the epoch, so the touched
    # tree (times after it, clamped) differs from it; touching again changes nothing.
    touched = open(str(tmp_path / "a3.img"), "rb").read()
    later = time.time() + 100
    for p in ("etc/motd", "readme.txt", "etc", "."):
        os.utime(os.path.join(a, p), (later, later))
    _build(str(tmp_path / "a4.img"), a)
    assert open(str(tmp_path / "a4.img"), "rb").read() == touched != before


def test_default_time_makes_a_build_reproducible(tmp_path, monkeypatch):
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    tree = _tree(str(tmp_path / "t"))
    _build(str(tmp_path / "1.img"), tree, default_time=1_650_000_000)
    _build(str(tmp_path / "2.img"), tree, default_time=1_650_000_000)
    assert open(tmp_path / "1.img", "rb").read() == open(tmp_path / "2.img", "rb").read()


def test_standalone_writers(tmp_path, monkeypatch):
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    need("blkid", "sgdisk")
    serials = set()
    for i in range(3):
        v = VFAT(str(tmp_path / f"{i}.fat"))
        v.add(("file", "a.txt", b"a"))
        v.finish()
        serials.add(subprocess.run(["blkid", "-o", "value", "-s", "UUID", str(tmp_path / f"{i}.fat")],
                                   capture_output=True, text=True).stdout.strip())
    assert len(serials) == 3, serials
    guids = set()
    for i in range(3):
        g = GPT(str(tmp_path / f"{i}.gpt"))
        g.add_partition(GPT_TYPE_LINUX_FS, 1 << 20, name="p")
        g.finish()
        out = subprocess.run(["sgdisk", "-p", str(tmp_path / f"{i}.gpt")], capture_output=True, text=True).stdout
        guids.add(re.search(r"Disk identifier \(GUID\): (\S+)", out).group(1))
    assert len(guids) == 3
    # A seed keeps GUIDs reproducible without SOURCE_DATE_EPOCH.
    same = []
    for i in range(2):
        g = GPT(str(tmp_path / f"s{i}.gpt"), guid_seed="my-seed")
        g.add_partition(GPT_TYPE_LINUX_FS, 1 << 20, name="p")
        g.finish()
        same.append(open(tmp_path / f"s{i}.gpt", "rb").read())
    assert same[0] == same[1]


def test_grub_marker_is_unique_per_build(tmp_path, monkeypatch):
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    if shutil.which("grub-mkimage") is None:
        need("grub-mkimage")
    from sysexport.boot.grub import make_bootable
    markers = set()
    for i in range(2):
        img = ISO9660Hybrid(str(tmp_path / f"{i}.img"))
        markers.add(make_bootable(img, kernel=b"k" * 100, copy_modules=False).marker)
    assert len(markers) == 2
    monkeypatch.setenv("SOURCE_DATE_EPOCH", EPOCH)
    again = set()
    for text in ("one", "one", "two"):
        img = ISO9660Hybrid(str(tmp_path / "r.img"))
        img.add(("file", "x.txt", text.encode()))
        again.add(make_bootable(img, kernel=b"k" * 100, copy_modules=False).marker)
    assert len(again) == 2          # the same content repeats its marker, other content does not
