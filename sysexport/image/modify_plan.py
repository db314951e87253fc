"""Where a file's bytes lie and every record that names them: the plan of
:meth:`sysexport.image.Image.replace_file` (the writing is in :mod:`.modify`).

A file is changed in place, in the space it already has: one *target* is a run of bytes
in the image (the file's extent, or its FAT cluster chain) with every record naming it:

* ISO 9660: every directory record, in the primary (and so Rock Ridge) and Joliet trees of
  every session, whose extent starts where the file's does (hard links, a Joliet twin, an
  older session's record of the same bytes).  A multi-extent file (ECMA-119 6.5.1) changes
  its last section only.  The room is the file's blocks: its size rounded up to 2048 bytes
  (ECMA-119 6.1.2: an extent is whole logical blocks).
* FAT: the directory entry whose first cluster holds those bytes.  The room is the
  clusters of its chain (fatgen103: ceil(size / cluster size) of them); free clusters are
  never taken.  A shrunk file gives its unneeded clusters back.
* A hybrid's shared file is one target named by all three trees: the room is the smaller of
  the ISO rounding and the FAT chain.  A FAT copy of an ISO hard link (FAT has no hard
  links, so the hybrid stores one per name) is a second target changed with it.

Nothing is planned on trust: the volume is read afresh, every tree walked, and the change is
refused (InvalidImageError, before any byte is written) when an entry could not be read,
when the records of one file disagree, when a size field's two byte orders differ, when the
FAT has any problem (a cross-link, a broken chain, FATs that differ), or when the room would
overlap anything else: a descriptor, path table, directory, continuation area, boot catalog
or boot image, a partition table, the FAT's own sectors, another file.  Images it cannot
change are refused with InvalidInputError: a cpio archive, an older ISO session, a UDF bridge
(its file entries hold sizes too), a zisofs (ZF) or sparse (SF) file, an El Torito boot image
(its load size and boot info table checksum describe its bytes), a file with an extended
attribute record.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import InvalidImageError, InvalidInputError
from ..iso9660.reader import ISO9660Reader
from ..partition.enums import GPT_TYPE_MS_BASIC_DATA
from ..iso9660.view import ISOView
from ..vfat.reader import FATVolume
from ..vfat.view import FATView
from .view import Stat, View, normalize

if TYPE_CHECKING:
    from . import Image

ISO_BLOCK = 2048
SYSTEM_AREA_BYTES = 16 * ISO_BLOCK
UDF_IDENTIFIERS = (b"BEA01", b"NSR02", b"NSR03", b"TEA01")
"""ECMA-167 2/9.1: the volume recognition sequence of a UDF bridge follows the ISO descriptors."""
GPT_TYPE_HFS_PLUS = "48465300-0000-11AA-AA11-00306543ECAC"
"""Apple HFS+ (xorriso -hfsplus, grub-mkrescue)."""
HFS_SIGNATURE_OFFSET = 1024         # the HFS+ volume header's signature "H+" (or "HX": HFSX)
CONTAINER_KINDS = frozenset({"iso9660", "iso9660-session", "partition", "fat", "cpio", "eltorito-entry"})
"""Structures that hold files rather than being metadata (partitions and boot images are
checked on their own)."""


def round_up(n: int, unit: int) -> int:
    return -(-n // unit) * unit


@dataclass
class FatNamer:
    """A FAT directory entry naming a target: its volume, view name, path, the image byte
    offset of its 8.3 entry and its chain as cluster numbers in order."""

    volume: FATVolume
    view: str
    path: str
    entry_offset: int
    clusters: list[int]
    size: int


@dataclass
class Target:
    """One run of bytes changed with every record naming it (see the module docstring).

    ``runs`` are (image byte offset, bytes) in file order: together the room.  ``base`` is
    the bytes of a multi-extent file's sections before the last (0 otherwise): the last
    section's record gets ``new size - base``.  ``iso_records`` are (record byte offset,
    base) pairs; ``unit`` the allocation unit (2048, or the cluster size of a FAT-only file).
    """

    label: str
    start: int
    runs: list[tuple[int, int]]
    old_size: int
    unit: int
    base: int = 0
    iso_records: list[int] = field(default_factory=list)
    fat: list[FatNamer] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    max_size: int = -1
    """The largest size a record states (``old_size`` is the smallest; they differ only after an
    interrupted change)."""

    def __post_init__(self) -> None:
        self.max_size = max(self.max_size, self.old_size)

    @property
    def room(self) -> int:
        return sum(n for _, n in self.runs)


@dataclass
class Plan:
    """Every target of one replace_file call; ``path`` as the caller named it."""

    path: str
    targets: list[Target]

    @property
    def room(self) -> int:
        return min(t.room for t in self.targets)

    @property
    def old_size(self) -> int:
        return self.targets[0].old_size


# --- the scans --------------------------------------------------------------------------------------

class _Scan:
    """What one walk of a file system found: files by the image offset of their first byte,
    and every range that must not be written (directories, metadata)."""

    def __init__(self) -> None:
        self.files: dict[int, list[tuple[str, Stat]]] = {}
        self.used: list[tuple[int, int, str]] = []

    def add_file(self, view: str, e: Stat) -> None:
        if e.extents:
            self.files.setdefault(e.extents[0][0], []).append((view, e))

    def add_dir(self, view: str, e: Stat) -> None:
        for off, n in e.extents:
            self.used.append((off, n, f"the directory {view}:{e.path}"))


class IsoScan(_Scan):
    """Every tree of every session of the ISO 9660 volume, read afresh from the image."""

    def __init__(self, img: Image) -> None:
        super().__init__()
        self.reader = ISO9660Reader(img.file, 0, session=img._session, image_size=img.size_bytes)
        r = self.reader
        if len(r.sessions) > 1 and r.session != r.sessions[-1]:
            raise InvalidInputError(f"{img.name}: session {r.session.index} is not the newest "
                                    f"({len(r.sessions)} sessions): an older session cannot be changed; open "
                                    "the newest (the default)")
        _refuse_udf(img, r)
        self.views: dict[str, View] = {k: ISOView(r, k) for k in r.view_names}
        self._walk(r, "", self.views)
        for s in r.sessions[:-1]:
            older = ISO9660Reader(img.file, 0, session=s.index, image_size=img.size_bytes)
            self._walk(older, f"session {s.index} ", {k: ISOView(older, k) for k in older.view_names})
        self.used.append((0, SYSTEM_AREA_BYTES, "the ISO 9660 system area (MBR, GPT headers)"))

    def _walk(self, r: ISO9660Reader, prefix: str, views: dict[str, View]) -> None:
        for kind in [k for k in ("rr" if "rr" in views else "iso9660", "joliet") if k in views]:
            name = prefix + kind
            try:
                for e in views[kind].walk():
                    if e.is_dir:
                        self.add_dir(name, e)
                    elif e.is_file:
                        self.add_file(name, e)
            except InvalidImageError as err:
                raise InvalidImageError(f"{name} tree: {err}; nothing changed") from None
        unread = [p for p in r.problems if p.structure in ("directory", "directory record")
                  and ("skipped" in p.message or "not read" in p.message)]
        if r._skipped or unread:
            first = next(iter(r._skipped.values()))[0] if r._skipped else str(unread[0])
            raise InvalidImageError(f"ISO 9660 volume: not every record could be read ({first}); a record "
                                    "naming the file's bytes might be missed: nothing changed")
        for at, n in sorted(r.ce_areas):
            self.used.append((at, n, "a Rock Ridge continuation area"))


def _refuse_udf(img: Image, r: ISO9660Reader) -> None:
    """A UDF bridge's file entries hold sizes too, which this does not write."""
    last = max((d.lba for d in r.descriptors), default=16)
    for lba in range(last + 1, last + 1 + 16):
        at = r.lba_offset(lba)
        if at + ISO_BLOCK > img.size_bytes:
            break
        img.file.seek(at)
        ident = img.file.read(6)[1:6]
        if ident in UDF_IDENTIFIERS[1:3]:
            raise InvalidInputError(f"{img.name}: a UDF bridge (ECMA-167 {ident.decode()} at LBA {lba}): UDF "
                                    "file entries also record file sizes, and sysexport does not write UDF")
        if ident not in UDF_IDENTIFIERS and ident != b"CD001":
            break


