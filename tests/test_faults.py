"""Faults, made real (no mock of the kernel): a full tmpfs, EIO from a source, SIGTERM,
SIGHUP and SIGINT in the middle of a write, two builds to one output at once, a read-only
directory (a read-only bind mount, a read-only tmpfs, and EACCES for a root without
CAP_DAC_OVERRIDE), and special files as ``data_path``.

Each failure must be a SysExportError naming the path and the errno, leave an existing
output byte-identical and nothing beside it.

EIO comes from a block device that ends where a file's data begins: an ext4 image made
with ``mkfs.ext4 -d`` on a loop device, mounted read-only, then the loop device shrunk
(``losetup -c``) below the file's data blocks, so the kernel answers a read of them with
EIO ("attempt to access beyond end of device").  The kernel here has no device-mapper
(``dmsetup`` finds no driver), which rules out an ``error`` target.
"""
from __future__ import annotations

import os
import random
import re
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from helpers import default_signals, need, out, run
from helpers.blockdev import loop_device, mounted, need_root, read_only_bind
from sysexport import CPIO, ISO9660, VFAT, ISO9660Hybrid
from sysexport import data as data_mod
from sysexport import output as output_mod
from sysexport.data import PathData
from sysexport.errors import InvalidInputError, OutputError, SourceError, SysExportError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MIB = 1 << 20
REG = stat.S_IFREG | 0o644

TMPFILE_MODES = pytest.mark.parametrize("tmpfile", [True, False], ids=["o_tmpfile", "named-temp"])


def old_output(path: Path) -> bytes:
    """An existing output to be kept: a previous image (any bytes)."""
    data = b"previous image " * 7000
    path.write_bytes(data)
    return data


def random_file(path: Path, size: int, seed: int = 0) -> Path:
    path.write_bytes(random.Random(seed).randbytes(size))
    return path


def assert_errno_message(e: BaseException, path: str, code: str, text: str) -> None:
    msg = str(e)
    assert isinstance(e, SysExportError), type(e)
    assert path in msg and code in msg and text in msg, msg
    assert "\n" not in msg


# --------------------------------------------------------------------------- ENOSPC

@TMPFILE_MODES
def test_full_tmpfs(tmp_path, sde, monkeypatch, tmpfile):
    need_root()
    monkeypatch.setattr(output_mod, "_USE_O_TMPFILE", tmpfile)
    big = random_file(tmp_path / "big.bin", 4 * MIB)
    with mounted("tmpfs", tmp_path / "full", "size=2m", fstype="tmpfs") as d:
        target = Path(d) / "out.img"
        before = old_output(target)
        img = ISO9660Hybrid(str(target))
        img.add({"name": "big.bin", "mode": REG, "data_path": str(big)})
        with pytest.raises(OutputError) as e:
            img.finish()
        assert_errno_message(e.value, str(target), "ENOSPC", "No space left on device")
        assert "unchanged" in str(e.value)
        assert target.read_bytes() == before
        assert os.listdir(d) == ["out.img"]
        # The same through the CLI: one line, status 1.
        src = tmp_path / "src"
        src.mkdir()
        os.link(big, src / "big.bin")
        p = subprocess.run([sys.executable, "-m", "sysexport", "build", str(src), "-o", str(target)],
                           capture_output=True, env=dict(os.environ, PYTHONPATH=ROOT), timeout=120)
        assert p.returncode != 0, p.stderr
        assert p.stderr.startswith(b"sysexport: error: ") and p.stderr.count(b"\n") == 1, p.stderr
        assert b"ENOSPC" in p.stderr and str(target).encode() in p.stderr
        assert target.read_bytes() == before and os.listdir(d) == ["out.img"]
        # Standard output with $TMPDIR full: the temporary file fails, and is gone.
        p = subprocess.run([sys.executable, "-m", "sysexport", "build", str(src), "-o", "-"],
                           capture_output=True, env=dict(os.environ, PYTHONPATH=ROOT, TMPDIR=d), timeout=120)
        assert p.returncode != 0 and b"ENOSPC" in p.stderr and p.stdout == b"", p.stderr
        assert os.listdir(d) == ["out.img"]


