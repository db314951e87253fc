"""Generated FAT short names never equal another entry's long or short name (issue 11).

A reader looks a name up by comparing it, ignoring case, with each entry's long name and
short name in turn, and opens the first match: a generated ``FOOBAR~1.TXT`` before an entry
called ``Foobar~1.txt`` made Linux (and mtools) open the wrong file.  Random directories of
names made to collide are written and then read back by fsck.fat, mtools (each file looked up
by its long name and by its name in upper case), 7-Zip and, in the slow tier, the Linux
kernel.
"""
from __future__ import annotations

import hashlib
import os
import random
import re
import shutil
import stat
import subprocess
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from sysexport import VFAT
from sysexport.errors import InvalidInputError
from sysexport.vfat.names import fold
from helpers import need
from test_vfat_check import expected_digest, fsck, mcopy_tree, sevenzip_tree, _diff
from test_vfat_names import EXTS, STEMS, TAILS, directories, fixed_collision, with_rivals

T0 = 1_700_000_000


def _content(path: str) -> bytes:
    """Bytes of its own for every file (a wrong file is seen as wrong bytes)."""
    return hashlib.sha256(path.encode()).digest() * (1 + len(path) % 3)


def _entries(dirs: list[tuple[list[str], dict[int, str]]]) -> tuple[list[dict], dict[str, bytes], bool]:
    """File-info records for directories d0, d1, ... (d0 is the root); the files' bytes; and
    whether some FAT_shortname collides (then the build must fail)."""
    specs: list[dict] = []
    files: dict[str, bytes] = {}
    collides = False
    for n, (names, fixed) in enumerate(dirs):
        prefix = f"d{n}/" if n else ""
        if n:
            specs.append({"name": f"d{n}", "mode": stat.S_IFDIR | 0o755})
        if not n:                   # the root's names must leave d1, d2, ... to the directories
            keep = [i for i, name in enumerate(names) if fold(name) not in {f"D{k}" for k in range(len(dirs))}]
            fixed = {keep.index(i): s for i, s in fixed.items() if i in keep}
            names = [names[i] for i in keep]
        collides |= fixed_collision(names, fixed)
        for i, name in enumerate(names):
            path = prefix + name
            spec = {"name": path, "mode": stat.S_IFREG | 0o644, "data": _content(path)}
            if i in fixed:
                spec["FAT_shortname"] = fixed[i]
            specs.append(spec)
            files[path] = spec["data"]
    return specs, files, collides


SHORT_SHAPED = re.compile(r"[A-Z0-9!#$%&'()@^_`{}~-]{1,8}(\.[A-Z0-9!#$%&'()@^_`{}~-]{1,3})?")


def lookups(files: dict[str, bytes], every: bool = False) -> list[str]:
    """The paths to look up: each file by its long name and, for ASCII names, by that name in
    upper case (FAT compares ignoring case).  Unless ``every``, only names another entry's
    short name could be mistaken for (their upper case is an 8.3 name): the others are
    read by mcopy and 7-Zip."""
    paths = [p for p in files if every or SHORT_SHAPED.fullmatch(fold(p.rpartition("/")[2]))]
    return paths + [fold(p) for p in paths if p.isascii() and fold(p) != p]


def mtype_lookups(img: str, files: dict[str, bytes]) -> None:
    """mtools looks each file up by its name (see lookups()) and prints the file's bytes."""
    need("mtype")
    env = dict(os.environ, LC_ALL="C.UTF-8", MTOOLS_SKIP_CHECK="1")
    by_fold = {fold(p): d for p, d in files.items()}
    for q in lookups(files):
        if any(c in q for c in "[]"):                           # mtools would glob these
            continue
        p = subprocess.run(["mtype", "-i", img, "::" + q], capture_output=True, env=env)
        assert p.returncode == 0, (q, p.stderr.decode(errors="replace"))
        assert p.stdout == by_fold[fold(q)], f"mtools opened the wrong file for {q!r}"


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.data_too_large])
@given(dirs=st.lists(directories(), min_size=1, max_size=3), fat_type=st.sampled_from([12, 16, 32]))
def test_random_directories_read_by_their_long_names(dirs, fat_type):
    specs, files, collides = _entries(dirs)
    tmp = tempfile.mkdtemp(prefix="vfat-names-")
    try:
        img = os.path.join(tmp, "fat.img")
        v = VFAT(img, fat_type=fat_type, volume_label="NAMES", default_time=T0)
        for spec in specs:
            v.add(spec)
        if collides:
            with pytest.raises(InvalidInputError, match="FAT_shortname"):
                v.finish()
            assert os.listdir(tmp) == []
            return
        v.finish()
        fsck(img)
        want = expected_digest(files)
        got = mcopy_tree(img, os.path.join(tmp, "mcopy"))     # mdir first, without MTOOLS_SKIP_CHECK
        assert got == want, _diff(got, want)
        mtype_lookups(img, files)
        got = sevenzip_tree(img, os.path.join(tmp, "7z"))
        assert got == want, _diff(got, want)
    finally:
        shutil.rmtree(tmp)


