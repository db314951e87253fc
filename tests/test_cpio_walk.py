"""CPIO.add_tree's tight path (issue 16): small files read and written as the walk reaches
them, owners and modes rewritten on that path as on the records', progress counted as the
tree is streamed (plain and compressed), and the thread that writes the gathered chunks of
an uncompressed output: its error reaches the caller, and it stops before the output is
closed, so nothing is written into the numbers the output had.
"""
from __future__ import annotations

import gc
import os
import subprocess
import sys

import pytest

from helpers import need, out
from sysexport.cpio import CPIO, iter_newc
from sysexport.data import PROGRESS
from sysexport.sources import rational_mode
from test_fd_lifetime import ROOT, Squatter, sysexport_threads

MIB = 1 << 20


def _tree(root) -> None:
    """Small files (the tight path), a large one, a hard link, a symlink, set-id and
    executable modes, two directories."""
    (root / "bin").mkdir(parents=True)
    (root / "etc").mkdir()
    for i in range(50):
        (root / "etc" / f"f{i:02d}").write_bytes(b"x" * i)
    (root / "bin/tool").write_bytes(b"\x7fELF" + bytes(range(256)) * 400)      # 100 KiB: past the tight path
    os.chmod(root / "bin/tool", 0o4755)
    (root / "bin/run").write_bytes(b"#!/bin/sh\n")
    os.chmod(root / "bin/run", 0o750)
    os.link(root / "bin/run", root / "bin/run2")
    os.symlink("tool", root / "bin/link")
    os.chown(root / "etc/f07", 1234, 5678)


def test_owner_and_mode_rewriting_on_every_path(tmp_path):
    """``root_owner`` and ``mode_map`` change the same header fields on the tight path (small
    files) as on the records (directories, the large file, the hard link, the symlink), and
    nothing else: every other byte is the plain archive's.  GNU cpio lists the owners."""
    need("cpio")
    src = tmp_path / "src"
    _tree(src)
    plain, mapped = tmp_path / "plain.cpio", tmp_path / "mapped.cpio"
    c = CPIO(str(plain), default_time=0)
    c.add_tree(src)
    c.finish()
    c = CPIO(str(mapped), default_time=0)
    c.add_tree(src, root_owner=True, mode_map=rational_mode)
    c.finish()
    before, after = list(iter_newc(plain.read_bytes())), list(iter_newc(mapped.read_bytes()))
    assert [n for _, n, _ in before] == [n for _, n, _ in after] and len(before) == 57
    for (h0, name, data0), (h1, _, data1) in zip(before, after):
        assert data0 == data1, name
        assert h1["c_uid"] == h1["c_gid"] == 0 and h1["c_mode"] == rational_mode(h0["c_mode"]), name
        assert {k: v for k, v in h0.items() if k not in ("c_uid", "c_gid", "c_mode")} == \
            {k: v for k, v in h1.items() if k not in ("c_uid", "c_gid", "c_mode")}, name
    assert {h["c_uid"] for h, n, _ in before if n == "etc/f07"} == {1234}
    listing = out(["cpio", "-tv", "--quiet", "-F", str(mapped)])
    assert "1234" not in listing and "-r-sr-xr-x" not in listing and "-r-xr-xr-x" in listing


@pytest.mark.parametrize("compress", [None, "gzip"])
def test_progress_counts_every_byte_while_the_tree_streams(tmp_path, compress):
    """The progress hook hears of every byte of file data (small files from the tight path,
    the large one as it is copied or compressed), much of it during add_tree, before finish."""
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    for i in range(3000):
        (src / "d" / f"f{i:04d}").write_bytes(bytes([i % 251]) * 700)
    (src / "big").write_bytes(os.urandom(3 * MIB))
    heard: list[int] = []
    token = PROGRESS.set(heard.append)
    try:
        c = CPIO(str(tmp_path / "a.cpio"), compress=compress, default_time=0)
        c.add_tree(src)
        during = sum(heard)
        plan = c.finish()
    finally:
        PROGRESS.reset(token)
    assert sum(heard) == plan.data_bytes == 3000 * 700 + 3 * MIB
    assert during >= 3000 * 700 and len(heard) > 2, (during, len(heard))


CHILD_EFBIG_PLAIN = r"""
import gc, os, resource, sys, threading
sys.path.insert(0, sys.argv[1])
from sysexport import CPIO
from sysexport.errors import OutputError
target, src = sys.argv[2], sys.argv[3]
resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, resource.RLIM_INFINITY))   # EFBIG past 1 MiB
c = CPIO(target, default_time=0)
try:
    c.add_tree(src)                   # 3 MiB of small files: the writing thread passes the limit
    c.finish()
    sys.exit("the archive passed the file size limit")
except OutputError as e:
    err = e
assert "EFBIG" in str(err) or "File too large" in str(err), str(err)
r, w = os.pipe()
squat = [w] + [os.dup(w) for _ in range(16)]
alive = [t.name for t in threading.enumerate() if t.name.startswith("sysexport-")]
del err, c
gc.collect()
for fd in squat:
    os.close(fd)
got = os.read(r, 1 << 20)
print(f"{len(got)} {alive}")
"""


