"""Progress by bytes: the data layer reports each chunk, the bar is drawn only on a terminal
(captured through a pseudo-terminal), ``--progress`` prints lines elsewhere, ``--quiet``
prints nothing but errors."""
from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys

import pytest

from sysexport.data import CHUNK_BYTES, PROGRESS, PathData

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, PYTHONPATH=ROOT, SOURCE_DATE_EPOCH="1700000000", COLUMNS="100")


def write_data_file(path: str, size_bytes: int) -> None:
    """A file of ``size_bytes`` non-zero bytes (no holes: every chunk is really copied)."""
    block = bytes(range(1, 256)) * (1 << 12)            # about 1 MiB, no zero byte
    with open(path, "wb") as f:
        left = size_bytes
        while left:
            n = min(left, len(block))
            f.write(block[:n])
            left -= n


def sysexport(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sysexport", *args], capture_output=True, text=True, env=ENV,
                          stdin=subprocess.DEVNULL)


def on_terminal(*args: str, timeout_s: float = 300) -> tuple[int, str]:
    """Run ``sysexport ARGS`` with standard output and error on a pseudo-terminal; returns
    its exit status and everything it wrote there."""
    leader, follower = pty.openpty()
    p = subprocess.Popen([sys.executable, "-m", "sysexport", *args], stdin=subprocess.DEVNULL, stdout=follower,
                         stderr=follower, env=ENV, close_fds=True)
    os.close(follower)
    chunks = []
    try:
        while True:
            ready, _, _ = select.select([leader], [], [], timeout_s)
            if not ready:
                p.kill()
                raise AssertionError(f"sysexport {' '.join(args)}: no output for {timeout_s} s")
            try:
                data = os.read(leader, 65536)
            except OSError:                              # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(leader)
    return p.wait(timeout=timeout_s), b"".join(chunks).decode("utf-8", errors="replace")


def percentages(text: str) -> list[int]:
    """The percentages of tqdm's frames (``writing:  42%|####``)."""
    return [int(m) for m in re.findall(r"(\d+)%\|", text)]


# ------------------------------------------------------------------ the data layer

