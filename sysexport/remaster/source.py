"""Reading an image to remaster: every entry, the El Torito catalog, the MBR and the partitions.

:func:`read_source` opens an image with :func:`sysexport.open` and turns it into a
:class:`Source`: a model of what a remaster carries over, made without reading any file's
data (each regular file gets a data source that reads its extents of the source image
when the new image is written, see :mod:`.data`).  The source's file stays open for as
long as something refers to those data sources.

What is read (ECMA-119 9.1, RRIP, Joliet, El Torito 2.0-2.5, UEFI 5.2-5.3):

* the entries of the primary tree as Rock Ridge shows them (names, modes, owners, times,
  symlink targets, device numbers), else the plain ISO 9660 names, else Joliet's;
* the Joliet tree matched against it, entry by entry: an entry of one tree only is marked
  hidden from the other, a Joliet name differing from the Rock Ridge one is kept;
* hard links: entries that share an extent (the reader's ``link_id``) become one file;
* in one of our hybrids, the FAT ESP: which files it shares with the ISO (the same
  extent), and which are its own;
* the boot catalog: each entry's platform, emulation, load segment and size, its boot
  image (a file of the tree, a partition, or bytes of no file) and whether it had a boot
  info table;
* the MBR's boot code and the partitions (GPT for 512-byte sectors, else the MBR's).
"""
from __future__ import annotations

import calendar
import os
import stat as _stat
from dataclasses import dataclass, field
from typing import IO, Any

from ..errors import InvalidImageError, InvalidInputError
from ..image import Image
from ..image import open as open_image
from ..image.view import Stat, View
from .data import ExtentsData, ViewFileData

MAX_HIDDEN_BOOT_IMAGE_BYTES = 64 << 20
"""A boot image that no directory names is read into memory (the ISO writer takes such an
image as bytes); more than this is refused."""
JOLIET_WRITER_CHARS = 64
"""Joliet names the writer makes itself hold at most this many characters; a longer one of
the source (xorriso -joliet-long: up to 103) is kept by giving it as ``joliet_name``."""
NAMESPACES = ("iso9660", "joliet")
"""The ISO namespaces an entry can be hidden from (Rock Ridge names live in the primary tree)."""


@dataclass
class SourceEntry:
    """One entry of the source, as it will be added to the new image.

    ``name`` is the path relative to the root ('' for the root); ``stat`` the entry as
    the primary tree shows it (or the Joliet tree, for an entry only there); ``joliet_name``
    the last component of its Joliet name when that differs; ``hidden_from`` the namespaces
    it was absent from; ``target`` where a hybrid stores it ("both", "iso", "esp");
    ``link_group`` the hard-link group (entries sharing one extent), or None.
    """

    name: str
    stat: Stat
    joliet_name: str | None = None
    hidden_from: tuple[str, ...] = ()
    target: str = "both"
    link_group: int | None = None
    fat: Stat | None = None
    data: Any = None
    flags: int = 0
    iso_name: str | None = None

    @property
    def is_dir(self) -> bool:
        return self.stat.type == "dir"

    @property
    def is_file(self) -> bool:
        return self.stat.type == "file"


@dataclass
class SourceBootEntry:
    """One El Torito catalog entry of the source (El Torito 2.2, 2.4) and where its image is.

    ``path`` names the boot image when it is a file of the tree; ``partition`` is the
    index of the partition it covers (an EFI entry naming the ESP); otherwise ``data``
    holds the image's bytes (an image in no directory).  ``boot_info_table`` says whether
    the image carried a boot info table naming its own place (re-patched by the writer);
    ``grub2_boot_info`` whether it carried GRUB's blocklist address (xorriso's
    grub2-boot-info, byte 2548: its 512-byte LBA + 5).
    """

    platform: int
    media_type: int
    load_segment: int
    system_type: int
    sector_count: int
    bootable: bool
    section_id: bytes
    device_offset: int
    path: str | None = None
    partition: int | None = None
    data: bytes | None = None
    boot_info_table: bool = False
    grub2_boot_info: bool = False


@dataclass
class SourcePartition:
    """One partition of the source: its number, byte range, type (a GPT type GUID as a
    string, or an MBR type byte), name and attributes, and what it is to the remaster:
    ``role`` "esp" (the FAT the hybrid shares files with), "file" (it covers the bytes of
    the file ``path`` of the tree, as grub-mkrescue's efi.img), "extra" (past everything
    the ISO holds: its bytes are copied), or "iso" (a piece of the ISO itself, such as
    xorriso's gap and HFS+ partitions: not carried)."""

    number: int
    device_offset: int
    size_bytes: int
    table: str
    type: str
    name: str = ""
    attributes: int = 0
    role: str = "iso"
    path: str | None = None


