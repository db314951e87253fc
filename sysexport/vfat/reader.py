"""Read a FAT12/16/32 volume (fatgen103): list the tree with long names, read files.

Independent of the writer's plan: everything is parsed from the image with the
``construct`` declarations of _structs.py (directory entries and FAT tables with the
precompiled equivalents listed in ``_structs.FAST_CODECS``).  Used by tests and tools;
never the only check of an image.
"""
from __future__ import annotations

import os
import sys
from array import array
from dataclasses import dataclass
from typing import BinaryIO, Iterator

from construct import ConstructError

from ..errors import InvalidImageError
from . import geometry as geo
from ._structs import (ATTR_DIRECTORY, ATTR_LONG_NAME, ATTR_LONG_NAME_MASK, ATTR_VOLUME_ID, BOOT_SECTOR_16,
                       BOOT_SECTOR_32, BYTES_PER_SECTOR, DIR_ENTRY_BYTES, DIR_ENTRY_FAST, DIR_NAME_END,
                       DIR_NAME_FREE, DIR_NAME_KANJI, DOT_NAME, DOTDOT_NAME, EOC_MIN, FAT32_ENTRY_MASK,
                       LFN_ENTRY_FAST, LFN_LAST_FLAG, LFN_ORDINAL_MASK, NTRES_LOWER_BASE, NTRES_LOWER_EXT)
from .names import lfn_checksum


@dataclass(slots=True)
class Entry:
    """One directory entry as read: full path, long (or short) name, 8.3 name, attributes."""

    path: str
    name: str
    short_name: str
    attr: int
    first_cluster: int
    size_bytes: int

    @property
    def is_dir(self) -> bool:
        return bool(self.attr & ATTR_DIRECTORY)