class FatScan(_Scan):
    """One FAT volume, read afresh and checked whole (FATView.check: every chain, both FATs)."""

    def __init__(self, img: Image, name: str) -> None:
        super().__init__()
        self.name = name
        view = img._views[name]()
        assert isinstance(view, FATView)
        self.view: FATView = view
        problems = view.check()
        self.long_chains: dict[int, str] = {}
        for p in list(problems):
            m = _LONG_CHAIN.search(p)
            if m:                          # allocated to the entry: its room (an interrupted shrink)
                self.long_chains[int(m.group(1))] = p
                problems.remove(p)
        if problems:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise InvalidImageError(f"{name}: {problems[0]}{more}; fsck.fat would change this volume, so "
                                    "sysexport does not: nothing changed")
        for e in view.walk():
            if e.is_dir:
                self.add_dir(name, e)
            elif e.is_file:
                self.add_file(name, e)
        v = view.volume
        for what, off, n in v.structures():
            if what != "FAT data region":
                self.used.append((off, n, f"the {what} of {name}"))
        self.region = (v.volume_offset, v.volume_offset + v.volume_bytes)
        self.data = (v.volume_offset + v.data_offset, v.volume_offset + v.data_offset
                     + v.cluster_count * v.cluster_size)

    def namer(self, e: Stat) -> FatNamer:
        """The entry's clusters: its whole chain, to the end-of-chain mark (all allocated to it)."""
        v = self.view.volume
        first = int(e.fields["first_cluster"])
        ch = v.chain(first, None, f"{self.name}:{e.path}")
        if ch.error or ch.clusters * v.cluster_size < e.size:
            raise InvalidImageError(f"{ch.error or f'{self.name}:{e.path}: its chain is too short'}; nothing changed")
        clusters = [c for a, n in ch.runs for c in range(a, a + n)]
        return FatNamer(v, self.name, e.path, int(e.fields["entry_offset"]), clusters, e.size)


    def refuse_other_long_chains(self, namers: list[FatNamer]) -> None:
        """A chain longer than its file is tolerated for the entries being changed only."""
        mine = {n.entry_offset for n in namers if n.view == self.name}
        for at, p in self.long_chains.items():
            if at not in mine:
                raise InvalidImageError(f"{self.name}: {p}; fsck.fat would change this volume, so sysexport does "
                                        "not: nothing changed")


