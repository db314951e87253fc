"""When an image is synced to the disk (sysexport/output.py, "Durability").

A regular file is left to the kernel's write-back by default (as cp, tar and genisoimage
leave theirs): no fsync at all.  ``--sync`` / ``Output(sync=True)`` / ``durable()`` fsync the
temporary file before it is named and renamed into place, and the directory after.  A block
device is flushed whatever is asked.  The system calls are watched by strace (``-y`` names
each descriptor's file), the page cache's state by the kernel's own cachestat(2) (Linux
6.5: how many of a file's cached pages are dirty or under write-back), and every image is
read back by bsdtar or cpio.
"""
from __future__ import annotations

import ctypes
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import need, out
from helpers.blockdev import fill_file, loop_device, need_root

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MIB = 1 << 20
SYNC_CALLS = "fsync,fdatasync,sync_file_range,syncfs,sync,msync"
"""Every system call that waits for (or starts) write-back of a file."""


def make_tree(root: Path) -> Path:
    root.mkdir()
    (root / "readme.txt").write_text("hello\n")
    (root / "big.bin").write_bytes(os.urandom(3 * MIB))     # larger than the small-file path
    (root / "dir").mkdir()
    (root / "dir" / "a.txt").write_text("a\n")
    return root


def traced(tmp: Path, argv: list[str], stdout=subprocess.DEVNULL) -> list[str]:
    """Run ``argv`` (a Python command) under ``strace -f -y`` and return the lines of its
    sync calls, links and renames, in order; fail on a non-zero exit."""
    need("strace")
    log = tmp / f"strace.{len(list(tmp.glob('strace.*')))}"
    env = dict(os.environ, PYTHONPATH=ROOT, SOURCE_DATE_EPOCH="1700000000")
    p = subprocess.run(["strace", "-f", "-qq", "-y", "-o", str(log), "-e", f"trace={SYNC_CALLS},linkat,renameat,"
                        "renameat2,rename"] + argv, stdout=stdout, stderr=subprocess.PIPE, env=env, timeout=300)
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    return [re.sub(r"^\d+ +", "", line) for line in log.read_text().splitlines() if "resumed" not in line]


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "sysexport", *args]


def sync_lines(lines: list[str]) -> list[str]:
    return [line for line in lines if re.match(rf"({SYNC_CALLS.replace(',', '|')})\(", line)]


class CacheStat(ctypes.Structure):
    _fields_ = [(name, ctypes.c_uint64) for name in
                ("nr_cache", "nr_dirty", "nr_writeback", "nr_evicted", "nr_recently_evicted")]


CACHESTAT_SYSCALL = 451
"""cachestat(2), the same number on every architecture (include/uapi/asm-generic/unistd.h)."""


def dirty_pages(path: Path) -> int | None:
    """Pages of ``path`` in the page cache still dirty or under write-back (cachestat(2));
    None on a kernel before 6.5."""
    libc = ctypes.CDLL(None, use_errno=True)
    span = (ctypes.c_uint64 * 2)(0, 0)          # offset 0, length 0: the whole file
    st = CacheStat()
    fd = os.open(path, os.O_RDONLY)
    try:
        if libc.syscall(CACHESTAT_SYSCALL, fd, ctypes.byref(span), ctypes.byref(st), 0) != 0:
            assert ctypes.get_errno() == 38, os.strerror(ctypes.get_errno())      # ENOSYS only
            return None
    finally:
        os.close(fd)
    return int(st.nr_dirty + st.nr_writeback)


def assert_lists(image: Path, kind: str) -> None:
    """A reader nobody here wrote finds the tree's files in the image."""
    if kind == "cpio":
        need("cpio")
        names = subprocess.run(["cpio", "-it"], stdin=open(image, "rb"), capture_output=True, check=True).stdout
    else:
        need("bsdtar")
        names = out(["bsdtar", "-tf", str(image)]).encode()
    for name in (b"readme.txt", b"big.bin", b"dir/a.txt"):
        assert name in names, (name, names[:400])


