"""The bad-input table (issue 11, "one error contract"): every failure a user can cause is
a SysExportError subclass whose message names the path or field, the rule and the value,
and nothing half-written is left behind.

Each writer case builds into an output that already holds an earlier image: after the
error the old image is byte-identical and nothing else (no temporary file) lies beside it.
Each CLI case runs ``python -m sysexport`` and checks the exit status (1 for errors, 2 for
usage errors) and that stderr is exactly one line starting with ``sysexport: error:``.
Special files as sources and labels have their own tables (other parts of issue 11).
"""
from __future__ import annotations

import math
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from typing import Any, Callable

import pytest

from sysexport.cpio import CPIO
from sysexport.errors import CallOrderError, InvalidInputError, LayoutError, SourceError, SysExportError
from sysexport.hybrid import ISO9660Hybrid
from sysexport.iso9660.writer import ISO9660
from sysexport.partition.gpt import GPT, GPT_TYPE_LINUX_FS
from sysexport.partition.mbr import MBR, MBRPartition
from sysexport.vfat.writer import VFAT

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PREVIOUS = b"the previous image\n" * 100
MTIME = 1_600_000_000


@pytest.fixture(autouse=True)
def _sde(monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")


@dataclass
class Ctx:
    """What a case may use: a source directory beside (not in) the output's directory."""

    src: str

    def host_file(self, name: str | bytes, data: bytes = b"x", size: int | None = None) -> str:
        path = os.path.join(os.fsencode(self.src), os.fsencode(name))
        with open(path, "wb") as f:
            f.write(data)
            if size is not None:
                f.truncate(size)
        return os.fsdecode(path)


Action = Callable[[Any, Ctx], object]


@dataclass
class Case:
    """One row: ``make(out)`` the writer; ``setup`` what succeeds first (may finish);
    ``act`` what must fail (the table then calls ``finish()`` when ``act`` did not raise)."""

    id: str
    make: Callable[[str], Any]
    act: Action
    error: type[SysExportError]
    names: tuple[str, ...]
    setup: Action | None = None
    sde: bool = True            # False: without SOURCE_DATE_EPOCH (which clamps later times to it)


def iso(out: str) -> ISO9660:
    return ISO9660(out)


def vfat(out: str) -> VFAT:
    return VFAT(out)


def cpio(out: str) -> CPIO:
    return CPIO(out)


def gpt(out: str) -> GPT:
    return GPT(out)


def hybrid(out: str) -> ISO9660Hybrid:
    return ISO9660Hybrid(out)


def nothing(out: str) -> None:
    return None


def add(spec: Any) -> Action:
    return lambda w, ctx: w.add(spec)


def f(name: Any, **keys: Any) -> dict[str, Any]:
    """A regular file's mapping."""
    return {"name": name, "mode": 0o100644, "data": b"data\n", **keys}


def setattr_(attr: str, value: Any) -> Action:
    return lambda w, ctx: setattr(w, attr, value)


def write_mbr(**kw: Any) -> Action:
    """An MBR built and written into the output: it must fail before any byte is written."""
    def act(w: Any, ctx: Ctx) -> None:
        out = ctx.extra_out  # type: ignore[attr-defined]
        fd = os.open(out, os.O_RDWR)
        try:
            MBR(**kw).write(fd)
        finally:
            os.close(fd)
    return act


def add_tree_with(name: bytes | str) -> Action:
    def act(w: Any, ctx: Ctx) -> None:
        ctx.host_file(name)
        w.add_tree(ctx.src)
    return act


def stale_write(w: Any, ctx: Ctx) -> None:
    plan = w.plan()
    w.plan()
    fd = os.open(ctx.extra_out, os.O_RDWR)  # type: ignore[attr-defined]
    try:
        w.write(fd, plan)
    finally:
        os.close(fd)


def source_shrinks(w: Any, ctx: Ctx) -> None:
    """A source file that changes size after add(): the error comes while the image is
    being written (its temporary file exists), so the old image must survive it."""
    path = ctx.host_file("grows.bin", b"y" * 100_000)
    if isinstance(w, GPT):
        w.add_partition(P, 1 << 20, data=path)
    else:
        w.add({"name": "grows.bin", "mode": 0o100644, "data_path": path})
    os.truncate(path, 10)


def big_sparse(w: Any, ctx: Ctx) -> None:
    w.add({"name": "big.bin", "mode": 0o100644, "data_path": ctx.host_file("big", b"", size=1 << 32)})


P = GPT_TYPE_LINUX_FS
CASES = [
    # --- names ---------------------------------------------------------------------------
    Case("iso-name-nul", iso, add(f("etc/a\0b")), InvalidInputError, ("a\\x00b", "NUL")),
    Case("vfat-name-dotdot", vfat, add(f("etc/../passwd")), InvalidInputError, ("etc/../passwd", "'..'")),
    Case("cpio-name-surrogate", cpio, add(f("etc/caf\udce9")), InvalidInputError, ("etc/caf", "UTF-8")),
    Case("iso-name-surrogate", iso, add(f("d/\udcff.txt")), InvalidInputError, ("d/", "UTF-8")),
    Case("iso-component-256-bytes", iso, add(f("d/" + "x" * 256)), InvalidInputError, ("xxxxxxxx", "255", "NAME_MAX")),
    Case("cpio-component-256-utf8-bytes", cpio, add(f("é" * 128)), InvalidInputError, ("éééé", "256 bytes", "255")),
    Case("vfat-name-not-utf8-bytes", vfat, add(f(b"caf\xe9")), InvalidInputError, ("caf\\xe9", "UTF-8")),
    Case("hybrid-name-not-str", hybrid, add(f(42)), InvalidInputError, ("name", "int")),
    Case("cpio-root-as-file", cpio, add(f("/")), InvalidInputError, ("/", "root must be a directory")),
    Case("cpio-trailer-name", cpio, add(f("TRAILER!!!")), InvalidInputError, ("TRAILER!!!", "end of a newc")),
    Case("cpio-name-over-path-max", cpio, add(f("/".join(["d" * 200] * 21))), InvalidInputError,
         ("dddd", "PATH_MAX", "4096")),
    Case("cpio-host-name-not-utf8", cpio, add_tree_with(b"bad\xff"), InvalidInputError, ("bad", "b'", "UTF-8")),
    Case("hybrid-host-name-not-utf8", hybrid, add_tree_with(b"x\xfe.txt"), InvalidInputError, ("x", "UTF-8")),
    Case("hybrid-clash-iso-only", hybrid, add(f("a")), InvalidInputError, ("a", "added twice"),
         setup=add(("sym", "a", "target"))),
    # --- modes ---------------------------------------------------------------------------
    Case("iso-mode-unknown-type", iso, add({"name": "m", "mode": 0o170644}), InvalidInputError, ("m", "0o170644")),
    Case("cpio-mode-no-type", cpio, add({"name": "m", "mode": 0o644}), InvalidInputError, ("m", "file type")),
    Case("vfat-mode-negative", vfat, add({"name": "m", "mode": -1}), InvalidInputError, ("m", "mode", "-1")),
    Case("hybrid-mode-str", hybrid, add({"name": "m", "mode": "0644"}), InvalidInputError, ("m", "mode", "'0644'")),
    Case("cpio-mode-perm-over-7777", cpio, add(("file", "m", {"mode": 0o17777})), InvalidInputError,
         ("m", "0o17777", "0o7777")),
    Case("iso-mode-over-16-bits", iso, add({"name": "m", "mode": 0o200644}), InvalidInputError, ("m", "mode")),
    # --- ids -----------------------------------------------------------------------------
    Case("cpio-uid-negative", cpio, add(f("u", uid=-1)), InvalidInputError, ("u", "uid", "-1")),
    Case("iso-gid-over-32-bits", iso, add(f("u", gid=1 << 32)), InvalidInputError, ("u", "gid", "4294967296")),
    Case("vfat-uid-bool", vfat, add(f("u", uid=True)), InvalidInputError, ("u", "uid", "True")),
    Case("hybrid-uid-float", hybrid, add(f("u", uid=1.5)), InvalidInputError, ("u", "uid", "1.5")),
    Case("cpio-gid-str", cpio, add(f("u", gid="0")), InvalidInputError, ("u", "gid", "'0'")),
    Case("iso-nlink-over-64-bits", iso, add(f("u", nlink=1 << 64)), InvalidInputError, ("u", "nlink")),
    # --- times ---------------------------------------------------------------------------
    Case("iso-mtime-nan", iso, add(f("t", mtime=math.nan)), InvalidInputError, ("t", "mtime", "nan")),
    Case("vfat-mtime-nan", vfat, add(f("t", mtime=math.nan)), InvalidInputError, ("t", "mtime", "nan")),
    Case("cpio-mtime-nan", cpio, add(f("t", mtime=math.nan)), InvalidInputError, ("t", "mtime", "nan")),
    Case("hybrid-mtime-inf", hybrid, add(f("t", mtime=math.inf)), InvalidInputError, ("t", "mtime", "inf")),
    Case("iso-mtime-minus-inf", iso, add(f("t", mtime=-math.inf)), InvalidInputError, ("t", "mtime", "-inf")),
    Case("vfat-ctime-nan", vfat, add(f("t", ctime=math.nan)), InvalidInputError, ("t", "ctime")),
    Case("iso-atime-1e300", iso, add(f("t", atime=1e300)), InvalidInputError, ("t", "atime", "9999")),
    Case("hybrid-mtime-year-10000", hybrid, add(f("t", mtime=253402300800)), InvalidInputError, ("t", "mtime")),
    Case("cpio-mtime-before-1970", cpio, add(f("t", mtime=-1)), InvalidInputError, ("t", "mtime", "-1", "1970")),
    Case("cpio-mtime-after-2106", cpio, add(f("t", mtime=1 << 32)), InvalidInputError, ("t", "mtime", "2106"),
         sde=False),
    Case("hybrid-mtime-str", hybrid, add(f("t", mtime="now")), InvalidInputError, ("t", "mtime", "'now'")),
    Case("cpio-default-time-nan", lambda out: CPIO(out, default_time=math.nan), add(f("t")), InvalidInputError,
         ("default_time", "nan")),
    Case("cpio-default-time-attribute-negative", cpio, setattr_("default_time", -5), InvalidInputError,
         ("default_time", "-5")),
    Case("iso-default-time-inf", iso, setattr_("default_time", math.inf), InvalidInputError, ("default_time", "inf")),
    Case("vfat-default-time-nan", vfat, setattr_("default_time", math.nan), InvalidInputError, ("default_time",)),
    # --- sizes and data --------------------------------------------------------------------
    Case("iso-size-negative", iso, add(f("s", size=-1)), InvalidInputError, ("s", "size", "-1")),
    Case("vfat-size-float", vfat, add(f("s", size=1.5)), InvalidInputError, ("s", "size", "1.5")),
    Case("cpio-size-disagrees", cpio, add(f("s", size=6)), InvalidInputError, ("s", "size is 6", "5 bytes")),
    Case("vfat-size-4gib", vfat, big_sparse, InvalidInputError, ("big.bin", "4294967295")),
    Case("cpio-size-4gib", cpio, big_sparse, InvalidInputError, ("big.bin", "4294967295")),
    Case("hybrid-size-without-data", hybrid, add({"name": "s", "mode": 0o100644, "size": 1 << 40}),
         InvalidInputError, ("s", "neither data nor data_path")),
    Case("iso-data-int", iso, add({"name": "s", "mode": 0o100644, "data": 123}), InvalidInputError, ("s", "data", "int")),
    Case("cpio-data-str-surrogate", cpio, add({"name": "s", "mode": 0o100644, "data": "caf\udce9"}),
         InvalidInputError, ("s", "data", "UTF-8")),
    Case("iso-symlink-target-too-long", iso, add(("sym", "l", "x" * 4096)), InvalidInputError,
         ("l", "4096 bytes", "PATH_MAX")),
    Case("cpio-symlink-target-empty", cpio, add(("sym", "l", "")), InvalidInputError, ("l", "target")),
    Case("hybrid-symlink-target-surrogate", hybrid, add(("sym", "l", "t\udcff")), InvalidInputError, ("l", "UTF-8")),
    Case("vfat-data-path-missing", vfat, add({"name": "s", "mode": 0o100644, "data_path": "/nonexistent/x"}),
         InvalidInputError, ("/nonexistent/x",)),
    Case("iso-data-path-nul", iso, add({"name": "s", "mode": 0o100644, "data_path": "/etc/pass\0wd"}),
         InvalidInputError, ("s", "data_path", "NUL")),
    Case("hybrid-unknown-key", hybrid, add(f("k", mtiem=5)), InvalidInputError, ("k", "mtiem")),
    Case("iso-dir-with-data", iso, add({"name": "d", "mode": 0o40755, "data": b"x"}), InvalidInputError,
         ("d", "carry data")),
    Case("iso-source-changed-while-writing", iso, source_shrinks, SourceError, ("grows.bin", "changed size")),
    Case("vfat-source-changed-while-writing", vfat, source_shrinks, SourceError, ("grows.bin", "changed size")),
    Case("cpio-source-changed-while-writing", cpio, source_shrinks, SourceError, ("grows.bin", "changed size")),
    Case("hybrid-source-changed-while-writing", hybrid, source_shrinks, SourceError, ("grows.bin", "changed size")),
    Case("gpt-partition-data-changed-while-writing", gpt, source_shrinks, SourceError, ("grows.bin", "changed size")),
    # --- devices ---------------------------------------------------------------------------
    Case("cpio-device-major-4096", cpio, add(("chr", "dev/x", (4096, 1))), InvalidInputError,
         ("dev/x", "(4096, 1)", "major 0..4095")),
    Case("cpio-device-minor-2-20", cpio, add(("blk", "dev/y", (8, 1 << 20))), InvalidInputError,
         ("dev/y", "1048576", "minor 0..1048575")),
    Case("iso-device-major-4096", iso, add(("chr", "dev/x", (4096, 1))), InvalidInputError,
         ("dev/x", "(4096, 1)", "would read", "(0, 1)")),
    Case("hybrid-device-minor-2-20", hybrid, add(("blk", "dev/y", (1, 1 << 20))), InvalidInputError,
         ("dev/y", "would read", "(1, 256)")),
    Case("iso-rdev-over-64-bits", iso, add({"name": "dev/z", "mode": 0o20644, "rdev": 1 << 64}), InvalidInputError,
         ("dev/z", "rdev")),
    Case("vfat-device", vfat, add(("chr", "dev/null", (1, 3))), InvalidInputError, ("dev/null", "device")),
    Case("cpio-device-shorthand", cpio, add(("chr", "dev/x", (1,))), InvalidInputError, ("dev/x", "(major, minor)")),
    # --- call order ------------------------------------------------------------------------
    Case("iso-add-after-finish", iso, add(f("late")), CallOrderError, ("ISO9660.add()", "finished"),
         setup=lambda w, ctx: w.finish()),
    Case("vfat-finish-twice", vfat, lambda w, ctx: w.finish(), CallOrderError, ("VFAT.finish()",),
         setup=lambda w, ctx: (w.add(f("a")), w.finish())),
    Case("cpio-add-after-plan", cpio, add(f("late")), CallOrderError, ("CPIO.add()", "planned"),
         setup=lambda w, ctx: w.plan()),
    Case("cpio-add-tree-after-finish", cpio, lambda w, ctx: w.add_tree(ctx.src), CallOrderError, ("add_tree()",),
         setup=lambda w, ctx: w.finish()),
    Case("cpio-write-stale-plan", cpio, stale_write, CallOrderError, ("CPIO.write()", "stale")),
    Case("gpt-add-partition-after-plan", gpt, lambda w, ctx: w.add_partition(P, 1 << 20), CallOrderError,
         ("GPT.add_partition()",), setup=lambda w, ctx: (w.add_partition(P, 1 << 20), w.plan())),
    Case("gpt-finish-twice", gpt, lambda w, ctx: w.finish(), CallOrderError, ("GPT.finish()",),
         setup=lambda w, ctx: (w.add_partition(P, 1 << 20), w.finish())),
    Case("iso-boot-entry-after-plan", iso, lambda w, ctx: w.add_boot_catalog_entry(data=bytes(2048)),
         CallOrderError, ("add_boot_catalog_entry()",), setup=lambda w, ctx: w.plan()),
    Case("hybrid-add-partition-after-finish", hybrid, lambda w, ctx: w.add_partition(P, 1 << 20), CallOrderError,
         ("add_partition()",), setup=lambda w, ctx: w.finish()),
    Case("hybrid-contribute-after-finish", hybrid, lambda w, ctx: w.contribute(None), CallOrderError,
         ("contribute()",), setup=lambda w, ctx: w.finish()),
    Case("hybrid-contribute-not-a-contribution", hybrid, lambda w, ctx: w.contribute({"files": ()}),
         InvalidInputError, ("contribute()", "BootContribution", "dict")),
    # --- attributes validate when set -------------------------------------------------------
    Case("vfat-cluster-size-3072", vfat, setattr_("cluster_size", 3072), InvalidInputError, ("cluster_size", "3072")),
    Case("vfat-sector-size-3000", vfat, setattr_("sector_size", 3000), InvalidInputError, ("sector_size", "3000")),
    Case("vfat-sector-size-above-cluster", lambda out: VFAT(out, cluster_size=1024), setattr_("sector_size", 4096),
         InvalidInputError, ("cluster_size", "4096", "1024")),
    Case("vfat-fat-type-13", vfat, setattr_("fat_type", 13), InvalidInputError, ("fat_type", "13")),
    Case("vfat-volume-offset-odd", vfat, setattr_("volume_offset", 100), InvalidInputError, ("volume_offset", "100")),
    Case("vfat-size-bytes-negative", vfat, setattr_("size_bytes", -1), InvalidInputError, ("size_bytes", "-1")),
    Case("iso-system-33-chars", iso, setattr_("system", "S" * 33), InvalidInputError, ("system", "33", "32")),
    Case("iso-publisher-newline", iso, setattr_("publisher", "a\nb"), InvalidInputError, ("publisher", "'\\n'")),
    Case("iso-application-129-chars", iso, setattr_("application", "é" * 129), InvalidInputError,
         ("application", "129", "128")),
    Case("iso-preparer-outside-ucs2", iso, setattr_("preparer", "snake \U0001F40D"), InvalidInputError,
         ("preparer", "UCS-2")),
    Case("iso-volume-set-not-str", iso, setattr_("volume_set", 7), InvalidInputError, ("volume_set", "7")),
    Case("iso-joliet-not-bool", iso, setattr_("joliet", "yes"), InvalidInputError, ("joliet", "'yes'")),
    Case("iso-boot-catalog-path-dotdot", iso, setattr_("boot_catalog_path", "../boot.cat"), InvalidInputError,
         ("boot_catalog_path", "'..'")),
    Case("iso-boot-catalog-path-root", iso, setattr_("boot_catalog_path", "/"), InvalidInputError,
         ("boot_catalog_path", "root")),
    Case("iso-padding-negative", iso, setattr_("padding_bytes", -1), InvalidInputError, ("padding_bytes", "-1")),
    Case("iso-interchange-level-4", iso, setattr_("interchange_level", 4), InvalidInputError, ("interchange_level", "4")),
    Case("gpt-alignment-not-block-multiple", gpt, setattr_("alignment_bytes", 100), InvalidInputError,
         ("alignment_bytes", "100")),
    Case("gpt-entry-count-zero", gpt, setattr_("entry_count", 0), InvalidInputError, ("entry_count", "0")),
    Case("gpt-entry-count-below-partitions", gpt, setattr_("entry_count", 1), InvalidInputError,
         ("entry_count", "2 partitions"), setup=lambda w, ctx: (w.add_partition(P, 1 << 20), w.add_partition(P, 1 << 20))),
    Case("gpt-block-size-after-partitions", gpt, setattr_("block_size", 4096), InvalidInputError,
         ("block_size", "4096"), setup=lambda w, ctx: w.add_partition(P, 1 << 20)),
    Case("gpt-knob-not-block-multiple", gpt, setattr_("backup_entries_offset", 1000), InvalidInputError,
         ("backup_entries_offset", "1000")),
    Case("cpio-compress-bzip2", cpio, setattr_("compress", "bzip2"), InvalidInputError, ("compress", "'bzip2'")),
    Case("hybrid-esp-min-size-negative", hybrid, setattr_("esp_min_size_bytes", -1), InvalidInputError,
         ("esp_min_size_bytes", "-1")),
    Case("hybrid-partition-align-1000", hybrid, setattr_("partition_align_bytes", 1000), InvalidInputError,
         ("partition_align_bytes", "1000")),
    Case("hybrid-mbr-bootable-str", hybrid, setattr_("mbr_bootable", "yes"), InvalidInputError,
         ("mbr_bootable", "'yes'")),
    Case("hybrid-efi-boot-int", hybrid, setattr_("efi_boot", 1), InvalidInputError, ("efi_boot", "1")),
    Case("hybrid-mbr-boot-code-table-bytes", hybrid, setattr_("mbr_boot_code", bytes(446) + b"\x80" + bytes(65)),
         InvalidInputError, ("mbr_boot_code", "512 bytes", "440")),
    Case("hybrid-mbr-boot-code-missing-file", hybrid, setattr_("mbr_boot_code", "/nonexistent/boot.img"),
         InvalidInputError, ("mbr_boot_code", "/nonexistent/boot.img")),
    Case("hybrid-mbr-boot-code-file-removed", hybrid, lambda w, ctx: os.unlink(w.mbr_boot_code), InvalidInputError,
         ("mbr_boot_code", "boot.img"), setup=lambda w, ctx: setattr(w, "mbr_boot_code", ctx.host_file("boot.img"))),
    Case("hybrid-unknown-attribute", lambda out: ISO9660Hybrid(out, volume_lable="X"), add(f("a")),
         InvalidInputError, ("volume_lable",)),
    # --- MBR ---------------------------------------------------------------------------------
    Case("mbr-overlap", nothing, write_mbr(partitions=[MBRPartition(0x83, 2048, 4096), MBRPartition(0x0C, 4000, 100)]),
         InvalidInputError, ("MBR partition 2", "overlap", "partition 1")),
    Case("mbr-past-2tib", nothing, write_mbr(partitions=[MBRPartition(0x83, 2048, 0xFFFFFFFF)]), InvalidInputError,
         ("MBR partition 1", "2 TiB")),
    Case("mbr-five-records", nothing, write_mbr(partitions=[None] * 5), InvalidInputError, ("MBR partitions", "4")),
    Case("mbr-type-zero", nothing, lambda w, ctx: MBRPartition(0, 2048, 1), InvalidInputError, ("type_id", "0")),
    Case("mbr-starts-at-lba-0", nothing, write_mbr(partitions=[MBRPartition(0x83, 0, 100)]), InvalidInputError,
         ("MBR partition 1", "first_lba")),
    Case("mbr-boot-code-441", nothing, write_mbr(boot_code=bytes(441)), InvalidInputError, ("boot_code", "441")),
    Case("mbr-disk-signature-negative", nothing, write_mbr(disk_signature=-1), InvalidInputError,
         ("disk_signature", "-1")),
    # --- GPT -----------------------------------------------------------------------------------
    Case("gpt-name-37-units", gpt, lambda w, ctx: w.add_partition(P, 1 << 20, name="n" * 37), InvalidInputError,
         ("GPT partition 1", "37", "36")),
    Case("gpt-name-surrogate", gpt, lambda w, ctx: w.add_partition(P, 1 << 20, name="n\udcff"), InvalidInputError,
         ("GPT partition 1", "surrogate")),
    Case("gpt-attributes-over-64-bits", gpt, lambda w, ctx: w.add_partition(P, 1 << 20, attributes=1 << 64),
         InvalidInputError, ("GPT partition 1", "attributes")),
    Case("gpt-attributes-reserved-bit", gpt, lambda w, ctx: w.add_partition(P, 1 << 20, attributes=1 << 10),
         InvalidInputError, ("GPT partition 1", "0x400", "reserves")),
    Case("gpt-type-zero-guid", gpt, lambda w, ctx: w.add_partition(uuid.UUID(int=0), 1 << 20), InvalidInputError,
         ("GPT partition 1", "type_guid")),
    Case("gpt-overlap", gpt, lambda w, ctx: w.add_partition(P, 1 << 20, device_offset=(1 << 20) + 4096),
         LayoutError, ("GPT partition",), setup=lambda w, ctx: w.add_partition(P, 1 << 20, device_offset=1 << 20)),
    # --- names per namespace, links, remove and rename (issue 13) ------------------------------
    Case("iso-remove-missing", iso, lambda w, ctx: w.remove("etc/none"), InvalidInputError,
         ("etc/none", "not in the image")),
    Case("iso-remove-boot-image", iso, lambda w, ctx: w.remove("boot"), InvalidInputError,
         ("boot", "catalog entry 0", "boot/img"),
         setup=lambda w, ctx: (w.add(f("boot/img", data=b"\xeb" * 2048)),
                               w.add_boot_catalog_entry(path="boot/img", load_size=4))),
    Case("vfat-rename-case-twin", vfat, lambda w, ctx: w.rename("a", "B"), InvalidInputError,
         ("B", "differs only by case", "'b'"), setup=lambda w, ctx: (w.add(f("a")), w.add(f("b")))),
    Case("hybrid-rename-onto-existing", hybrid, lambda w, ctx: w.rename("a", "b"), InvalidInputError,
         ("a -> b", "already exists"), setup=lambda w, ctx: (w.add(f("a")), w.add(f("b")))),
    Case("iso-rename-after-plan", iso, lambda w, ctx: w.rename("a", "b"), CallOrderError, ("rename()", "planned"),
         setup=lambda w, ctx: (w.add(f("a")), w.plan())),
    Case("iso-link-to-directory", iso, lambda w, ctx: w.add_link("d", "e"), InvalidInputError,
         ("d is a directory", "hard links of directories"), setup=add(("dir755", "d"))),
    Case("iso-link-fat", iso, lambda w, ctx: w.add_link("a", "b", namespace="fat"), InvalidInputError,
         ("FAT cannot hold two names for one cluster chain", "cross-linked"), setup=add(f("a"))),
    Case("hybrid-link-fat", hybrid, lambda w, ctx: w.add_link("a", "b", namespace="fat"), InvalidInputError,
         ("FAT cannot hold two names", "fsck.fat"), setup=add(f("a"))),
    Case("iso-link-unknown-namespace", iso, lambda w, ctx: w.add_link("a", "b", namespace="udf"),
         InvalidInputError, ("unknown namespace 'udf'", "'iso9660', 'joliet'"), setup=add(f("a"))),
    Case("hybrid-link-across-file-systems", hybrid, lambda w, ctx: w.add_link("a", "b"), InvalidInputError,
         ("a is in the ESP only", "cannot cross file systems"), setup=add(f("a", hybrid_target="esp"))),
    Case("iso-link-name-taken", iso, lambda w, ctx: w.add_link("a", "b"), InvalidInputError,
         ("b already exists", "another entry"), setup=lambda w, ctx: (w.add(f("a")), w.add(f("b")))),
    Case("iso-hidden-from-unknown", iso, add(f("a", hidden_from=("rock_ridge",))), InvalidInputError,
         ("a", "unknown namespace 'rock_ridge'")),
    Case("iso-joliet-name-bad-char", iso, add(f("a", joliet_name="a?b")), InvalidInputError,
         ("a: joliet_name 'a?b'", "'?'")),
    Case("iso-rename-shortname-clash", iso, lambda w, ctx: w.rename("x/a", "y/a"), InvalidInputError,
         ("y/a", "ISO9660_shortname 'SAME.TXT'", "y/b"),
         setup=lambda w, ctx: (w.add(f("x/a", ISO9660_shortname="SAME.TXT")),
                               w.add(f("y/b", ISO9660_shortname="SAME.TXT")))),
    Case("iso-joliet-name-twice", iso, add(f("b", joliet_name="Same")), InvalidInputError,
         ("joliet_name 'Same' is also the Joliet name of a",), setup=add(f("a", joliet_name="Same"))),
]


def attempt(case: Case, ctx: Ctx, out: Any) -> tuple[SysExportError, bytes]:
    """Run the case: (the error it raised, the output's bytes just before the failing step)."""
    try:
        writer = case.make(str(out))       # constructor arguments are checked as attributes are
    except SysExportError as e:
        return e, PREVIOUS
    if case.setup is not None:
        case.setup(writer, ctx)
    before = out.read_bytes()
    with pytest.raises(SysExportError) as e:
        case.act(writer, ctx)
        if writer is not None:
            writer.finish()
    return e.value, before


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, tmp_path, monkeypatch):
    if not case.sde:
        monkeypatch.delenv("SOURCE_DATE_EPOCH")
    outdir = tmp_path / "out"
    outdir.mkdir()
    out = outdir / "image"
    out.write_bytes(PREVIOUS)
    src = tmp_path / "src"
    src.mkdir()
    ctx = Ctx(str(src))
    ctx.extra_out = str(out)  # type: ignore[attr-defined]
    error, before = attempt(case, ctx, out)
    assert type(error) is case.error, repr(error)
    message = str(error)
    for fragment in case.names:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    assert out.read_bytes() == before
    assert os.listdir(outdir) == ["image"]


