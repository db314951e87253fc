"""Image.replace_file (sysexport/image/modify.py): a file changed in place, checked by readers
nobody here wrote.

Images: a hybrid from ``sysexport build``, plain ISOs from our writer, xorriso and genisoimage
(Rock Ridge and Joliet), FAT12/16/32 volumes from mkfs.fat filled by mcopy, and our VFAT.
After a change bsdtar, xorriso, isoinfo (-R and -J), pycdlib, mtools and fsck.fat must see the
new bytes and size; a refused change must leave the image byte for byte as it was.  The slow
tier adds the Linux kernel (isofs with and without Joliet, vfat through the GPT partition) and
GRUB booting a hybrid whose grub.cfg was replaced in place.
"""
from __future__ import annotations

import io
import os
import random
import shutil
import struct
import subprocess

import pytest

import sysexport
from sysexport import ISO9660, VFAT
from sysexport.errors import (CallOrderError, InvalidImageError, InvalidInputError, LayoutError, SysExportError)
from sysexport.image.modify import Replaced

from helpers import cut, need, out, run, sha256_file

MTOOLS_ENV = {"MTOOLS_SKIP_CHECK": "1", "TZ": "UTC"}
CFG = b"set timeout=0\nmenuentry old {\n  true\n}\n"
NEW_CFG = b"set timeout=3\n" + b"menuentry 'replaced in place' {\n  true\n}\n" * 20
BIG = random.Random(7).randbytes(10_000)


def make_tree(root) -> str:
    """EFI/BOOT/grub.cfg, a hard link pair, a 10,000-byte file, a symlink and an empty dir."""
    root = str(root)
    os.makedirs(os.path.join(root, "EFI/BOOT"))
    os.makedirs(os.path.join(root, "docs"))
    os.makedirs(os.path.join(root, "empty"))
    with open(os.path.join(root, "EFI/BOOT/grub.cfg"), "wb") as f:
        f.write(CFG)
    with open(os.path.join(root, "docs/a.txt"), "wb") as f:
        f.write(b"linked\n")
    os.link(os.path.join(root, "docs/a.txt"), os.path.join(root, "docs/b.txt"))
    with open(os.path.join(root, "docs/big.bin"), "wb") as f:
        f.write(BIG)
    os.symlink("docs/a.txt", os.path.join(root, "README"))
    return root


@pytest.fixture
def tree(tmp_path):
    return make_tree(tmp_path / "tree")


def build_hybrid(tmp_path, tree) -> str:
    from sysexport.cli import main
    image = str(tmp_path / "hybrid.img")
    assert main(["build", "-q", "-o", image, tree]) == 0
    return image


def build_iso(tmp_path, tree, maker: str) -> str:
    iso = str(tmp_path / f"{maker}.iso")
    if maker == "ours":
        w = ISO9660(iso, rock_ridge="1.12", joliet=True)
        w.add_tree(tree)
        w.finish()
    elif maker == "xorriso":
        need("xorriso")
        run(["xorriso", "-as", "mkisofs", "-R", "-J", "-o", iso, tree])
    else:
        need("genisoimage")
        run(["genisoimage", "-quiet", "-R", "-J", "-o", iso, tree])
    return iso


def build_fat(tmp_path, tree, fat_type: int | str) -> str:
    image = str(tmp_path / f"fat{fat_type}.img")
    if fat_type == "ours":
        w = VFAT(image, volume_label="OURS")
        for rel in ("EFI/BOOT/grub.cfg", "docs/a.txt", "docs/big.bin"):
            with open(os.path.join(tree, rel), "rb") as f:
                w.add(("file", rel, f.read()))
        w.finish()
        return image
    need("mkfs.fat", "mcopy")
    kib = {12: 2000, 16: 20000, 32: 70000}[int(fat_type)]
    run(["mkfs.fat", "-C", "-F", str(fat_type), "-s", "1", image, str(kib)])
    for d in ("EFI", "EFI/BOOT", "docs"):
        run(["mmd", "-i", image, "::/" + d], env_extra=MTOOLS_ENV)
    for rel in ("EFI/BOOT/grub.cfg", "docs/a.txt", "docs/big.bin"):
        run(["mcopy", "-i", image, os.path.join(tree, rel), "::/" + rel], env_extra=MTOOLS_ENV)
    return image


# --- what the readers see -------------------------------------------------------------------------

