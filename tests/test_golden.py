"""Golden output corpus: the sha256 of every kind of image the package writes.

Each case below builds one deterministic image through the public API (fixed
``default_time`` and SOURCE_DATE_EPOCH; host trees made here with fixed permissions and
times, and their owner and ctime pinned, see :func:`pinned_host_stat`) and compares the
sha256 of the output file with the value recorded in ``tests/golden/sha256.json``.

The corpus pins the output bytes: a refactor must leave every hash unchanged.  When a
format change is intended, regenerate the file with ``tools/golden`` (see
docs/testing.md) and commit it with the change, saying why the bytes moved.

A few outputs depend on software outside this package; those cases record a *key* (the
library or package version) next to their hash:

* gzip, xz and zstd streams depend on zlib, liblzma and python-zstandard/libzstd.  When
  the key differs from the recorded one, the uncompressed archive is compared instead.
* Images with GRUB embed the machine's GRUB build (grub-pc-bin, grub-efi-amd64-bin,
  grub-common); with another GRUB version the case is skipped.
"""
from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import gzip
import hashlib
import json
import lzma
import os
import random
import shutil
import stat
import subprocess
import zlib
from dataclasses import dataclass
from typing import Any, Callable

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
GOLDEN_FILE = os.path.join(HERE, "golden", "sha256.json")
DEFAULT_TREE = os.path.join(REPO, "sysexport", "demo")

EPOCH = 1_700_000_000            # SOURCE_DATE_EPOCH of every case (2023-11-14 22:13:20 UTC)
T0 = 1_600_000_000               # default_time given explicitly to the writers
MTIME = 1_650_000_000            # times of the host trees made here
MIB = 1 << 20


# ----------------------------------------------------------------------------- host trees

class _PinnedStat:
    """A stat result of a file under a pinned tree: owner root:root, every time the mtime.

    uid/gid are those of whoever runs the tests, and ctime cannot be set at all (the
    kernel stamps it), so both are pinned; everything else is the file's real value.
    """

    def __init__(self, real: os.stat_result) -> None:
        self._real = real
        self.st_uid = 0
        self.st_gid = 0
        self.st_atime = self.st_ctime = real.st_mtime
        self.st_atime_ns = self.st_ctime_ns = real.st_mtime_ns

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def __getitem__(self, index: int) -> Any:
        value = self._real[index]
        if index in (stat.ST_UID, stat.ST_GID):
            return 0
        if index in (stat.ST_ATIME, stat.ST_CTIME):
            return self._real[stat.ST_MTIME]
        return value


class _EntryProxy:
    def __init__(self, entry: os.DirEntry, counter: list[int]) -> None:
        self._entry = entry
        self._counter = counter

    def stat(self, *, follow_symlinks: bool = True) -> Any:
        self._counter[0] += 1
        return _PinnedStat(self._entry.stat(follow_symlinks=follow_symlinks))

    def __fspath__(self) -> str:
        return self._entry.path

    def __getattr__(self, name: str) -> Any:
        return getattr(self._entry, name)


class _ScandirProxy:
    def __init__(self, it: Any, counter: list[int]) -> None:
        self._it = it
        self._counter = counter

    def __enter__(self) -> "_ScandirProxy":
        self._it.__enter__()
        return self

    def __exit__(self, *exc: Any) -> Any:
        return self._it.__exit__(*exc)

    def __iter__(self):
        for entry in self._it:
            yield _EntryProxy(entry, self._counter)

    def close(self) -> None:
        self._it.close()


def pinned_host_stat(mp: pytest.MonkeyPatch, roots: list[str]) -> list[int]:
    """Make os.lstat, os.stat and os.scandir report owner 0:0 and ctime = atime = mtime for
    paths under ``roots`` (what add_tree and the CLI read); returns a call counter."""
    real_lstat, real_stat, real_scandir = os.lstat, os.stat, os.scandir
    prefixes = [os.path.abspath(r) for r in roots]
    counter = [0]

    def pinned(path: Any) -> bool:
        if isinstance(path, int):
            return False
        try:
            p = os.path.abspath(os.fsdecode(path))
        except TypeError:
            return False
        return any(p == r or p.startswith(r + os.sep) for r in prefixes)

    def lstat(path: Any, *a: Any, **kw: Any) -> Any:
        st = real_lstat(path, *a, **kw)
        if pinned(path):
            counter[0] += 1
            return _PinnedStat(st)
        return st

    def stat_(path: Any, *a: Any, **kw: Any) -> Any:
        st = real_stat(path, *a, **kw)
        if pinned(path):
            counter[0] += 1
            return _PinnedStat(st)
        return st

    def scandir(path: Any = ".") -> Any:
        it = real_scandir(path)
        return _ScandirProxy(it, counter) if pinned(path) else it

    mp.setattr(os, "lstat", lstat)
    mp.setattr(os, "stat", stat_)
    mp.setattr(os, "scandir", scandir)
    return counter


def _put(root: str, rel: str, data: bytes) -> None:
    p = os.path.join(root, rel)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "wb") as f:
        f.write(data)


def fix_tree(root: str, modes: dict[str, int] | None = None, mtime: int = MTIME) -> str:
    """Fixed permissions and times for every entry under root, whatever the umask or the
    checkout's modes: ``modes[relative path]``, else 0755 for directories and 0644 for the
    rest (symlinks have none); every time ``mtime``, set bottom-up so that directory times
    stay put."""
    modes = modes or {}
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        for n in filenames + dirnames:
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            if not stat.S_ISLNK(st.st_mode):
                default = 0o755 if stat.S_ISDIR(st.st_mode) else 0o644
                os.chmod(p, modes.get(os.path.relpath(p, root), default))
            os.utime(p, (mtime, mtime), follow_symlinks=False)
    os.chmod(root, 0o755)
    os.utime(root, (mtime, mtime))
    return root


