"""From :class:`~.options.MkisofsOptions` to an image: the mapping onto sysexport's writers.

Without ``--sysexport-hybrid`` the image is a :class:`~.image.MkisofsImage` (ISO 9660 with
El Torito, the system area xorriso would write, appended partitions).  With it, an
:class:`~sysexport.hybrid.ISO9660Hybrid`: the ESP is built from the tree (every file
stored once, a 4K GPT beside the 512-byte one), the El Torito EFI entry names that ESP,
and an EFI boot image or appended ESP image of the command line is not copied: its files
go into the ESP, where they were (the tree's files win where both have one).
"""
from __future__ import annotations

import fnmatch
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from ..errors import InvalidInputError, UsageError
from ..fileinfo import (JOLIET_NAME_FORBIDDEN, JOLIET_NAME_MAX_CHARS, FileInfo, normalize_name, to_fileinfo,
                        walk_host_fileinfo)
from ..iso9660.names import JOLIET_MAX_CHARS as JOLIET_SHORT_MAX
from ..identity import sde_is_set
from ..output import output_target
from .image import BootSpec, MkisofsImage
from .options import MkisofsOptions


@dataclass(frozen=True)
class Source:
    """One PATH of the command line: a host file or directory and where it goes."""

    host: str
    dest: str


def sources(o: MkisofsOptions) -> list[Source]:
    """The PATHs as (host, image destination): with -graft-points ``DEST=SRC`` (``\\=`` is
    a literal '='), else a directory's contents at the root, a file by its name there."""
    if not o.paths:
        raise UsageError("mkisofs: give at least one PATH (a directory or file to put in the image)")
    out = []
    for path in o.paths:
        dest, host = "", path
        if o.graft_points:
            i = _unescaped_equals(path)
            if i >= 0:
                dest, host = path[:i].replace("\\=", "="), path[i + 1:]
            host = host.replace("\\=", "=")
        try:
            st = os.stat(host)
        except OSError as e:
            raise InvalidInputError(f"mkisofs: {host}: cannot read it: {e.strerror}") from None
        dest = normalize_name(dest)
        if not stat.S_ISDIR(st.st_mode) and (not dest or path.split("=", 1)[0].endswith("/")):
            dest = normalize_name(f"{dest}/{os.path.basename(host.rstrip('/'))}")
        out.append(Source(host, dest))
    return out


def _unescaped_equals(text: str) -> int:
    i = 0
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == "=":
            return i
        i += 1
    return -1


def _matches(globs: list[str], name: str, host: str) -> bool:
    """mkisofs matches -m/-hide globs against a file's name and its whole path."""
    base = name.rpartition("/")[2]
    return any(fnmatch.fnmatchcase(base, g) or fnmatch.fnmatchcase(host, g)
               or fnmatch.fnmatchcase(name, g.strip("/")) for g in globs)


def walk(o: MkisofsOptions, src: Source) -> Iterator[FileInfo]:
    """The entries of one PATH, -m/-exclude applied (an excluded directory is not read),
    -r applied, -hide/-hide-joliet as ``hidden_from``, -joliet-long's names; under
    SOURCE_DATE_EPOCH every file's access and change time is its (clamped) modification
    time, as xorriso sets them."""
    skip = len(src.dest) + bool(src.dest)
    root = src.host.rstrip("/") or "/"

    def host_of(name: str) -> str:
        rel = name[skip:] if skip else name
        return src.host if not os.path.isdir(src.host) else (os.path.join(root, rel) if rel else root)

    def excluded(name: str) -> bool:
        return bool(name) and _matches(o.excludes, name, host_of(name))

    same_times = sde_is_set()
    for info in _entries(src, excluded if o.excludes else None):
        host = host_of(info.name)
        if same_times and info.mtime is not None:
            # xorriso under SOURCE_DATE_EPOCH: -volume_date all_file_dates set_to_mtime
            info.atime = info.ctime = info.mtime
        if o.rational_rock:
            rational(info)
        hidden = set(info.hidden_from)
        if o.hide and info.name and _matches(o.hide, info.name, host):
            hidden.add("iso9660")
        if o.hide_joliet and info.name and _matches(o.hide_joliet, info.name, host):
            hidden.add("joliet")
        if hidden:
            info.hidden_from = frozenset(hidden)
        if o.joliet_long:
            _joliet_long(info)
        yield info


def _joliet_long(info: FileInfo) -> None:
    """-joliet-long: a name of 65..103 characters keeps its whole self in the Joliet tree
    (``joliet_name``); shorter ones need nothing, longer ones and names Joliet cannot hold
    as they are get the ISO writer's 64-character rule."""
    base = info.name.rpartition("/")[2]
    if JOLIET_SHORT_MAX < len(base) <= JOLIET_NAME_MAX_CHARS and base.isprintable() \
            and not any(c in JOLIET_NAME_FORBIDDEN or ord(c) > 0xFFFF for c in base):
        info.joliet_name = base