def test_the_table_is_large_enough():
    assert len(CASES) >= 60 and len({c.id for c in CASES}) == len(CASES)


# --- what is clamped rather than refused, per format ------------------------------------------

def test_times_each_format_cannot_hold_are_clamped_where_readers_clamp(tmp_path, monkeypatch):
    """ISO 9660 (1900..2155) and FAT (1980..2107) clamp times, as xorriso, mtools and Linux
    do; newc refuses (table above).  Before 1970 and after 2107 are written as the nearest
    time the format holds."""
    from sysexport.iso9660.reader import ISO9660Reader
    monkeypatch.delenv("SOURCE_DATE_EPOCH")             # it would clamp later times to itself
    early, late = -2_300_000_000, 4_400_000_000         # 1897 and 2109
    i = ISO9660(str(tmp_path / "t.iso"))
    i.add(f("early", mtime=early))
    i.add(f("late", mtime=late))
    i.add(f("y1969", mtime=-86400))
    i.finish()
    with open(tmp_path / "t.iso", "rb") as fh:
        r = ISO9660Reader(fh, 0)
        times = {e.name: e.mtime for e in r.walk(r.views[0]) if e.name}
        r.close()
    assert times["y1969"] == -86400
    assert times["early"] <= -2_208_988_800 + 86400 and times["late"] >= 4_354_819_200 - 86400
    v = VFAT(str(tmp_path / "t.fat"))
    v.add(f("early", mtime=early))
    v.add(f("late", mtime=late))
    v.finish()


