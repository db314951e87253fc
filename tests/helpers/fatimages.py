"""FAT images made by the reference tools, for the read-side tests (test support, no tests).

:func:`build` makes one image with ``mkfs.fat`` and fills it with ``mcopy``/``mattrib``/
``mlabel`` from a source tree that exercises what a FAT reader must get right (long names
of many slots, non-ASCII names, an 8.3 name with a code-page 437 character, the NT
lower-case bits, attributes, an empty file and directory, a directory of several clusters,
a deep tree, a fragmented file, known write times).  :func:`shrink_fat32` turns a FAT32
image into a *small* FAT32 (fewer than 65,525 clusters, the BPB still FAT32), what
``mkfs.fat -F 32`` makes on small sizes: mtools 4.0.32 cannot write into such a volume
("No directory slots": it decides the type by the cluster count), so the files are
copied in while it is large and the volume is cut afterwards.
"""
from __future__ import annotations

import os
import random
import struct
import subprocess
from dataclasses import dataclass, field

from . import need, run

MTOOLS_ENV = {"MTOOLS_SKIP_CHECK": "1", "TZ": "UTC"}   # helpers.run sets LC_ALL=C.UTF-8
SIGMA_NAME = "ΣIGMA.TXT"
"""An 8.3 name whose first byte is cp437's 0xE4 (Σ), written by mcopy with code page 437."""
LONG_NAME = ("A very long file name that needs several long-name slots, more than five of them for "
             "sure.data")
TIMES = {"README.TXT": 1_000_000_000, "lower.txt": 1_234_567_890, "deep/a/b/c/d/e/leaf.txt": 1_500_000_001,
         "MiXed Case Name.Txt": 315_532_800 + 86400 * 365}
"""Write times (seconds since 1970, UTC) given to some source files; mcopy -m keeps them."""


@dataclass
class FATImage:
    """An image made by :func:`build`: its path, mkfs options, and what was put in."""

    path: str
    fat_type: int
    sector_size: int
    files: dict[str, bytes] = field(default_factory=dict)
    dirs: set[str] = field(default_factory=set)
    attrs: dict[str, str] = field(default_factory=dict)     # path: mattrib flags set (+r, +h, +s, -a)
    label: str | None = None
    mtools_readable: bool = True


def source_tree(root: str, seed: int = 1) -> tuple[dict[str, bytes], set[str]]:
    """Write the source tree below ``root``; returns (files, dirs) by relative path."""
    rng = random.Random(seed)
    files: dict[str, bytes] = {
        "README.TXT": b"upper case 8.3 name, no long name\n",
        "lower.txt": b"an 8.3 name in lower case: the NT case bits\n",
        "MiXed Case Name.Txt": b"mixed case needs a long name\n",
        LONG_NAME: b"long name\n" * 3,
        "Grüße.txt": "Grüße\n".encode(),
        "日本語のファイル名.txt": "日本語\n".encode(),
        "empty.bin": b"",
        "big.bin": rng.randbytes(300 * 1024 + 17),
        "readonly.txt": b"read-only\n",
        "hidden.txt": b"hidden\n",
        "system.sys": b"system\n",
        "noarchive.txt": b"archive bit cleared\n",
        "deep/a/b/c/d/e/leaf.txt": b"leaf\n",
        "with.two.dots.tar.gz": b"dots",
    }
    for i in range(180):
        files[f"many/file number {i:03d} with a long name.txt"] = f"{i}\n".encode()
    for i in range(40):
        files[f"many/F{i:05d}.TXT"] = b"s" * i
    dirs = {"deep", "deep/a", "deep/a/b", "deep/a/b/c", "deep/a/b/c/d", "deep/a/b/c/d/e", "many", "emptydir"}
    for d in dirs:
        os.makedirs(os.path.join(root, d), exist_ok=True)
    for rel, data in files.items():
        p = os.path.join(root, rel)
        with open(p, "wb") as f:
            f.write(data)
        t = TIMES.get(rel, 1_600_000_000 + 2 * (sum(data[:64]) % 1000))
        os.utime(p, (t, t))
    return files, dirs


