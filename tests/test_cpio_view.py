"""The cpio view reads archives made by GNU cpio and bsdtar (plain and compressed, several
archives one after another as an initramfs with early microcode is), and fails cleanly on
damaged ones."""
from __future__ import annotations

import os
import random
import stat
import subprocess

import pytest

from helpers import need
from sysexport.cpio.view import CPIOView
from sysexport.errors import InvalidImageError


def _host_tree(root):
    os.makedirs(os.path.join(root, "etc", "ssl"))
    with open(os.path.join(root, "etc", "motd"), "wb") as f:
        f.write(b"hello\n")
    with open(os.path.join(root, "etc", "ssl", "big.bin"), "wb") as f:
        f.write(random.Random(1).randbytes(300_000))
    os.link(os.path.join(root, "etc", "motd"), os.path.join(root, "motd-link"))
    os.symlink("etc/motd", os.path.join(root, "motd-sym"))
    os.mkfifo(os.path.join(root, "fifo"))
    os.chmod(os.path.join(root, "etc", "ssl"), 0o700)
    return root


def _gnu_cpio(tree, out):
    need("cpio")
    names = subprocess.run("find . -mindepth 1 | LC_ALL=C sort", shell=True, cwd=tree, capture_output=True,
                           check=True).stdout
    with open(out, "wb") as f:
        subprocess.run(["cpio", "--quiet", "-o", "-H", "newc"], cwd=tree, input=names, stdout=f, check=True)
    return out


def _compare(view, tree):
    seen = set()
    for root, dirs, files in os.walk(tree):
        for n in dirs + files:
            host = os.path.join(root, n)
            rel = "/" + os.path.relpath(host, tree)
            seen.add(rel)
            st = os.lstat(host)
            e = view.stat(rel)
            assert e.mode == st.st_mode, rel
            if stat.S_ISREG(st.st_mode):
                with open(host, "rb") as f:
                    assert view.read(rel, 1 << 20) == f.read(), rel
                assert e.size == st.st_size
            if stat.S_ISLNK(st.st_mode):
                assert e.target == os.readlink(host)
    assert {e.path for e in view.walk()} - {"/"} == seen
    a, b = view.stat("/etc/motd"), view.stat("/motd-link")
    assert a.link_id is not None and a.link_id == b.link_id and a.nlink == 2


@pytest.mark.parametrize("compress", [None, "gzip", "xz", "zstd", "bzip2"])
def test_gnu_cpio_archives(tmp_path, compress):
    tree = _host_tree(str(tmp_path / "t"))
    path = _gnu_cpio(tree, str(tmp_path / "a.cpio"))
    if compress:
        tool = {"gzip": ["gzip", "-9"], "xz": ["xz", "--check=crc32"], "zstd": ["zstd", "-q", "--rm"],
                "bzip2": ["bzip2"]}[compress]
        need(tool[0])
        subprocess.run(tool + [path], check=True)
        path += {"gzip": ".gz", "xz": ".xz", "zstd": ".zst", "bzip2": ".bz2"}[compress]
    with open(path, "rb") as f:
        view = CPIOView(f, os.path.getsize(path))
        _compare(view, tree)
        assert view.problems == []


def test_bsdtar_newc_and_early_microcode_concatenation(tmp_path):
    need("bsdtar", "cpio", "gzip")
    tree = _host_tree(str(tmp_path / "t"))
    main = str(tmp_path / "main.cpio")
    subprocess.run(["bsdtar", "--format", "newc", "-cf", main, "-C", tree, "."], check=True)
    early = tmp_path / "early"
    os.makedirs(early / "kernel" / "x86" / "microcode")
    (early / "kernel" / "x86" / "microcode" / "GenuineIntel.bin").write_bytes(b"\x01" * 4096)
    early_cpio = _gnu_cpio(str(early), str(tmp_path / "early.cpio"))
    subprocess.run(["gzip", "-9", main], check=True)
    initrd = tmp_path / "initrd.img"
    initrd.write_bytes(open(early_cpio, "rb").read() + open(main + ".gz", "rb").read())
    with open(initrd, "rb") as f:
        view = CPIOView(f, os.path.getsize(initrd))
        assert [s.kind for s in view.segments] == ["newc", "gzip"]
        assert view.read("/kernel/x86/microcode/GenuineIntel.bin") == b"\x01" * 4096
        assert view.read("/etc/ssl/big.bin", 1 << 20) == open(os.path.join(tree, "etc/ssl/big.bin"), "rb").read()
        # The plain segment's files are named by their extents in the image.
        e = view.stat("/kernel/x86/microcode/GenuineIntel.bin")
        (off, size), = e.extents
        f.seek(off)
        assert f.read(size) == b"\x01" * 4096


def test_damaged_archives_fail_cleanly(tmp_path):
    tree = _host_tree(str(tmp_path / "t"))
    raw = open(_gnu_cpio(tree, str(tmp_path / "a.cpio")), "rb").read()
    rng = random.Random(12)
    bad = tmp_path / "bad.cpio"
    for case in range(300):
        data = bytearray(raw)
        kind = case % 3
        if kind == 0:
            data = data[:rng.randrange(1, len(data))]
        elif kind == 1:
            for _ in range(rng.randrange(1, 8)):
                data[rng.randrange(len(data))] = rng.randrange(256)
        else:
            at = rng.randrange(0, 2000)
            data[at:at + 8] = b"%08X" % rng.choice([0, 1, 0xFFFFFFFF, 0x7FFFFFFF, rng.randrange(1 << 32)])
        bad.write_bytes(bytes(data))
        try:
            with open(bad, "rb") as f:
                view = CPIOView(f, len(data))
                for e in view.walk():
                    if e.is_file:
                        view.read(e.path, 1 << 24)
        except InvalidImageError:
            pass
