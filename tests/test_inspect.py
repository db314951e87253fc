"""sysexport inspect / ls / cat / extract / verify, on images made by xorriso, mkfs.fat + mcopy,
sgdisk, sfdisk and our writers; checked against the source tree and against blkid/sgdisk."""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import stat

import pytest

from helpers import need, out, run, tree_digest
from sysexport.errors import InvalidImageError, SysExportError
from sysexport.image.commands import add_cli_commands
from test_reader import make_tree, source_view, xorriso_image


def cli(argv: list[str], capsys) -> tuple[int, str]:
    parser = argparse.ArgumentParser(prog="sysexport")
    add_cli_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    code = args.func(args)
    captured = capsys.readouterr()
    cli.last_stderr = captured.err
    return code, captured.out


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> str:
    return make_tree(str(tmp_path_factory.mktemp("src") / "tree"))


@pytest.fixture(scope="module")
def xiso(tree, tmp_path_factory) -> str:
    return xorriso_image(tree, tmp_path_factory.mktemp("x"))


@pytest.fixture(scope="module")
def hybrid(tree, tmp_path_factory) -> str:
    from sysexport import ISO9660Hybrid
    img = str(tmp_path_factory.mktemp("h") / "hybrid.img")
    h = ISO9660Hybrid(img, volume_label="HYB", default_time=1_700_000_000)
    h.add_tree(tree)
    h.finish()
    return img


def test_inspect_iso(xiso, capsys):
    need("blkid")
    code, text = cli(["inspect", xiso], capsys)
    assert code == 0
    uuid = [line.split("=", 1)[1] for line in out(["blkid", "-p", "-o", "export", xiso]).splitlines()
            if line.startswith("UUID=")][0]
    assert "label 'XLABEL'" in text and f"UUID {uuid}" in text
    assert "Joliet level 3" in text and "Rock Ridge 1.09" in text
    assert re.search(r"El Torito entry 0: (x86|80x86|x86 BIOS)\S*, bootable, no emulation, 4 sectors", text), text
    assert "El Torito entry 1: EFI, bootable" in text
    assert "GPT" not in text and "FAT" not in text
    code, text = cli(["inspect", xiso, "--json"], capsys)
    doc = json.loads(text)
    iso = [s for s in doc["structures"] if s["kind"] == "iso9660"][0]
    assert iso["fields"]["uuid"] == uuid and doc["views"] == ["rr", "joliet", "iso9660"]


def test_inspect_gpt_disk_with_fat(tmp_path, capsys):
    """sgdisk makes the GPT, mkfs.fat the ESP at 1 MiB: inspect shows both as sgdisk sees them."""
    need("sgdisk", "mkfs.fat")
    img = str(tmp_path / "disk.img")
    with open(img, "wb") as f:
        f.truncate(40 << 20)
    run(["sgdisk", "-n", "1:2048:+33M", "-t", "1:ef00", "-c", "1:My ESP", "-n", "2:0:0", "-t", "2:8300",
         "-c", "2:rootfs", img])
    run(["mkfs.fat", "-F", "32", "-n", "ESPLABEL", "--offset", "2048", img, str(33 * 1024)])
    code, text = cli(["inspect", img, "--map", str(tmp_path / "map.svg")], capsys)
    assert code == 0
    info = out(["sgdisk", "-i", "2", img])
    first = int(info.split("First sector: ")[1].split()[0])
    assert "1,048,576 ..     35,651,584  partition            GPT partition 1 'My ESP': EFI System" in text
    assert "type c12a7328-f81f-11d2-ba4b-00a0c93ec93b" in text
    assert f"{first * 512:>14,} .." in text and "GPT partition 2 'rootfs': Linux filesystem" in text
    assert "FAT32 volume (fat:1)" in text and "label 'ESPLABEL'" in text
    assert "ISO 9660" not in text and "protective MBR" in text
    import xml.etree.ElementTree as ET
    svg = ET.parse(str(tmp_path / "map.svg")).getroot()
    assert svg.tag.endswith("svg") and len(svg.findall(".//{http://www.w3.org/2000/svg}rect")) > 5