def _small_files(src, count: int = 3000, size: int = 1000) -> None:
    (src / "d").mkdir(parents=True)
    for i in range(count):
        (src / "d" / f"f{i:04d}").write_bytes(os.urandom(size))


def test_writing_thread_error_reaches_the_caller_and_removes_the_output(tmp_path):
    """The kernel refuses a write of the writing thread (EFBIG past RLIMIT_FSIZE): add_tree or
    finish raises OutputError, the thread is gone, no temporary file is left, and nothing is
    written later into the numbers the output had."""
    src = tmp_path / "src"
    _small_files(src)
    target = tmp_path / "out" / "initrd.img"
    target.parent.mkdir()
    p = subprocess.run([sys.executable, "-c", CHILD_EFBIG_PLAIN, ROOT, str(target), str(src)],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["0", "[]"], f"bytes written after close, threads left: {p.stdout}"
    assert os.listdir(target.parent) == []


def test_dropped_writer_stops_its_writing_thread_before_the_output_closes(tmp_path):
    """A CPIO dropped after add_tree, chunks possibly still queued for its writing thread:
    the thread is stopped when the writer is collected, before the temporary output is
    closed; nothing reaches the numbers the output had."""
    src = tmp_path / "src"
    _small_files(src, 6000)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    before = sysexport_threads()
    c = CPIO(str(out_dir / "initrd.img"), default_time=0)
    c.add_tree(src)
    assert [t.name for t in sysexport_threads(before)] == ["sysexport-cpio-write"]
    del c
    gc.collect()
    squat = Squatter()
    assert sysexport_threads(before) == []
    assert squat.received() == b""
    assert os.listdir(out_dir) == []


def test_the_writing_thread_ends_with_finish(tmp_path):
    """finish() joins the writing thread; GNU cpio and bsdtar extract every file with its
    bytes, mode and mtime (sizes 0 to 4100: every padding of name and data)."""
    need("cpio", "bsdtar")
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    for i in range(2500):
        path = src / "d" / ("f" * (i % 7 + 1) + f"{i:04d}")
        path.write_bytes(os.urandom(i * 37 % 4101))
        os.chmod(path, (0o644, 0o755, 0o600, 0o4711)[i % 4])
        os.utime(path, (1_000_000_000 + i, 1_000_000_000 + i))
    before = sysexport_threads()
    c = CPIO(str(tmp_path / "a.cpio"))
    c.add_tree(src)
    plan = c.finish()
    assert sysexport_threads(before) == [] and plan.entry_count == 2502
    for tool in ("cpio", "bsdtar"):
        dest = tmp_path / tool
        dest.mkdir()
        cmd = f"cpio -idm --quiet < '{tmp_path / 'a.cpio'}'" if tool == "cpio" else f"bsdtar -xpf '{tmp_path / 'a.cpio'}'"
        subprocess.run(["sh", "-c", f"cd '{dest}' && {cmd}"], check=True)
        for path in (src / "d").iterdir():
            got = dest / "d" / path.name
            st, want = os.stat(got), os.stat(path)
            assert got.read_bytes() == path.read_bytes(), (tool, path.name)
            assert (st.st_mode, int(st.st_mtime)) == (want.st_mode, int(want.st_mtime)), (tool, path.name)


def test_abort_with_a_view_of_the_buffer_alive(tmp_path):
    """An interrupted write can leave a memoryview of the gathered buffer in its traceback:
    abort() (what a failed or interrupted archive does) still stops, without BufferError."""
    from sysexport.cpio.sink import FdSink
    with open(tmp_path / "spool", "wb") as f:
        sink = FdSink(f.fileno(), sparse=True)
        sink.put(b"x" * 1000)
        view = memoryview(sink.buf)         # what pwrite_all's frame holds when a signal interrupts it
        sink.abort()
        assert len(view) == 1000 and sink.buf == b""
        view.release()


def test_initramfs_exclude_never_reads_the_excluded_directory(tmp_path):
    """``sysexport initramfs --exclude`` prunes: strace shows no open, stat or listing of
    anything in the excluded directory (only the directory's own name is seen, in its
    parent's listing), and GNU cpio lists the rest."""
    need("strace", "cpio")
    src = tmp_path / "src"
    (src / "keep").mkdir(parents=True)
    (src / "keep/a").write_bytes(b"a")
    (src / "cache/deep").mkdir(parents=True)
    (src / "cache/deep/b").write_bytes(b"b")
    archive, trace = tmp_path / "a.cpio", tmp_path / "trace"
    subprocess.run(["strace", "-f", "-o", str(trace), "-e", "trace=%file,getdents64", sys.executable, "-m",
                    "sysexport", "initramfs", str(src), "-o", str(archive), "-q", "--exclude", "cache"],
                   check=True, env=dict(os.environ, PYTHONPATH=ROOT))
    calls = trace.read_text()
    assert f'"{src}/keep/a"' in calls                       # the trace does show the walk's calls
    assert f"{src}/cache" not in calls, [line for line in calls.splitlines() if "cache" in line]
    names = out(["cpio", "-t", "--quiet", "-F", str(archive)]).split()
    assert names == [".", "keep", "keep/a"]