@dataclass
class Source:
    """What a remaster carries over from one image (see the module docstring)."""

    image: Image
    name: str
    entries: dict[str, SourceEntry]
    volume: Any
    boot: list[SourceBootEntry]
    catalog_path: str | None
    catalog_hidden: bool
    mbr: bytes
    partitions: list[SourcePartition]
    joliet: bool
    rock_ridge: str | None
    hybrid: bool
    fat_label: str | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def file(self) -> IO[bytes]:
        return self.image.file

    @property
    def mbr_boot_code(self) -> bytes | None:
        """The MBR's first 440 bytes, or None when they are all zero (or there is no MBR)."""
        code = self.mbr[:440]
        return code if any(code) and self.mbr[510:512] == b"\x55\xaa" else None

    def volume_time(self) -> tuple[float, int] | None:
        """(seconds, centiseconds) of the source's volume modification date (else its
        creation date), read as UTC digits: the UUID that blkid, udev and GRUB's
        ``search --fs-uuid`` know the volume by (grub-mkrescue's core image searches
        for it)."""
        for digits in (self.volume.modification_date, self.volume.creation_date):
            if digits and digits.strip("0\x00 ") and digits[:16].isdigit():
                try:
                    seconds = calendar.timegm((int(digits[0:4]), int(digits[4:6]), int(digits[6:8]),
                                               int(digits[8:10]), int(digits[10:12]), int(digits[12:14])))
                except (ValueError, OverflowError):
                    continue
                return float(seconds), int(digits[14:16])
        return None


def read_source(src: str | os.PathLike[str] | IO[bytes]) -> Source:
    """Open ``src`` (a path or a seekable binary file) and read what a remaster carries.

    InvalidInputError when it is not an ISO 9660 image (a remaster rebuilds an ISO);
    InvalidImageError when its trees cannot be read."""
    image = open_image(src)
    try:
        return _read(image)
    except BaseException:
        image.close()
        raise


def _read(image: Image) -> Source:
    views = image.views()
    primary_kind = next((k for k in ("rr", "iso9660", "joliet") if k in views), None)
    if primary_kind is None:
        raise InvalidInputError(f"{image.name}: not an ISO 9660 image (it has {', '.join(views) or 'no views'}); "
                                "remaster rebuilds ISO 9660 images")
    primary = image.view(primary_kind)
    reader = getattr(primary, "reader")
    volume = reader.volume
    catalog_offset = reader.lba_offset(reader.boot_catalog_lba) if reader.boot_catalog_lba is not None else None
    entries, catalog_path = _primary_entries(image, primary, catalog_offset)
    if primary_kind == "rr" and "iso9660" in views:
        _plain_names(image.view("iso9660"), entries)
    has_joliet = "joliet" in views
    if has_joliet and primary_kind != "joliet":
        _match_joliet(image, primary, image.view("joliet"), entries, catalog_offset, [])
    _link_groups(entries)
    partitions = _partitions(image)
    hybrid, fat_label = _match_fat(image, entries, partitions)
    boot = _boot_entries(image, reader, entries, partitions)
    _classify_partitions(image, entries, partitions, hybrid, volume)
    head = _read_at(image.file, 0, 512)
    return Source(image=image, name=image.name, entries=entries, volume=volume, boot=boot,
                  catalog_path=catalog_path, catalog_hidden=catalog_offset is not None and catalog_path is None,
                  mbr=head if len(head) == 512 else bytes(512), partitions=partitions, joliet=has_joliet,
                  rock_ridge=volume.rock_ridge if primary_kind == "rr" else None, hybrid=hybrid, fat_label=fat_label,
                  problems=[str(p) for p in reader.problems])


def _read_at(f: IO[bytes], offset: int, n: int) -> bytes:
    f.seek(offset)
    return f.read(n)


def _rel(path: str) -> str:
    return path.strip("/")


def _primary_entries(image: Image, view: View, catalog_offset: int | None) -> tuple[dict[str, SourceEntry],
                                                                                    str | None]:
    """Every entry of the primary tree, parents first; the boot catalog's own entry is
    left out (the writer makes a new catalog) and its path returned."""
    entries: dict[str, SourceEntry] = {}
    catalog_path = None
    for st in view.walk():
        name = _rel(st.path)
        if catalog_offset is not None and st.is_file and st.extents and st.extents[0][0] == catalog_offset:
            catalog_path = name
            continue
        entry = SourceEntry(name, st, flags=_user_flags(st))
        if st.is_file:
            entry.data = _data_of(image, view, st)
        entries[name] = entry
    return entries, catalog_path


