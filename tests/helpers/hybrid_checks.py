"""Independent readers applied to a hybrid image (docs/testing.md).

Each check uses tools nobody here wrote: sgdisk, fdisk, parted, blkid, fsck.fat, mtools,
isoinfo, isovfy, xorriso, bsdtar, 7-Zip, pycdlib, GRUB's own drivers (grub-fstest).
"""
from __future__ import annotations

import os
import re
import struct

from . import cut, need, out, run, sha256_file, tree_digest

MIB = 1 << 20


def expected_views(src: str) -> tuple[dict[str, str], dict[str, str], set[str]]:
    """(regular files by sha256, symlinks by target, directories) of a host tree."""
    files, links, dirs = {}, {}, set()
    for dirpath, dirnames, filenames in os.walk(src):
        rel_dir = os.path.relpath(dirpath, src)
        for name, is_dir in [(d, True) for d in dirnames] + [(f, False) for f in filenames]:
            p = os.path.join(dirpath, name)
            rel = os.path.normpath(os.path.join(rel_dir, name))
            if os.path.islink(p):
                links[rel] = os.readlink(p)
            elif is_dir:
                dirs.add(rel)
            else:
                files[rel] = sha256_file(p)
    return files, links, dirs


def gpt_partitions(image: str) -> list[tuple[int, int]]:
    """(first byte, size) of each partition, as sgdisk reads the 512-byte GPT."""
    text = out(["sgdisk", "-p", image])
    parts = []
    for line in text.splitlines():
        m = re.match(r"\s+(\d+)\s+(\d+)\s+(\d+)\s", line)
        if m:
            first, last = int(m.group(2)), int(m.group(3))
            parts.append((first * 512, (last - first + 1) * 512))
    return parts


def check_partition_tables(image: str, n_partitions: int) -> list[tuple[int, int]]:
    need("sgdisk", "fdisk", "parted", "blkid")
    v = out(["sgdisk", "-v", image])
    assert "No problems found" in v, v
    parts = gpt_partitions(image)
    assert len(parts) == n_partitions, parts
    for block in (512, 4096):
        text = out(["fdisk", "-b", str(block), "-l", image])
        assert "Disklabel type: gpt" in text, text
        starts = [int(m.group(1)) for m in re.finditer(rf"^{re.escape(image)}(\d+)\s+(\d+)", text, re.M)]
        rows = re.findall(rf"^{re.escape(image)}\d+\s+(\d+)\s+(\d+)", text, re.M)
        assert [(int(a) * block, (int(b) - int(a) + 1) * block) for a, b in rows] == parts, (block, text)
        assert len(starts) == n_partitions
    p = run(["parted", "-s", "-m", image, "unit", "B", "print"])
    # One warning is inherent to a 512 + 4K GPT pair and allowed: parted wants the 512-byte
    # backup array right below the last sector, where the 4K backup header must be (LBA
    # last of a 4K disk).  See docs/layout.md.
    err = p.stderr.replace(b"\n", b" ")
    err = re.sub(rb"Warning: Not all of the space available to \S+ appears to be used, you can fix the GPT "
                 rb"to use all of the space \(an extra \d+ blocks\) or continue with the current setting\? ",
                 b"", err).strip()
    assert b"Warning" not in err and b"Error" not in err, p.stderr
    rows = [line.split(":") for line in p.stdout.decode().splitlines() if re.match(r"^\d+:", line)]
    assert [(int(r[1][:-1]), int(r[3][:-1])) for r in rows] == parts
    return parts


def check_blkid(image: str, label: str) -> dict[str, str]:
    text = out(["blkid", "-p", "-o", "export", image])
    values = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    assert values.get("TYPE") == "iso9660", values
    assert values.get("LABEL") == label, values
    assert values.get("PTTYPE") == "gpt", values
    return values


def check_esp(image: str, esp: tuple[int, int], files: dict[str, str], tmp: str, fat_label: str) -> str:
    """fsck.fat, mtools (strict), 7-Zip, TSK and blkid on the ESP cut out of the image."""
    need("fsck.fat", "mcopy", "mdir", "7zz", "fls")
    esp_img = cut(image, esp[0], esp[1], os.path.join(tmp, "esp.img"))
    run(["fsck.fat", "-n", "-V", esp_img])
    text = out(["blkid", "-p", "-o", "export", esp_img])
    assert "TYPE=vfat" in text and f"LABEL={fat_label}" in text, text
    run(["mdir", "-i", esp_img, "::"])
    dest = os.path.join(tmp, "mtools")
    os.mkdir(dest)
    if files:
        run(["mcopy", "-s", "-n", "-i", esp_img, "::*", dest])
    assert tree_digest(dest) == files
    dest7 = os.path.join(tmp, "7z-fat")
    run(["7zz", "x", "-tfat", esp_img, f"-o{dest7}", "-y"])
    assert tree_digest(dest7) == files
    fls = out(["fls", "-r", "-p", "-f", "fat", esp_img])
    for name in files:
        if len(name) < 190:
            assert name in fls, name
    return esp_img


