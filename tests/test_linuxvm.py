"""Prove the Linux-kernel reader harness (tests/helpers/linuxvm.py) on images made by standard tools.

Each view the kernel reports must equal the source tree: if these pass, a difference seen
later on one of our own images is the image's fault, not the harness's.  The same boots
also show the kernel unpacking initramfs archives written by sysexport.cpio.CPIO.
"""
from __future__ import annotations

import os
import random

import pytest

from helpers import need, run
from helpers.linuxvm import host_view, linux_views, need_linux, parse_views, run_linux, LIST_SCRIPT

pytestmark = pytest.mark.slow      # every test boots Linux in qemu

MTIME = 1_600_000_000
IS_ROOT = os.geteuid() == 0


def make_tree(root: str, *, specials: bool) -> str:
    """A small tree with unicode names and spaces, odd sizes, modes, a symlink and (as root) a device."""
    rng = random.Random(7)
    os.makedirs(os.path.join(root, "dir with space", "sub"))
    files = {
        "héllo wörld.txt": b"hello, world\n",
        "empty": b"",
        "dir with space/ünïcödé €.bin": rng.randbytes(100_003),
        "dir with space/sub/big.bin": rng.randbytes(1_048_583),
        "UPPER.TXT": b"upper\n" * 1000,
    }
    for name, data in files.items():
        with open(os.path.join(root, name), "wb") as f:
            f.write(data)
    os.chmod(os.path.join(root, "UPPER.TXT"), 0o600)
    os.chmod(os.path.join(root, "dir with space", "sub"), 0o750)
    if specials:
        os.symlink("héllo wörld.txt", os.path.join(root, "link to hello"))
        os.symlink("../UPPER.TXT", os.path.join(root, "dir with space", "up"))
        os.mkfifo(os.path.join(root, "fifo"))
        if IS_ROOT:
            os.mknod(os.path.join(root, "null"), 0o20644, os.makedev(1, 3))
            os.mknod(os.path.join(root, "loop0"), 0o60600, os.makedev(7, 0))
            os.chown(os.path.join(root, "UPPER.TXT"), 1234, 5678)
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        for n in filenames + dirnames:
            os.utime(os.path.join(dirpath, n), (MTIME, MTIME), follow_symlinks=False)
    return root


def files_by_name(view: dict) -> dict[str, str]:
    return {k: v["sha256"] for k, v in view.items() if v["type"] == "f"}


def test_iso_views_match_source(tmp_path):
    """xorriso -R -J image: Rock Ridge gives everything back; Joliet the names; plain the bytes."""
    need_linux()
    need("xorriso")
    src = make_tree(str(tmp_path / "src"), specials=True)
    iso = str(tmp_path / "x.iso")
    run(["xorriso", "-as", "mkisofs", "-R", "-J", "-V", "HARNESS", "-o", iso, src])
    views = linux_views(tmp_path, iso)
    want = host_view(src)
    rr = views["rr"]
    assert set(rr) == set(want)
    for name, w in want.items():
        got = rr[name]
        for key in ("type", "mode", "uid", "gid", "mtime"):
            assert got[key] == w[key], (name, key, got, w)
        if w["type"] == "f":
            assert (got["size"], got["sha256"]) == (w["size"], w["sha256"]), name
        if w["type"] == "l":
            assert got["target"] == w["target"], name
        if w["type"] in "cb":
            assert got["rdev"] == w["rdev"], name
    if IS_ROOT:
        assert rr["null"]["type"] == "c" and rr["null"]["rdev"] == (1, 3)
        assert rr["loop0"]["type"] == "b" and rr["loop0"]["rdev"] == (7, 0)
    # Joliet: full unicode names of files and directories, no POSIX attributes.
    assert files_by_name(views["joliet"]) == files_by_name(want)
    assert {k for k, v in views["joliet"].items() if v["type"] == "d"} == {k for k, v in want.items()
                                                                         if v["type"] == "d"}
    # Plain ISO9660: 8.3 names (shown lower case, map=normal), the same bytes; the special
    # files that only Rock Ridge can describe appear as empty regular files.
    plain = views["plain"]
    empty = files_by_name(want)["empty"]
    assert sorted(files_by_name(plain).values()) == sorted(
        list(files_by_name(want).values()) + [empty] * sum(w["type"] in "lpcb" for w in want.values()))
    assert plain["upper.txt"]["sha256"] == want["UPPER.TXT"]["sha256"]
    assert plain["dir_with/sub/big.bin"]["sha256"] == want["dir with space/sub/big.bin"]["sha256"]


def _fat_partition(tmp_path, src: str, sector_bytes: int) -> str:
    part = str(tmp_path / f"part{sector_bytes}.img")
    run(["truncate", "-s", "8M", part])
    run(["mkfs.fat", "-S", str(sector_bytes), "-n", "HARNESS", part])
    run(["mcopy", "-s", "-p", "-m", "-i", part] + [os.path.join(src, n) for n in sorted(os.listdir(src))]
        + ["::"], env_extra={"MTOOLS_SKIP_CHECK": "1"})
    return part


def _place(disk: str, part: str, offset: int) -> None:
    with open(part, "rb") as s, open(disk, "r+b") as d:
        d.seek(offset)
        d.write(s.read())