def test_full_tmpfs_cpio(tmp_path, sde):
    need_root()
    big = random_file(tmp_path / "big.bin", 3 * MIB)
    with mounted("tmpfs", tmp_path / "full", "size=1m", fstype="tmpfs") as d:
        for compress in (None, "gzip"):
            target = Path(d) / "initrd.img"
            before = old_output(target)
            c = CPIO(str(target), compress=compress, default_time=0)
            c.add({"name": "big.bin", "mode": REG, "data_path": str(big)})
            with pytest.raises(OutputError) as e:
                c.finish()
            assert_errno_message(e.value, str(target), "ENOSPC", "No space left on device")
            assert target.read_bytes() == before and os.listdir(d) == ["initrd.img"]


# --------------------------------------------------------------------------- EIO from a source

@pytest.fixture
def eio_files(tmp_path):
    """A read-only ext4 whose files' data blocks lie past the end of its (shrunk) device:
    reading them gives EIO.  Yields (mount point, {name: size})."""
    need_root()
    need("mkfs.ext4", "debugfs", "losetup")
    src = tmp_path / "eio-src"
    src.mkdir()
    sizes = {"big.bin": 8 * MIB, "small.txt": 3000}
    for i, (name, size) in enumerate(sizes.items()):
        random_file(src / name, size, seed=i)
    fs = tmp_path / "eio.img"
    fs.write_bytes(b"")
    os.truncate(fs, 32 * MIB)
    run(["mkfs.ext4", "-q", "-b", "4096", "-d", str(src), str(fs)])
    first = None
    for name in sizes:
        blocks = [int(b) for b in out(["debugfs", "-R", f"blocks /{name}", str(fs)]).split()]
        assert blocks, name
        first = min(blocks) if first is None else min(first, min(blocks))
    with loop_device(fs) as dev:
        with mounted(dev, tmp_path / "eio", "ro", "noload", fstype="ext4") as m:
            os.truncate(fs, first * 4096)
            run(["losetup", "-c", dev])
            assert int(out(["blockdev", "--getsize64", dev])) == first * 4096
            for name, size in sizes.items():
                assert os.stat(os.path.join(m, name)).st_size == size     # metadata still readable
            yield m, sizes


@TMPFILE_MODES
def test_eio_from_a_source(tmp_path, sde, eio_files, monkeypatch, tmpfile):
    monkeypatch.setattr(output_mod, "_USE_O_TMPFILE", tmpfile)
    m, sizes = eio_files
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    cases = [
        ("hybrid, copy_file_range", lambda t: ISO9660Hybrid(t), "big.bin"),
        ("hybrid, small file batch", lambda t: ISO9660Hybrid(t), "small.txt"),
        ("iso", lambda t: ISO9660(t), "big.bin"),
        ("vfat", lambda t: VFAT(t), "small.txt"),
        ("cpio, planned writes", lambda t: CPIO(t, default_time=0), "big.bin"),
        ("cpio, gzip stream", lambda t: CPIO(t, compress="gzip", default_time=0), "big.bin"),
    ]
    for what, make, name in cases:
        target = out_dir / "out.img"
        before = old_output(target)
        w = make(str(target))
        w.add({"name": name, "mode": REG, "data_path": os.path.join(m, name)})
        with pytest.raises(SourceError) as e:
            w.finish()
        assert_errno_message(e.value, os.path.join(m, name), "EIO", "Input/output error")
        assert e.value.errno == 5 and e.value.path == os.path.join(m, name), what
        assert target.read_bytes() == before, what
        assert os.listdir(out_dir) == ["out.img"], what


def test_eio_as_data_path_at_add_is_not_read(tmp_path, sde, eio_files):
    """add() only stats the source: an unreadable file is an error when written, not before."""
    m, sizes = eio_files
    w = ISO9660(str(tmp_path / "x.iso"))
    w.add({"name": "small.txt", "mode": REG, "data_path": os.path.join(m, "small.txt")})
    with pytest.raises(SourceError, match="EIO"):
        w.finish()
    assert not os.path.exists(tmp_path / "x.iso")