def test_the_reported_collision(tmp_path):
    """The case of the issue, by hand: mtools opened "Foo Bar.txt" for "Foobar~1.txt"."""
    files = {"Foo Bar.txt": b"first\n", "Foobar~1.txt": b"second\n", "Readme.txt": b"third\n",
             "LongFi~1.htm": b"fourth\n", "Long File Name.html": b"fifth\n"}
    img = str(tmp_path / "a.img")
    v = VFAT(img, default_time=T0)
    for name, data in files.items():
        v.add(("file", name, data))
    v.finish()
    fsck(img)
    mtype_lookups(img, files)


def test_fat_shortname_equal_to_a_long_name_is_refused(tmp_path):
    v = VFAT(str(tmp_path / "a.img"))
    v.add(("file", "Readme.txt", b"r"))
    v.add({"name": "loader.efi", "mode": 0o100644, "data": b"l", "FAT_shortname": "README.TXT"})
    with pytest.raises(InvalidInputError, match=r"loader\.efi: FAT_shortname 'README.TXT' equals the name of "
                                                r"'Readme\.txt'"):
        v.finish()
    assert os.listdir(tmp_path) == []


# --- the Linux kernel (slow) ------------------------------------------------------------------

def _collision_dirs(seed: int, count: int) -> list[tuple[list[str], dict[int, str]]]:
    """Directories like the property test's, drawn from a seeded generator (one VM boot for all)."""
    rnd = random.Random(seed)
    out: list[tuple[list[str], dict[int, str]]] = []
    while len(out) < count:
        raw = [rnd.choice(STEMS) + rnd.choice(TAILS) + rnd.choice(EXTS) for _ in range(rnd.randint(5, 30))]
        names, fixed = with_rivals(raw, rnd)
        if not fixed_collision(names, fixed):
            out.append((names, fixed))
    return out


def _octal(text: str) -> str:
    return "".join(f"\\{b:03o}" for b in text.encode())


@pytest.mark.slow
def test_linux_opens_every_file_by_its_long_name(tmp_path):
    """The kernel's vfat (a GPT partition, /dev/sda1) opens each file by its long name, and
    by that name in upper case, and reads the file's own bytes.  Mounted twice: with
    iocharset=utf8 (as the other tests; that makes vfat compare names case-sensitively,
    since nls_utf8 has no case tables) for the names as they are, and with the utf8 option
    and iocharset=iso8859-1 (its case tables; Debian's default iocharset "ascii" does not
    exist) for the upper-case lookups too."""
    from helpers.linuxvm import run_linux
    dirs = _collision_dirs(11, 8)
    specs, files, collides = _entries(dirs)
    assert not collides
    need("sgdisk")
    disk = str(tmp_path / "disk.img")
    with open(disk, "wb") as fh:
        v = VFAT(filehandle=fh, volume_offset=1 << 20, volume_label="COLLIDE", default_time=T0)
        for spec in specs:
            v.add(spec)
        v.finish()
    with open(disk, "r+b") as fh:
        fh.truncate((1 << 20) + v.geometry.size_bytes + (1 << 20))
    subprocess.run(["sgdisk", "-n", f"1:2048:+{v.geometry.size_bytes // 512}", "-t", "1:ef00", disk],
                   check=True, capture_output=True)
    paths = lookups(files, every=True)
    by_fold = {fold(p): d for p, d in files.items()}
    script = []
    views = (("exact", "ro,iocharset=utf8", list(files)), ("nocase", "ro,utf8,iocharset=iso8859-1", paths))
    for view, options, names in views:
        script.append(f"mount -t vfat -o {options} /dev/sda1 /m || exit 1")
        for i, p in enumerate(names):
            script.append(f"echo \"@@F {view} {i} $(sha256sum < \"/m/$(printf '{_octal(p)}')\" | cut -d' ' -f1)\"")
        script.append("umount /m")
    text = run_linux(tmp_path, "\n".join(script) + "\n", disks=[disk], wait_devices=["/dev/sda1"])
    seen = {}
    for line in text.splitlines():
        if line.startswith("@@F "):
            _, view, i, *digest = line.split()
            seen[view, int(i)] = digest[0] if digest else None
    for view, _options, names in views:
        wrong = [p for i, p in enumerate(names)
                 if seen.get((view, i)) != hashlib.sha256(by_fold[fold(p)]).hexdigest()]
        assert not wrong, f"{view}: Linux opened the wrong file (or none) for {wrong[:10]}\n{text[-3000:]}"
