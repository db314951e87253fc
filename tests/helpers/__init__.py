"""Shared test code: running the external readers (docs/testing.md lists them and their packages).

The package also holds :mod:`helpers.linuxvm` (the Linux kernel in qemu as a reader),
:mod:`helpers.qemuboot` (booting images under SeaBIOS and OVMF) and
:mod:`helpers.hybrid_checks` (every independent reader applied to a hybrid image).
"""
from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess

import pytest

NO_SKIP = bool(os.environ.get("SYSEXPORT_NO_SKIP"))


def need(*tools: str) -> None:
    """Skip (on a user's machine) or fail (in CI) when a tool is missing."""
    missing = [t for t in tools if shutil.which(t) is None and not os.path.exists(t)]
    if missing:
        msg = f"missing tools: {', '.join(missing)} (install the packages listed in docs/testing.md, or run tools/test)"
        if NO_SKIP:
            pytest.fail(msg)
        pytest.skip(msg)


def run(cmd: list[str], ok_codes=(0,), env_extra: dict | None = None, timeout: float = 600,
        input: bytes | None = None) -> subprocess.CompletedProcess:
    """Run a command, failing the test with its output unless it exits with one of ok_codes."""
    env = dict(os.environ, LC_ALL="C.UTF-8", **(env_extra or {}))
    p = subprocess.run(cmd, capture_output=True, env=env, timeout=timeout, input=input)
    if p.returncode not in ok_codes:
        raise AssertionError(f"{' '.join(map(str, cmd))} exited {p.returncode}\n"
                             f"stdout:\n{p.stdout.decode(errors='replace')[-4000:]}\n"
                             f"stderr:\n{p.stderr.decode(errors='replace')[-4000:]}")
    return p


def out(cmd: list[str], **kw) -> str:
    return run(cmd, **kw).stdout.decode("utf-8", errors="replace")


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def tree_digest(root: str | os.PathLike) -> dict[str, str]:
    """{relative path: sha256} of every regular file under root (symlinks not followed)."""
    result = {}
    root = os.fspath(root)
    for dirpath, dirnames, filenames in os.walk(root):
        for fn in filenames:
            p = os.path.join(dirpath, fn)
            if not stat.S_ISREG(os.lstat(p).st_mode):     # symlinks, fifos (opening one blocks), devices
                continue
            result[os.path.relpath(p, root)] = sha256_file(p)
    return result


def default_signals() -> None:
    """For ``preexec_fn``: SIGHUP, SIGINT and SIGTERM back to their default actions in a child
    that a test signals.  A test run started with ``nohup`` or as a background job of a
    script inherits them ignored (and an ignored signal stays ignored across exec, which is
    what sysexport's output handling respects), so the child would never see them."""
    import signal as _signal
    for sig in (_signal.SIGHUP, _signal.SIGINT, _signal.SIGTERM):
        _signal.signal(sig, _signal.SIG_DFL)


def cut(image: str | os.PathLike, offset: int, size: int, dest: str | os.PathLike) -> str:
    """Copy [offset, offset+size) of image to dest (e.g. a partition), returning dest."""
    with open(image, "rb") as src, open(dest, "wb") as dst:
        src.seek(offset)
        remaining = size
        while remaining:
            chunk = src.read(min(remaining, 1 << 20))
            assert chunk, f"{image}: ends before {offset + size}"
            dst.write(chunk)
            remaining -= len(chunk)
    return os.fspath(dest)