_LONG_CHAIN = re.compile(r"\(entry at byte (\d+)\): its cluster chain goes on past its")


def fat_view_names(img: Image) -> list[str]:
    """One view name per FAT volume ("fat:1" rather than its alias "fat")."""
    out: list[str] = []
    makers: set[int] = set()
    for name in sorted((n for n in img.views() if n.split(":")[0] == "fat"), key=lambda n: (n == "fat", n)):
        key = id(img._views[name])
        if key not in makers:
            makers.add(key)
            out.append(name)
    return out


# --- the plan ---------------------------------------------------------------------------------------

def plan_replace(img: Image, path: str, view: str | None) -> Plan:
    """Everything replace_file will change, checked (see the module docstring)."""
    names = img.views()
    if not names:
        raise InvalidInputError(f"{img.name}: no file system to change")
    from . import VIEW_ALIASES
    chosen = VIEW_ALIASES.get(view, view) if view is not None else \
        next((n for n in names if n.split(":")[0] != "cpio"), names[0])
    if chosen not in names:
        raise InvalidInputError(f"{img.name}: no view {chosen!r} (this image has: {', '.join(names)})")
    if chosen == "cpio":
        raise InvalidInputError(f"{img.name}: a cpio archive cannot be changed in place (each header follows the "
                                "file before it); write a new archive")
    iso = IsoScan(img) if any(n in ("rr", "joliet", "iso9660") for n in names) else None
    fats = [FatScan(img, n) for n in fat_view_names(img)]
    entry, kind = _lookup(img, path, chosen, iso, fats)
    label = f"{chosen}:{entry.path}"
    if not entry.is_file:
        raise InvalidInputError(f"{label}: a {entry.type}, not a regular file: replace_file changes the bytes "
                                "of regular files only")
    if not entry.extents:
        if entry.size:
            raise InvalidImageError(f"{label}: {entry.size} bytes but no extent; nothing changed")
        return Plan(path, [Target(label, -1, [], 0, ISO_BLOCK, names=[label])])
    start = entry.extents[0][0]
    main = _target(img, label, start, iso, fats)
    targets = [main] + _fat_copies(img, main, iso, fats)
    for t in targets:
        _refuse_foreign_trees(img, t)
        _check_room(img, t, iso, fats)
    return Plan(path, targets)