class VFATReader:
    """Open a FAT volume in ``image`` (a path or binary file) at ``volume_offset``."""

    def __init__(self, image: str | os.PathLike[str] | BinaryIO, volume_offset: int = 0) -> None:
        self._own = isinstance(image, (str, os.PathLike))
        self.f: BinaryIO = open(image, "rb") if isinstance(image, (str, os.PathLike)) else image
        self.volume_offset = volume_offset
        raw = self._read(0, 512)
        try:
            bs = BOOT_SECTOR_16.parse(raw)
        except ConstructError as e:
            raise InvalidImageError(f"boot sector: {e}") from None
        bpb = bs.bpb
        ss = bpb.BPB_BytsPerSec
        if ss not in BYTES_PER_SECTOR or not bpb.BPB_SecPerClus or not bpb.BPB_NumFATs:
            raise InvalidImageError(f"boot sector: BPB_BytsPerSec {ss}, BPB_SecPerClus "
                                    f"{bpb.BPB_SecPerClus}: not a FAT volume")
        fat_sectors = bpb.BPB_FATSz16
        self.root_cluster = 0
        if fat_sectors == 0:
            bs = BOOT_SECTOR_32.parse(raw)
            fat_sectors = bs.ext.BPB_FATSz32
            self.root_cluster = bs.ext.BPB_RootClus
        total = bpb.BPB_TotSec16 or bpb.BPB_TotSec32
        root_sectors = (bpb.BPB_RootEntCnt * DIR_ENTRY_BYTES + ss - 1) // ss
        data_sector = bpb.BPB_RsvdSecCnt + bpb.BPB_NumFATs * fat_sectors + root_sectors
        self.cluster_count = (total - data_sector) // bpb.BPB_SecPerClus
        self.fat_type = geo.fat_type_of(self.cluster_count)     # fatgen103: by cluster count alone
        if (self.fat_type == 32) != (bpb.BPB_FATSz16 == 0):
            raise InvalidImageError(f"{self.cluster_count} clusters mean FAT{self.fat_type}, "
                                    "but the BPB layout says otherwise")
        self.sector_size = ss
        self.cluster_size = ss * bpb.BPB_SecPerClus
        self.label = bs.ext.BS_VolLab.decode("ascii", "replace").rstrip()
        self.volume_id = bs.ext.BS_VolID
        self.fat_offset = bpb.BPB_RsvdSecCnt * ss
        self.root_offset = (bpb.BPB_RsvdSecCnt + bpb.BPB_NumFATs * fat_sectors) * ss
        self.root_bytes = root_sectors * ss
        self.data_offset = data_sector * ss
        fat_raw = self._read(self.fat_offset, fat_sectors * ss)
        self.fat = _unpack_fat(fat_raw, self.fat_type, self.cluster_count + 2)

    def close(self) -> None:
        if self._own:
            self.f.close()

    def __enter__(self) -> "VFATReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _read(self, offset: int, length: int) -> bytes:
        self.f.seek(self.volume_offset + offset)
        data = self.f.read(length)
        if len(data) != length:
            raise InvalidImageError(f"volume ends before byte {offset + length}")
        return data

    def chain(self, first: int) -> list[int]:
        """Clusters of a chain (fatgen103 "FAT Data Structure"), checked for loops and range."""
        out: list[int] = []
        c = first
        eoc_min = EOC_MIN[self.fat_type]
        while 2 <= c < self.cluster_count + 2:
            out.append(c)
            if len(out) > self.cluster_count:
                raise InvalidImageError(f"cluster chain from {first} loops")
            c = self.fat[c]
        if c < eoc_min:
            raise InvalidImageError(f"cluster chain from {first} ends in {c:#x}, not end-of-chain")
        return out

    def _cluster_data(self, first: int, size: int | None = None) -> Iterator[bytes]:
        remaining = size
        for c in self.chain(first):
            n = self.cluster_size if remaining is None else min(self.cluster_size, remaining)
            if n <= 0:
                break
            yield self._read(self.data_offset + (c - 2) * self.cluster_size, n)
            if remaining is not None:
                remaining -= n

    def _dir_raw(self, first: int) -> bytes:
        if first == 0 and self.fat_type != 32:
            return self._read(self.root_offset, self.root_bytes)
        return b"".join(self._cluster_data(first or self.root_cluster))

    def list_dir(self, first: int, parent: str = "") -> list[Entry]:
        """Entries of one directory (without '.', '..' and the volume label)."""
        raw = self._dir_raw(first)
        out: list[Entry] = []
        lfn: list[tuple[int, bytes, int]] = []
        for pos in range(0, len(raw), DIR_ENTRY_BYTES):
            rec = raw[pos:pos + DIR_ENTRY_BYTES]
            if rec[0] == DIR_NAME_END:
                break
            if rec[0] == DIR_NAME_FREE:
                lfn = []
                continue
            if rec[11] & ATTR_LONG_NAME_MASK == ATTR_LONG_NAME:
                ordinal, n1, _, _, csum, n2, _, n3 = LFN_ENTRY_FAST.unpack(rec)
                lfn.append((ordinal, n1 + n2 + n3, csum))
                continue
            (name11, attr, ntres, _, _, _, _, hi, _, _, lo, size) = DIR_ENTRY_FAST.unpack(rec)
            if attr & ATTR_VOLUME_ID or name11 in (DOT_NAME, DOTDOT_NAME):
                lfn = []
                continue
            if name11[0] == DIR_NAME_KANJI:
                name11 = bytes((DIR_NAME_FREE,)) + name11[1:]
            base, ext = name11[:8].decode("latin-1").rstrip(), name11[8:].decode("latin-1").rstrip()
            short = base + ("." + ext if ext else "")
            name = _long_name(lfn, lfn_checksum(name11))
            if name is None:
                base = base.lower() if ntres & NTRES_LOWER_BASE else base
                ext = ext.lower() if ntres & NTRES_LOWER_EXT else ext
                name = base + ("." + ext if ext else "")
            lfn = []
            path = f"{parent}/{name}" if parent else name
            out.append(Entry(path, name, short, attr, (hi << 16) | lo, size))
        return out

    def walk(self) -> Iterator[Entry]:
        """Every entry, parents before children."""
        stack = [(0, "")]
        while stack:
            first, path = stack.pop()
            entries = self.list_dir(first, path)
            yield from entries
            stack.extend((e.first_cluster, e.path) for e in reversed(entries) if e.is_dir)

    def read(self, entry: Entry) -> bytes:
        """Content of a file entry (small files; use iter_content for large ones)."""
        return b"".join(self.iter_content(entry))

    def iter_content(self, entry: Entry) -> Iterator[bytes]:
        if entry.size_bytes == 0:
            return iter(())
        return self._cluster_data(entry.first_cluster, entry.size_bytes)


def _long_name(parts: list[tuple[int, bytes, int]], csum: int) -> str | None:
    """Assemble long-name entries (stored last part first) if they match the short name."""
    if not parts or not parts[0][0] & LFN_LAST_FLAG or any(p[2] != csum for p in parts):
        return None
    count = parts[0][0] & LFN_ORDINAL_MASK
    if len(parts) != count or [p[0] & LFN_ORDINAL_MASK for p in parts] != list(range(count, 0, -1)):
        return None
    units = b"".join(p[1] for p in reversed(parts))
    for i in range(0, len(units), 2):
        if units[i:i + 2] == b"\0\0":
            units = units[:i]
            break
    return units.decode("utf-16-le", "replace")


def _unpack_fat(raw: bytes, fat_type: int, entries: int) -> array[int] | list[int]:
    """The first ``entries`` entries of a FAT (fatgen103 "FAT Data Structure"), FAT32's
    reserved high 4 bits cleared (``_structs.FAST_CODECS`` ties it to the declarations)."""
    if fat_type == 12:
        out = []
        for j in range(0, min(len(raw) - 2, (entries + 1) // 2 * 3), 3):
            b0, b1, b2 = raw[j], raw[j + 1], raw[j + 2]
            out.append(b0 | ((b1 & 0xF) << 8))
            out.append((b1 >> 4) | (b2 << 4))
        return out
    code = "H" if fat_type == 16 else ("I" if array("I").itemsize == 4 else "L")
    size = array(code).itemsize
    table = array(code, raw[:entries * size])
    if sys.byteorder != "little":
        table.byteswap()
    if fat_type == 32:
        table = array(code, (v & FAT32_ENTRY_MASK for v in table))
    return table