def _plain_names(view: View, entries: dict[str, SourceEntry]) -> None:
    """Each entry's plain ISO 9660 name (its record read without Rock Ridge), by the
    directory record both views read: what readers without Rock Ridge and Joliet see."""
    by_record: dict[int, str] = {}
    try:
        for st in view.walk():
            at = st.fields.get("record_offset")
            if isinstance(at, int) and st.path != "/":
                by_record[at] = st.name
    except InvalidImageError:
        return
    for entry in entries.values():
        at = entry.stat.fields.get("record_offset")
        if isinstance(at, int) and at in by_record:
            entry.iso_name = by_record[at]


def _user_flags(st: Stat) -> int:
    """The record flags a caller may set again (ECMA-119 9.1.6: hidden, associated)."""
    return int(st.fields.get("iso_flags", 0)) & 0x05


def _data_of(image: Image, view: View, st: Stat) -> Any:
    """A data source for a regular file: its extents of the source image, or (zisofs) the
    view's decompressing stream, opened when the new image is written."""
    if st.size == 0:
        return None
    if "zisofs" in st.fields:
        return ViewFileData(view, st.path, st.size)
    return ExtentsData(image.file, st.extents, st.size, f"{image.name}:{st.path}")


def _children_map(view: View, walked: list[Stat] | None = None) -> dict[str, list[Stat]]:
    """{directory path: its entries} of a view (``walked``: the view's walk, when made already)."""
    out: dict[str, list[Stat]] = {}
    for st in walked if walked is not None else view.walk():
        if st.path != "/":
            out.setdefault(st.path.rsplit("/", 1)[0] or "/", []).append(st)
    return out


def _match_joliet(image: Image, primary: View, joliet: View, entries: dict[str, SourceEntry],
                  catalog_offset: int | None, catalog: list[Stat]) -> None:
    """Pair each Joliet entry with the primary entry it shows (see :class:`_Candidates`);
    mark what one tree alone has."""
    p_children = _children_map(primary, [e.stat for e in entries.values()] + catalog)
    j_children = _children_map(joliet)
    matched: set[str] = {""}
    # (primary directory or None for a Joliet-only one, Joliet directory, its name in the model)
    stack: list[tuple[str | None, str, str]] = [("/", "/", "")]
    while stack:
        p_dir, j_dir, parent = stack.pop()
        left = _Candidates([c for c in p_children.get(p_dir, []) if _rel(c.path) in entries]
                           if p_dir is not None else [])
        for j in j_children.get(j_dir, []):
            if j.is_file and catalog_offset is not None and j.extents and j.extents[0][0] == catalog_offset:
                continue
            p = left.take(j)
            if p is None:
                name = f"{parent}/{j.name}" if parent else j.name
                while name in entries:
                    name += "~"
                entry = SourceEntry(name, j, hidden_from=("iso9660",))
                if j.is_file:
                    entry.data = _data_of(image, joliet, j)
                entries[name] = entry
                matched.add(name)
                if j.is_dir:
                    stack.append((None, j.path, name))     # a Joliet-only directory: its children too
                continue
            key = _rel(p.path)
            matched.add(key)
            if j.name != p.name or len(j.name) > JOLIET_WRITER_CHARS:
                entries[key].joliet_name = j.name       # the writer would cut a long one to 64
            if p.is_dir and j.is_dir:
                stack.append((p.path, j.path, key))
    for key, entry in entries.items():
        if key not in matched and "iso9660" not in entry.hidden_from:
            entry.hidden_from = entry.hidden_from + ("joliet",)