def _lookup(img: Image, path: str, chosen: str, iso: IsoScan | None,
            fats: list[FatScan]) -> tuple[Stat, str]:
    if not isinstance(path, str):
        raise InvalidInputError(f"replace_file(): the path must be a str, found {type(path).__name__}")
    if chosen in ("rr", "joliet", "iso9660"):
        assert iso is not None
        return iso.views[chosen].stat(normalize(path)), chosen
    maker = img._views[chosen]
    scan = next((f for f in fats if img._views[f.name] is maker), None)
    if scan is None:
        raise InvalidInputError(f"{img.name}: view {chosen!r} cannot be changed")
    return scan.view.stat(normalize(path)), chosen


def _target(img: Image, label: str, start: int, iso: IsoScan | None, fats: list[FatScan]) -> Target:
    """The target whose first byte is at ``start``, with every record naming it.

    The records may disagree about the size only (what an interrupted change leaves, see
    :mod:`.modify`): the room comes from the largest, the order of the writes from the
    smallest, and the call finishes the change."""
    iso_namers = iso.files.get(start, []) if iso is not None else []
    fat_namers = [(f, e) for f in fats for _, e in f.files.get(start, [])]
    ref: tuple[tuple[int, int, int], ...] | None = None
    records: list[tuple[int, int]] = []
    names: list[str] = []
    for vname, e in iso_namers:
        _refuse_unchangeable(f"{vname}:{e.path}", e)
        recs = e.fields["_records"]
        if ref is None:
            ref = recs
        elif [(o, n) for _, o, n in recs[:-1]] != [(o, n) for _, o, n in ref[:-1]] or recs[-1][1] != ref[-1][1]:
            raise InvalidImageError(f"{label}: {vname}:{e.path} names the same bytes with other extents; "
                                    "nothing changed")
        records.append((recs[-1][0], recs[-1][2]))
        names.append(f"{vname}:{e.path}")
    _refuse_boot_image(img, label, start)
    namers = [f.namer(e) for f, e in fat_namers]
    for f in fats:
        f.refuse_other_long_chains(namers)
    names += [f"{n.view}:{n.path}" for n in namers]
    if len(namers) > 1:
        raise InvalidImageError(f"{label}: {len(namers)} FAT entries name the clusters at byte {start} (a "
                                "cross-link); nothing changed")
    if ref is not None:
        return _iso_target(img, label, start, ref, records, namers, names)
    if not namers:
        raise InvalidImageError(f"{label}: no record names the bytes at {start}; nothing changed")
    n = namers[0]
    return Target(label, start, _cluster_runs(n), n.size, n.volume.cluster_size, 0, [], namers, names, n.size)


