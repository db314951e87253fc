"""sysexport.open(): every structure and view of images made by us and by the reference tools."""
from __future__ import annotations

import gzip
import io
import os
import subprocess

import pytest

import sysexport
from helpers import need
from sysexport import CPIO, ISO9660, VFAT, ISO9660Hybrid
from sysexport.errors import InvalidImageError, InvalidInputError

TREE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "sysexport", "demo")


def _kinds(img):
    return [s.kind for s in img.structures]


def test_our_hybrid_has_every_view(tmp_path, sde):
    path = str(tmp_path / "h.img")
    h = ISO9660Hybrid(path, efi_boot=True)
    h.add_tree(TREE)
    h.finish()
    with sysexport.open(path) as img:
        assert img.views()[:3] == ["rr", "joliet", "iso9660"]
        assert {"fat", "fat:1"} <= set(img.views())
        kinds = _kinds(img)
        assert kinds.count("gpt") == 2 and "mbr" in kinds and "fat" in kinds and "eltorito-entry" in kinds
        rr, fat = img.view("rr"), img.view("fat")
        assert rr.read("/README.txt") == fat.read("/README.txt") == open(os.path.join(TREE, "README.txt"), "rb").read()
        # A shared file: one extent for both views.
        assert rr.stat("/README.txt").extents == fat.stat("/README.txt").extents
        assert img.view().name == "rr"
        with pytest.raises(InvalidInputError, match="no view 'cpio'"):
            img.view("cpio")
        assert img.to_json()["views"] == img.views()


def test_xorriso_iso_and_bytesio(tmp_path):
    need("xorriso")
    path = str(tmp_path / "x.iso")
    subprocess.run(["xorriso", "-as", "mkisofs", "-R", "-J", "-V", "XLABEL", "-o", path, TREE],
                   check=True, capture_output=True)
    data = open(path, "rb").read()
    for source in (path, io.BytesIO(data), data):
        with sysexport.open(source) as img:
            assert img.views() == ["rr", "joliet", "iso9660"]
            assert img.view("rr").read("/docs/café.txt") == open(os.path.join(TREE, "docs/café.txt"),
                                                                        "rb").read()


def test_mkfs_fat_bare_and_in_a_gpt_partition(tmp_path):
    need("mkfs.fat", "mcopy", "sgdisk")
    vol = str(tmp_path / "v.fat")
    subprocess.run(["mkfs.fat", "-C", "-n", "MYVOL", vol, "8192"], check=True, capture_output=True)
    subprocess.run(["mcopy", "-i", vol, os.path.join(TREE, "README.txt"), "::/Read Me.txt"], check=True)
    with sysexport.open(vol) as img:
        assert img.views() == ["fat"] and _kinds(img) == ["fat"]
        assert img.view().listdir("/") == ["Read Me.txt"]
    disk = str(tmp_path / "d.img")
    with open(disk, "wb") as f:
        f.truncate(16 << 20)
    subprocess.run(["sgdisk", "-n", "1:2048:+8M", "-t", "1:ef00", disk], check=True, capture_output=True)
    with open(disk, "r+b") as f, open(vol, "rb") as v:
        f.seek(2048 * 512)
        f.write(v.read())
    with sysexport.open(disk) as img:
        assert set(img.views()) == {"fat", "fat:1"}
        assert "gpt" in _kinds(img) and "partition" in _kinds(img)
        assert img.view("fat:1").read("/Read Me.txt") == open(os.path.join(TREE, "README.txt"), "rb").read()


def test_cpio_plain_and_compressed(tmp_path, sde):
    for compress in (None, "gzip", "xz"):
        path = str(tmp_path / f"a-{compress}.cpio")
        w = CPIO(path, compress=compress) if compress else CPIO(path)
        w.add_tree(TREE)
        w.finish()
        with sysexport.open(path) as img:
            assert img.views() == ["cpio"]
            assert img.view().read("/README.txt") == open(os.path.join(TREE, "README.txt"), "rb").read()


def test_not_an_image(tmp_path):
    junk = tmp_path / "junk.bin"
    junk.write_bytes(os.urandom(100_000))
    with pytest.raises(InvalidImageError, match="not an image"):
        sysexport.open(str(junk))
    with pytest.raises(InvalidImageError):
        sysexport.open(b"")
    with pytest.raises(sysexport.SysExportError, match="cannot open"):
        sysexport.open(str(tmp_path / "missing.iso"))
    gz = tmp_path / "text.gz"
    gz.write_bytes(gzip.compress(b"just some text, no archive"))
    with pytest.raises(InvalidImageError):
        sysexport.open(str(gz))


def test_damaged_gpt_does_not_hide_the_iso(tmp_path, sde):
    path = str(tmp_path / "h.img")
    h = ISO9660Hybrid(path)
    h.add(("file", "a.txt", b"a" * 5000))
    h.finish()
    with open(path, "r+b") as f:       # break the 512-byte GPT header's CRC
        f.seek(512 + 16)
        f.write(b"\0\0\0\0")
    with sysexport.open(path) as img:
        assert img.view("rr").read("/a.txt") == b"a" * 5000
        assert any("GPT" in p for p in img.problems)


def test_standalone_iso_and_fat_writers(tmp_path, sde):
    iso = str(tmp_path / "s.iso")
    w = ISO9660(iso, rock_ridge=None, joliet=False)
    w.add(("file", "x.txt", b"x"))
    w.finish()
    with sysexport.open(iso) as img:
        assert img.views() == ["iso9660"]
        assert img.view().listdir("/") == ["X.TXT"]
    fat = str(tmp_path / "s.fat")
    v = VFAT(fat, volume_label="LBL")
    v.add(("file", "x.txt", b"x"))
    v.finish()
    with sysexport.open(fat) as img:
        assert img.views() == ["fat"] and img.view().read("/x.txt") == b"x"