def iso_readers_see(tmp_path, iso: str, path: str, data: bytes, joliet: bool = True, pycdlib_too: bool = True) -> None:
    """bsdtar, xorriso, isoinfo -R/-J and pycdlib (Rock Ridge and Joliet) read ``data`` at ``path``
    (pycdlib reads only the last section of a multi-extent file, even of an image as written)."""
    need("bsdtar", "xorriso", "isoinfo")
    dest = tmp_path / f"bsdtar-{random.random()}"
    dest.mkdir()
    run(["bsdtar", "-xf", iso, "-C", str(dest)])     # not -O: a hard link's second name carries no data
    assert (dest / path.lstrip("/")).read_bytes() == data, ("bsdtar", path)
    dest = tmp_path / f"xorriso-{random.random()}"
    run(["xorriso", "-osirrox", "on", "-indev", iso, "-extract", path, str(dest)])
    assert dest.read_bytes() == data, ("xorriso", path)
    assert run(["isoinfo", "-R", "-i", iso, "-x", path]).stdout == data, ("isoinfo -R", path)
    if joliet:
        assert run(["isoinfo", "-J", "-i", iso, "-x", path]).stdout == data, ("isoinfo -J", path)
    if not pycdlib_too:
        return
    import pycdlib
    p = pycdlib.PyCdlib()
    p.open(iso)
    try:
        kinds = ["rr_path", "joliet_path"] if joliet else ["rr_path"]
        for kind in kinds:
            buf = io.BytesIO()
            p.get_file_from_iso_fp(buf, **{kind: path})
            assert buf.getvalue() == data, ("pycdlib", kind, path)
            rec = p.get_record(**{kind: path})
            assert rec.get_data_length() == len(data), ("pycdlib size", kind, path)
    finally:
        p.close()


def fat_readers_see(tmp_path, fat_img: str, path: str, data: bytes) -> None:
    """mtools copies ``data`` out of ``fat_img``, and fsck.fat -n finds nothing to fix."""
    need("mcopy", "fsck.fat")
    dest = tmp_path / f"mcopy-{random.random()}"
    run(["mcopy", "-n", "-i", fat_img, "::" + path, str(dest)], env_extra=MTOOLS_ENV)
    assert dest.read_bytes() == data, ("mcopy", path)
    fsck_clean(fat_img)