def _entries(src: Source, prune: Callable[[str], bool] | None) -> Iterator[FileInfo]:
    """A directory's tree (without what ``prune`` names, nor below it), or the one file,
    at ``src.dest``."""
    if os.path.isdir(src.host):
        yield from walk_host_fileinfo(src.host, src.dest, prune=prune)
        return
    if prune is not None and prune(src.dest):
        return
    st = os.lstat(src.host)
    if stat.S_ISLNK(st.st_mode):
        target = os.readlink(src.host)
        yield to_fileinfo({"name": src.dest, "mode": st.st_mode, "mtime": st.st_mtime, "uid": st.st_uid,
                           "gid": st.st_gid, "data": os.fsencode(target)})
        return
    yield to_fileinfo({"name": src.dest, "mode": st.st_mode, "mtime": st.st_mtime, "uid": st.st_uid,
                       "gid": st.st_gid, "data_path": src.host})


def rational(info: FileInfo) -> None:
    """mkisofs -r: owner and group 0, everything readable, nothing writable, executable
    (searchable) by all when by anyone (xorrisofs(1), -r)."""
    info.uid = info.gid = 0
    perm = info.mode & 0o7777
    perm = (perm | 0o444) & ~0o222
    if info.is_dir or perm & 0o111:
        perm |= 0o111
    info.mode = (info.mode & ~0o7777) | perm


def read_sort_file(path: str) -> list[tuple[str, int]]:
    """-sort FILE: lines of ``PATH WEIGHT`` (the path a host path, an image path or a
    glob); higher weights are placed first."""
    rules = []
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise InvalidInputError(f"-sort {path}: cannot read it: {getattr(e, 'strerror', None) or e}") from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        name, _, weight = line.rstrip().rpartition(" ")
        try:
            value = int(weight)
        except ValueError:
            raise InvalidInputError(f"-sort {path} line {n}: expected 'PATH WEIGHT', found {line!r}") from None
        if not name.strip() or not -(1 << 31) <= value < (1 << 31):
            raise InvalidInputError(f"-sort {path} line {n}: expected 'PATH WEIGHT' (a 32-bit weight), "
                                    f"found {line!r}")
        rules.append((name.strip(), value))
    return rules


def _weight(rules: list[tuple[str, int]], name: str, host: str) -> int | None:
    for pattern, weight in rules:
        if fnmatch.fnmatchcase(host, pattern) or fnmatch.fnmatchcase(name, pattern.strip("/")):
            return weight
    return None


def _boot_specs(o: MkisofsOptions) -> list[BootSpec]:
    return [BootSpec(b.platform, b.path, b.appended, b.no_emul, b.load_size, b.boot_info_table, b.gpt_basdat,
                     b.grub2_boot_info)
            for b in o.boot if b.path is not None or b.appended is not None]


def _apply_iso_options(iso: Any, o: MkisofsOptions) -> None:
    """Labels, levels, Joliet and the catalog, as the command line gives them."""
    iso.interchange_level = o.iso_level
    iso.joliet = o.joliet
    for attr, value in (("volume_label", o.volume_id), ("application", o.application),
                        ("publisher", o.publisher), ("preparer", o.preparer), ("system", o.system)):
        if value:
            setattr(iso, attr, value)
    if o.catalog:
        iso.boot_catalog_path = o.catalog
    if o.modification_date is not None:
        iso.default_time = o.modification_date


def build_mkisofs_image(o: MkisofsOptions) -> MkisofsImage:
    """An :class:`MkisofsImage` holding everything the options say (not yet written)."""
    if o.grub2_mbr and o.isohybrid_mbr:
        raise UsageError("-isohybrid-mbr and --grub2-mbr: give one MBR")
    if not o.output:
        raise UsageError("mkisofs: give -o FILE (the image to write)")
    img = MkisofsImage(**output_target(o.output))
    _apply_iso_options(img.iso, o)
    img.isohybrid_mbr = o.isohybrid_mbr or o.grub2_mbr
    img.gpt_basdat = o.gpt_basdat
    img.appended_as_gpt = o.appended_as_gpt
    img.partition_offset = o.partition_offset
    img.mbr_force_bootable = o.mbr_force_bootable
    img.protective_msdos_label = o.protective_msdos_label
    img.efi_boot_part_image = o.efi_boot_part_image
    img.pad = o.pad
    if o.modification_date is not None:
        img.volume_centiseconds = round(o.modification_date * 100) % 100
    elif sde_is_set():
        img.volume_centiseconds = 0         # as xorriso: the UUID is SOURCE_DATE_EPOCH's time, -00
    if o.gpt_basdat and img.isohybrid_mbr is None:
        raise UsageError("-isohybrid-gpt-basdat: needs -isohybrid-mbr (the isohybrid partition table it marks)")
    for spec in _boot_specs(o):
        img.add_boot(spec)
    for part in o.appended:
        img.append_partition(part.number, part.mbr_type, part.type_guid, part.path)
    rules = read_sort_file(o.sort_file) if o.sort_file else []
    for src in sources(o):
        for info in walk(o, src):
            if rules and info.is_file:
                rel = info.name[len(src.dest) + 1:] if src.dest else info.name
                weight = _weight(rules, info.name, os.path.join(src.host, rel) if os.path.isdir(src.host)
                                 else src.host)
                if weight is not None:
                    img.sort_weight[info.name] = weight
            img.add(info)
    return img