def _m(cmd: list[str], extra: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return run(cmd, env_extra=dict(MTOOLS_ENV, **(extra or {})))


def build(tmp: str, name: str, fat_type: int, size_mib: int, *, sector_size: int = 512,
          sectors_per_cluster: int | None = None, label: str | None = "MTOOLSLBL", fragment: bool = True,
          seed: int = 1) -> FATImage:
    """mkfs.fat -F ``fat_type`` (-S ``sector_size``, -s ``sectors_per_cluster``) on a sparse
    image of ``size_mib`` MiB, then the source tree by mcopy -s -m, the cp437 8.3 name,
    attributes by mattrib, a fragmented file (mdel in between), the label by mlabel."""
    need("mkfs.fat", "mcopy", "mattrib", "mlabel", "mdel")
    img = os.path.join(tmp, f"{name}.img")
    src = os.path.join(tmp, f"{name}-src")
    os.makedirs(src, exist_ok=True)
    with open(img, "wb") as f:
        f.truncate(size_mib << 20)
    cmd = ["mkfs.fat", "-F", str(fat_type), "-S", str(sector_size), "-i", "1234ABCD"]
    if sectors_per_cluster:
        cmd += ["-s", str(sectors_per_cluster)]
    run(cmd + [img])
    cluster = _cluster_size(img)
    files, dirs = source_tree(src, seed)
    entries = sorted(os.listdir(src))
    _m(["mcopy", "-s", "-m", "-i", img] + [os.path.join(src, e) for e in entries] + ["::/"])
    rc = os.path.join(tmp, f"{name}-mtoolsrc")
    with open(rc, "w") as f:
        f.write("default_codepage=437\n")
    sigma = os.path.join(tmp, f"{name}-sigma")
    with open(sigma, "wb") as f:
        f.write(b"sigma, an 8.3 name in code page 437\n")
    _m(["mcopy", "-i", img, sigma, f"::/{SIGMA_NAME}"], {"MTOOLSRC": rc})
    files[SIGMA_NAME] = b"sigma, an 8.3 name in code page 437\n"
    attrs = {"readonly.txt": "+r", "hidden.txt": "+h", "system.sys": "+s", "noarchive.txt": "-a"}
    for rel, flag in attrs.items():
        _m(["mattrib", "-i", img, flag, f"::/{rel}"])
    _m(["mattrib", "-i", img, "+h", "::/deep"])
    if fragment:
        # a hole of 3 clusters between two files, then a file of 10 clusters: it fills the
        # hole and continues after the second file (mtools allocates from the first free)
        hole = os.path.join(tmp, f"{name}-hole")
        spacer = os.path.join(tmp, f"{name}-spacer")
        frag = os.path.join(tmp, f"{name}-frag")
        with open(hole, "wb") as f:
            f.write(b"h" * (3 * cluster))
        with open(spacer, "wb") as f:
            f.write(b"s" * (2 * cluster))
        data = random.Random(seed + 1).randbytes(10 * cluster - 100)
        with open(frag, "wb") as f:
            f.write(data)
        _m(["mcopy", "-i", img, hole, "::/hole.bin"])
        _m(["mcopy", "-i", img, spacer, "::/spacer.bin"])
        _m(["mdel", "-i", img, "::/hole.bin"])
        if fat_type == 32:      # mtools allocates from FSInfo's FSI_Nxt_Free: make it look from the start
            with open(img, "r+b") as f:
                head = f.read(512)
                fsinfo = struct.unpack_from("<H", head, 48)[0]
                f.seek(fsinfo * sector_size + 492)
                f.write(struct.pack("<I", 2))
        _m(["mcopy", "-i", img, frag, "::/fragmented.bin"])
        files["spacer.bin"] = b"s" * (2 * cluster)
        files["fragmented.bin"] = data
    if label:
        _m(["mlabel", "-i", img, f"::{label}"])
    return FATImage(img, fat_type, sector_size, files, dirs, attrs, label)


def _cluster_size(img: str) -> int:
    with open(img, "rb") as f:
        head = f.read(16)
    ss, spc = struct.unpack_from("<HB", head, 11)
    return ss * spc


def shrink_fat32(src: FATImage, dest: str, clusters: int) -> FATImage:
    """A copy of a FAT32 image cut to ``clusters`` clusters (BPB_TotSec32 lowered, the FAT
    left as large as it was, FSInfo's free count set unknown, the backup boot sector
    updated): a small FAT32 holding the same files.  The files must lie in the first
    ``clusters`` clusters (mtools allocates from the start)."""
    with open(src.path, "rb") as f:
        d = bytearray(f.read())
    ss, spc, rsvd, nfats = struct.unpack_from("<HBHB", d, 11)
    fatsz, = struct.unpack_from("<I", d, 36)
    assert struct.unpack_from("<H", d, 22)[0] == 0, "not a FAT32 BPB"
    first_data = rsvd + nfats * fatsz
    total = first_data + clusters * spc
    entries = (fatsz * ss) // 4
    for fat in range(nfats):
        base = (rsvd + fat * fatsz) * ss
        for c in range(clusters + 2, min(entries, clusters + 2 + 65536)):
            assert struct.unpack_from("<I", d, base + 4 * c)[0] & 0x0FFFFFFF == 0, \
                f"cluster {c} is in use: the files do not fit in {clusters} clusters"
    struct.pack_into("<I", d, 32, total)
    fsinfo, backup = struct.unpack_from("<HH", d, 48)
    struct.pack_into("<I", d, fsinfo * ss + 488, 0xFFFFFFFF)
    if backup:
        d[backup * ss:backup * ss + ss] = d[0:ss]
        struct.pack_into("<I", d, (backup + fsinfo) * ss + 488, 0xFFFFFFFF)
    with open(dest, "wb") as f:
        f.write(d[:total * ss])
    return FATImage(dest, 32, src.sector_size, dict(src.files), set(src.dirs), dict(src.attrs), src.label,
                    mtools_readable=False)