def fsck_clean(fat_img: str) -> None:
    p = subprocess.run(["fsck.fat", "-n", "-v", fat_img], capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr
    for bad in ("Free cluster summary wrong", "Truncating", "cluster chain", "Reclaimed", "differ"):
        assert bad not in p.stdout, p.stdout


def esp_of(image: str, tmp_path) -> str:
    with sysexport.open(image) as img:
        part = next(s for s in img.structures if s.kind == "partition")
    return cut(image, part.offset, part.size, tmp_path / f"esp-{random.random()}.img")


def ours_see(image: str, path: str, data: bytes) -> None:
    with sysexport.open(image) as img:
        assert not img.problems, img.problems
        for name in img.views():
            view = img.view(name)
            try:
                st = view.stat(path)
            except InvalidInputError:
                continue
            assert st.size == len(data) and view.read(path) == data, (name, path)


# --- the hybrid -----------------------------------------------------------------------------------

def test_hybrid_every_view_and_reader(tmp_path, tree):
    """One extent serves the ISO, Joliet and FAT trees: one call changes all three; a hard
    link changes with its group (FAT's copy of it too); GPT untouched; shrinking gives FAT
    clusters back and fsck.fat stays clean."""
    image = build_hybrid(tmp_path, tree)
    with open(image, "rb") as f:
        head = f.read(40960)
    with sysexport.open(image, writable=True) as img:
        r = img.replace_file("/EFI/BOOT/grub.cfg", NEW_CFG)
        assert isinstance(r, Replaced)
        assert (r.old_size_bytes, r.size_bytes) == (len(CFG), len(NEW_CFG))
        assert {"rr:/EFI/BOOT/grub.cfg", "joliet:/EFI/BOOT/grub.cfg", "fat:1:/EFI/BOOT/grub.cfg"} <= set(r.records)
        assert img.view("fat").read("/EFI/BOOT/grub.cfg") == NEW_CFG      # the image reloaded itself
        r = img.replace_file("/docs/a.txt", b"one link, new bytes\n")
        assert {"rr:/docs/a.txt", "rr:/docs/b.txt", "fat:1:/docs/b.txt"} <= set(r.records)
        r = img.replace_file("/docs/big.bin", BIG[:100])
        assert r.room_bytes == 2048
    iso_readers_see(tmp_path, image, "/EFI/BOOT/grub.cfg", NEW_CFG)
    for p in ("/docs/a.txt", "/docs/b.txt"):
        iso_readers_see(tmp_path, image, p, b"one link, new bytes\n")
    iso_readers_see(tmp_path, image, "/docs/big.bin", BIG[:100])
    esp = esp_of(image, tmp_path)
    fat_readers_see(tmp_path, esp, "/EFI/BOOT/grub.cfg", NEW_CFG)
    fat_readers_see(tmp_path, esp, "/docs/b.txt", b"one link, new bytes\n")
    fat_readers_see(tmp_path, esp, "/docs/big.bin", BIG[:100])
    ours_see(image, "/docs/b.txt", b"one link, new bytes\n")
    need("sgdisk")
    assert "No problems found" in out(["sgdisk", "-v", image])
    with open(image, "rb") as f:
        assert f.read(40960) == head                  # MBR, both GPT headers, the descriptors


def test_hybrid_grub_drivers(tmp_path, tree):
    """GRUB's own iso9660 and fat drivers (grub-fstest) read the new grub.cfg, whole and no more."""
    need("grub-fstest")
    image = build_hybrid(tmp_path, tree)
    with sysexport.open(image, writable=True) as img:
        img.replace_file("/EFI/BOOT/grub.cfg", NEW_CFG)
    for where in ("(loop0)", "(loop0,gpt1)"):
        dest = tmp_path / f"grub-{where[6:-1] or 'iso'}.cfg"
        run(["grub-fstest", image, "cp", f"{where}/EFI/BOOT/grub.cfg", str(dest)])
        assert dest.read_bytes() == NEW_CFG, where


def test_hybrid_too_big_refused_unchanged(tmp_path, tree):
    image = build_hybrid(tmp_path, tree)
    before = sha256_file(image)
    with sysexport.open(image, writable=True) as img:
        with pytest.raises(LayoutError, match=r"/EFI/BOOT/grub.cfg: 5000 bytes do not fit the 2048 bytes "
                                              r"allocated to it"):
            img.replace_file("/EFI/BOOT/grub.cfg", b"x" * 5000)
        with pytest.raises(LayoutError, match="do not fit the 10240 bytes"):
            img.replace_file("/docs/big.bin", b"x" * 10241)
        img.replace_file("/docs/big.bin", b"y" * 10240)            # exactly the room fits
    assert sha256_file(image) != before
    iso_readers_see(tmp_path, image, "/docs/big.bin", b"y" * 10240)
    before = sha256_file(image)
    with sysexport.open(image, writable=True) as img:
        with pytest.raises(LayoutError):
            img.replace_file("/docs/big.bin", b"y" * 10241)
    assert sha256_file(image) == before


def test_hybrid_iso_only_and_esp_only_files(tmp_path):
    """A hybrid's ISO-only file changes in the ISO trees alone, an ESP-only file in the FAT alone."""
    from sysexport import ISO9660Hybrid
    image = str(tmp_path / "targets.img")
    h = ISO9660Hybrid(image)
    h.add(("file", "both.txt", b"both\n"))
    h.add(("file", "notes/iso-only.txt", b"only on the CD side\n", {"hybrid_target": "iso"}))
    h.add(("file", "EFI/esp-only.txt", b"only in the ESP\n", {"hybrid_target": "esp"}))
    h.finish()
    with sysexport.open(image, writable=True) as img:
        r = img.replace_file("/notes/iso-only.txt", b"changed, CD side\n")
        assert set(r.records) == {"rr:/notes/iso-only.txt", "joliet:/notes/iso-only.txt"}
        r = img.replace_file("/EFI/esp-only.txt", b"changed, ESP side\n", view="fat")
        assert r.records == ("fat:1:/EFI/esp-only.txt",)
    iso_readers_see(tmp_path, image, "/notes/iso-only.txt", b"changed, CD side\n")
    esp = esp_of(image, tmp_path)
    fat_readers_see(tmp_path, esp, "/EFI/esp-only.txt", b"changed, ESP side\n")
    fat_readers_see(tmp_path, esp, "/both.txt", b"both\n")


# --- plain ISOs -----------------------------------------------------------------------------------

@pytest.mark.parametrize("maker", ["ours", "xorriso", "genisoimage"])
def test_plain_iso(tmp_path, tree, maker):
    iso = build_iso(tmp_path, tree, maker)
    with sysexport.open(iso, writable=True) as img:
        r = img.replace_file("/EFI/BOOT/grub.cfg", NEW_CFG)
        assert {"rr:/EFI/BOOT/grub.cfg", "joliet:/EFI/BOOT/grub.cfg"} <= set(r.records)
        r = img.replace_file("/docs/b.txt", b"through the other link\n")
        assert {"rr:/docs/a.txt", "rr:/docs/b.txt"} <= set(r.records)
        img.replace_file("/docs/big.bin", BIG[::-1][:3000])     # shrink across blocks
        assert img.replace_file("/docs/big.bin", BIG[:4096]).room_bytes == 4096
    iso_readers_see(tmp_path, iso, "/EFI/BOOT/grub.cfg", NEW_CFG)
    iso_readers_see(tmp_path, iso, "/docs/a.txt", b"through the other link\n")
    iso_readers_see(tmp_path, iso, "/docs/big.bin", BIG[:4096])
    ours_see(iso, "/docs/a.txt", b"through the other link\n")
    need("isovfy")
    assert "No errors found" in run(["isovfy", iso]).stdout.decode()


def test_multi_extent_file(tmp_path, monkeypatch):
    """A file in several sections (our writer made to cut at 4 KiB): only the last section
    changes; every section record of both trees stays right for xorriso, bsdtar and pycdlib."""
    from sysexport.iso9660 import layout
    monkeypatch.setattr(layout, "MAX_SECTION_BYTES", 4096)
    data = random.Random(3).randbytes(10_000)
    iso = str(tmp_path / "multi.iso")
    w = ISO9660(iso, rock_ridge="1.12")
    w.add({"name": "multi.bin", "mode": 0o100644, "data": data})
    w.finish()
    before = sha256_file(iso)
    with sysexport.open(iso, writable=True) as img:
        with pytest.raises(LayoutError, match="changes only in its last section: it must stay above 8192"):
            img.replace_file("/multi.bin", data[:8192])
        with pytest.raises(LayoutError, match="10241 bytes do not fit the 10240 bytes"):
            img.replace_file("/multi.bin", data + bytes(241))
        assert sha256_file(iso) == before
        full = data[::-1] + data[:240]
        r = img.replace_file("/multi.bin", full)
        assert (r.size_bytes, r.room_bytes) == (10240, 10240)
        assert [n for _, n in img.view("joliet").stat("/multi.bin").extents] == [4096, 4096, 2048]
    iso_readers_see(tmp_path, iso, "/multi.bin", full, pycdlib_too=False)
    with sysexport.open(iso, writable=True) as img:
        assert img.replace_file("/multi.bin", data[:8193]).room_bytes == 10240
    iso_readers_see(tmp_path, iso, "/multi.bin", data[:8193], pycdlib_too=False)


def test_iso_without_joliet_and_views(tmp_path, tree):
    """A plain ISO 9660 tree without Joliet, changed through its iso9660 view's names."""
    iso = str(tmp_path / "norr.iso")
    w = ISO9660(iso, rock_ridge=None, joliet=False)
    w.add(("file", "DATA.TXT", b"plain\n"))
    w.finish()
    with sysexport.open(iso, writable=True) as img:
        assert img.views() == ["iso9660"]
        img.replace_file("/DATA.TXT", b"plain, replaced\n", view="iso9660")
    need("bsdtar", "isoinfo")
    assert run(["bsdtar", "-xOf", iso, "DATA.TXT"]).stdout == b"plain, replaced\n"
    assert run(["isoinfo", "-i", iso, "-x", "/DATA.TXT;1"]).stdout == b"plain, replaced\n"


def test_fat_image_inside_an_iso(tmp_path):
    """A FAT file of the El Torito EFI image that xorriso stores as an ISO file: the FAT volume
    changes inside the ISO file's bytes (the ISO record keeps its size)."""
    need("xorriso", "mkfs.fat", "mcopy", "bsdtar")
    src = tmp_path / "lb"
    (src / "boot/grub").mkdir(parents=True)
    (src / "boot/grub/grub.cfg").write_bytes(CFG)
    efi = src / "boot/grub/efi.img"
    run(["mkfs.fat", "-C", str(efi), "2048"])
    run(["mmd", "-i", str(efi), "::/EFI"], env_extra=MTOOLS_ENV)
    (tmp_path / "hi.txt").write_bytes(b"hi\n")
    run(["mcopy", "-i", str(efi), str(tmp_path / "hi.txt"), "::/EFI/hi.txt"], env_extra=MTOOLS_ENV)
    iso = str(tmp_path / "lb.iso")
    run(["xorriso", "-as", "mkisofs", "-R", "-J", "-V", "LB", "-e", "boot/grub/efi.img", "-no-emul-boot",
         "-o", iso, str(src)])
    with sysexport.open(iso, writable=True) as img:
        assert "fat:eltorito" in img.views()
        r = img.replace_file("/EFI/hi.txt", b"changed inside the El Torito image\n", view="fat:eltorito")
        assert r.records == ("fat:eltorito:/EFI/hi.txt",)
        with pytest.raises(InvalidInputError, match="boot image of El Torito entry 0"):
            img.replace_file("/boot/grub/efi.img", b"x")
    dest = tmp_path / "x"
    dest.mkdir()
    run(["bsdtar", "-xf", iso, "-C", str(dest)])
    fat_readers_see(tmp_path, str(dest / "boot/grub/efi.img"), "/EFI/hi.txt", b"changed inside the El Torito image\n")


def test_grub_mkrescue_image(tmp_path):
    """grub-mkrescue's ISO files are also files of its HFS+ partition, whose catalog holds their
    sizes: refused, unchanged.  Its EFI partition (FAT) changes, fsck.fat clean."""
    need("grub-mkrescue", "xorriso", "mformat")
    src = tmp_path / "rescue"
    (src / "boot/grub").mkdir(parents=True)
    (src / "boot/grub/grub.cfg").write_bytes(CFG)
    iso = str(tmp_path / "rescue.iso")
    run(["grub-mkrescue", "-o", iso, str(src)])
    before = sha256_file(iso)
    with sysexport.open(iso, writable=True) as img:
        with pytest.raises(InvalidInputError, match="HFS\\+ tree whose catalog records its size"):
            img.replace_file("/boot/grub/grub.cfg", NEW_CFG)
        assert sha256_file(iso) == before
        part = next(s for s in img.structures if s.kind == "fat")
        r = img.replace_file("/efi/boot/bootx64.efi", b"not really an EFI program\n", view="fat")
        assert r.records[0].endswith(":/efi/boot/bootx64.efi")
    fat_readers_see(tmp_path, cut(iso, part.offset, part.size, tmp_path / "esp.img"), "/efi/boot/bootx64.efi",
                    b"not really an EFI program\n")


# --- FAT volumes ----------------------------------------------------------------------------------

@pytest.mark.parametrize("fat_type", [12, 16, 32, "ours"])
def test_fat_volume(tmp_path, tree, fat_type):
    """Grow within the last cluster, shrink out of clusters (freed in both FATs, FSInfo kept
    right), empty a file (its first cluster 0); fsck.fat -n finds nothing each time."""
    image = build_fat(tmp_path, tree, fat_type)
    with sysexport.open(image, writable=True) as img:
        cs = img.view("fat").volume.cluster_size
        full = (NEW_CFG * (cs // len(NEW_CFG) + 2))[:cs]
        r = img.replace_file("/EFI/BOOT/grub.cfg", full)
        assert r.records == ("fat:/EFI/BOOT/grub.cfg",) and r.room_bytes == cs
        with pytest.raises(LayoutError, match=f"{cs + 1} bytes do not fit the {cs} bytes allocated"):
            img.replace_file("/EFI/BOOT/grub.cfg", full + b"!")
        r = img.replace_file("/docs/big.bin", BIG[:700])
        assert r.room_bytes == -(-700 // cs) * cs
    fat_readers_see(tmp_path, image, "/EFI/BOOT/grub.cfg", full)
    fat_readers_see(tmp_path, image, "/docs/big.bin", BIG[:700])
    with sysexport.open(image, writable=True) as img:
        assert img.replace_file("/docs/big.bin", b"").room_bytes == 0
        assert img.view("fat").stat("/docs/big.bin").fields["first_cluster"] == 0
        with pytest.raises(LayoutError, match="1 bytes do not fit the 0 bytes"):
            img.replace_file("/docs/big.bin", b"x")
    fat_readers_see(tmp_path, image, "/docs/big.bin", b"")
    ours_see(image, "/EFI/BOOT/grub.cfg", full)


def test_block_device(tmp_path, tree):
    """A hybrid on a loop device is changed in place through the device; a device with a
    mounted file system is refused at open."""
    from helpers.blockdev import loop_device, mounted, need_root
    need_root()
    image = build_hybrid(tmp_path, tree)
    with loop_device(image) as dev:
        with sysexport.open(dev, writable=True) as img:
            img.replace_file("/EFI/BOOT/grub.cfg", NEW_CFG)
    iso_readers_see(tmp_path, image, "/EFI/BOOT/grub.cfg", NEW_CFG)
    fat_readers_see(tmp_path, esp_of(image, tmp_path), "/EFI/BOOT/grub.cfg", NEW_CFG)
    need("mkfs.ext4")
    ext = tmp_path / "ext.img"
    ext.write_bytes(b"")
    os.truncate(ext, 8 << 20)
    run(["mkfs.ext4", "-q", str(ext)])
    with loop_device(ext) as dev, mounted(dev, tmp_path / "mnt"):
        with pytest.raises(SysExportError, match="mounted"):
            sysexport.open(dev, writable=True)


# --- the data argument ----------------------------------------------------------------------------

def test_data_forms(tmp_path, tree):
    """bytes, a host path, a seekable file from its position, an unseekable pipe (measured by
    streaming into a bounded temp file: more than the room is refused before any write)."""
    iso = build_iso(tmp_path, tree, "ours")
    src = tmp_path / "new.cfg"
    src.write_bytes(NEW_CFG)
    with sysexport.open(iso, writable=True) as img:
        img.replace_file("/EFI/BOOT/grub.cfg", str(src))
        assert img.view().read("/EFI/BOOT/grub.cfg") == NEW_CFG
        with open(src, "rb") as f:
            f.seek(14)
            img.replace_file("/EFI/BOOT/grub.cfg", f)
        assert img.view().read("/EFI/BOOT/grub.cfg") == NEW_CFG[14:]
        for payload in (b"from a pipe\n" * 50, b"z" * 2048):
            rfd, wfd = os.pipe()
            with os.fdopen(wfd, "wb") as w:
                w.write(payload)
            with os.fdopen(rfd, "rb") as r:
                img.replace_file("/EFI/BOOT/grub.cfg", r)
            assert img.view().read("/EFI/BOOT/grub.cfg") == payload
        before = sha256_file(iso)
        proc = subprocess.Popen(["sh", "-c", "yes | head -c 100000"], stdout=subprocess.PIPE)
        assert proc.stdout is not None
        with pytest.raises(LayoutError, match="more than 2048 bytes do not fit the 2048 bytes"):
            img.replace_file("/EFI/BOOT/grub.cfg", proc.stdout)
        proc.stdout.close()
        proc.wait()
        assert sha256_file(iso) == before
        with open(src, "r") as text, pytest.raises(InvalidInputError, match="opened in binary mode"):
            img.replace_file("/EFI/BOOT/grub.cfg", text)  # type: ignore[arg-type]
        with pytest.raises(InvalidInputError, match="must be bytes, a path or a binary file"):
            img.replace_file("/EFI/BOOT/grub.cfg", 42)  # type: ignore[arg-type]
        with pytest.raises(SysExportError, match="cannot open"):
            img.replace_file("/EFI/BOOT/grub.cfg", str(tmp_path / "missing"))
    iso_readers_see(tmp_path, iso, "/EFI/BOOT/grub.cfg", b"z" * 2048)


# --- refusals -------------------------------------------------------------------------------------

def test_refused_calls(tmp_path, tree):
    iso = build_iso(tmp_path, tree, "ours")
    before = sha256_file(iso)
    with sysexport.open(iso) as img:
        with pytest.raises(CallOrderError, match="opened read-only.*writable=True"):
            img.replace_file("/EFI/BOOT/grub.cfg", b"x")
    with pytest.raises(InvalidInputError, match="bytes cannot be changed"):
        sysexport.open(open(iso, "rb").read(), writable=True)
    with open(iso, "rb") as f, pytest.raises(InvalidInputError, match="not open for writing"):
        sysexport.open(f, writable=True)
    with sysexport.open(iso, writable=True) as img:
        with pytest.raises(InvalidInputError, match="rr:/docs: a dir, not a regular file"):
            img.replace_file("/docs", b"x")
        with pytest.raises(InvalidInputError, match="rr:/README: a symlink, not a regular file"):
            img.replace_file("/README", b"x")
        with pytest.raises(InvalidInputError, match="no such file or directory"):
            img.replace_file("/docs/missing.txt", b"x")
        with pytest.raises(InvalidInputError, match="no view 'fat'"):
            img.replace_file("/docs/a.txt", b"x", view="fat")
    assert sha256_file(iso) == before
    with open(iso, "r+b") as f:                      # a caller's writable file object works
        with sysexport.open(f, writable=True) as img:
            img.replace_file("/docs/a.txt", b"via a file object\n")
    iso_readers_see(tmp_path, iso, "/docs/a.txt", b"via a file object\n")


def test_images_that_cannot_change(tmp_path, tree):
    """cpio, zisofs, an older session, a UDF bridge, an El Torito boot image: each refused
    with its reason, the image untouched."""
    need("xorriso", "genisoimage")
    from sysexport import CPIO
    cases: list[tuple[str, str, dict, str]] = []
    cp = str(tmp_path / "a.cpio")
    c = CPIO(cp)
    c.add(("file", "a.txt", b"a\n"))
    c.finish()
    cases.append((cp, "/a.txt", {}, "cpio archive cannot be changed in place"))
    zdir = tmp_path / "z"
    zdir.mkdir()
    (zdir / "comp.txt").write_bytes(b"compressible\n" * 4000)
    z = str(tmp_path / "z.iso")
    run(["xorriso", "-outdev", z, "-zisofs", "level=6", "-map", str(zdir / "comp.txt"), "/comp.txt",
         "-set_filter_r", "--zisofs", "/", "--", "-commit"])
    cases.append((z, "/comp.txt", {}, "zisofs-compressed file"))
    m = str(tmp_path / "m.iso")
    for i in range(2):
        (tmp_path / f"s{i}.txt").write_bytes(b"session %d\n" % i)
        run(["xorriso", "-dev", m, "-map", str(tmp_path / f"s{i}.txt"), f"/s{i}.txt", "-commit"])
    cases.append((m, "/s0.txt", {"session": 0}, "older session cannot be changed"))
    u = str(tmp_path / "u.iso")
    run(["genisoimage", "-quiet", "-udf", "-R", "-J", "-o", u, tree])
    cases.append((u, "/docs/a.txt", {}, "UDF bridge"))
    b = str(tmp_path / "boot.iso")
    w = ISO9660(b)
    w.add(("file", "boot/loader.bin", b"\xeb\xfe" + bytes(2046)))
    w.add_boot_catalog_entry(platform=0, path="boot/loader.bin", media_type=0, load_size=4, boot_info_table=True)
    w.finish()
    cases.append((b, "/boot/loader.bin", {}, "boot image of El Torito entry 0"))
    for image, path, kw, message in cases:
        before = sha256_file(image)
        with sysexport.open(image, writable=True, **kw) as img:
            with pytest.raises(InvalidInputError, match=message):
                img.replace_file(path, b"new\n")
        assert sha256_file(image) == before, image
    with sysexport.open(m, writable=True) as img:         # the newest session: every session's record
        r = img.replace_file("/s0.txt", b"changed in the newest\n")
        assert any(n.startswith("session 0 ") for n in r.records)
    need("isoinfo")
    assert run(["isoinfo", "-R", "-i", m, "-x", "/s0.txt"]).stdout == b"changed in the newest\n"


# --- hostile images -------------------------------------------------------------------------------

def _patch(path: str, offset: int, data: bytes) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)


def test_hostile_images_refused_before_any_write(tmp_path, tree):
    """Both byte orders of a size that differ, a file whose blocks overlap a directory, a
    FAT cross-link: InvalidImageError and not one byte written."""
    iso = build_iso(tmp_path, tree, "ours")
    with sysexport.open(iso) as img:
        st = img.view("rr").stat("/docs/a.txt")
        d = img.view("rr").stat("/EFI")
    rec = st.fields["record_offset"]
    bad = str(tmp_path / "endian.iso")
    shutil.copy(iso, bad)
    _patch(bad, rec + 14, struct.pack(">I", 999))
    over = str(tmp_path / "overlap.iso")
    shutil.copy(iso, over)
    lba = d.extents[0][0] // 2048
    _patch(over, rec + 2, struct.pack("<I", lba) + struct.pack(">I", lba))
    fat = build_fat(tmp_path, tree, "ours")
    with sysexport.open(fat) as img:
        a = img.view("fat").stat("/docs/a.txt")
        g = img.view("fat").stat("/EFI/BOOT/grub.cfg")
    cross = str(tmp_path / "cross.img")
    shutil.copy(fat, cross)
    _patch(cross, a.fields["entry_offset"] + 26, struct.pack("<H", g.fields["first_cluster"]))
    for image, path in ((bad, "/docs/a.txt"), (over, "/docs/a.txt"), (cross, "/docs/a.txt"),
                        (cross, "/EFI/BOOT/grub.cfg")):
        before = sha256_file(image)
        with sysexport.open(image, writable=True) as img:
            with pytest.raises(InvalidImageError, match="nothing changed"):
                img.replace_file(path, b"x")
        assert sha256_file(image) == before, image


def test_mutated_hybrids_never_half_written(tmp_path, tree):
    """A seeded mutator over a hybrid: replace_file either works (and our reader and fsck.fat
    are then no worse off than before) or raises a SysExportError with the image unchanged."""
    image = build_hybrid(tmp_path, tree)
    with open(image, "rb") as f:
        pristine = f.read()
    with sysexport.open(image) as img:
        hot = [s.offset for s in img.structures if s.kind in ("iso9660-descriptor", "fat")]
        hot += [e.fields["record_offset"] for e in img.view("rr").walk() if e.path != "/"]
        hot += [e.fields["record_offset"] for e in img.view("joliet").walk() if e.path != "/"]
        hot += [e.fields["entry_offset"] for e in img.view("fat").walk() if e.path != "/"]
    rng = random.Random(13)
    case = str(tmp_path / "case.img")
    outcomes = {"changed": 0, "refused": 0}
    for i in range(120):
        data = bytearray(pristine)
        for _ in range(rng.randint(1, 4)):
            at = rng.choice(hot) + rng.randrange(64)
            data[at] = rng.randrange(256)
        with open(case, "wb") as f:
            f.write(data)
        before = sha256_file(case)
        try:
            with sysexport.open(case, writable=True) as img:
                img.replace_file("/EFI/BOOT/grub.cfg", NEW_CFG)
            outcomes["changed"] += 1
        except SysExportError:
            assert sha256_file(case) == before, i
            outcomes["refused"] += 1
    assert outcomes["changed"] and outcomes["refused"], outcomes


# --- crash ordering -------------------------------------------------------------------------------

class _Crash(Exception):
    pass


class _CrashingFile(io.FileIO):
    """A writable image file that fails at its ``limit``-th write (a crash at that point)."""

    def __init__(self, path: str, limit: int) -> None:
        super().__init__(path, "r+")
        self.limit = limit
        self.writes = 0

    def write(self, b):  # type: ignore[override]
        self.writes += 1
        if self.writes == self.limit:
            raise _Crash()
        return super().write(b)


@pytest.mark.parametrize("new", [NEW_CFG, CFG[:5]], ids=["grow", "shrink"])
def test_crash_at_every_write_leaves_old_or_new(tmp_path, tree, new):
    """A crash at any write leaves each view with the old or the new size, the new size only
    with the whole new content; running the call again finishes the change, fsck.fat clean."""
    image = build_hybrid(tmp_path, tree)
    with open(image, "rb") as f:
        pristine = f.read()
    total = None
    for limit in range(1, 100):
        with open(image, "wb") as f:
            f.write(pristine)
        fh = _CrashingFile(image, limit)
        try:
            with sysexport.open(fh, writable=True) as img:   # type: ignore[arg-type]
                img.replace_file("/EFI/BOOT/grub.cfg", new)
            total = limit
        except _Crash:
            pass
        finally:
            fh.close()
        with sysexport.open(image) as img:
            for name in ("rr", "joliet", "fat"):
                st = img.view(name).stat("/EFI/BOOT/grub.cfg")
                assert st.size in (len(CFG), len(new)), (limit, name, st.size)
                if st.size == len(new):
                    assert img.view(name).read("/EFI/BOOT/grub.cfg") == new, (limit, name)
        with sysexport.open(image, writable=True) as img:
            img.replace_file("/EFI/BOOT/grub.cfg", new)
        ours_see(image, "/EFI/BOOT/grub.cfg", new)
        fsck_clean(esp_of(image, tmp_path))
        if total is not None:
            break
    assert total is not None and total > 3


# --- slow: the Linux kernel and GRUB --------------------------------------------------------------

@pytest.mark.slow
def test_linux_sees_the_change(tmp_path, tree):
    """isofs (Rock Ridge, Joliet, plain names) and vfat through the GPT partition of a changed
    hybrid, and isofs on a changed ISO without Joliet."""
    from helpers.linuxvm import linux_views, need_linux
    import hashlib
    need_linux()
    image = build_hybrid(tmp_path, tree)
    with sysexport.open(image, writable=True) as img:
        img.replace_file("/EFI/BOOT/grub.cfg", NEW_CFG)
        img.replace_file("/docs/big.bin", BIG[:3000])
    views = linux_views(tmp_path, image, vfat_partitions=[1])
    want = {"EFI/BOOT/grub.cfg": NEW_CFG, "docs/big.bin": BIG[:3000]}
    for name in ("rr", "joliet", "vfat1"):
        for rel, data in want.items():
            got = views[name][rel]
            assert (got["size"], got["sha256"]) == (len(data), hashlib.sha256(data).hexdigest()), (name, rel)
    plain = views["plain"]
    assert plain["efi/boot/grub.cfg"]["size"] == len(NEW_CFG)
    iso = str(tmp_path / "nojoliet.iso")
    w = ISO9660(iso, joliet=False)
    w.add_tree(tree)
    w.finish()
    with sysexport.open(iso, writable=True) as img:
        img.replace_file("/docs/a.txt", b"no joliet here\n")
    views = linux_views(tmp_path, iso, iso_views=("rr", "plain"))
    for rel in ("docs/a.txt", "docs/b.txt"):
        got = views["rr"][rel]
        assert (got["size"], got["sha256"]) == (15, hashlib.sha256(b"no joliet here\n").hexdigest())


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["bios-cd", "uefi-disk"])
def test_grub_boots_the_replaced_menu(tmp_path, mode):
    """A bootable hybrid whose boot/grub/grub.cfg is replaced in place boots with the new menu."""
    from helpers.qemuboot import boot_firmware, need_grub
    from sysexport import ISO9660Hybrid
    from sysexport.boot import grub
    need_grub()
    image = str(tmp_path / "live.img")
    h = ISO9660Hybrid(image, volume_label="MODIFY")
    h.add(("file", "hello.txt", b"hi\n"))
    marker = "/boot/grub/sysexport-modify-test.marker"
    grub.make_bootable(h, marker=marker)
    h.finish()
    with sysexport.open(image, writable=True) as img:
        old = img.view("rr").read("/boot/grub/grub.cfg").decode()
        assert "marker ok" in old
        new = old.replace('echo "sysexport-boot: marker ok END"', 'echo "sysexport-boot: replaced in place END"')
        new += "menuentry 'Replaced in place' {\n  true\n}\n"
        r = img.replace_file("/boot/grub/grub.cfg", new.encode())
        assert "fat:1:/boot/grub/grub.cfg" in r.records
    text = boot_firmware(mode, image, str(tmp_path), expect="sysexport-boot: replaced in place END")
    assert "marker ok" not in text