def test_a_file_is_not_synced_by_default(tmp_path):
    """``sysexport build -o FILE``: no fsync of anything (the cost of waiting for the disk is
    the user's choice, --sync), the image still renamed into place whole."""
    tree = make_tree(tmp_path / "tree")
    image = tmp_path / "out.img"
    lines = traced(tmp_path, cli("build", str(tree), "-o", str(image), "-q"))
    assert sync_lines(lines) == []
    assert any(line.startswith("rename") and '"out.img"' in line for line in lines), lines
    assert_lists(image, "iso")
    image.write_bytes(b"old")                   # replacing an existing file: the same
    lines = traced(tmp_path, cli("build", str(tree), "-o", str(image), "-q"))
    assert sync_lines(lines) == []
    assert_lists(image, "iso")


@pytest.mark.parametrize("command", ["build", "initramfs"])
def test_sync_option_fsyncs_the_image_then_its_directory(tmp_path, command):
    """``--sync``: the temporary file is fsynced before it gets a name, the directory after the
    rename; afterwards the kernel holds none of the image's pages dirty."""
    tree = make_tree(tmp_path / "tree")
    image = tmp_path / "out.img"
    lines = traced(tmp_path, cli(command, str(tree), "-o", str(image), "-q", "--sync"))
    syncs = sync_lines(lines)
    assert len(syncs) == 2, lines
    rename = next(i for i, line in enumerate(lines) if line.startswith("rename") and '"out.img"' in line)
    first, second = lines.index(syncs[0]), lines.index(syncs[1])
    assert first < rename < second, lines
    link = [i for i, line in enumerate(lines) if line.startswith("linkat")]
    assert all(first < i for i in link), lines             # the unnamed file is synced before it is named
    assert syncs[0].startswith("fsync(") and f"<{tmp_path}/" in syncs[0] and f"<{tmp_path}>" not in syncs[0]
    assert syncs[1].startswith("fsync(") and f"<{tmp_path}>" in syncs[1], syncs   # the directory
    assert dirty_pages(image) in (0, None)
    assert_lists(image, "cpio" if command == "initramfs" else "iso")


def test_library_sync_and_durable(tmp_path):
    """``Output(sync=True)``, a writer's finish() inside ``durable()``, and ``sync=False``
    winning over ``durable()``: only the first two fsync; a caller's file handle is written
    in place, fsynced when durable."""
    tree = make_tree(tmp_path / "tree")
    script = f"""
import os
from sysexport import ISO9660
from sysexport.output import Output, durable
with Output({str(tmp_path / 'raw.img')!r}, sync=True) as out:
    out.prepare(4096)
    os.pwrite(out.fd, b"raw", 0)
iso = ISO9660({str(tmp_path / 'durable.iso')!r})
iso.add_tree({str(tree)!r})
with durable():
    iso.finish()
with durable():
    with Output({str(tmp_path / 'not.img')!r}, sync=False) as out:
        out.prepare(4096)
iso = ISO9660({str(tmp_path / 'plain.iso')!r})
iso.add_tree({str(tree)!r})
iso.finish()
with open({str(tmp_path / 'handle.iso')!r}, "wb") as f:
    iso = ISO9660(filehandle=f)
    iso.add_tree({str(tree)!r})
    iso.finish()
    with durable():
        iso = ISO9660(filehandle=f)
        iso.add_tree({str(tree)!r})
        iso.finish()
"""
    lines = traced(tmp_path, [sys.executable, "-c", script])
    renames = [line for line in lines if line.startswith("rename")]
    assert [re.search(r'"(\w+\.\w+)"\)', r).group(1) for r in renames] == \
        ["raw.img", "durable.iso", "not.img", "plain.iso"], renames
    # Two fsyncs (file, directory) around each of the first two renames, none after.
    for name in ("raw.img", "durable.iso"):
        i = next(k for k, line in enumerate(lines) if line.startswith("rename") and f'"{name}"' in line)
        assert lines[i - 2].startswith("fsync(") or lines[i - 1].startswith("fsync("), lines
        assert lines[i + 1].startswith("fsync(") and f"<{tmp_path}>" in lines[i + 1], lines
    last_durable = next(k for k, line in enumerate(lines) if '"durable.iso"' in line and line.startswith("rename"))
    # A caller's file handle: in place, fsynced at the end only inside durable().
    after = sync_lines(lines[last_durable + 2:])
    handle = re.escape(f"{tmp_path}/handle.iso")
    assert len(after) == 1 and re.fullmatch(rf"fsync\(\d+<{handle}>\) = 0", after[0]), lines
    assert (tmp_path / "raw.img").read_bytes()[:3] == b"raw"
    assert_lists(tmp_path / "durable.iso", "iso")
    assert_lists(tmp_path / "plain.iso", "iso")
    assert_lists(tmp_path / "handle.iso", "iso")