def _iso_target(img: Image, label: str, start: int, ref: tuple[tuple[int, int, int], ...],
                records: list[tuple[int, int]], namers: list[FatNamer], names: list[str]) -> Target:
    base = sum(n for _, _, n in ref[:-1])
    if any(n % ISO_BLOCK for _, _, n in ref[:-1]):
        raise InvalidImageError(f"{label}: a section before the last is not whole blocks (ECMA-119 6.5.1); "
                                "nothing changed")
    last_o = ref[-1][1]
    sizes = [n for _, n in records]
    runs = [(o, n) for _, o, n in ref[:-1] if n] + [(last_o, round_up(max(sizes), ISO_BLOCK))]
    old, biggest = base + min(sizes), base + max(sizes)
    _check_records(img, label, records)
    if namers:
        if len(ref) != 1:
            raise InvalidImageError(f"{label}: a multi-extent file named by a FAT entry too; nothing changed")
        fat_runs = _cluster_runs(namers[0])
        if fat_runs[0][0] != start or len(fat_runs) != 1:
            raise InvalidImageError(f"{label}: its FAT clusters are not the ISO 9660 extent at byte {start}; "
                                    "nothing changed")
        runs = [(start, min(runs[0][1], fat_runs[0][1]))]
        old, biggest = min(old, namers[0].size), max(biggest, namers[0].size)
    runs = [(o, max(0, min(n, img.size_bytes - o))) for o, n in runs]
    return Target(label, start, runs, old, ISO_BLOCK, base, [at for at, _ in records], namers, names, biggest)


def _cluster_runs(n: FatNamer) -> list[tuple[int, int]]:
    v = n.volume
    out: list[list[int]] = []
    for c in n.clusters:
        off = v.cluster_offset(c)
        if out and out[-1][0] + out[-1][1] == off:
            out[-1][1] += v.cluster_size
        else:
            out.append([off, v.cluster_size])
    return [(a, b) for a, b in out]


def _refuse_unchangeable(label: str, e: Stat) -> None:
    if e.fields.get("zisofs") or e.fields.get("_zisofs"):
        raise InvalidInputError(f"{label}: a zisofs-compressed file (Rock Ridge ZF): its bytes are compressed "
                                "blocks with a header and pointer table, which replace_file does not write")
    if "SF" in (e.fields.get("rr") or ()):
        raise InvalidInputError(f"{label}: a sparse file (Rock Ridge SF records a size of its own): not changed")
    if e.fields.get("extended_attribute_record_length"):
        raise InvalidInputError(f"{label}: a file with an extended attribute record (ECMA-119 9.5): not changed")


def _refuse_boot_image(img: Image, label: str, start: int) -> None:
    for s in img.structures:
        if s.kind == "eltorito-entry" and s.offset == start:
            raise InvalidInputError(f"{label}: the boot image of El Torito entry {s.fields.get('index')}: its load "
                                    "size and boot info table describe these bytes, so it is not changed in place")


def _check_records(img: Image, label: str, records: list[tuple[int, int]]) -> None:
    """Each record to change must say, in both byte orders, what the reader read."""
    for at, want in records:
        img.file.seek(at)
        raw = img.file.read(18)
        if len(raw) != 18 or raw[0] < 34:
            raise InvalidImageError(f"{label}: the directory record at byte {at} cannot be read; nothing changed")
        le, be = int.from_bytes(raw[10:14], "little"), int.from_bytes(raw[14:18], "big")
        if le != want or be != want:
            raise InvalidImageError(f"{label}: the directory record at byte {at} gives data_length {le} "
                                    f"(little-endian) and {be} (big-endian), expected {want} (ECMA-119 7.3.3); "
                                    "nothing changed")


def _fat_copies(img: Image, main: Target, iso: IsoScan | None, fats: list[FatScan]) -> list[Target]:
    """FAT entries at the paths of an ISO hard-link group that hold a copy of their own
    (the hybrid writes one per name: FAT has no hard links): changed with the group."""
    if iso is None or not main.iso_records or not fats:
        return []
    paths = {n.split(":", 1)[1] for n in main.names if n.startswith("rr:")}
    if len(paths) < 2:
        return []
    out: list[Target] = []
    for f in fats:
        for p in sorted(paths):
            try:
                e = f.view.stat(p)
            except InvalidInputError:
                continue
            if not e.is_file or not e.extents or e.extents[0][0] == main.start or e.size != main.old_size:
                continue
            if iso.files.get(e.extents[0][0]):
                continue
            t = _target(img, f"{f.name}:{e.path}", e.extents[0][0], None, [f])
            if t.start not in [x.start for x in out]:
                out.append(t)
    return out