def test_inspect_hybrid_shows_everything(hybrid, capsys):
    need("blkid")
    code, text = cli(["inspect", hybrid], capsys)
    assert code == 0
    label = [line for line in out(["blkid", "-p", "-o", "export", hybrid]).splitlines() if line.startswith("LABEL=")]
    assert label == ["LABEL=HYB"] and "label 'HYB'" in text
    assert "GPT for 512-byte blocks" in text and "GPT for 4096-byte blocks" in text
    assert "'EFI System Partition'" in text and "backup header" in text
    assert "FAT" in text and "(fat:1)" in text and "problem" not in text


def test_ls_rock_ridge_like_ls_l(xiso, tree, capsys):
    code, text = cli(["ls", xiso], capsys)
    assert code == 0 and "hello.txt" in text.split()
    code, text = cli(["ls", "-l", xiso], capsys)
    lines = {line.split()[-1] if " -> " not in line else line.split(" -> ")[0].split()[-1]: line
             for line in text.splitlines()}
    assert lines["link"].startswith("lrwxrwxrwx") and lines["link"].endswith("link -> hello.txt")
    st = os.lstat(os.path.join(tree, "hello.txt"))
    assert lines["hello.txt"].split()[:4] == [stat.filemode(st.st_mode), str(st.st_nlink),
                                              f"{st.st_uid}:{st.st_gid}", str(st.st_size)]
    assert "2020-09-13 12:26" in lines["hello.txt"]              # MTIME 1600000000, UTC
    code, text = cli(["ls", "-l", xiso, "sub", "--view", "rr"], capsys)
    assert "abslink -> /abs/../target/x" in text and text.splitlines()[0].startswith("l")
    assert "-rwxr-xr-x" in [line.split()[0] for line in text.splitlines() if line.endswith("script.sh")]
    code, text = cli(["ls", xiso, "--view", "iso"], capsys)
    assert "HELLO.TXT" in text


def test_extract_rock_ridge_is_the_source_tree(xiso, tree, tmp_path, capsys):
    dest = tmp_path / "out"
    code, text = cli(["extract", xiso, str(dest)], capsys)
    assert code == 0 and "from the rr view" in cli.last_stderr
    (dest / "boot.cat").unlink()
    assert source_view(str(dest)) == source_view(tree)
    # A second extract into the same place refuses and changes nothing.
    before = tree_digest(dest)
    with pytest.raises(SysExportError, match="already exists"):
        cli(["extract", xiso, str(dest)], capsys)
    assert tree_digest(dest) == before


def test_extract_esp_made_by_mtools(tree, tmp_path, capsys):
    need("mkfs.fat", "mcopy")
    img = str(tmp_path / "esp.img")
    run(["mkfs.fat", "-C", "-n", "MTOOLS", img, str(16 * 1024)])
    plain = str(tmp_path / "plain")                # FAT holds no symlinks
    shutil.copytree(tree, plain, ignore=lambda d, names: [n for n in names if os.path.islink(os.path.join(d, n))])
    run(["mcopy", "-s", "-i", img, *[os.path.join(plain, n) for n in sorted(os.listdir(plain))], "::/"],
        env_extra={"MTOOLS_SKIP_CHECK": "1"})
    dest = tmp_path / "out"
    code, text = cli(["extract", img, str(dest), "--view", "esp"], capsys)
    assert code == 0
    assert tree_digest(dest) == tree_digest(plain)
    assert len(tree_digest(dest)) == 10
    code, text = cli(["ls", img], capsys)          # no ISO: the default view is the FAT
    assert "hello.txt" in text and "sub" in text
    code, text = cli(["ls", img, "-R"], capsys)
    assert "/big.bin" in text.split() and "/sub/script.sh" in text.split()