def test_stream_outputs(tmp_path):
    """``-o -``: to a file opened for appending, ``--sync`` fsyncs it (standard output, fd 1);
    to a pipe there is nothing to sync and the build succeeds; without --sync neither."""
    tree = make_tree(tmp_path / "tree")
    log = tmp_path / "appended.img"
    with open(log, "ab") as f:
        lines = traced(tmp_path, cli("build", str(tree), "-o", "-", "-q", "--sync"), stdout=f)
    assert any(re.match(rf"fsync\(1<{re.escape(str(log))}>\)", line) for line in lines), lines
    assert_lists(log, "iso")
    log.unlink()
    with open(log, "ab") as f:
        lines = traced(tmp_path, cli("build", str(tree), "-o", "-", "-q"), stdout=f)
    assert sync_lines(lines) == []
    lines = traced(tmp_path, cli("initramfs", str(tree), "-o", "-", "-q", "--sync"), stdout=subprocess.PIPE)
    syncs = sync_lines(lines)
    assert len(syncs) == 1 and "<pipe:" in syncs[0] and "EINVAL" in syncs[0], lines   # tried, ignored


def test_a_block_device_is_always_flushed(tmp_path):
    """A USB stick is unplugged right after the command: without --sync the device is still
    fsynced before the command ends, and no page of it stays dirty."""
    need_root()
    tree = make_tree(tmp_path / "tree")
    backing = tmp_path / "stick.img"
    fill_file(backing, 24 * MIB)
    with loop_device(backing) as dev:
        lines = traced(tmp_path, cli("build", str(tree), "-o", dev, "-q"))
        assert any(re.match(rf"fsync\(\d+<{re.escape(dev)}>\)", line) for line in sync_lines(lines)), lines
        assert_lists(Path(dev), "iso")


@pytest.mark.parametrize("durable", [False, True])
def test_export_into_a_directory_syncs_only_when_asked(tmp_path, durable):
    """``sysexport export -o DIR/`` follows the images' rule: nothing fsynced by default;
    with ``--sync`` every file written (and the directories) before the tree is renamed
    into place, the destination's parent after."""
    tree = make_tree(tmp_path / "tree")
    dest = tmp_path / "dest"
    args = ["export", "--src", str(tree), "--add", "/readme.txt", "/dir/a.txt", "-o", f"{dest}/", "-q"]
    lines = traced(tmp_path, cli(*args, *(["--sync"] if durable else [])))
    syncs = sync_lines(lines)
    assert (dest / "readme.txt").read_text() == "hello\n" and (dest / "dir" / "a.txt").read_text() == "a\n"
    if not durable:
        assert syncs == [], syncs
        return
    rename = next(i for i, line in enumerate(lines) if line.startswith("rename") and f'"{dest}"' in line)
    synced_before = " ".join(line for line in lines[:rename] if line in syncs)
    assert "readme.txt>" in synced_before and "a.txt>" in synced_before, lines
    assert any(f"<{tmp_path}>" in line for line in lines[rename:] if line in syncs), lines   # the parent