def _check_room(img: Image, t: Target, iso: IsoScan | None, fats: list[FatScan]) -> None:
    """The room must overlap nothing but the target itself (see the module docstring)."""
    used: list[tuple[int, int, str]] = []
    fat_volume = next((f for f in fats if t.fat and f.name == t.fat[0].view), None)
    for scan in ([iso] if iso is not None else []) + list(fats):
        used += scan.used
        for start, namers in scan.files.items():
            if start == t.start:
                continue
            for vname, e in namers:
                for off, n in e.extents:
                    if fat_volume is not None and scan is iso and off <= fat_volume.region[0] and \
                            off + n >= fat_volume.region[1]:
                        continue                # an ISO file holding the whole FAT volume (an El Torito image)
                    used.append((off, n, f"the file {vname}:{e.path}"))
    used += _structure_ranges(img)
    if not t.fat:
        for f in fats:
            a, b = f.data
            for off, n in t.runs:
                if off < b and a < off + n:
                    raise InvalidImageError(f"{t.label}: its bytes at {off} lie inside the data region of {f.name}, "
                                            "but no FAT entry names them; nothing changed")
    for off, n in t.runs:
        if n <= 0:
            continue
        for b, m, what in used:
            if m > 0 and off < b + m and b < off + n:
                raise InvalidImageError(f"{t.label}: the {t.room} bytes allocated to it (at byte {off}) overlap "
                                        f"{what} at byte {b}; nothing changed")


def _structure_ranges(img: Image) -> list[tuple[int, int, str]]:
    """Metadata the opened image lists (partition tables, descriptors, path tables, the boot
    catalog), boot images that are not FAT volumes, and partitions holding no file system
    sysexport knows (their bytes belong to something else, e.g. GRUB's core image).  A
    partition holding a FAT volume, the ISO descriptors, or none of the known kinds but typed
    Microsoft basic data (xorriso's "Gap" partitions over the ISO's own bytes) is a container."""
    fat_offsets = {s.offset for s in img.structures if s.kind == "fat"}
    iso = [s for s in img.structures if s.kind == "iso9660"]
    out: list[tuple[int, int, str]] = []
    for s in img.structures:
        if s.kind not in CONTAINER_KINDS:
            out.append((s.offset, s.size, s.summary))
        elif s.kind == "eltorito-entry" and s.offset not in fat_offsets:
            out.append((s.offset, max(s.size, ISO_BLOCK), s.summary))
        elif s.kind == "partition" and s.offset not in fat_offsets and not any(
                s.offset <= i.offset + SYSTEM_AREA_BYTES < s.offset + s.size for i in iso) \
                and str(s.fields.get("type_guid", "")).upper() != str(GPT_TYPE_MS_BASIC_DATA).upper():
            out.append((s.offset, s.size, s.summary))
    return out


def _refuse_foreign_trees(img: Image, t: Target) -> None:
    """An HFS+ partition over ISO files (grub-mkrescue, xorriso -hfsplus) has a catalog of its
    own with every file's size: a change in place would leave it stale."""
    for s in img.structures:
        if s.kind != "partition":
            continue
        hfs = str(s.fields.get("type_guid", "")).upper() == str(GPT_TYPE_HFS_PLUS).upper()
        if not hfs and s.size > HFS_SIGNATURE_OFFSET + 2:
            img.file.seek(s.offset + HFS_SIGNATURE_OFFSET)
            hfs = img.file.read(2) in (b"H+", b"HX")
        if hfs and any(o < s.offset + s.size and s.offset < o + n for o, n in t.runs):
            raise InvalidInputError(f"{t.label}: its bytes are also a file of {s.summary}, an HFS+ tree whose "
                                    "catalog records its size, which sysexport does not write: not changed")


__all__ = ["Plan", "Target", "FatNamer", "plan_replace", "round_up", "ISO_BLOCK"]