# --- the CLI ---------------------------------------------------------------------------------

def run_cli(*args: str, cwd: str, sde: str = "1700000000") -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=ROOT, SOURCE_DATE_EPOCH=sde)
    return subprocess.run([sys.executable, "-m", "sysexport", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=120)


def tree(root: Any, files: dict[str, bytes]) -> str:
    for name, data in files.items():
        path = os.path.join(root, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as fh:
            fh.write(data)
    return str(root)


@dataclass
class CLICase:
    id: str
    args: Callable[[Any, str], list[str]]     # (tmp_path, output path) -> arguments
    status: int
    names: tuple[str, ...]
    writes_output: bool = False
    sde: str = "1700000000"


def good_tree(tmp: Any) -> str:
    return tree(tmp / "good", {"a.txt": b"a\n", "d/b.txt": b"b\n"})


CLI_CASES = [
    CLICase("build-missing-src", lambda t, o: ["build", str(t / "nope"), "-o", o], 1, ("nope",), True),
    CLICase("build-src-is-a-file", lambda t, o: ["build", tree(t, {"f": b"x"}) + "/f", "-o", o], 1, ("f",), True),
    CLICase("build-name-fat-forbids", lambda t, o: ["build", tree(t / "s", {"bad:name.txt": b"x"}), "-o", o], 1,
            ("bad:name.txt",), True),
    CLICase("build-mbr-boot-code-missing", lambda t, o: ["build", good_tree(t), "-o", o, "--mbr-boot-code",
                                                         str(t / "boot.img")], 1, ("--mbr-boot-code", "boot.img"), True),
    CLICase("build-partition-unknown-type", lambda t, o: ["build", good_tree(t), "-o", o, "--partition",
                                                          "nosuch:" + tree(t, {"p.img": b"p"}) + "/p.img"], 2,
            ("--partition", "nosuch"), True),
    CLICase("build-partition-no-colon", lambda t, o: ["build", good_tree(t), "-o", o, "--partition", "linux"], 2,
            ("--partition", "TYPE:FILE"), True),
    CLICase("build-partition-file-missing", lambda t, o: ["build", good_tree(t), "-o", o, "--partition",
                                                          "linux:" + str(t / "gone.img")], 1, ("gone.img",), True),
    CLICase("build-partition-file-is-dir", lambda t, o: ["build", good_tree(t), "-o", o, "--partition",
                                                         "linux:" + str(t)], 1, ("--partition", "directory"), True),
    CLICase("build-no-output", lambda t, o: ["build", good_tree(t)], 2, ("-o",)),
    CLICase("initramfs-missing-src", lambda t, o: ["initramfs", str(t / "nope"), "-o", o], 1, ("nope",), True),
    CLICase("initramfs-trailer-name", lambda t, o: ["initramfs", tree(t / "r", {"TRAILER!!!": b"x"}), "-o", o], 1,
            ("TRAILER!!!",), True),
    CLICase("initramfs-bad-compress", lambda t, o: ["initramfs", good_tree(t), "-o", o, "--compress", "bzip2"], 2,
            ("--compress", "bzip2"), True),
    CLICase("live-kernel-missing", lambda t, o: ["live", "--kernel", str(t / "vmlinuz"), "--initrd",
                                                 tree(t, {"initrd": b"i"}) + "/initrd", "-o", o], 1,
            ("--kernel", "vmlinuz"), True),
    CLICase("live-timeout-not-int", lambda t, o: ["live", "--kernel", "k", "--initrd", "i", "--timeout", "soon",
                                                  "-o", o], 2, ("--timeout", "soon"), True),
    CLICase("inspect-missing-image", lambda t, o: ["inspect", str(t / "none.img")], 1, ("none.img",)),
    CLICase("ls-directory-as-image", lambda t, o: ["ls", str(t)], 1, (str("directory"),)),
    CLICase("extract-missing-image", lambda t, o: ["extract", str(t / "none.img"), str(t / "x")], 1, ("none.img",)),
    CLICase("verify-missing-image", lambda t, o: ["verify", str(t / "none.img")], 1, ("none.img",)),
    CLICase("ls-not-an-image", lambda t, o: ["ls", tree(t, {"text": b"hello\n" * 100}) + "/text"], 1, ("text",)),
    CLICase("build-sde-not-an-integer", lambda t, o: ["build", good_tree(t), "-o", o], 1,
            ("SOURCE_DATE_EPOCH", "'yesterday'"), True, sde="yesterday"),
    CLICase("build-sde-past-9999", lambda t, o: ["build", good_tree(t), "-o", o], 1,
            ("SOURCE_DATE_EPOCH", "99999999999999999999"), True, sde="99999999999999999999"),
    CLICase("initramfs-sde-past-2106", lambda t, o: ["initramfs", good_tree(t), "-o", o], 1,
            ("SOURCE_DATE_EPOCH=5000000000", "newc"), True, sde="5000000000"),
    CLICase("unknown-command", lambda t, o: ["mkfs"], 2, ("mkfs",)),
    CLICase("unknown-option", lambda t, o: ["build", "--lable", "X", "-o", o], 2, ("--lable",), True),
    # --- build and live options (issue 14) ------------------------------------------------------
    CLICase("build-exclude-empty-glob", lambda t, o: ["build", good_tree(t), "-o", o, "--exclude", ""], 2,
            ("--exclude", "GLOB"), True),
    CLICase("build-exclude-unclosed-bracket", lambda t, o: ["build", good_tree(t), "-o", o, "--exclude", "[abc"], 2,
            ("--exclude '[abc'", "never closed"), True),
    CLICase("build-iso-only-unclosed-bracket", lambda t, o: ["build", good_tree(t), "-o", o, "--iso-only", "a[!"], 2,
            ("--iso-only 'a[!'", "never closed"), True),
    CLICase("build-source-missing", lambda t, o: ["build", good_tree(t), str(t / "none") + ":x", "-o", o], 1,
            ("none", "cannot read"), True),
    CLICase("build-source-is-a-file", lambda t, o: ["build", good_tree(t), good_tree(t) + "/a.txt:x", "-o", o], 1,
            ("a.txt", "directory"), True),
    CLICase("build-bios-boot-not-in-image", lambda t, o: ["build", good_tree(t), "-o", o, "--bios-boot",
                                                          "isolinux/isolinux.bin"], 1,
            ("--bios-boot isolinux/isolinux.bin", "no such file in the image"), True),
    CLICase("build-bios-boot-directory", lambda t, o: ["build", good_tree(t), "-o", o, "--bios-boot", "d"], 1,
            ("--bios-boot d", "regular file"), True),
    CLICase("build-bios-boot-load-size-zero", lambda t, o: ["build", good_tree(t), "-o", o, "--bios-boot", "a.txt",
                                                            "--bios-boot-load-size", "0"], 2,
            ("--bios-boot-load-size 0", "1..65535"), True),
    CLICase("build-efi-boot-without-file", lambda t, o: ["build", good_tree(t), "-o", o, "--efi-boot"], 2,
            ("--efi-boot", "expected one argument"), True),
    CLICase("build-efi-boot-missing", lambda t, o: ["build", good_tree(t), "-o", o, "--efi-boot", "efi.img"], 1,
            ("--efi-boot efi.img", "no such file"), True),
    CLICase("build-isohybrid-without-bios-boot", lambda t, o: ["build", good_tree(t), "-o", o, "--isohybrid-mbr",
                                                               tree(t, {"m.bin": bytes(512)}) + "/m.bin"], 2,
            ("--isohybrid-mbr", "--bios-boot"), True),
    CLICase("build-isohybrid-and-mbr-boot-code", lambda t, o: [
        "build", good_tree(t), "-o", o, "--bios-boot", "a.txt", "--mbr-boot-code", tree(t, {"m.bin": bytes(512)})
        + "/m.bin", "--isohybrid-mbr", str(t / "m.bin")], 2, ("--isohybrid-mbr and --mbr-boot-code",), True),
    CLICase("build-isohybrid-mbr-missing", lambda t, o: ["build", good_tree(t), "-o", o, "--bios-boot", "a.txt",
                                                         "--isohybrid-mbr", str(t / "nope.bin")], 1,
            ("--isohybrid-mbr", "nope.bin"), True),
    CLICase("build-isohybrid-mbr-unknown-code", lambda t, o: [
        "build", tree(t / "g", {"boot.bin": b"\xeb" * 2048}), "-o", o, "--bios-boot", "boot.bin",
        "--isohybrid-mbr", tree(t, {"zeros.bin": bytes(512)}) + "/zeros.bin"], 1,
            ("--isohybrid-mbr", "zeros.bin", "isohdp"), True),
    CLICase("build-publisher-too-long", lambda t, o: ["build", good_tree(t), "-o", o, "--publisher", "P" * 129], 1,
            ("--publisher", "128"), True),
    CLICase("initramfs-exclude-bad-glob", lambda t, o: ["initramfs", good_tree(t), "-o", o, "--exclude", "[x"], 2,
            ("--exclude '[x'",), True),
    CLICase("live-nothing-to-boot", lambda t, o: ["live", "-o", o], 2, ("--kernel", "--entry", "--grub-cfg"), True),
    CLICase("live-grub-cfg-with-title", lambda t, o: ["live", "--grub-cfg", tree(t, {"g.cfg": b"echo\n"}) + "/g.cfg",
                                                      "--title", "X", "-o", o], 2, ("--grub-cfg and --title",), True),
    CLICase("live-grub-cfg-missing", lambda t, o: ["live", "--grub-cfg", str(t / "none.cfg"), "-o", o], 1,
            ("--grub-cfg", "none.cfg"), True),
    CLICase("live-entry-without-kernel", lambda t, o: ["live", "--entry", "Title only", "-o", o], 2,
            ("--entry 'Title only'", "TITLE|KERNEL|INITRD|CMDLINE"), True),
    CLICase("live-entry-kernel-missing", lambda t, o: ["live", "--entry", f"T|{t}/gone|", "-o", o], 1,
            ("--entry kernel", "gone"), True),
    CLICase("live-entry-cmdline-grub-changes", lambda t, o: ["live", "--entry", "T|k||a'b", "-o", o], 2,
            ("--entry", "grub-core/lib/cmdline.c"), True),
    CLICase("live-default-out-of-range", lambda t, o: ["live", "--kernel", tree(t, {"k": b"k"}) + "/k", "--default",
                                                       "3", "-o", o], 2, ("--default 3", "1 entries"), True),
    CLICase("live-initrd-without-kernel", lambda t, o: ["live", "--initrd", tree(t, {"i": b"i"}) + "/i", "--entry",
                                                        f"T|{t}/i|", "-o", o], 2, ("--initrd", "--kernel"), True),
]


@pytest.mark.parametrize("case", CLI_CASES, ids=[c.id for c in CLI_CASES])
def test_cli_bad_input(case: CLICase, tmp_path):
    outdir = tmp_path / "out"
    outdir.mkdir()
    out = outdir / "image"
    out.write_bytes(PREVIOUS)
    p = run_cli(*case.args(tmp_path, str(out)), cwd=str(tmp_path), sde=case.sde)
    assert p.returncode == case.status, p.stderr
    lines = p.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("sysexport: error: "), p.stderr
    assert "Traceback" not in p.stderr
    for fragment in case.names:
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"
    assert out.read_bytes() == PREVIOUS and os.listdir(outdir) == ["image"]


def test_cli_debug_shows_the_traceback(tmp_path):
    p = run_cli("--debug", "build", str(tmp_path / "nope"), "-o", str(tmp_path / "x.img"), cwd=str(tmp_path))
    assert p.returncode == 1
    assert "Traceback" in p.stderr and p.stderr.splitlines()[-1].startswith("sysexport: error: ")
    p = run_cli("inspect", str(tmp_path / "none.img"), "--debug", cwd=str(tmp_path))   # after the command too
    assert p.returncode == 1 and "Traceback" in p.stderr