def test_extract_never_writes_outside_dest(tmp_path, capsys):
    """An image whose Rock Ridge name is "../x": refused (an error, or the entry skipped as a
    problem), and nothing is written outside the destination."""
    need("xorriso")
    src = tmp_path / "s"
    src.mkdir()
    (src / "abcd").write_bytes(b"evil")
    img = str(tmp_path / "evil.iso")
    run(["xorriso", "-as", "mkisofs", "-R", "-o", img, str(src)])
    data = open(img, "rb").read()
    assert data.count(b"NM\x09\x01\x00abcd") == 1
    open(img, "wb").write(data.replace(b"NM\x09\x01\x00abcd", b"NM\x09\x01\x00../x"))
    (tmp_path / "dest").mkdir()
    try:
        cli(["extract", img, str(tmp_path / "dest" / "inner")], capsys)
    except InvalidImageError:
        pass
    assert not (tmp_path / "dest" / "x").exists() and not (tmp_path / "x").exists()
    code, text = cli(["verify", img], capsys)
    assert code == 1 and "FAIL" in text


def test_verify_hybrid(hybrid, tree, capsys):
    code, text = cli(["verify", hybrid], capsys)
    assert code == 0, text
    files = sum(1 for v in source_view(tree, symlinks=False).values() if v[0] == "f" and v[2] is not None)
    nonempty = files - 1                                    # "empty" has no extent to compare
    assert f"shared files: {nonempty} of {nonempty} files in both views share one extent" in text
    assert text.rstrip().endswith("OK: every check passed")
    code, text = cli(["verify", hybrid, "--json"], capsys)
    doc = json.loads(text)
    assert doc["ok"] is True and all(c["ok"] for c in doc["checks"])


def test_verify_detects_a_moved_iso_extent(hybrid, tmp_path, capsys):
    """Point hello.txt's ISO directory record elsewhere: verify reports it and exits 1."""
    from sysexport.iso9660.reader import ISO9660Reader
    img = tmp_path / "bad.img"
    img.write_bytes(open(hybrid, "rb").read())
    with ISO9660Reader(str(img)) as r:
        lba = r.find("hello.txt").extents[0][0] // 2048
    old = lba.to_bytes(4, "little") + lba.to_bytes(4, "big")
    new = (lba + 1).to_bytes(4, "little") + (lba + 1).to_bytes(4, "big")
    data = img.read_bytes()
    assert data.count(old) >= 1
    img.write_bytes(data.replace(old, new))
    code, text = cli(["verify", str(img)], capsys)
    assert code == 1 and "FAIL shared files" in text and "hello.txt" in text


def test_extract_joliet_and_iso_views(xiso, tree, tmp_path, capsys):
    """Views without POSIX data: the files' bytes under Joliet and plain ISO names."""
    for view in ("joliet", "iso"):
        dest = tmp_path / view
        code, text = cli(["extract", xiso, str(dest), "--view", view], capsys)
        assert code == 0 and f"from the {'iso9660' if view == 'iso' else view} view" in cli.last_stderr
        got = tree_digest(dest)
        got.pop("boot.cat" if view == "joliet" else "BOOT.CAT")
        if view == "joliet":
            assert got == tree_digest(tree)
        else:
            # symlinks appear there as empty files: compare the files with content
            empty = hashlib.sha256(b"").hexdigest()
            assert sorted(h for h in got.values() if h != empty) == \
                sorted(h for h in tree_digest(tree).values() if h != empty)
            assert all(p == p.upper() for p in got)