def test_vfat_views_512_and_4k(tmp_path):
    """sgdisk GPT + mkfs.fat + mcopy (512-byte disk), fdisk -b 4096 GPT + mkfs.fat -S 4096 (virtio 4K)."""
    need_linux()
    need("sgdisk", "fdisk", "mkfs.fat", "mcopy")
    src = make_tree(str(tmp_path / "src"), specials=False)
    want = files_by_name(host_view(src))

    disk = str(tmp_path / "gpt512.img")
    run(["truncate", "-s", "12M", disk])
    run(["sgdisk", "-n", "1:2048:+8M", "-t", "1:ef00", disk])
    _place(disk, _fat_partition(tmp_path, src, 512), 2048 * 512)
    os.makedirs(tmp_path / "a")
    views = linux_views(tmp_path / "a", disk, iso_views=(), vfat_partitions=[1])
    v = views["vfat1"]
    assert files_by_name(v) == want
    assert {k for k, e in v.items() if e["type"] == "d"} == {"dir with space", "dir with space/sub"}
    assert v["héllo wörld.txt"]["mtime"] == MTIME  # FAT keeps 2-second resolution; MTIME is even

    disk4k = str(tmp_path / "gpt4k.img")
    run(["truncate", "-s", "16M", disk4k])
    run(["fdisk", "-b", "4096", disk4k], input=b"g\nn\n1\n256\n+8M\nt\n1\nw\n")
    assert "EFI System" in run(["fdisk", "-b", "4096", "-l", disk4k]).stdout.decode()
    _place(disk4k, _fat_partition(tmp_path, src, 4096), 256 * 4096)
    os.makedirs(tmp_path / "b")
    views = linux_views(tmp_path / "b", disk4k, iso_views=(), vfat_4k=[1])
    assert files_by_name(views["vfat4k1"]) == want


def test_views_report_a_difference(tmp_path):
    """The harness is not blind: a file changed in the image shows a different sha256."""
    text = ("@@VIEW rr\n@@NAMES\n2e2f6100\n@@STAT\n81a4 0 0 5 3 0 0\n@@SHA\n" + "ab" * 32 + "  -\n"
            "@@LINK\n@@ENDVIEW\n")
    views = parse_views(text)
    assert views == {"rr": {"a": {"type": "f", "mode": 0o644, "uid": 0, "gid": 0, "mtime": 5, "size": 3,
                                  "rdev": (0, 0), "sha256": "ab" * 32}}}


PAYLOAD_SPECS = [
    ("dir750", "payload/d", {"uid": 12, "gid": 34, "mtime": 1_500_000_000}),
    ("file600", "payload/d/a file ü", b"x" * 5, {"mtime": 1_500_000_001}),
    ("file644", "payload/h1", b"hard linked data\n", {"dev": 9, "ino": 77, "nlink": 3}),
    ("file644", "payload/d/h2", b"hard linked data\n", {"dev": 9, "ino": 77, "nlink": 3}),
    ("file644", "payload/h3", b"hard linked data\n", {"dev": 9, "ino": 77, "nlink": 3}),
    ("sym", "payload/s", "d/a file ü"),
    ("chr640", "payload/c", (4, 64)),
    ("blk660", "payload/b", (8, 1)),
    ("fifo", "payload/p"),
    ("sock", "payload/so"),
]


@pytest.mark.parametrize("compress", ["gzip", "xz", "zstd"])
def test_kernel_unpacks_cpio(tmp_path, compress):
    """The kernel's initramfs unpacker reads CPIO archives (each compression): every type, hard links.

    The payload is a second archive appended to the harness archive, so this also shows
    that our archives concatenate as the kernel expects.  With xz the whole initramfs is
    compressed too (the kernel refuses xz's default CRC64 check: this is the trap's test).
    """
    need_linux()
    if compress == "zstd":
        pytest.importorskip("zstandard")
    script = LIST_SCRIPT.replace("cd /m", "cd /payload") + "\nlistview payload\n" \
        "stat -c '%i %h' /payload/h1 /payload/d/h2 /payload/h3\n"
    text = run_linux(tmp_path, script, extra=PAYLOAD_SPECS, extra_compress=compress,
                     compress="xz" if compress == "xz" else None)
    v = parse_views(text)["payload"]
    assert v["d"]["type"] == "d" and v["d"]["mode"] == 0o750 and (v["d"]["uid"], v["d"]["gid"]) == (12, 34)
    assert v["d"]["mtime"] == 1_500_000_000
    assert v["d/a file ü"]["mode"] == 0o600 and v["d/a file ü"]["mtime"] == 1_500_000_001
    assert v["d/a file ü"]["size"] == 5
    for h in ("h1", "d/h2", "h3"):
        assert v[h]["type"] == "f" and v[h]["size"] == 17, (h, v[h])
    assert v["s"] == dict(v["s"], type="l", target="d/a file ü")
    assert (v["c"]["type"], v["c"]["rdev"], v["c"]["mode"]) == ("c", (4, 64), 0o640)
    assert (v["b"]["type"], v["b"]["rdev"], v["b"]["mode"]) == ("b", (8, 1), 0o660)
    assert v["p"]["type"] == "p" and v["so"]["type"] == "s"
    inodes = text.strip().splitlines()[-3:]
    assert len(set(inodes)) == 1 and inodes[0].split()[1] == "3", inodes
    import hashlib
    assert v["h1"]["sha256"] == hashlib.sha256(b"hard linked data\n").hexdigest()