# --------------------------------------------------------------------------- signals

CHILD = r"""
import os, sys, time
sys.path.insert(0, {root!r})
from sysexport import ISO9660, ISO9660Hybrid
from sysexport import output
from sysexport.data import PROGRESS
output._USE_O_TMPFILE = {tmpfile!r}
target, kind, go = sys.argv[1], sys.argv[2], sys.argv[3]
tree = sys.argv[4]

def hook(n):
    if not hook.said:
        hook.said = True
        print("writing", flush=True)
        while not os.path.exists(go):     # wait (a signal, or the go file)
            time.sleep(0.05)
hook.said = False
PROGRESS.set(hook)
img = ISO9660Hybrid(target) if kind == "hybrid" else ISO9660(target)
img.add_tree(tree)
img.finish()
print("finished", flush=True)
"""


def start_child(tmp_path: Path, target: Path, kind: str, tree: Path, go: Path, tmpfile: bool) -> subprocess.Popen:
    script = tmp_path / "child.py"
    script.write_text(CHILD.format(root=ROOT, tmpfile=tmpfile))
    p = subprocess.Popen([sys.executable, str(script), str(target), kind, str(go), str(tree)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=dict(os.environ, SOURCE_DATE_EPOCH="1700000000"), preexec_fn=default_signals)
    assert p.stdout is not None
    line = p.stdout.readline()
    if line != b"writing\n":
        p.kill()
        raise AssertionError(f"child did not start writing: {line!r} {p.stderr.read() if p.stderr else b''!r}")
    return p


def sparse_tree(root: Path, seed: int = 0, size: int = 1 << 30) -> Path:
    """A large sparse source (1 GiB, data at its start and end) and a small file."""
    root.mkdir()
    with open(root / "disk.raw", "wb") as f:
        f.write(random.Random(seed).randbytes(1 << 16))
        f.truncate(size)
        f.seek(size - 4096)
        f.write(b"E" * 4096)
    (root / "a.txt").write_bytes(b"A" * (seed + 1))
    return root


@pytest.mark.parametrize("sig, kind", [(signal.SIGTERM, "hybrid"), (signal.SIGHUP, "hybrid"),
                                       (signal.SIGTERM, "iso"), (signal.SIGINT, "iso")],
                         ids=["sigterm-hybrid", "sighup-hybrid", "sigterm-iso", "sigint-iso"])
@TMPFILE_MODES
def test_signal_mid_write_removes_the_temporary_file(tmp_path, sig, kind, tmpfile):
    tree = sparse_tree(tmp_path / "tree")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    target = out_dir / "out.img"
    before = old_output(target)
    p = start_child(tmp_path, target, kind, tree, tmp_path / "never", tmpfile)
    try:
        during = sorted(os.listdir(out_dir))
        if tmpfile:
            assert during == ["out.img"]                       # an unnamed O_TMPFILE
        else:
            assert len(during) == 2 and re.fullmatch(r"\.out\.img\.[0-9a-f]{8}\.tmp", during[0]), during
        p.send_signal(sig)
        p.wait(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    # Killed by the signal itself (a shell shows 128 + N): the conventional status.
    assert p.returncode == -sig, (p.returncode, p.stderr.read() if p.stderr else b"")
    assert os.listdir(out_dir) == ["out.img"]
    assert target.read_bytes() == before


def test_two_builds_to_one_output(tmp_path):
    """Each build has its own temporary file; the image that is renamed last is the output,
    whole (never a mix of the two)."""
    for tmpfile in (True, False):
        trees = [sparse_tree(tmp_path / f"tree-{tmpfile}-{i}", seed=i, size=8 * MIB) for i in (1, 2)]
        out_dir = tmp_path / f"out-{tmpfile}"
        out_dir.mkdir()
        target = out_dir / "out.img"
        old_output(target)
        refs = []
        for i, tree in enumerate(trees):
            ref = tmp_path / f"ref-{tmpfile}-{i}.img"
            env = dict(os.environ, PYTHONPATH=ROOT, SOURCE_DATE_EPOCH="1700000000")
            subprocess.run([sys.executable, "-m", "sysexport", "build", str(tree), "-o", str(ref)],
                           check=True, capture_output=True, env=env)
            refs.append(ref.read_bytes())
        assert refs[0] != refs[1]
        go = [tmp_path / f"go-{tmpfile}-{i}" for i in (0, 1)]
        a = start_child(tmp_path, target, "hybrid", trees[0], go[0], tmpfile)
        b = start_child(tmp_path, target, "hybrid", trees[1], go[1], tmpfile)
        try:
            if not tmpfile:
                assert len(os.listdir(out_dir)) == 3            # two temporary files, the old output
            go[1].touch()                                        # b finishes first...
            assert b.wait(timeout=120) == 0
            assert target.read_bytes() == refs[1]
            go[0].touch()                                        # ...then a: the last rename wins
            assert a.wait(timeout=120) == 0
        finally:
            for p in (a, b):
                if p.poll() is None:
                    p.kill()
                    p.wait()
        assert target.read_bytes() == refs[0]
        assert os.listdir(out_dir) == ["out.img"]


# --------------------------------------------------------------------------- read-only directories

@TMPFILE_MODES
def test_read_only_bind_mount(tmp_path, sde, monkeypatch, tmpfile):
    need_root()
    monkeypatch.setattr(output_mod, "_USE_O_TMPFILE", tmpfile)
    d = tmp_path / "rw"
    d.mkdir()
    before = old_output(d / "out.iso")
    with read_only_bind(d, tmp_path / "ro") as ro:
        for name in ("out.iso", "new.iso"):
            target = os.path.join(ro, name)
            with pytest.raises(OutputError) as e:
                ISO9660(target).finish()
            assert_errno_message(e.value, target, "EROFS", "Read-only file system")
    assert (d / "out.iso").read_bytes() == before and os.listdir(d) == ["out.iso"]


def test_read_only_tmpfs(tmp_path, sde):
    need_root()
    with mounted("tmpfs", tmp_path / "rotmpfs", "ro", "size=1m", fstype="tmpfs") as ro:
        target = os.path.join(ro, "out.img")
        with pytest.raises(OutputError) as e:
            ISO9660Hybrid(target).finish()
        assert_errno_message(e.value, target, "EROFS", "Read-only file system")
        assert os.listdir(ro) == []


def test_permission_denied_directory(tmp_path):
    """EACCES as a user sees it: root without CAP_DAC_OVERRIDE (setpriv) in a 0555 directory."""
    need_root()
    need("setpriv")
    d = tmp_path / "locked"
    d.mkdir()
    before = old_output(d / "out.img")
    os.chmod(d, 0o555)
    try:
        p = subprocess.run(["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner",
                            sys.executable, "-m", "sysexport", "build", "-o", str(d / "out.img")],
                           capture_output=True, env=dict(os.environ, PYTHONPATH=ROOT), timeout=120)
    finally:
        os.chmod(d, 0o755)
    assert p.returncode != 0, p.stderr
    assert b"EACCES" in p.stderr and b"Permission denied" in p.stderr and str(d).encode() in p.stderr, p.stderr
    assert (d / "out.img").read_bytes() == before and os.listdir(d) == ["out.img"]


# --------------------------------------------------------------------------- special files as data_path

def _add_with_timeout(writer, spec, seconds: float = 20):
    """add() in a thread: a source that blocks (a FIFO opened for reading) fails the test
    instead of hanging it."""
    result: list[BaseException | None] = []

    def go():
        try:
            writer.add(spec)
            result.append(None)
        except BaseException as e:      # handed to the test
            result.append(e)

    t = threading.Thread(target=go, daemon=True)
    t.start()
    t.join(seconds)
    assert result, f"add() of {spec['data_path']} did not return within {seconds} s"
    return result[0]


def _special_files(tmp_path: Path) -> dict[str, str]:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    sock_path = tmp_path / "sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(sock_path))
    _special_files.sock = sock            # kept open for the test
    block = next((f"/dev/loop{i}" for i in range(8) if os.path.exists(f"/dev/loop{i}")), None)
    files = {"FIFO": str(fifo), "socket": str(sock_path), "character device": "/dev/zero",
             "directory": str(tmp_path)}
    if block:
        files["block device"] = block
    return files


WRITERS = {
    "iso": lambda t: ISO9660(str(t / "x.iso")),
    "vfat": lambda t: VFAT(str(t / "x.img")),
    "cpio": lambda t: CPIO(str(t / "x.cpio"), default_time=0),
    "hybrid": lambda t: ISO9660Hybrid(str(t / "x.img")),
}


@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_special_files_as_data_path_are_refused_at_add(tmp_path, writer):
    for kind, path in _special_files(tmp_path).items():
        w = WRITERS[writer](tmp_path)
        err = _add_with_timeout(w, {"name": "f", "mode": REG, "data_path": path})
        assert isinstance(err, InvalidInputError), (kind, err)
        msg = str(err)
        assert path in msg and "not a regular file" in msg and kind in msg, msg
    assert sorted(os.listdir(tmp_path)) == sorted(["fifo", "sock"])


def test_proc_and_sys_files_are_read_whole_when_added(tmp_path, sde):
    """/proc and /sys files say size 0; as data_path they are read when added and stored
    with the bytes they had then (the CPIO archive, read back by bsdtar, holds them)."""
    need("bsdtar")
    sources = ["/proc/version", "/proc/self/status"]
    sources += [p for p in ("/sys/devices/system/cpu/online", "/sys/kernel/mm/transparent_hugepage/enabled")
                if os.path.exists(p)][:1]
    c = CPIO(str(tmp_path / "x.cpio"), default_time=0)
    want = {}
    for i, path in enumerate(sources):
        info = c.add({"name": f"f{i}", "mode": REG, "data_path": path}).info
        assert info.size > 0 and info.source is not None, path
        want[f"f{i}"] = info.source.read_all()
    c.finish()
    dest = tmp_path / "x"
    dest.mkdir()
    run(["bsdtar", "-xf", str(tmp_path / "x.cpio"), "-C", str(dest)])
    assert {n: (dest / n).read_bytes() for n in want} == want
    assert (dest / "f0").read_bytes() == open("/proc/version", "rb").read()


def test_proc_file_limits(tmp_path, monkeypatch):
    with pytest.raises(InvalidInputError, match="its content is made when read"):
        PathData("/proc/version")
    monkeypatch.setattr(data_mod, "PSEUDO_FILE_MAX_BYTES", 8)
    with pytest.raises(InvalidInputError) as e:
        ISO9660(str(tmp_path / "x.iso")).add({"name": "v", "mode": REG, "data_path": "/proc/version"})
    assert "/proc/version" in str(e.value) and "more than 8 bytes" in str(e.value)
    # A really empty file is still an empty file.
    (tmp_path / "empty").write_bytes(b"")
    node = ISO9660(str(tmp_path / "y.iso")).add({"name": "e", "mode": REG, "data_path": str(tmp_path / "empty")})
    assert node.info.size == 0


@TMPFILE_MODES
def test_source_vanished_before_finish(tmp_path, sde, monkeypatch, tmpfile):
    monkeypatch.setattr(output_mod, "_USE_O_TMPFILE", tmpfile)
    src = random_file(tmp_path / "gone.bin", 200000)
    target = tmp_path / "out.img"
    before = old_output(target)
    img = ISO9660Hybrid(str(target))
    img.add({"name": "gone.bin", "mode": REG, "data_path": str(src)})
    os.unlink(src)
    with pytest.raises(SourceError) as e:
        img.finish()
    assert_errno_message(e.value, str(src), "ENOENT", "No such file or directory")
    assert target.read_bytes() == before and sorted(os.listdir(tmp_path)) == ["out.img"]