def make_host_tree(root: str) -> str:
    """A host tree exercising add_tree: hard links, symlinks, a fifo, odd permissions."""
    os.makedirs(root)
    _put(root, "README.txt", b"a host tree\n")
    _put(root, "bin/tool", bytes(range(256)) * 33)
    _put(root, "etc/secret", b"secret\n")
    _put(root, "etc/odd", b"odd mode\n")
    _put(root, "data/original", b"linked data\n" * 500)
    os.link(os.path.join(root, "data/original"), os.path.join(root, "data/second name"))
    os.link(os.path.join(root, "data/original"), os.path.join(root, "etc/third"))
    os.symlink("../README.txt", os.path.join(root, "data/readme"))
    os.symlink("/usr/share/doc", os.path.join(root, "doc"))
    os.mkfifo(os.path.join(root, "data/fifo"))
    os.makedirs(os.path.join(root, "private"))
    os.makedirs(os.path.join(root, "empty"))
    for i in range(30):
        _put(root, f"many/entry-with-a-long-name-{i:03d}.txt", f"{i}\n".encode() * i)
    return fix_tree(root, {"bin/tool": 0o755, "etc/secret": 0o600, "etc/odd": 0o751, "private": 0o700,
                           "data/fifo": 0o640})


def make_fat_tree(root: str) -> str:
    """Like make_host_tree with only what FAT holds (files and directories)."""
    os.makedirs(root)
    _put(root, "README.txt", b"a FAT host tree\n")
    _put(root, "EFI/BOOT/BOOTX64.EFI", bytes(range(256)) * 40)
    _put(root, "docs/Mixed Case Name.txt", b"mixed\n")
    _put(root, "docs/café.txt", "café\n".encode())
    for i in range(20):
        _put(root, f"many/longfilename{i:02d}.txt", f"{i}\n".encode())
    os.makedirs(os.path.join(root, "empty"))
    return fix_tree(root)


def copy_default_tree(dest: str) -> str:
    shutil.copytree(DEFAULT_TREE, dest, symlinks=True)
    return fix_tree(dest)


# The tree generators of tools/bench, with deterministic content (the bench uses
# os.urandom for its big files; a seeded generator here).
BENCH_SCALE = 0.01


