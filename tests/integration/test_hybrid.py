"""Whole hybrid images, checked by every independent reader of the testbed."""
from __future__ import annotations

import os
import random

import pytest

from helpers import hybrid_checks as hc
from helpers import need, out, run, sha256_file

from sysexport import ISO9660Hybrid, InvalidInputError

LABEL = "HYBRIDTEST"


def make_tree(root: str, kind: str) -> None:
    rnd = random.Random(kind)
    os.makedirs(root)

    def put(rel: str, size: int | None = None, data: bytes | None = None) -> None:
        p = os.path.join(root, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(data if data is not None else rnd.randbytes(size))

    if kind == "varied":
        put("README.txt", data=b"hello hybrid\n")
        put("empty.dat", data=b"")
        for size in (1, 511, 512, 513, 2047, 2048, 2049, 4095, 4096, 4097, 65535, 65536, 65537):
            put(f"sizes/f{size}.bin", size)
        put("Unicode/café crème.txt", data="café\n".encode())
        put("Unicode/日本語のファイル名.txt", data="にほんご\n".encode())
        put("Unicode/Ünïcödé Dïrêctörÿ/ß.txt", 100)
        put("long/" + "a very long file name that exceeds sixty four characters for joliet.txt", 300)
        deep = "/".join(f"d{i}" for i in range(12))
        put(f"{deep}/deep.txt", data=b"twelve levels down\n")
        os.makedirs(os.path.join(root, "emptydir"))
        put("big/fifty.bin", 50 * hc.MIB)
    elif kind == "many":
        for d in range(10):
            for i in range(300):
                put(f"dir{d:02d}/file-{i:04d}.txt", data=f"{d}/{i}\n".encode() * (i % 7))
    elif kind == "rootfs":
        for d in ("bin", "etc", "usr/bin", "usr/lib", "var/log", "boot"):
            os.makedirs(os.path.join(root, d), exist_ok=True)
        put("usr/bin/busybox", 100_000)
        put("etc/hostname", data=b"live\n")
        put("etc/passwd", data=b"root:x:0:0:root:/root:/bin/sh\n")
        put("boot/vmlinuz", 3 * hc.MIB + 123)
        os.symlink("busybox", os.path.join(root, "usr/bin/sh"))
        os.symlink("/usr/bin/busybox", os.path.join(root, "bin/ls"))
        os.symlink("../usr/lib", os.path.join(root, "lib"))
        put("usr/lib/libc.so.6", 2_000_000)
        os.link(os.path.join(root, "usr/bin/busybox"), os.path.join(root, "usr/bin/busybox-hardlink"))
    else:
        raise ValueError(kind)


def build(src: str | None, image: str, **attrs) -> ISO9660Hybrid:
    img = ISO9660Hybrid(image, **attrs)
    img.volume_label = LABEL
    if src:
        img.add_tree(src)
    img.finish()
    return img


def full_check(img: ISO9660Hybrid, image: str, src: str | None, tmp: str) -> None:
    files, links, _dirs = hc.expected_views(src) if src else ({}, {}, set())
    parts = hc.check_partition_tables(image, 1)
    esp_offset, esp_size = parts[0]
    assert (esp_offset, esp_size) == (img.esp_partition.device_offset, img.esp_partition.size_bytes)
    hc.check_blkid(image, LABEL)
    esp_img = hc.check_esp(image, parts[0], files, tmp, LABEL)
    hc.check_iso_readers(image, files, links, tmp, LABEL)
    hc.check_pycdlib(image, files)
    # Every shared file's ISO extent is its FAT extent (both read from the structures).
    iso = hc.iso_extents(image)
    fat = hc.fat_extents(esp_img, esp_offset)
    inodes: dict[int, set[str]] = {}
    for name in files:
        inodes.setdefault(os.stat(os.path.join(src, name)).st_ino, set()).add(name)
    for name, digest in files.items():
        st = os.stat(os.path.join(src, name))
        size = st.st_size
        iso_off, iso_size = iso[name]
        assert iso_size == size, name
        if size:
            # A hard-linked file has one ISO extent: that of one of its names' FAT copies.
            assert iso_off in {fat[n][0] for n in inodes[st.st_ino]}, (name, iso_off, fat[name])
            assert iso_off % 2048 == 0 and esp_offset <= iso_off < esp_offset + esp_size
    if files:
        sample = dict(sorted(files.items())[:3])
        hc.check_grub_reads(image, sample, tmp)


@pytest.mark.parametrize("kind", ["varied", "many", "rootfs"])
def test_hybrid_trees(tmp_path, sde, kind):
    src = str(tmp_path / "src")
    make_tree(src, kind)
    image = str(tmp_path / "hybrid.img")
    img = build(src, image)
    full_check(img, image, src, str(tmp_path))


def test_empty_hybrid(tmp_path, sde):
    image = str(tmp_path / "empty.img")
    img = build(None, image)
    full_check(img, image, None, str(tmp_path))


def test_deterministic_and_sparse(tmp_path, sde):
    src = str(tmp_path / "src")
    make_tree(src, "rootfs")
    a, b = str(tmp_path / "a.img"), str(tmp_path / "b.img")
    build(src, a)
    # Reading the tree (as the first build did) moves atimes: the output must not change.
    hc.expected_views(src)
    build(src, b)
    assert sha256_file(a) == sha256_file(b)
    img = ISO9660Hybrid(str(tmp_path / "sparse.img"), esp_min_size_bytes=256 * hc.MIB)
    img.add(("file", "x.txt", b"x"))
    img.finish()
    st = os.stat(tmp_path / "sparse.img")
    assert st.st_size > 256 * hc.MIB
    assert st.st_blocks * 512 < st.st_size // 8, "image should be sparse on disk"


def test_filehandle_keeps_surroundings(tmp_path, sde):
    path = tmp_path / "dev.img"
    tail = b"T" * 4096
    size = 64 * hc.MIB
    with open(path, "wb") as f:
        f.truncate(size)
        f.seek(size - len(tail))
        f.write(tail)
    with open(path, "r+b") as f:
        img = ISO9660Hybrid(filehandle=f)
        img.volume_label = LABEL
        img.add(("file", "a.txt", b"abc"))
        img.finish()
    assert os.path.getsize(path) == size
    with open(path, "rb") as f:
        f.seek(size - len(tail))
        assert f.read() == tail
    run(["isoinfo", "-d", "-i", str(path)])


@pytest.mark.parametrize("spec, fragment", [
    (("file", "a:b.txt", b"x"), "a:b.txt"),
    (("sym", "ln", "x", {"hybrid_target": "esp"}), "ln"),
])
def test_bad_input(tmp_path, spec, fragment):
    img = ISO9660Hybrid(str(tmp_path / "x.img"))
    with pytest.raises(InvalidInputError) as e:
        img.add(spec)
    assert fragment in str(e.value)
    assert not os.path.exists(tmp_path / "x.img")


def test_huge_file_needs_iso_only(tmp_path):
    big = tmp_path / "big"
    with open(big, "wb") as f:
        f.truncate(5 << 30)
    img = ISO9660Hybrid(str(tmp_path / "x.img"))
    with pytest.raises(InvalidInputError, match="hybrid_target='iso'"):
        img.add({"name": "big", "mode": 0o100644, "data_path": str(big)})


def test_cli_build_default_tree(tmp_path, sde):
    image = str(tmp_path / "demo.img")
    from sysexport.cli import main
    assert main(["build", "-o", image, "--label", LABEL]) == 0
    need("isoinfo", "sgdisk")
    assert "No problems found" in out(["sgdisk", "-v", image])
    listing = out(["isoinfo", "-l", "-R", "-i", image])
    assert "README.txt" in listing


@pytest.mark.slow
@pytest.mark.parametrize("fat_sector_size", [512, 4096])
def test_linux_kernel_reads_both_views(tmp_path, sde, fat_sector_size):
    """The Linux kernel mounts the ISO (Rock Ridge, Joliet, plain) and the ESP (vfat)."""
    from helpers import linuxvm
    linuxvm.need_linux()
    src = str(tmp_path / "src")
    make_tree(src, "rootfs")
    with open(os.path.join(src, "etc", "Grüße aus Köln.txt"), "wb") as f:
        f.write("unicode\n".encode() * 1000)
    image = str(tmp_path / "hybrid.img")
    img = ISO9660Hybrid(image)
    img.volume_label = LABEL
    img.esp.sector_size = fat_sector_size
    img.add_tree(src)
    img.finish()
    files, links, dirs = hc.expected_views(src)
    views = linuxvm.linux_views(tmp_path, image, vfat_partitions=[1],
                                vfat_4k=fat_sector_size == 4096)
    host = linuxvm.host_view(src)
    rr = views["rr"]
    for name, digest in files.items():
        assert rr[name]["sha256"] == digest, name
        # SOURCE_DATE_EPOCH (the sde fixture) clamps every later time to it, as tar --clamp-mtime does
        assert rr[name]["mode"] == host[name]["mode"] and rr[name]["mtime"] == min(host[name]["mtime"], sde), name
    for name, target in links.items():
        assert rr[name]["type"] == "l" and rr[name]["target"] == target, name
    assert {k for k, v in rr.items() if v["type"] == "d"} >= dirs
    fat_views = ["vfat1"] + (["vfat4k1"] if fat_sector_size == 4096 else [])
    for view in fat_views:
        got = {k: v["sha256"] for k, v in views[view].items() if v["type"] == "f"}
        assert got == files, view
    joliet = {k: v["sha256"] for k, v in views["joliet"].items() if v["type"] == "f"}
    assert joliet == files
    plain = sorted(v["sha256"] for v in views["plain"].values() if v["type"] == "f" and v["size"])
    assert plain == sorted(d for n, d in files.items() if os.path.getsize(os.path.join(src, n)))


def test_extra_partitions(tmp_path, sde):
    from sysexport import GPT_TYPE_LINUX_FS, GPT_TYPE_MS_BASIC_DATA
    payload = tmp_path / "payload.bin"
    payload.write_bytes(random.Random(1).randbytes(100_000))
    image = str(tmp_path / "parts.img")
    img = ISO9660Hybrid(image)
    img.volume_label = LABEL
    img.add(("file", "a.txt", b"a\n"))
    img.gpt.add_partition(GPT_TYPE_LINUX_FS, size_bytes=4 << 20, name="persistence")
    img.gpt.add_partition(GPT_TYPE_MS_BASIC_DATA, data=str(payload), name="payload")
    img.finish()
    parts = hc.check_partition_tables(image, 3)
    assert [(p.device_offset, p.size_bytes) for p in img.partitions] == parts
    with open(image, "rb") as f:
        f.seek(parts[2][0])
        assert f.read(100_000) == payload.read_bytes()
    assert parts[1][0] >= parts[0][0] + parts[0][1] and parts[1][0] % 4096 == 0
    hc.check_blkid(image, LABEL)