def test_a_large_file_is_reported_chunk_by_chunk(tmp_path):
    src = str(tmp_path / "big")
    write_data_file(src, 5 * CHUNK_BYTES + 12345)
    with open(src, "r+b") as f:                          # a hole in the middle
        f.seek(CHUNK_BYTES)
        f.write(bytes(2 * CHUNK_BYTES))
    os.system(f"fallocate --dig-holes {src} 2>/dev/null")
    calls: list[int] = []
    token = PROGRESS.set(calls.append)
    try:
        out_fd = os.open(str(tmp_path / "out"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            PathData(src).write_to(out_fd, 0)
        finally:
            os.close(out_fd)
    finally:
        PROGRESS.reset(token)
    assert sum(calls) == os.path.getsize(src)
    assert len(calls) >= 4 and max(calls) <= 2 * CHUNK_BYTES, calls
    assert open(tmp_path / "out", "rb").read() == open(src, "rb").read()


# ------------------------------------------------------------------ not a terminal

@pytest.fixture(scope="module")
def big_image(tmp_path_factory) -> tuple[str, str]:
    """A tree with one 48 MiB file and the image built of it."""
    work = tmp_path_factory.mktemp("big")
    tree = work / "tree"
    tree.mkdir()
    write_data_file(str(tree / "big.bin"), 48 << 20)
    (tree / "small.txt").write_text("small\n")
    img = str(work / "big.img")
    p = sysexport("build", str(tree), "-o", img, "-q")
    assert p.returncode == 0 and p.stdout == p.stderr == "", p.stderr
    return str(tree), img


def test_no_bar_when_not_a_terminal(big_image, tmp_path):
    """48 MiB is past the size where a terminal gets a bar; a pipe gets none of it."""
    tree, img = big_image
    for args in (("build", tree, "-o", str(tmp_path / "b.img")), ("verify", img),
                 ("extract", img, str(tmp_path / "x"))):
        p = sysexport(*args)
        assert p.returncode == 0, p.stderr
        assert "%" not in p.stderr and "\r" not in p.stderr and "\x1b" not in p.stderr, (args, p.stderr)


def test_progress_lines_off_a_terminal(big_image, tmp_path):
    """--progress where standard error is a pipe: a plain line per tenth, the one file's
    bytes counted as they are copied (intermediate steps, not 0 then 100)."""
    tree, img = big_image
    for label, args in (("writing", ("build", tree, "-o", str(tmp_path / "b.img"))),
                        ("verifying", ("verify", img)), ("extracting", ("extract", img, str(tmp_path / "x"))),
                        ("reading", ("cat", img, "/big.bin"))):
        p = subprocess.run([sys.executable, "-m", "sysexport", *args, "--progress"], capture_output=True, env=ENV)
        assert p.returncode == 0, p.stderr
        steps = [int(m) for m in re.findall(rf"sysexport: {label}: (\d+)% \(", p.stderr.decode())]
        assert len(steps) >= 5 and steps == sorted(steps) and steps[-1] == 100, (args, p.stderr)
        assert any(0 < s < 100 for s in steps)
    assert len(p.stdout) == os.path.getsize(os.path.join(tree, "big.bin"))     # cat's bytes on stdout


def test_quiet_prints_nothing_but_errors(big_image, tmp_path):
    tree, img = big_image
    cpio = str(tmp_path / "a.cpio")
    for args in (("build", tree, "-o", str(tmp_path / "b.img")), ("verify", img), ("inspect", img),
                 ("ls", img, "-R"), ("extract", img, str(tmp_path / "x")), ("initramfs", tree, "-o", cpio)):
        p = sysexport(*args, "--quiet")
        assert p.returncode == 0 and p.stdout == "" and p.stderr == "", (args, p.stdout, p.stderr)
    p = sysexport("build", str(tmp_path / "missing"), "-o", str(tmp_path / "c.img"), "-q")
    assert p.returncode == 1 and p.stdout == ""
    assert len(p.stderr.splitlines()) == 1 and p.stderr.startswith("sysexport: error: ")
    p = sysexport("extract", img, str(tmp_path / "x"), "-q")          # exists: an error, said once
    assert p.returncode == 1 and p.stdout == "" and len(p.stderr.splitlines()) == 1


def test_a_bar_on_a_terminal(big_image, tmp_path):
    """On a terminal the bar is drawn (tqdm's frames, on the terminal) and cleared at the end."""
    tree, img = big_image
    code, text = on_terminal("build", tree, "-o", str(tmp_path / "b.img"))
    assert code == 0, text
    assert "writing:" in text and percentages(text), text
    code, text = on_terminal("initramfs", tree, "-o", str(tmp_path / "a.cpio"))   # streamed: no total
    assert code == 0 and re.search(r"writing: [\d.]+[kMG]?B ", text), text
    code, text = on_terminal("verify", img, "--quiet")
    assert code == 0 and "verifying" not in text and text.strip() == "", text


# ------------------------------------------------------------------ one GiB through a terminal

@pytest.mark.slow
def test_one_gib_file_shows_intermediate_percentages(tmp_path):
    """A single 1 GiB file: build, verify and extract each draw the bar with percentages
    strictly between 0 and 100 (counted inside the file, not per file)."""
    tree = tmp_path / "tree"
    tree.mkdir()
    write_data_file(str(tree / "one.gib"), 1 << 30)
    img = str(tmp_path / "one.img")
    for args in (("build", str(tree), "-o", img), ("verify", img), ("extract", img, str(tmp_path / "x"))):
        code, text = on_terminal(*args)
        assert code == 0, text
        middle = [p for p in percentages(text) if 0 < p < 100]
        assert middle, (args, text[-2000:])
        if args[0] == "build":
            os.unlink(tree / "one.gib")                  # the disk holds two copies at most
    assert os.path.getsize(tmp_path / "x" / "one.gib") == 1 << 30


def test_extract_keeps_holes_and_verify_can_skip_data(tmp_path):
    """A sparse 64 MiB file goes into the image as holes and comes out of extract as holes
    (all-zero chunks are not written); verify --no-data reads no file data."""
    tree = tmp_path / "tree"
    tree.mkdir()
    sparse = tree / "sparse.img"
    with open(sparse, "wb") as f:
        f.write(b"head")
        f.truncate(64 << 20)
        f.seek(40 << 20)
        f.write(b"middle")
    img = str(tmp_path / "s.img")
    assert sysexport("build", str(tree), "-o", img, "-q").returncode == 0
    dest = tmp_path / "x"
    p = sysexport("extract", img, str(dest), "--progress")
    assert p.returncode == 0, p.stderr
    out_file = dest / "sparse.img"
    assert out_file.read_bytes() == sparse.read_bytes()
    assert os.stat(out_file).st_blocks * 512 < 4 << 20            # holes, not 64 MiB of zeros
    assert "extracting: 100%" in p.stderr
    p = sysexport("verify", img, "--no-data", "--progress")
    assert p.returncode == 0 and "file data" not in p.stdout and "verifying" not in p.stderr, p.stdout + p.stderr
    p = sysexport("verify", img)
    assert p.returncode == 0 and "ok   file data: 1 files, 67,108,864 bytes read" in p.stdout, p.stdout