def check_iso_readers(image: str, files: dict[str, str], links: dict[str, str], tmp: str, label: str) -> None:
    need("isoinfo", "isovfy", "xorriso", "bsdtar", "7zz")
    d = out(["isoinfo", "-d", "-i", image])
    assert f"Volume id: {label}" in d, d
    run(["isoinfo", "-l", "-R", "-J", "-i", image])
    v = out(["isovfy", image])
    assert "No errors found" in v, v
    # Rock Ridge views: symlinks as symlinks.
    for tool in ("bsdtar", "xorriso"):
        dest = os.path.join(tmp, tool)
        os.mkdir(dest)
        if tool == "bsdtar":
            run(["bsdtar", "-xf", image, "-C", dest])
        else:
            run(["xorriso", "-osirrox", "on", "-indev", image, "-extract", "/", dest])
        assert tree_digest(dest) == files, tool
        for name, target in links.items():
            assert os.readlink(os.path.join(dest, name)) == target, (tool, name)
    dest = os.path.join(tmp, "7z-iso")
    run(["7zz", "x", "-tiso", image, f"-o{dest}", "-y"])
    got = {k: v for k, v in tree_digest(dest).items() if k not in links}
    # 7-Zip reads the Joliet tree, whose names are cut at 64 UCS-2 characters.
    short = {k: v for k, v in files.items() if all(len(p) <= 64 for p in k.split("/"))}
    assert {k: v for k, v in got.items() if k in short} == short
    assert sorted(got.values()) == sorted(files.values())


def check_pycdlib(image: str, files: dict[str, str]) -> None:
    import hashlib
    import io

    import pycdlib
    iso = pycdlib.PyCdlib()
    iso.open(image)
    try:
        for kind in ("rr_path", "joliet_path"):
            seen = {}
            for dirpath, _dirs, names in iso.walk(**{kind: "/"}):
                for n in names:
                    path = (dirpath.rstrip("/") + "/" + n)
                    rec = iso.get_record(**{kind: path})
                    if kind == "rr_path" and rec.rock_ridge is not None and rec.rock_ridge.is_symlink():
                        continue
                    buf = io.BytesIO()
                    iso.get_file_from_iso_fp(buf, **{kind: path})
                    seen[path.lstrip("/")] = hashlib.sha256(buf.getvalue()).hexdigest()
            if kind == "rr_path":
                assert seen == files, kind
            else:
                # Joliet names are cut at 64 characters; compare what fits.
                short = {k: v for k, v in files.items() if all(len(p) <= 64 for p in k.split("/"))}
                assert {k: v for k, v in seen.items() if k in short} == short
                # Only regular files (and directories) have a Joliet name: like xorriso, symlinks,
                # devices, fifos and sockets exist only in the Rock Ridge view.
                assert len(seen) == len(files), sorted(set(seen) - set(files))
    finally:
        iso.close()


def iso_extents(image: str) -> dict[str, tuple[int, int]]:
    """{path: (device_offset, size)} of every regular file, read by pycdlib (Rock Ridge names)."""
    import pycdlib
    iso = pycdlib.PyCdlib()
    iso.open(image)
    result = {}
    try:
        for dirpath, _dirs, names in iso.walk(rr_path="/"):
            for n in names:
                path = dirpath.rstrip("/") + "/" + n
                rec = iso.get_record(rr_path=path)
                if rec.rock_ridge is not None and rec.rock_ridge.is_symlink():
                    continue
                result[path.lstrip("/")] = (rec.extent_location() * 2048, rec.get_data_length())
    finally:
        iso.close()
    return result


def fat_extents(esp_img: str, esp_offset: int) -> dict[str, tuple[int, int]]:
    """{path: (device_offset, size)} from the FAT's own structures, read with mtools.

    The data region's start comes from the boot sector (BPB fields, fatgen103); each file's
    clusters from ``mshowfat``; contiguity is checked here too.
    """
    with open(esp_img, "rb") as f:
        bs = f.read(512)
    bytes_per_sector, sec_per_clus, rsvd, num_fats, root_ents, tot16, _media, fatsz16 = struct.unpack_from(
        "<HBHBHHBH", bs, 11)
    fatsz = fatsz16 or struct.unpack_from("<I", bs, 36)[0]
    root_dir_sectors = (root_ents * 32 + bytes_per_sector - 1) // bytes_per_sector
    first_data_sector = rsvd + num_fats * fatsz + root_dir_sectors
    cluster_bytes = sec_per_clus * bytes_per_sector
    # mdir -b exits 1 on an empty root; the plain mdir run in check_esp proved the FAT readable.
    listing = out(["mdir", "-/", "-b", "-i", esp_img, "::"], ok_codes=(0, 1)).splitlines()
    result = {}
    for entry in listing:
        entry = entry.strip()
        if not entry.startswith("::/") or entry.endswith("/"):
            continue
        path = entry[3:]
        chain = out(["mshowfat", "-i", esp_img, "::/" + path]).strip()
        ranges = re.findall(r"<(\d+)(?:-(\d+))?>", chain)
        if not ranges:
            continue  # empty file: no cluster
        assert len(ranges) == 1, f"{path}: fragmented: {chain}"
        first = int(ranges[0][0])
        offset = esp_offset + (first_data_sector + (first - 2) * sec_per_clus) * bytes_per_sector
        result[path] = offset
    return {k: (v, cluster_bytes) for k, v in result.items()}


def check_grub_reads(image: str, sample: dict[str, str], tmp: str) -> None:
    """GRUB's own iso9660 and fat drivers read the files (what the boot loader will see)."""
    need("grub-fstest")
    for i, (name, digest) in enumerate(sorted(sample.items())):
        for dev in ("(loop0)", "(loop0,gpt1)"):
            dest = os.path.join(tmp, f"grub-{i}-{len(dev)}")
            run(["grub-fstest", image, "cp", f"{dev}/{name}", dest])
            assert sha256_file(dest) == digest, (dev, name)
