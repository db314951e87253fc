"""Real block devices and mounts for the output and fault tests (tests/test_output.py,
tests/test_faults.py): loop devices on files, tmpfs and bind mounts, all undone in a
``finally``.  They need root; without it the tests skip (and fail under
SYSEXPORT_NO_SKIP=1, see docs/testing.md)."""
from __future__ import annotations

import os
import subprocess
import time
from contextlib import contextmanager
from typing import Iterator

import pytest

from . import NO_SKIP, need, out, run

FILL = 0xAA
"""What the tests pre-fill a device or file with: any of it left inside an image is an old byte."""


def need_root() -> None:
    """Loop devices and mounts need root: skip (fail in CI) without it."""
    need("losetup", "mount", "umount", "/dev/loop-control")
    if os.geteuid() != 0:
        msg = "needs root (loop devices, mounts)"
        if NO_SKIP:
            pytest.fail(msg)
        pytest.skip(msg)


def fill_file(path: str | os.PathLike[str], size: int, byte: int = FILL) -> None:
    """A file of ``size`` bytes, every one ``byte`` (no holes)."""
    chunk = bytes([byte]) * (1 << 20)
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, len(chunk))
            f.write(chunk[:n])
            left -= n


@contextmanager
def loop_device(backing: str | os.PathLike[str], *, sector_size: int | None = None,
                partscan: bool = False) -> Iterator[str]:
    """A loop device on ``backing`` (losetup -f --show), detached afterwards."""
    cmd = ["losetup", "-f", "--show"]
    if sector_size:
        cmd += ["-b", str(sector_size)]
    if partscan:
        cmd.append("-P")
    cmd.append(os.fspath(backing))
    dev = ""
    for attempt in range(5):            # another test may take the free device first
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode == 0:
            dev = p.stdout.strip()
            break
        time.sleep(0.2 * (attempt + 1))
    if not dev:
        raise AssertionError(f"losetup failed: {p.stderr}")
    try:
        yield dev
    finally:
        for attempt in range(10):
            if subprocess.run(["losetup", "-d", dev], capture_output=True).returncode == 0:
                break
            time.sleep(0.2)


@contextmanager
def mounted(source: str, point: str | os.PathLike[str], *options: str, fstype: str | None = None) -> Iterator[str]:
    """``mount [-t fstype] [-o options] source point``, unmounted afterwards."""
    os.makedirs(point, exist_ok=True)
    cmd = ["mount"]
    if fstype:
        cmd += ["-t", fstype]
    if options:
        cmd += ["-o", ",".join(options)]
    run(cmd + [source, os.fspath(point)])
    try:
        yield os.fspath(point)
    finally:
        for attempt in range(10):
            if subprocess.run(["umount", os.fspath(point)], capture_output=True).returncode == 0:
                break
            time.sleep(0.2)


@contextmanager
def read_only_bind(directory: str | os.PathLike[str], point: str | os.PathLike[str]) -> Iterator[str]:
    """``directory`` seen read-only at ``point`` (a bind mount remounted ro)."""
    with mounted(os.fspath(directory), point, "bind"):
        run(["mount", "-o", "remount,ro,bind", os.fspath(point)])
        yield os.fspath(point)


def device_bytes(dev: str, start: int = 0, length: int | None = None) -> bytes:
    with open(dev, "rb") as f:
        f.seek(start)
        return f.read() if length is None else f.read(length)


def block_size_bytes(dev: str) -> int:
    return int(out(["blockdev", "--getsize64", dev]).strip())