def test_extract_hybrid_esp_and_devices(hybrid, tree, tmp_path, capsys):
    dest = tmp_path / "esp"
    code, _ = cli(["extract", hybrid, str(dest), "--view", "esp"], capsys)
    assert code == 0 and tree_digest(dest) == tree_digest(tree)
    assert not any(os.path.islink(os.path.join(d, n)) for d, ds, fs in os.walk(dest) for n in ds + fs)
    from sysexport import ISO9660
    img = str(tmp_path / "dev.iso")
    iso = ISO9660(img, default_time=1_700_000_000)
    iso.add(("chr620", "dev/ttyS0", (4, 64)))
    iso.add(("file", "dev/readme", b"r"))
    iso.finish()
    code, text = cli(["ls", "-l", img, "dev"], capsys)
    assert [line.split()[0] for line in text.splitlines()] == ["-rw-r--r--", "crw--w----"] or \
        [line.split()[0] for line in text.splitlines()] == ["crw--w----", "-rw-r--r--"]
    assert "4,64" in text
    code, _ = cli(["extract", img, str(tmp_path / "devout")], capsys)
    assert "dev/ttyS0: skipped" in cli.last_stderr
    assert code == 0 and (tmp_path / "devout" / "dev" / "readme").read_bytes() == b"r"
    assert not (tmp_path / "devout" / "dev" / "ttyS0").exists()


def test_mbr_disk_and_broken_gpt(tmp_path, capsys):
    """sfdisk's MBR with a FAT partition at 1 MiB (mkfs.fat, mcopy); then a GPT whose
    header CRC is wrong: inspect reports the error instead of the table."""
    need("sfdisk", "mkfs.fat", "mcopy", "sgdisk")
    img = str(tmp_path / "mbr.img")
    with open(img, "wb") as f:
        f.truncate(20 << 20)
    run(["sfdisk", "-q", img], input=b"label: dos\nstart=2048, size=30720, type=ef, bootable\n")
    run(["mkfs.fat", "-n", "MBRFAT", "--offset", "2048", img, str(15 * 1024)])
    (tmp_path / "note.txt").write_bytes(b"in the partition")
    run(["mcopy", "-i", f"{img}@@1M", str(tmp_path / "note.txt"), "::/note.txt"],
        env_extra={"MTOOLS_SKIP_CHECK": "1"})
    code, text = cli(["inspect", img], capsys)
    assert "classic MBR, 1 entry" in text
    assert "1,048,576 ..     16,777,216  partition            MBR partition 1: " in text and "(0xef)" in text
    assert "(fat:1), label 'MBRFAT'" in text and "GPT" not in text
    code, text = cli(["ls", "-l", img], capsys)
    assert text.split()[-1] == "note.txt" and " 16 " in text

    gpt = str(tmp_path / "gpt.img")
    with open(gpt, "wb") as f:
        f.truncate(8 << 20)
    run(["sgdisk", "-n", "1:2048:0", "-c", "1:data", gpt])
    with open(gpt, "r+b") as f:
        f.seek(512 + 16)
        f.write(b"\0\0\0\0")                        # GPT HeaderCRC32
    code, text = cli(["inspect", gpt], capsys)
    assert code == 0 and "problem: GPT (512-byte blocks)" in text and "HeaderCRC32" in text
    code, text = cli(["verify", gpt], capsys)
    assert code == 1 and "FAIL structures" in text


def test_our_vfat_writer(tree, tmp_path, capsys):
    """A FAT image from sysexport.VFAT, read back through `extract --view esp` and mtools."""
    need("mcopy")
    from sysexport import VFAT
    plain = str(tmp_path / "plain")
    shutil.copytree(tree, plain, ignore=lambda d, names: [n for n in names if os.path.islink(os.path.join(d, n))])
    img = str(tmp_path / "fat.img")
    fat = VFAT(img, volume_label="OURFAT")
    fat.add_tree(plain)
    fat.finish()
    code, text = cli(["inspect", img], capsys)
    assert "FAT12 volume (fat), label 'OURFAT'" in text or "FAT16 volume (fat), label 'OURFAT'" in text
    cli(["extract", img, str(tmp_path / "ours")], capsys)
    (tmp_path / "mtools").mkdir()
    run(["mcopy", "-s", "-n", "-i", img, "::*", str(tmp_path / "mtools")], env_extra={"MTOOLS_SKIP_CHECK": "1"})
    assert tree_digest(tmp_path / "ours") == tree_digest(plain) == tree_digest(tmp_path / "mtools")
