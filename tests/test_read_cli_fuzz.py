"""The read commands on damaged images: a seeded mutator over a hybrid (GPT, FAT, ISO with
Rock Ridge and Joliet, El Torito) and a cpio archive; every command either works or prints
one line ``sysexport: error: ...`` with exit status 1 (verify: 0 or 1), never a traceback,
within a time bound per case."""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys

import pytest

from sysexport import CPIO, ISO9660Hybrid
from sysexport.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TREE = os.path.join(ROOT, "sysexport", "demo")
CASES = 40
SECONDS = 10


def _images(tmp_path):
    hy = str(tmp_path / "h.img")
    h = ISO9660Hybrid(hy, efi_boot=True, default_time=1_700_000_000)
    h.add_tree(TREE)
    h.finish()
    cp = str(tmp_path / "a.cpio")
    c = CPIO(cp, default_time=1_700_000_000)
    c.add_tree(TREE)
    c.finish()
    return [open(hy, "rb").read(), open(cp, "rb").read()]


def _mutate(rng: random.Random, data: bytes) -> bytes:
    buf = bytearray(data)
    hot = [0, 512, 4096, 8192, 32768, 34816, 36864] + [rng.randrange(len(buf)) for _ in range(4)]
    for _ in range(rng.randrange(1, 12)):
        at = min(len(buf) - 1, rng.choice(hot) + rng.randrange(0, 2048))
        kind = rng.randrange(3)
        if kind == 0:
            buf[at] = rng.randrange(256)
        elif kind == 1:
            buf[at:at + 4] = rng.choice([b"\xff\xff\xff\xff", b"\0\0\0\0", b"\x7f\xff\xff\xff", os.urandom(4)])
        else:
            del buf[at:at + rng.randrange(1, 64)]
    if rng.random() < 0.2:
        buf = buf[:rng.randrange(1, len(buf))]
    return bytes(buf)


class _Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise _Timeout()


def test_read_commands_on_damaged_images(tmp_path, capsys):
    rng = random.Random(2026)
    originals = _images(tmp_path)
    bad = str(tmp_path / "bad.img")
    old = signal.signal(signal.SIGALRM, _alarm)
    codes = {0: 0, 1: 0}
    try:
        for case in range(CASES):
            with open(bad, "wb") as f:
                f.write(_mutate(rng, rng.choice(originals)))
            for argv in (["inspect", bad, "--json"], ["ls", bad, "-R", "-l"], ["ls", bad, "-R", "--json"],
                         ["verify", bad], ["extract", bad, str(tmp_path / f"x{case}"), "-q"]):
                signal.alarm(SECONDS)
                try:
                    code = main(argv)
                except SystemExit as e:
                    code = e.code
                except _Timeout:
                    pytest.fail(f"case {case}: {' '.join(argv)} took more than {SECONDS} s")
                finally:
                    signal.alarm(0)
                err = capsys.readouterr().err
                assert code in (0, 1), (case, argv, code, err)
                codes[code] += 1
                assert "Traceback" not in err and "bug" not in err, (case, argv, err)
                lines = [line for line in err.splitlines() if line.startswith("sysexport: error:")]
                if code == 1 and argv[0] != "verify":
                    assert len(lines) == 1, (case, argv, err)
    finally:
        signal.signal(signal.SIGALRM, old)
    assert codes[0] and codes[1], codes        # the mutations both spare and break images


def test_a_damaged_image_on_the_command_line_is_one_line(tmp_path):
    bad = tmp_path / "bad.img"
    bad.write_bytes(b"\0" * 40000 + b"CD001" + os.urandom(5000))
    p = subprocess.run([sys.executable, "-m", "sysexport", "ls", str(bad)], capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=ROOT))
    assert p.returncode == 1 and p.stderr.startswith("sysexport: error: ") and p.stderr.count("\n") == 1