def make_bench_big(root: str, count: int = 10, scale: float = BENCH_SCALE) -> str:
    size = max(MIB, int(100 * MIB * scale))
    os.makedirs(root)
    block = random.Random("bench").randbytes(MIB)
    for i in range(count):
        with open(os.path.join(root, f"big{i:02d}.bin"), "wb") as f:
            for j in range(size // MIB):
                f.write(block[j % 7:] + block[:j % 7])
            f.write(block[: size % MIB])
    return fix_tree(root)


def make_bench_small(root: str, scale: float = BENCH_SCALE, dirs: int = 100, size: int = 1024) -> str:
    count = max(100, int(100_000 * scale))
    os.makedirs(root)
    payload = bytes(range(256)) * (size // 256 + 1)
    per_dir = count // dirs
    for d in range(dirs):
        sub = os.path.join(root, f"dir{d:03d}")
        os.mkdir(sub)
        for i in range(per_dir):
            with open(os.path.join(sub, f"file{i:05d}.txt"), "wb") as f:
                f.write(payload[i % 256: i % 256 + size])
    return fix_tree(root)


# ----------------------------------------------------------------------------- record sets

def sized(n: int, seed: int = 0) -> bytes:
    return bytes((i * 7 + n + seed) % 251 for i in range(n))


def fat_records() -> list[Any]:
    """Entries every writer holds: files and directories with FAT-legal names."""
    deep = "/".join(f"d{i:02d}" for i in range(1, 13))
    recs: list[Any] = [
        ("file", "README.txt", b"golden corpus\n", {"mtime": MTIME}),
        ("file", "empty.dat", b""),
        ("file", "Mixed Case Name.txt", b"mixed\n", {"mtime": MTIME + 1}),
        ("file", "héllo wörld.txt", b"hello\n"),
        ("file", "日本語/ファイル名.txt", "こんにちは".encode()),
        ("file", "emoji \U0001F600 name.txt", b"emoji\n"),
        ("file", "x" * 120 + ".extension", b"long name\n"),
        ("file", "y" * 100 + ".md", b"long name 2\n"),
        ("file", "y" * 101 + ".md", b"long name 3\n"),
        ("file", "a very long file name that exceeds sixty four characters for joliet.txt", sized(300)),
        ("file", "dir.with.dots/file.tar.gz", b"dots\n"),
        ("file", "UPPER.TXT", b"upper\n"),
        ("file", "lower.txt", b"lower\n"),
        ("file", ".hidden-dotfile", b"dot\n"),
        ("file", "a+b,c;d=e[f].txt", b"fat specials\n"),
        ("file", f"{deep}/deep.txt", b"twelve levels down\n"),
        ("dir755", "d01/d02/d03/d04/d05/d06/d07/d08/d09/other"),
        ("dir700", "empty dir", {"mtime": MTIME - 100}),
        ("file600", "secret.txt", b"secret\n", {"uid": 1234, "gid": 5678, "mtime": MTIME}),
        ("file751", "tool", b"#!/bin/sh\n", {"mtime": 315_532_800 - 86_400}),   # before FAT's 1980
        ("file", "times.txt", b"t\n", {"mtime": MTIME, "atime": MTIME + 5, "ctime": MTIME + 9}),
        ("file", "old.txt", b"old\n", {"mtime": -100_000}),
        ("file", "future.txt", b"future\n", {"mtime": 4_200_000_000}),
    ]
    for i in range(40):
        recs.append(("file", f"collide/longfilename{i:02d}.txt", f"collide {i}\n".encode()))
    for i in range(400):
        recs.append(("file", f"many/f{i:04d}", f"{i}".encode()))
    for size in (1, 511, 512, 513, 2047, 2048, 2049, 4095, 4096, 4097, 65535, 65536, 65537, 300_001):
        recs.append(("file", f"sizes/s{size}", sized(size)))
    return recs


def special_nodes() -> list[Any]:
    """Entries only ISO (Rock Ridge) and CPIO hold: symlinks, devices, a fifo, a socket."""
    long_target = "../" * 3 + "/".join("component%03d" % i for i in range(40))
    return [
        ("sym", "links/rel", "../README.txt"),
        ("sym", "links/abs", "/etc/./passwd"),
        ("sym", "links/long", long_target),
        ("sym", "links/dot", "."),
        ("sym", "links/dotdot", ".."),
        ("chr640", "dev/null", (1, 3), {"uid": 0, "gid": 5, "mtime": MTIME}),
        ("chr600", "dev/console", (5, 1)),
        ("blk660", "dev/loop0", (7, 0), {"mtime": MTIME}),
        ("blk660", "dev/big", (259, 65536)),
        ("fifo", "run/initctl"),
        ("sock755", "run/socket", {"uid": 1000, "gid": 1000, "mtime": MTIME}),
    ]


def hard_links() -> list[Any]:
    data = b"hard linked\n" * 300
    return [{"name": n, "mode": 0o100644, "data": data, "dev": 1, "ino": 42, "nlink": 3}
            for n in ("links/hard1", "links/hard2", "other/hard3")]


def fat_illegal_files() -> list[Any]:
    return [("file", "a:b?c*d.txt", b"forbidden in joliet and FAT\n"),
            ("file", "back\\slash", b"backslash\n")]


def special_records() -> list[Any]:
    return special_nodes() + hard_links() + fat_illegal_files()


def iso_records() -> list[Any]:
    return fat_records() + special_records() + [
        ("file", "shortname/override.txt", b"override\n", {"ISO9660_shortname": "OVR.TXT"}),
        ("file", "hidden.txt", b"hidden\n", {"ISO9660_flags": 1}),            # FLAG_HIDDEN
        ("file", "associated.txt", b"assoc\n", {"ISO9660_flags": 4}),         # FLAG_ASSOCIATED
        ("dir", "hidden dir", {"ISO9660_flags": 1}),
    ]


BOOT_IMAGE = b"\xfa\xeb\xfe" + bytes(61) + bytes(range(256)) * 20   # 5184 bytes


# ----------------------------------------------------------------------------- case runner

@dataclass
class Ctx:
    """What a case builder gets: a work directory and the monkeypatch in force."""

    workdir: str
    mp: pytest.MonkeyPatch
    pinned_calls: list[int] | None = None

    def path(self, name: str) -> str:
        return os.path.join(self.workdir, name)

    def pin(self, *roots: str) -> None:
        self.pinned_calls = pinned_host_stat(self.mp, list(roots))


@dataclass
class Case:
    name: str
    build: Callable[[Ctx], str]           # returns the output file
    key: Callable[[], str] | None = None  # version of an outside library the bytes depend on
    on_other_key: str = "skip"            # "skip", or "payload": compare the uncompressed bytes
    payload: Callable[[str], bytes] | None = None


CASES: dict[str, Case] = {}


def case(name: str, *, key: Callable[[], str] | None = None, on_other_key: str = "skip",
         payload: Callable[[str], bytes] | None = None):
    def register(fn: Callable[[Ctx], str]) -> Callable[[Ctx], str]:
        if name in CASES:
            raise ValueError(f"golden case {name!r} defined twice")
        CASES[name] = Case(name, fn, key, on_other_key, payload)
        return fn
    return register


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def run_case(c: Case, workdir: str, mp: pytest.MonkeyPatch) -> dict[str, Any]:
    """Build one case in ``workdir`` (under ``mp``); return its record for the golden file."""
    mp.setenv("SOURCE_DATE_EPOCH", str(EPOCH))
    mp.delenv("SYSEXPORT_PROGRESS", raising=False)
    ctx = Ctx(workdir, mp)
    with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
        out = c.build(ctx)
    if ctx.pinned_calls is not None and ctx.pinned_calls[0] == 0:
        raise AssertionError(
            f"golden case {c.name}: the host tree was read without os.lstat/os.stat/os.scandir, so owner "
            "and ctime were not pinned (see pinned_host_stat in tests/test_golden.py): update the pinning")
    rec: dict[str, Any] = {"sha256": sha256_file(out), "size": os.path.getsize(out)}
    if c.key is not None:
        rec["key"] = c.key()
    if c.payload is not None:
        rec["payload_sha256"] = hashlib.sha256(c.payload(out)).hexdigest()
    return rec


def load_golden() -> dict[str, dict[str, Any]]:
    with open(GOLDEN_FILE, encoding="utf-8") as f:
        return json.load(f)["cases"]


# ----------------------------------------------------------------------------- outside keys

def grub_key() -> str:
    """The installed GRUB packages' versions (the images embed GRUB's own files)."""
    try:
        p = subprocess.run(["dpkg-query", "-W", "-f", "${Package} ${Version}\n", "grub-common", "grub-pc-bin",
                            "grub-efi-amd64-bin"], capture_output=True, text=True, timeout=60)
    except OSError:
        return "dpkg-query missing"
    return "; ".join(sorted(p.stdout.split("\n"))).strip("; ") or "grub not installed"


def zlib_key() -> str:
    return f"zlib {zlib.ZLIB_RUNTIME_VERSION}"


def lzma_key() -> str:
    name = ctypes.util.find_library("lzma")
    try:
        lib = ctypes.CDLL(name or "liblzma.so.5")
        lib.lzma_version_string.restype = ctypes.c_char_p
        return f"liblzma {lib.lzma_version_string().decode()}"
    except (OSError, AttributeError):
        return "liblzma unknown"


def zstd_key() -> str:
    try:
        import zstandard
    except ImportError:
        return "zstandard missing"
    return f"zstandard {zstandard.__version__} libzstd {'.'.join(map(str, zstandard.ZSTD_VERSION))}"


def _gunzip(path: str) -> bytes:
    with gzip.open(path, "rb") as f:
        return f.read()


def _unxz(path: str) -> bytes:
    with lzma.open(path, "rb") as f:
        return f.read()


def _unzstd(path: str) -> bytes:
    import zstandard
    with open(path, "rb") as f:
        return zstandard.ZstdDecompressor().stream_reader(f).read()


# ============================================================================= ISO9660

def _iso(ctx: Ctx, name: str, records: list[Any], **attrs: Any) -> Any:
    from sysexport import ISO9660
    out = ctx.path(name)
    attrs.setdefault("default_time", T0)
    iso = ISO9660(out, **attrs)
    for r in records:
        iso.add(r)
    return iso, out


@case("iso-rr109-joliet-level3")
def _(ctx: Ctx) -> str:
    from sysexport import BOOT_X86
    iso, out = _iso(ctx, "a.iso", iso_records(), volume_label="Golden Test")
    iso.add_boot_catalog_entry(BOOT_X86, data=BOOT_IMAGE, boot_info_table=True)
    iso.boot_catalog_hidden = True
    iso.finish()
    return out


@case("iso-rr112-joliet-level3")
def _(ctx: Ctx) -> str:
    iso, out = _iso(ctx, "a.iso", iso_records(), rock_ridge="1.12", volume_label="RR112")
    iso.finish()
    return out


@case("iso-rr109-nojoliet-level2")
def _(ctx: Ctx) -> str:
    iso, out = _iso(ctx, "a.iso", iso_records(), joliet=False, interchange_level=2)
    iso.finish()
    return out


@case("iso-rr109-joliet-level1")
def _(ctx: Ctx) -> str:
    iso, out = _iso(ctx, "a.iso", iso_records(), interchange_level=1)
    iso.finish()
    return out


@case("iso-norr-joliet-level3")
def _(ctx: Ctx) -> str:
    # Without Rock Ridge ECMA-119's eight levels hold: the two records under d01/.../d09 stay out.
    recs = [r for r in fat_records() if not r[1].startswith("d01/d02/d03/d04/d05/d06/d07/d08/")]
    iso, out = _iso(ctx, "a.iso", recs, rock_ridge=None)
    iso.finish()
    return out


@case("iso-norr-nojoliet-level1")
def _(ctx: Ctx) -> str:
    recs = [("file", f"dir.with.dots/longfilename{i:02d}.txt", f"{i}\n".encode()) for i in range(40)]
    recs += [("file", "README.TXT", b"plain\n"), ("file", "sub/deeper/FILE.BIN", sized(5000))]
    iso, out = _iso(ctx, "a.iso", recs, rock_ridge=None, joliet=False, interchange_level=1)
    iso.finish()
    return out


@case("iso-norr-nojoliet-level1-deep")
def _(ctx: Ctx) -> str:
    deep = "/".join(f"level{i}" for i in range(2, 9))       # levels 2..8: the most ECMA-119 6.8.2.1 allows
    recs = [("file", f"{deep}/deep.txt", b"eight levels\n"), ("file", "top.txt", b"top\n")]
    iso, out = _iso(ctx, "a.iso", recs, rock_ridge=None, joliet=False, interchange_level=1)
    iso.finish()
    return out


@case("iso-deep-relocation-rr112")
def _(ctx: Ctx) -> str:
    recs: list[Any] = []
    for branch in ("a", "b"):
        path = "/".join(f"{branch}{i}" for i in range(1, 16))
        recs.append(("file", f"{path}/leaf.txt", f"{branch} fifteen down\n".encode()))
        recs.append(("sym", f"{path}/up", "../../.."))
    recs.append(("dir", "/".join(f"c{i}" for i in range(1, 10))))
    iso, out = _iso(ctx, "a.iso", recs, rock_ridge="1.12", joliet=False, relocate_deep_dirs=True)
    iso.finish()
    return out


@case("iso-metadata-fields")
def _(ctx: Ctx) -> str:
    iso, out = _iso(ctx, "a.iso", [("file", "a.txt", b"a\n"), ("dir", "d")], volume_label="META_LABEL",
                    system="SYSTEMID", volume_set="VOLSET", publisher="The Publisher",
                    preparer="The Preparer", application="GOLDEN APP")
    iso.padding_bytes = 0
    iso.finish()
    return out


@case("iso-empty-from-sde")
def _(ctx: Ctx) -> str:
    from sysexport import ISO9660
    out = ctx.path("a.iso")
    ISO9660(out).finish()             # default_time from SOURCE_DATE_EPOCH
    return out


@case("iso-placement-fixed-offset-align")
def _(ctx: Ctx) -> str:
    recs = [("file", "fixed.bin", sized(3000), {"device_offset": 1 * MIB}),
            ("file", "aligned.bin", sized(5000), {"device_align": 65536}),
            ("file", "plain.txt", b"plain\n")]
    iso, out = _iso(ctx, "a.iso", recs)
    iso.finish()
    return out


def hdd_image(size: int, ptype: int) -> bytes:
    """A hard-disk emulation image: an MBR holding one partition of ``ptype`` that fills
    the rest of the image (El Torito 1.0 section 3.3), then data."""
    mbr = bytearray(sized(512))
    mbr[446:510] = bytes(64)
    mbr[446 + 4] = ptype
    mbr[446 + 8:446 + 16] = (1).to_bytes(4, "little") + (size // 512 - 1).to_bytes(4, "little")
    mbr[510:512] = b"\x55\xaa"
    return bytes(mbr) + sized(size - 512)


@case("iso-eltorito-sections")
def _(ctx: Ctx) -> str:
    from sysexport import BOOT_EFI, BOOT_MAC, BOOT_PPC, BOOT_X86, EMU_FLOPPY144, EMU_HDD, EMU_NONE
    recs = [("file", "boot/x86.img", bytes(range(256)) * 40 + b"tail"),
            ("file", "boot/efi.img", bytes(4096)),
            ("file", "boot/floppy.img", sized(1_474_560)),
            ("file", "boot/hdd.img", hdd_image(70_000, 0x83)),
            ("file", "boot/alt.img", sized(2048, 3)),
            ("file", "README.TXT", b"boot sections\n")]
    iso, out = _iso(ctx, "a.iso", recs, boot_catalog_path="isolinux/boot.cat")
    iso.add_boot_catalog_entry(BOOT_X86, path="boot/x86.img", boot_info_table=True, load_size=4)
    iso.add_boot_catalog_entry(BOOT_EFI, path="boot/efi.img", section_id=b"UEFI")
    iso.add_boot_catalog_entry(BOOT_X86, path="boot/floppy.img", media_type=EMU_FLOPPY144)
    iso.add_boot_catalog_entry(BOOT_X86, path="boot/hdd.img", media_type=EMU_HDD, system_type=0x83,
                               load_segment=0x7C0)
    iso.add_boot_catalog_entry(BOOT_PPC, data=sized(3000, 9), bootable=False, section_id=b"PPC")
    iso.add_boot_catalog_entry(BOOT_MAC, path="boot/alt.img", media_type=EMU_NONE, load_size=0)
    iso.add_boot_catalog_entry(BOOT_EFI, data=BOOT_IMAGE, boot_info_table=True)
    iso.finish()
    return out


@case("iso-eltorito-efi-extent")
def _(ctx: Ctx) -> str:
    from sysexport import BOOT_EFI, BOOT_X86
    from sysexport.extent import Extent
    recs = [("file", "efi/esp.img", sized(64 * 1024)), ("file", "boot/x86.img", BOOT_IMAGE)]
    iso, out = _iso(ctx, "a.iso", recs, rock_ridge="1.12")
    iso.add_boot_catalog_entry(BOOT_X86, path="boot/x86.img", boot_info_table=True, load_size=4)
    efi = iso.add_boot_catalog_entry(BOOT_EFI, extent=Extent(0, 2048))
    iso.plan()
    where = iso.lookup("efi/esp.img")
    efi.extent = Extent(where.device_offset, where.size_bytes)
    iso.finish()
    return out


@case("iso-add-tree")
def _(ctx: Ctx) -> str:
    from sysexport import ISO9660
    src = make_host_tree(ctx.path("src"))
    ctx.pin(src)
    out = ctx.path("a.iso")
    iso = ISO9660(out, default_time=T0)
    iso.add_tree(src)
    iso.add_tree(src, dest="again/here")
    iso.finish()
    return out


@case("iso-filehandle")
def _(ctx: Ctx) -> str:
    from sysexport import ISO9660
    out = ctx.path("a.iso")
    with open(out, "wb") as f:
        iso = ISO9660(filehandle=f, default_time=T0, volume_label="FH")
        for r in fat_records()[:30]:
            iso.add(r)
        iso.finish()
    return out


# ============================================================================= VFAT

def _vfat(ctx: Ctx, records: list[Any], **attrs: Any) -> str:
    from sysexport import VFAT
    out = ctx.path("fat.img")
    attrs.setdefault("default_time", T0)
    fat = VFAT(out, **attrs)
    for r in records:
        fat.add(r)
    fat.finish()
    return out


def _fat_extras() -> list[Any]:
    return [
        {"name": "boot loader.efi", "mode": 0o100644, "data": b"x" * 5000, "FAT_shortname": "LOADER.EFI",
         "FAT_flags": 0x01 | 0x02 | 0x04},
        {"name": "archive.bin", "mode": 0o100644, "data": b"a", "FAT_flags": 0x20},
        {"name": "EFI/BOOT/BOOTX64.EFI", "mode": 0o100644, "data": sized(70_000)},
    ]


@case("vfat-auto")
def _(ctx: Ctx) -> str:
    return _vfat(ctx, fat_records() + _fat_extras(), volume_label="GOLDEN")


@case("vfat-fat12-forced")
def _(ctx: Ctx) -> str:
    return _vfat(ctx, fat_records()[:30], fat_type=12, volume_label="FAT12")


@case("vfat-fat12-cluster512-near-edge")
def _(ctx: Ctx) -> str:
    return _vfat(ctx, [("file", "a.txt", b"a")], cluster_size=512, size_bytes=4060 * 512)


@case("vfat-fat16-forced-cluster512")
def _(ctx: Ctx) -> str:
    return _vfat(ctx, fat_records() + _fat_extras(), fat_type=16, cluster_size=512, volume_label="FAT16")


@case("vfat-fat16-cluster2048-size")
def _(ctx: Ctx) -> str:
    return _vfat(ctx, fat_records(), cluster_size=2048, size_bytes=64 * MIB)


@case("vfat-fat32-forced-cluster512")
def _(ctx: Ctx) -> str:
    return _vfat(ctx, fat_records() + _fat_extras(), fat_type=32, cluster_size=512, volume_label="FAT32",
                 volume_id=0x12345678)


@case("vfat-fat32-cluster4096")
def _(ctx: Ctx) -> str:
    return _vfat(ctx, fat_records()[:60], fat_type=32, cluster_size=4096)


@case("vfat-cluster32k-offset")
def _(ctx: Ctx) -> str:
    return _vfat(ctx, fat_records()[:60], cluster_size=32768, volume_offset=1 * MIB, volume_label="OFFSET")


@case("vfat-sector4096-fat12")
def _(ctx: Ctx) -> str:
    return _vfat(ctx, fat_records() + _fat_extras(), sector_size=4096, fat_type=12, volume_label="S4K")


@case("vfat-sector4096-fat16")
def _(ctx: Ctx) -> str:
    return _vfat(ctx, fat_records()[:40], sector_size=4096, fat_type=16, volume_offset=8192)


@case("vfat-sector4096-fat32")
def _(ctx: Ctx) -> str:
    return _vfat(ctx, fat_records()[:40], sector_size=4096, fat_type=32)


@case("vfat-empty-from-sde")
def _(ctx: Ctx) -> str:
    from sysexport import VFAT
    out = ctx.path("fat.img")
    VFAT(out).finish()
    return out


@case("vfat-add-tree")
def _(ctx: Ctx) -> str:
    from sysexport import VFAT
    src = make_fat_tree(ctx.path("src"))
    ctx.pin(src)
    out = ctx.path("fat.img")
    fat = VFAT(out, default_time=T0, volume_label="TREE")
    fat.add_tree(src)
    fat.add_tree(src, dest="copy")
    fat.finish()
    return out


# ============================================================================= GPT, MBR

def _gpt_parts(g: Any, data_file: str) -> None:
    from sysexport import GPT_TYPE_BIOS_BOOT, GPT_TYPE_ESP, GPT_TYPE_LINUX_FS, GPT_TYPE_MS_BASIC_DATA
    from sysexport.partition.gpt import GPT_ATTR_LEGACY_BIOS_BOOTABLE, GPT_ATTR_REQUIRED_PARTITION
    g.add_partition(GPT_TYPE_BIOS_BOOT, 1 * MIB, name="BIOS boot", data=sized(20_000))
    g.add_partition(GPT_TYPE_ESP, 4 * MIB, name="EFI System Partition", attributes=GPT_ATTR_REQUIRED_PARTITION,
                    data=sized(100_000, 1))
    g.add_partition(GPT_TYPE_MS_BASIC_DATA, name="payload from a file", data=data_file)
    g.add_partition(GPT_TYPE_LINUX_FS, 2 * MIB, name="Linux ünïcode", attributes=GPT_ATTR_LEGACY_BIOS_BOOTABLE)


def _payload_file(ctx: Ctx) -> str:
    p = ctx.path("payload.bin")
    with open(p, "wb") as f:
        f.write(sized(300_000, 5))
    return p


@case("gpt-512-seeded")
def _(ctx: Ctx) -> str:
    from sysexport import GPT
    out = ctx.path("disk.img")
    g = GPT(out, block_size=512, guid_seed="golden")
    _gpt_parts(g, _payload_file(ctx))
    g.finish()
    return out


@case("gpt-4096-seeded")
def _(ctx: Ctx) -> str:
    from sysexport import GPT
    out = ctx.path("disk.img")
    g = GPT(out, block_size=4096, guid_seed="golden")
    _gpt_parts(g, _payload_file(ctx))
    g.finish()
    return out


@case("gpt-512-content-guids-bootable")
def _(ctx: Ctx) -> str:
    from sysexport import GPT
    out = ctx.path("disk.img")
    g = GPT(out, block_size=512)
    _gpt_parts(g, _payload_file(ctx))
    g.finish(mbr_bootable=True)
    return out


@case("gpt-4096-explicit-guids-offsets")
def _(ctx: Ctx) -> str:
    import uuid
    from sysexport import GPT, GPT_TYPE_ESP, GPT_TYPE_LINUX_FS
    out = ctx.path("disk.img")
    g = GPT(out, block_size=4096, disk_guid=uuid.UUID(int=0x1234), entry_count=4, alignment_bytes=65536,
            device_size_bytes=16 * MIB)
    g.add_partition(GPT_TYPE_ESP, 2 * MIB, name="ESP", unique_guid="01234567-89ab-cdef-0123-456789abcdef")
    g.add_partition(GPT_TYPE_LINUX_FS, 1 * MIB, name="fixed", device_offset=8 * MIB)
    g.add_partition(GPT_TYPE_LINUX_FS, 1 * MIB, name="auto after the ESP")
    g.finish()
    return out


@case("gpt-derived-512-from-4096")
def _(ctx: Ctx) -> str:
    from sysexport import GPT
    out = ctx.path("disk.img")
    g4 = GPT(block_size=4096, guid_seed="pair", device_size_bytes=32 * MIB)
    _gpt_parts(g4, _payload_file(ctx))
    g4.layout(32 * MIB)
    g5 = g4.derive(512, filename=out)
    g5.finish()
    return out


@case("gpt-512-classic-mbr")
def _(ctx: Ctx) -> str:
    from sysexport import GPT, GPT_TYPE_LINUX_FS, MBR
    from sysexport.partition.mbr import MBRPartition
    out = ctx.path("disk.img")
    g = GPT(out, block_size=512, guid_seed=7, device_size_bytes=8 * MIB)
    g.add_partition(GPT_TYPE_LINUX_FS, name="all")
    mbr = MBR(boot_code=b"\xeb\x63" + bytes(100), disk_signature=0xCAFEF00D,
              partitions=[MBRPartition(0xEE, 1, 8 * MIB // 512 - 1)])
    g.finish(mbr=mbr)
    return out


@case("mbr-protective")
def _(ctx: Ctx) -> str:
    from sysexport import MBR
    out = ctx.path("mbr.bin")
    with open(out, "wb") as f:
        for size, bs, bootable in ((8 * MIB, 512, False), (3 << 40, 512, True), (1 << 45, 4096, False)):
            f.write(MBR.protective(size, bs, bootable=bootable).to_bytes())
    return out


@case("mbr-classic")
def _(ctx: Ctx) -> str:
    from sysexport import MBR
    from sysexport.partition.mbr import MBRPartition
    out = ctx.path("mbr.bin")
    m = MBR(disk_signature=0x11223344, partitions=[
        MBRPartition(0x0C, 2048, 100_000, bootable=True), None,
        MBRPartition(0x83, 200_000, 20_000_000), MBRPartition(0x05, 0xFFFF0000, 0xFFFF)])
    m.set_boot_code(bytes(range(256)) * 2)          # 512 bytes given: the first 440 kept
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.ftruncate(fd, 1024)
        m.write(fd, 512)
    finally:
        os.close(fd)
    return out


# ============================================================================= CPIO

def cpio_records() -> list[Any]:
    # newc holds no time before 1970: "old.txt" is left out.
    return [("dir755", ""), ("file755", "init", b"#!/bin/sh\nexec /bin/sh\n"), ("dir755", "proc")] + \
        [r for r in fat_records() if r[1] != "old.txt"] + special_records()


def _cpio(ctx: Ctx, compress: str | None, name: str = "initrd.cpio") -> str:
    from sysexport import CPIO
    out = ctx.path(name)
    w = CPIO(out, compress=compress, default_time=T0)
    for r in cpio_records():
        w.add(r)
    w.finish()
    return out


@case("cpio-newc")
def _(ctx: Ctx) -> str:
    return _cpio(ctx, None)


@case("cpio-newc-gzip", key=zlib_key, on_other_key="payload", payload=_gunzip)
def _(ctx: Ctx) -> str:
    return _cpio(ctx, "gzip")


@case("cpio-newc-xz", key=lzma_key, on_other_key="payload", payload=_unxz)
def _(ctx: Ctx) -> str:
    return _cpio(ctx, "xz")


@case("cpio-newc-zstd", key=zstd_key, on_other_key="payload", payload=_unzstd)
def _(ctx: Ctx) -> str:
    pytest.importorskip("zstandard")
    return _cpio(ctx, "zstd")


@case("cpio-add-tree-no-root")
def _(ctx: Ctx) -> str:
    from sysexport import CPIO
    src = make_host_tree(ctx.path("src"))
    ctx.pin(src)
    out = ctx.path("tree.cpio")
    w = CPIO(out)                                   # default_time from SOURCE_DATE_EPOCH
    w.add_tree(src, dest="usr/share/tree")
    w.add(("file", "etc/extra", b"extra\n"))
    w.finish()
    return out


@case("cli-initramfs-gzip", key=zlib_key, on_other_key="payload", payload=_gunzip)
def _(ctx: Ctx) -> str:
    from sysexport.cli import main
    src = make_host_tree(ctx.path("src"))
    ctx.pin(src)
    out = ctx.path("initrd.img")
    assert main(["initramfs", src, "-o", out, "--compress", "gzip"]) == 0
    return out


# ============================================================================= hybrid

def _hybrid(ctx: Ctx, name: str = "hybrid.img", **attrs: Any) -> tuple[Any, str]:
    from sysexport import ISO9660Hybrid
    out = ctx.path(name)
    img = ISO9660Hybrid(out, **attrs)
    img.default_time = T0
    return img, out


@case("hybrid-default-tree")
def _(ctx: Ctx) -> str:
    src = copy_default_tree(ctx.path("tree"))
    ctx.pin(src)
    img, out = _hybrid(ctx)
    img.add_tree(src)
    img.finish()
    return out


@case("hybrid-default-tree-sde-only")
def _(ctx: Ctx) -> str:
    from sysexport import ISO9660Hybrid
    src = copy_default_tree(ctx.path("tree"))
    ctx.pin(src)
    out = ctx.path("hybrid.img")
    img = ISO9660Hybrid(out)                        # default_time from SOURCE_DATE_EPOCH
    img.volume_label = "sysexport demo"
    img.add_tree(src)
    img.finish()
    return out


@case("hybrid-empty")
def _(ctx: Ctx) -> str:
    img, out = _hybrid(ctx)
    img.finish()
    return out


@case("hybrid-records-targets")
def _(ctx: Ctx) -> str:
    img, out = _hybrid(ctx, volume_label="Golden Hybrid 2026")
    for r in fat_records():
        img.add(r)
    for r in special_nodes() + hard_links():
        img.add(r)
    for kind, name, data in fat_illegal_files():
        img.add((kind, name, data, {"hybrid_target": "iso"}))
    img.add(("file", "notes/iso-only.txt", b"only on the CD side\n", {"hybrid_target": "iso"}))
    img.add(("file", "notes/esp-only.txt", b"only in the ESP\n", {"hybrid_target": "esp"}))
    img.add(("dir", "esp-only-dir", {"hybrid_target": "esp"}))
    img.add(("file", "iso-only/big.bin", sized(3 * MIB + 5), {"hybrid_target": "iso"}))
    img.add(("file", "hidden.txt", b"hidden\n", {"ISO9660_flags": 1, "FAT_flags": 0x02}))
    img.add(("file", "shortnames.txt", b"s\n", {"ISO9660_shortname": "SHORT.TXT", "FAT_shortname": "SHORT.TXT"}))
    img.finish()
    return out


@case("hybrid-partitions-options")
def _(ctx: Ctx) -> str:
    from sysexport import GPT_TYPE_LINUX_FS, GPT_TYPE_MS_BASIC_DATA
    img, out = _hybrid(ctx, mbr_boot_code=b"\xfa\xeb\xfe" + bytes(range(200)), mbr_bootable=True,
                       efi_boot=True, esp_min_size_bytes=40 * MIB, partition_align_bytes=1 * MIB)
    img.volume_label = "PARTS"
    for r in fat_records()[:50]:
        img.add(r)
    img.gpt.add_partition(GPT_TYPE_LINUX_FS, size_bytes=8 * MIB, name="persistence")
    img.gpt.add_partition(GPT_TYPE_MS_BASIC_DATA, data=_payload_file(ctx), name="payload")
    img.gpt.add_partition(GPT_TYPE_LINUX_FS, data=sized(12_345, 2), name="small data")
    img.finish()
    return out


@case("hybrid-mbr-code-path-align-esp-min")
def _(ctx: Ctx) -> str:
    code = ctx.path("mbr.bin")
    with open(code, "wb") as f:
        f.write(bytes(range(256)) + bytes(184) + bytes(70) + b"\x55\xaa")   # 512 bytes: 440 of code kept
    img, out = _hybrid(ctx, mbr_boot_code=code, esp_min_size_bytes=3 * MIB, partition_align_bytes=65536)
    img.volume_label = "x"
    for r in fat_records()[:10]:
        img.add(r)
    img.finish()
    return out


@case("hybrid-filehandle-add-tree")
def _(ctx: Ctx) -> str:
    from sysexport import ISO9660Hybrid
    src = make_host_tree(ctx.path("src"))
    fat_src = make_fat_tree(ctx.path("fat"))
    ctx.pin(src, fat_src)
    out = ctx.path("hybrid.img")
    with open(out, "wb") as f:
        img = ISO9660Hybrid(filehandle=f, default_time=T0)
        img.volume_label = "FILEHANDLE"
        img.add_tree(src)
        img.add_tree(fat_src, dest="fat")
        img.finish()
    return out


@case("cli-build-default-tree-options")
def _(ctx: Ctx) -> str:
    from sysexport.cli import main
    src = copy_default_tree(ctx.path("tree"))
    code = ctx.path("mbr.bin")
    with open(code, "wb") as f:
        f.write(bytes(i % 256 for i in range(100, 300)) + bytes(240))
    payload = _payload_file(ctx)
    ctx.pin(src, payload)
    out = ctx.path("hybrid.img")
    assert main(["build", src, "-o", out, "--label", "CLI LABEL", "--mbr-boot-code", code,
                 "--partition", f"linux:{payload}", "--partition", f"msdata:{payload}"]) == 0
    return out


# ------------------------------------------------------------------ hybrid + GRUB

def _grub_needed() -> None:
    from sysexport.boot import grub
    try:
        grub.find_grub(grub.PLATFORM_BIOS)
        grub.find_grub(grub.PLATFORM_EFI)
    except Exception as e:       # SysExportError naming the missing package
        pytest.skip(f"GRUB is not installed: {e}")


@case("hybrid-grub-make-bootable", key=grub_key)
def _(ctx: Ctx) -> str:
    from sysexport.boot.grub import make_bootable
    _grub_needed()
    img, out = _hybrid(ctx, volume_label="GOLDENLIVE")
    for r in fat_records()[:20]:
        img.add(r)
    make_bootable(img, kernel=b"\x4d\x5a fake kernel " * 1000, initrd=b"fake initrd\n" * 500,
                  cmdline="console=ttyS0 quiet")
    img.finish()
    return out


@case("hybrid-grub-efi-only-no-modules", key=grub_key)
def _(ctx: Ctx) -> str:
    from sysexport.boot.grub import make_bootable
    _grub_needed()
    img, out = _hybrid(ctx, volume_label="EFIONLY")
    img.add(("file", "README.txt", b"efi only\n"))
    make_bootable(img, bios=False, copy_modules=False, grub_cfg="echo hello\n", marker="/.golden-marker")
    img.finish()
    return out


@case("cli-live", key=grub_key)
def _(ctx: Ctx) -> str:
    from sysexport.cli import main
    _grub_needed()
    kernel, initrd = ctx.path("vmlinuz"), ctx.path("initrd.img")
    with open(kernel, "wb") as f:
        f.write(b"MZ" + sized(50_000))
    with open(initrd, "wb") as f:
        f.write(sized(20_000, 4))
    tree = make_fat_tree(ctx.path("extra"))
    for p in (kernel, initrd):
        os.utime(p, (MTIME, MTIME))
    ctx.pin(tree, kernel, initrd)
    out = ctx.path("live.img")
    assert main(["live", "--kernel", kernel, "--initrd", initrd, "--cmdline", "console=ttyS0",
                 "--add-tree", f"{tree}:extra", "--label", "CLILIVE", "--timeout", "1", "-o", out]) == 0
    return out


# ------------------------------------------------------------------ tools/bench trees

@case("bench-big-files-scale-0.01")
def _(ctx: Ctx) -> str:
    from sysexport.cli import main
    src = make_bench_big(ctx.path("src"))
    ctx.pin(src)
    out = ctx.path("hybrid.img")
    assert main(["build", src, "-o", out]) == 0     # what tools/bench runs
    return out


@case("bench-small-files-scale-0.01")
def _(ctx: Ctx) -> str:
    from sysexport.cli import main
    src = make_bench_small(ctx.path("src"))
    ctx.pin(src)
    out = ctx.path("hybrid.img")
    assert main(["build", src, "-o", out]) == 0
    return out


# ============================================================================= the tests

def test_golden_file_lists_every_case():
    """The golden file and the cases above name the same set (regenerate with tools/golden)."""
    recorded = set(load_golden())
    defined = set(CASES)
    assert recorded == defined, (f"missing from {GOLDEN_FILE}: {sorted(defined - recorded)}; "
                                 f"recorded but not defined: {sorted(recorded - defined)}")


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden(name, tmp_path, monkeypatch):
    want = load_golden().get(name)
    if want is None:
        pytest.fail(f"{name}: no recorded hash in {GOLDEN_FILE} (run tools/golden)")
    c = CASES[name]
    got = run_case(c, str(tmp_path), monkeypatch)
    if c.key is not None and got.get("key") != want.get("key"):
        if c.on_other_key == "payload":
            assert got["payload_sha256"] == want["payload_sha256"], (
                f"{name}: the uncompressed bytes changed (compressed with {got['key']}; "
                f"recorded with {want.get('key')})")
            return
        pytest.skip(f"{name}: recorded with {want.get('key')!r}, this machine has {got.get('key')!r}")
    assert (got["sha256"], got["size"]) == (want["sha256"], want["size"]), (
        f"{name}: output bytes changed (size {want['size']} -> {got['size']}). If the format change is "
        "intended, regenerate tests/golden/sha256.json with tools/golden and say why in the commit")
    if "payload_sha256" in want:
        assert got["payload_sha256"] == want["payload_sha256"], name
