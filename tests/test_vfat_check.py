"""Shared checks for the VFAT tests (no tests here): run the real FAT readers over an image."""
from __future__ import annotations

import os
import re
import subprocess

from helpers import need, out, run, tree_digest
import hashlib

FSCK_OK_LINES = [re.compile(p) for p in (
    r"^fsck\.fat \d", r"^Starting check/repair pass\.$", r"^Starting verification pass\.$",
    r"^.*: \d+ files, \d+/\d+ clusters$", r"^Checking we can access the last sector", r"^Boot sector contents:",
    r"^$")]


def expected_digest(files: dict[str, bytes]) -> dict[str, str]:
    return {k: hashlib.sha256(v).hexdigest() for k, v in files.items()}


def fsck(img: str) -> str:
    need("fsck.fat")
    text = out(["fsck.fat", "-n", "-V", img])
    bad = [ln for ln in text.splitlines() if not any(p.match(ln) for p in FSCK_OK_LINES)]
    assert not bad, f"fsck.fat printed unexpected lines: {bad}\n{text}"
    return text


def mtools_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k != "MTOOLS_SKIP_CHECK"}
    return env


def mcopy_tree(img: str, dest: str) -> dict[str, str]:
    need("mcopy", "mdir")
    os.makedirs(dest, exist_ok=True)
    env = dict(mtools_env(), LC_ALL="C.UTF-8")
    p = subprocess.run(["mdir", "-/", "-a", "-i", img, "::"], capture_output=True, env=env)
    if p.returncode == 1 and b"not found" in p.stderr:
        return {}               # mtools says this of an empty root directory (also mkfs.fat's)
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    listing = p.stdout.decode(errors="replace")
    if "No files" not in listing:
        p = subprocess.run(["mcopy", "-s", "-n", "-m", "-i", img, "::*", dest], capture_output=True, env=env)
        assert p.returncode == 0, p.stderr.decode(errors="replace")
    return tree_digest(dest)


def sevenzip_tree(img: str, dest: str) -> dict[str, str]:
    need("7zz")
    run(["7zz", "x", "-tfat", "-y", img, f"-o{dest}"])
    return tree_digest(dest)


def fls_paths(img: str, offset_sectors: int = 0) -> set[str]:
    need("fls")
    cmd = ["fls", "-r", "-p", "-f", "fat", img]
    text = out(cmd)
    paths = set()
    for line in text.splitlines():
        if ":\t" in line:
            paths.add(line.split(":\t", 1)[1])
    return paths


def blkid(img: str) -> dict[str, str]:
    need("blkid")
    text = out(["blkid", "-p", "-o", "export", img])
    # export format escapes spaces and other specials with a backslash
    return {k: re.sub(r"\\(.)", r"\1", v) for k, v in (ln.split("=", 1) for ln in text.splitlines() if "=" in ln)}


def check_all(img: str, files: dict[str, bytes], dirs: set[str], label: str, tmp: str,
              readers=("fsck", "mtools", "7z", "fls", "blkid")) -> None:
    """Every reader sees every file with its bytes (and every directory)."""
    want = expected_digest(files)
    if "fsck" in readers:
        fsck(img)
    if "mtools" in readers:
        got = mcopy_tree(img, os.path.join(tmp, "mcopy"))
        assert got == want, _diff(got, want)
        for d in dirs:
            assert os.path.isdir(os.path.join(tmp, "mcopy", d)), f"mcopy lost directory {d}"
    if "7z" in readers:
        got = sevenzip_tree(img, os.path.join(tmp, "7z"))
        assert got == want, _diff(got, want)
    if "fls" in readers:
        paths = fls_paths(img)
        for p in list(files) + list(dirs):
            if len(p) <= 190:   # The Sleuth Kit cuts names at 195 characters
                assert p in paths, f"fls does not list {p!r}: {sorted(paths)[:20]}"
    if "blkid" in readers:
        tags = blkid(img)
        assert tags.get("TYPE") == "vfat", tags
        if label:
            assert tags.get("LABEL") == label, tags
        else:
            assert "LABEL" not in tags, tags


def _diff(got: dict, want: dict) -> str:
    missing = sorted(set(want) - set(got))[:10]
    extra = sorted(set(got) - set(want))[:10]
    wrong = sorted(k for k in set(got) & set(want) if got[k] != want[k])[:10]
    return f"missing {missing}, extra {extra}, wrong bytes {wrong}"