class _Candidates:
    """The primary entries of one directory not yet paired with a Joliet entry, indexed so
    that pairing a directory of n entries takes about n steps.

    A Joliet file with data is the primary file of the same extent (the same name preferred
    among hard links); anything else the entry of the same name, else the same name but for
    case, else (a Joliet name cut short) the one whose name it begins; Joliet shows
    symlinks, devices and fifos as files."""

    def __init__(self, stats: list[Stat]) -> None:
        self.by_extent: dict[int, list[Stat]] = {}
        self.by_name: dict[str, list[Stat]] = {}
        self.by_lower: dict[str, list[Stat]] = {}
        self.long: list[Stat] = []
        self.taken: set[int] = set()
        for c in stats:
            if c.is_file and c.extents and c.size:
                self.by_extent.setdefault(c.extents[0][0], []).append(c)
                continue
            self.by_name.setdefault(c.name, []).append(c)
            self.by_lower.setdefault(c.name.lower(), []).append(c)
            if len(c.name) >= 60:
                self.long.append(c)

    def _free(self, stats: list[Stat], j: Stat) -> list[Stat]:
        return [c for c in stats if id(c) not in self.taken and
                (c.type == j.type or (j.is_file and c.type not in ("dir", "file")))]

    def take(self, j: Stat) -> Stat | None:
        """The primary entry ``j`` shows, now paired (None: ``j`` is in Joliet only)."""
        found: Stat | None = None
        if j.is_file and j.extents and j.size:
            same = [c for c in self.by_extent.get(j.extents[0][0], []) if id(c) not in self.taken]
            found = next((c for c in same if c.name == j.name), same[0] if same else None)
        else:
            stem = j.name.rsplit(".", 1)[0][:60]
            for pool in (self.by_name.get(j.name, []), self.by_lower.get(j.name.lower(), []),
                         [c for c in self.long if c.name.startswith(stem)] if len(j.name) >= 60 else []):
                free = self._free(pool, j)
                if free:
                    found = free[0]
                    break
        if found is not None:
            self.taken.add(id(found))
        return found


def _link_groups(entries: dict[str, SourceEntry]) -> None:
    """Entries sharing one extent (the reader's ``link_id``, or one data extent named by
    several records) become one hard-link group."""
    groups: dict[Any, list[SourceEntry]] = {}
    for entry in entries.values():
        st = entry.stat
        if not entry.is_file or not st.extents or st.size == 0:
            continue
        groups.setdefault(("extent", st.extents[0][0], st.size), []).append(entry)
    number = 0
    for members in groups.values():
        if len(members) > 1:
            number += 1
            for m in members:
                m.link_group = number


def _partitions(image: Image) -> list[SourcePartition]:
    out: list[SourcePartition] = []
    for s in image.structures:
        if s.kind != "partition":
            continue
        f = s.fields
        table = str(f.get("table", ""))
        if table == "gpt4096" and any(p.table == "gpt512" for p in out):
            continue
        ptype = str(f.get("type_guid", "")) if table.startswith("gpt") else s.summary.rsplit("(", 1)[-1].rstrip(")")
        out.append(SourcePartition(int(f.get("number", 0)), s.offset, s.size, table, ptype,
                                   str(f.get("name", "") or ""), int(f.get("attributes", 0) or 0)))
    return out


def _match_fat(image: Image, entries: dict[str, SourceEntry],
               partitions: list[SourcePartition]) -> tuple[bool, str | None]:
    """In one of our hybrids (a FAT ESP partition whose files share their extents with the
    ISO's), set each entry's target: "both" when the FAT has it, "iso" when not, and add
    the FAT's own entries as "esp".  Returns whether the source is such a hybrid, and
    its FAT label."""
    esp_view = None
    for p in partitions:
        view_name = f"fat:{p.number}"
        if view_name in image.views():
            esp_view = (p, image.view(view_name))
            break
    if esp_view is None:
        return False, None
    part, fat = esp_view
    fat_entries = list(fat.walk())
    by_offset = {st.extents[0][0]: st for st in fat_entries if st.is_file and st.extents}
    shared = [e for e in entries.values() if e.is_file and e.stat.extents and e.stat.extents[0][0] in by_offset]
    if not shared:
        return False, None
    part.role = "esp"
    by_name = {_rel(st.path).lower(): st for st in fat_entries}
    taken: set[str] = set()
    for key, entry in entries.items():
        st = entry.stat
        fat_st = by_name.get(key.lower())
        # The same path and kind, and for a file the same bytes: one extent, or (a hard link,
        # which FAT holds as a copy of its own) the same size.
        same = fat_st is not None and fat_st.type == st.type and (
            not st.is_file or fat_st.size == st.size and (
                not st.extents or not fat_st.extents or st.extents[0][0] == fat_st.extents[0][0]
                or entry.link_group is not None))
        if key == "" or same:
            entry.target = "both"
            entry.fat = fat_st
            taken.add(key.lower())
        else:
            entry.target = "iso"
    for st in fat_entries:
        key = _rel(st.path)
        if key.lower() in taken or st.type not in ("file", "dir"):
            continue
        entry = SourceEntry(key, st, target="esp", fat=st)
        if st.is_file and st.size:
            entry.data = ExtentsData(image.file, st.extents, st.size, f"{image.name}:{fat.name}:{st.path}")
        entries[key if key not in entries else f"{key}\0esp"] = entry
    label = getattr(fat, "label", None) or getattr(fat, "boot_label", None)
    return True, label if isinstance(label, str) else None


