"""File data spliced into the image 1 MiB a step (sysexport/splicing.py, used by
sysexport/data.py for every run of source data of 1 MiB or more).

The images are read back by bsdtar and xorriso (every byte of every file), the holes of a
sparse source are looked for in the image with SEEK_DATA (they must stay holes), a source
that shrinks while it is copied must fail the build and leave nothing, and strace shows
that the long runs are spliced (and the short ones are not).
"""
from __future__ import annotations

import hashlib
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import need, out, run
from sysexport import ISO9660
from sysexport.data import PROGRESS, PathData
from sysexport.errors import SourceError
from sysexport.splicing import SPLICE_MIN_BYTES, SplicePipe

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MIB = 1 << 20


def random_bytes(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


def make_tree(root: Path) -> dict[str, bytes]:
    """Files the splice path and its edges meet: odd sizes around 1 MiB, a long run that ends
    in the middle of a page, and a sparse file with long and short runs at odd offsets."""
    root.mkdir()
    files = {
        "just_below.bin": random_bytes(SPLICE_MIN_BYTES - 1, 1),
        "just_at.bin": random_bytes(SPLICE_MIN_BYTES, 2),
        "odd.bin": random_bytes(5 * MIB + 1234, 3),
    }
    for name, data in files.items():
        (root / name).write_bytes(data)
    sparse = bytearray(12 * MIB)
    sparse[MIB + 4096:MIB + 4096 + 3 * MIB + 777] = random_bytes(3 * MIB + 777, 4)     # a long run
    sparse[7 * MIB:7 * MIB + 5000] = random_bytes(5000, 5)                             # a short one
    sparse[-2 * MIB:] = random_bytes(2 * MIB, 6)                                       # at the end
    with open(root / "sparse.bin", "wb") as f:
        for start, end in ((MIB + 4096, 4 * MIB + 4096 + 777), (7 * MIB, 7 * MIB + 5000), (10 * MIB, 12 * MIB)):
            f.seek(start)
            f.write(sparse[start:end])
        f.truncate(12 * MIB)
    files["sparse.bin"] = bytes(sparse)
    return files


def lba_of(image: Path, name: str) -> int:
    """The first sector of ``name`` in the image, from isoinfo's listing."""
    need("isoinfo")
    for line in out(["isoinfo", "-l", "-R", "-i", str(image)]).splitlines():
        m = re.search(r"\[\s*(\d+)\s+\d+\]\s+(\S+)\s*$", line)
        if m and m.group(2) == name:
            return int(m.group(1))
    raise AssertionError(f"{name} not in isoinfo's listing")


def test_spliced_files_read_back_and_holes_stay_holes(tmp_path, sde):
    tree = tmp_path / "tree"
    files = make_tree(tree)
    image = tmp_path / "out.iso"
    iso = ISO9660(str(image))
    iso.add_tree(str(tree))
    iso.finish()
    need("bsdtar", "xorriso")
    for tool, cmd in (("bsdtar", ["bsdtar", "-xf", str(image), "-C"]),
                      ("xorriso", ["xorriso", "-osirrox", "on", "-indev", str(image), "-extract", "/"])):
        dest = tmp_path / tool
        dest.mkdir()
        run(cmd + [str(dest)])
        for name, data in files.items():
            got = (dest / name).read_bytes()
            assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest(), (tool, name, len(got))
    # The sparse source's holes are holes of the image: nothing was written there.
    start = lba_of(image, "sparse.bin") * 2048
    fd = os.open(image, os.O_RDONLY)
    try:
        for hole_start, hole_end in ((0, MIB + 4096), (4 * MIB + 8192, 7 * MIB), (7 * MIB + 8192, 10 * MIB)):
            first = -(-(start + hole_start) // 4096) * 4096     # the pages wholly inside the hole
            last = (start + hole_end) // 4096 * 4096
            data_at = os.lseek(fd, first, os.SEEK_DATA)
            assert data_at >= last, (hole_start, data_at - start)
    finally:
        os.close(fd)


def test_long_runs_are_spliced_short_ones_copied(tmp_path):
    """strace: a 5 MiB file goes by splice through a pipe of 1 MiB, 1 MiB a step; a file just
    below the threshold by copy_file_range; a run of data after a hole in steps that end at
    multiples of 1 MiB."""
    need("strace")
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "long.bin").write_bytes(random_bytes(5 * MIB, 7))
    (tree / "short.bin").write_bytes(random_bytes(SPLICE_MIN_BYTES - 1, 8))
    with open(tree / "sparse.bin", "wb") as f:         # a hole, then 3 MiB from an odd offset
        f.seek(MIB + 4096)
        f.write(random_bytes(3 * MIB, 9))
    log = tmp_path / "strace.log"
    script = (f"from sysexport import ISO9660\niso = ISO9660({str(tmp_path / 'x.iso')!r})\n"
              f"iso.add_tree({str(tree)!r})\niso.finish()\n")
    run(["strace", "-f", "-qq", "-y", "-o", str(log), "-e", "trace=splice,copy_file_range,fcntl",
         sys.executable, "-c", script], env_extra={"PYTHONPATH": ROOT})
    text = log.read_text()
    reads = re.findall(r"splice\(\d+<[^>]*/long\.bin>, \[(\d+)\], \d+<pipe:\[\d+\]>, NULL, (\d+), 0\) = (\d+)", text)
    assert [int(r[0]) for r in reads] == [i * MIB for i in range(5)], text[-3000:]
    assert all(int(r[2]) == MIB for r in reads)
    assert re.search(r"F_SETPIPE_SZ, 1048576\) = 1048576", text)
    assert re.search(r"copy_file_range\(\d+<[^>]*/short\.bin>", text), text[-3000:]
    assert not re.search(r"copy_file_range\(\d+<[^>]*/long\.bin>", text)
    # From an odd offset the steps end at multiples of 1 MiB of the source.
    steps = re.findall(r"splice\(\d+<[^>]*/sparse\.bin>, \[(\d+)\], \d+<pipe:\[\d+\]>, NULL, (\d+), 0\) = (\d+)", text)
    assert [(int(a), int(n)) for a, n, _ in steps] == \
        [(MIB + 4096, MIB - 4096), (2 * MIB, MIB), (3 * MIB, MIB), (4 * MIB, 4096)], steps


def test_a_source_that_shrinks_while_spliced_fails_the_build(tmp_path, sde):
    """The source is cut to 3 MiB when the first 4 MiB of it have been written: the next
    splice reads nothing, the build fails naming the file, and no image is left."""
    src = tmp_path / "big.bin"
    src.write_bytes(random_bytes(9 * MIB, 9))
    image = tmp_path / "out.iso"
    iso = ISO9660(str(image))
    iso.add({"name": "big.bin", "mode": 0o100644, "data_path": str(src)})
    seen: list[int] = []

    def cut(n: int) -> None:
        seen.append(n)
        if sum(seen) >= 4 * MIB and src.stat().st_size > 3 * MIB:
            os.truncate(src, 3 * MIB)

    token = PROGRESS.set(cut)
    try:
        with pytest.raises(SourceError, match=r"big\.bin: short read at offset \d+: file shrank while copying"):
            iso.finish()
    finally:
        PROGRESS.reset(token)
    assert not image.exists() and os.listdir(tmp_path) == ["big.bin"]


def test_what_is_not_spliced(tmp_path):
    """A pipe or a character device as the output: no pipe of ours (copy_file_range or
    pread/pwrite as before); a regular file: one; and the bytes arrive either way."""
    data = random_bytes(3 * MIB, 10)
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    fd = os.open(os.devnull, os.O_WRONLY)
    try:
        assert SplicePipe.for_output(fd) is None
    finally:
        os.close(fd)
    r, w = os.pipe()
    try:
        assert SplicePipe.for_output(w) is None
    finally:
        os.close(r)
        os.close(w)
    out_fd = os.open(tmp_path / "out.bin", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        pipe = SplicePipe.for_output(out_fd)
        assert pipe is not None
        pipe.close()
        PathData(str(src)).write_to(out_fd, 12345)
    finally:
        os.close(out_fd)
    got = (tmp_path / "out.bin").read_bytes()
    assert got[:12345] == bytes(12345) and got[12345:] == data
    p = subprocess.run(["cmp", str(src), "-", "--ignore-initial=0:12345"], stdin=open(tmp_path / "out.bin", "rb"))
    assert p.returncode == 0


def test_a_callers_file_object_keeps_its_position(tmp_path):
    """Holes are found with lseek(SEEK_DATA), which moves the descriptor's position: a caller's
    file object given as ``data`` (its bytes from where it stands) reads on from there after
    the image is written."""
    sparse = tmp_path / "sparse.bin"
    head, tail = random_bytes(1 << 20, 11), random_bytes(1 << 20, 12)
    with open(sparse, "wb") as f:
        f.write(head)
        f.seek(5 << 20)
        f.write(tail)
    content = head + bytes(4 << 20) + tail
    with open(sparse, "rb") as fh:
        assert fh.read(10) == content[:10]
        img = ISO9660(str(tmp_path / "img.iso"))
        img.add({"name": "sparse.bin", "mode": 0o100644, "size": len(content) - 10, "data": fh})
        img.finish()
        assert fh.tell() == 10
        assert fh.read(300_000) == content[10:300_010]          # past the reader's buffer
    need("bsdtar")
    got = subprocess.run(["bsdtar", "-xOf", str(tmp_path / "img.iso"), "sparse.bin"], capture_output=True,
                         check=True).stdout
    assert got == content[10:]