def _boot_entries(image: Image, reader: Any, entries: dict[str, SourceEntry],
                  partitions: list[SourcePartition]) -> list[SourceBootEntry]:
    """The catalog's entries, each with where its image is (a file, a partition, bytes)."""
    try:
        catalog = reader.boot_catalog()
    except InvalidImageError as err:
        raise InvalidImageError(f"{image.name}: El Torito boot catalog: {err}") from None
    by_offset: dict[int, str] = {}
    for key, entry in entries.items():
        st = entry.stat
        if entry.is_file and st.extents and entry.target != "esp" and "iso9660" not in entry.hidden_from:
            by_offset.setdefault(st.extents[0][0], key)
    out: list[SourceBootEntry] = []
    for e in catalog:
        b = SourceBootEntry(platform=e.platform_id, media_type=e.media_type, load_segment=e.load_segment,
                            system_type=e.system_type, sector_count=e.sector_count, bootable=e.bootable,
                            section_id=bytes(e.id_string), device_offset=e.device_offset)
        b.boot_info_table = reader.boot_info_table(e) is not None
        path = by_offset.get(e.device_offset)
        part = next((p for p in partitions if p.device_offset == e.device_offset), None)
        if path is not None:
            b.path = path
            head = _read_at(image.file, e.device_offset + 2548, 8)
            b.grub2_boot_info = len(head) == 8 and int.from_bytes(head, "little") == e.load_rba * 4 + 5
        elif part is not None:
            b.partition = part.number
        else:
            b.data = _hidden_image(image, e)
        out.append(b)
    return out


def _hidden_image(image: Image, e: Any) -> bytes:
    """The bytes of a boot image that no directory names: the FAT volume there (its size
    from its boot sector, as ``open()`` found it), else the entry's load size."""
    size = e.sector_count * 512
    for s in image.structures:
        if s.kind == "fat" and s.offset == e.device_offset and s.size:
            size = s.size
    if size <= 0:
        raise InvalidImageError(f"{image.name}: El Torito entry at LBA {e.load_rba}: its image is in no "
                                "directory and its size is unknown (sector count 0)")
    if size > MAX_HIDDEN_BOOT_IMAGE_BYTES:
        raise InvalidInputError(f"{image.name}: El Torito entry at LBA {e.load_rba}: an image in no directory "
                                f"of {size} bytes; at most {MAX_HIDDEN_BOOT_IMAGE_BYTES} are carried")
    data = _read_at(image.file, e.device_offset, size)
    if len(data) != size:
        raise InvalidImageError(f"{image.name}: El Torito entry at LBA {e.load_rba}: the image ends inside its "
                                f"boot image ({size} bytes at byte {e.device_offset})")
    return data


def _classify_partitions(image: Image, entries: dict[str, SourceEntry], partitions: list[SourcePartition],
                         hybrid: bool, volume: Any) -> None:
    """Each partition's role (see :class:`SourcePartition`)."""
    starts: list[tuple[int, int, str]] = []
    for key, entry in entries.items():
        if entry.target != "esp":
            for off, size in entry.stat.extents:
                starts.append((off, size, key))
    volume_end = volume.volume_space_size * 2048
    for p in partitions:
        if p.role == "esp":
            continue
        end = p.device_offset + p.size_bytes
        exact = next((key for off, size, key in starts
                      if off == p.device_offset and entries[key].is_file and size >= p.size_bytes - 2047
                      and size <= p.size_bytes), None)
        if exact is not None:
            p.role, p.path = "file", exact
            continue
        inside = any(p.device_offset <= off < end for off, _size, _key in starts)
        if p.device_offset < 32768 and end > 0 and not inside:
            p.role = "iso"
        elif not inside and (hybrid or p.device_offset >= volume_end):
            p.role = "extra"
        else:
            p.role = "iso"


def mode_of(st: Stat) -> int:
    """The entry's mode; a view without modes (plain ISO 9660, Joliet) gives read-only
    files and directories as Linux shows them (0444 / 0555)."""
    if st.mode is not None:
        return st.mode
    kind = {"dir": _stat.S_IFDIR, "file": _stat.S_IFREG, "symlink": _stat.S_IFLNK}.get(st.type, _stat.S_IFREG)
    return kind | (0o555 if st.type == "dir" else 0o444)


__all__ = ["Source", "SourceEntry", "SourceBootEntry", "SourcePartition", "read_source", "mode_of"]
