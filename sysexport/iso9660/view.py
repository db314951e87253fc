"""The views of an ISO 9660 volume: "rr" (Rock Ridge), "joliet", "iso9660" (plain names),
each a :class:`~sysexport.image.view.View` over one session's tree.

``ISOView(reader, name)`` is a view of an opened :class:`~.reader.ISO9660Reader` (the views
of one reader share its caches and its :attr:`problems`); ``ISOView.from_file(f,
image_size, offset, session, name)`` opens the volume itself.  :func:`open_iso_views`
gives what :func:`sysexport.open` needs: the sessions, the structures (descriptors, path
tables, El Torito catalog and entries) with their byte ranges, the problems seen while
opening, and a maker for each view.

What the views give (see reader.py for the rules):

* ``rr``: Rock Ridge names, modes, owners, link counts, RRIP 1.12 serial numbers as
  ``inode``, times (TF), symlink targets, device numbers, hard links as ``link_id``,
  relocated directories in place, zisofs files decompressed (``Stat.size`` the
  uncompressed size, ``fields["zisofs"]`` saying so);
* ``joliet``: UCS-2 names; no modes, owners or links (those fields are None); zisofs
  files (the same extents as a ZF file of the primary tree) decompressed;
* ``iso9660``: the primary tree's names without version suffix, and relocation shown as
  recorded (``RR_MOVED``, the placeholders as empty files); zisofs decompressed where the
  record has a ZF entry.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import IO, Any, Callable

from ..errors import InvalidImageError, InvalidInputError
from ..image.view import Stat, View
from .reader import VIEW_KINDS, BootCatalogEntry, ISO9660Reader, Problem, VolumeInfo
from .sessions import Session

PLATFORMS = {0x00: "x86", 0x01: "PowerPC", 0x02: "Mac", 0xEF: "EFI"}
"""El Torito platform IDs as ``Structure.fields["platform"]`` names them."""
MEDIA = {0: "no emulation", 1: "1.2M floppy", 2: "1.44M floppy", 3: "2.88M floppy", 4: "hard disk"}


class ISOView(View):
    """One tree ("rr", "joliet" or "iso9660") of one session of an ISO 9660 volume."""

    def __init__(self, reader: ISO9660Reader, name: str = "rr") -> None:
        kind = "iso9660" if name == "iso" else name
        if kind not in VIEW_KINDS:
            raise InvalidInputError(f"ISO 9660 view {name!r}: expected one of {', '.join(VIEW_KINDS)}")
        if kind not in reader.view_names:
            raise InvalidInputError(f"ISO 9660 view {name!r}: this volume has {', '.join(reader.view_names)}")
        self.reader = reader
        self.kind = kind
        self.name = kind

    @classmethod
    def from_file(cls, f: IO[bytes], image_size: int, offset: int = 0, session: int | None = None,
                  name: str = "rr") -> ISOView:
        """The view ``name`` of the volume at byte ``offset`` of the binary file ``f``
        (``image_size`` bytes), in ``session`` (index from 0; default the newest)."""
        return cls(ISO9660Reader(f, offset, session=session, image_size=image_size), name)

    # --- the View contract ------------------------------------------------------------------
    def _root(self) -> Stat:
        return self.reader.root_stat(self.kind)

    def _children(self, directory: Stat) -> list[Stat]:
        return self.reader.children(self.kind, directory)

    def _content(self, entry: Stat) -> IO[bytes]:
        return self.reader.content(self.kind, entry)

    # --- what an ISO view adds --------------------------------------------------------------
    @property
    def problems(self) -> list[Problem]:
        """Every deviation seen so far in this volume (by any of its views): grows as more
        of the tree is read; walk the view first for a complete list."""
        return self.reader.problems

    @property
    def session(self) -> Session:
        return self.reader.session

    @property
    def sessions(self) -> list[Session]:
        return self.reader.sessions

    @property
    def volume(self) -> VolumeInfo:
        return self.reader.volume

    def boot_catalog(self) -> list[BootCatalogEntry]:
        return self.reader.boot_catalog()


@dataclass(frozen=True)
class ISOStructure:
    """One structure of the volume, as ``sysexport.image.Structure`` takes it."""

    kind: str
    offset: int
    size: int
    summary: str
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass
class ISOViews:
    """What :func:`open_iso_views` found: ``views`` maps each view name to a maker (every
    maker's view shares ``reader``); ``problems`` are those seen while opening (the views
    add more to ``reader.problems`` as they are read)."""

    reader: ISO9660Reader
    sessions: list[Session]
    structures: list[ISOStructure]
    problems: list[str]
    views: dict[str, Callable[[], View]]


def open_iso_views(f: IO[bytes], image_size: int, offset: int = 0, session: int | None = None) -> ISOViews:
    """Open the ISO 9660 volume at byte ``offset`` of ``f``: its sessions, structures,
    problems and views (of ``session``, default the newest).  InvalidImageError when there
    is no volume there."""
    reader = ISO9660Reader(f, offset, session=session, image_size=image_size)
    structures = _structures(reader)
    views: dict[str, Callable[[], View]] = {}
    for kind in reader.view_names:
        def make(kind: str = kind) -> View:
            return ISOView(reader, kind)
        views[kind] = make
    return ISOViews(reader, list(reader.sessions), structures, [str(p) for p in reader.problems], views)


def _structures(r: ISO9660Reader) -> list[ISOStructure]:
    out: list[ISOStructure] = []
    v = r.volume
    size = min(r.lba_offset(r.session.start_lba + v.volume_space_size)
               if r.session.found_by in ("emulated TOC", "scan") else r.lba_offset(v.volume_space_size),
               r.image_size_bytes) - r.offset
    extras = [f"Rock Ridge {v.rock_ridge}" if v.rock_ridge else "", f"Joliet level {v.joliet_level}"
              if v.joliet_level else "", f"session {r.session.number} of {len(r.sessions)}"
              if len(r.sessions) > 1 else ""]
    out.append(ISOStructure("iso9660", r.offset, max(size, 0),
                            f"ISO 9660 volume {v.volume_identifier!r}" + "".join(f", {e}" for e in extras if e),
                            _volume_fields(r, v)))
    if len(r.sessions) > 1:
        for s in r.sessions:
            out.append(ISOStructure("iso9660-session", r.lba_offset(s.start_lba), s.size_blocks * 2048,
                                    f"session {s.number} ({s.found_by}): {s.size_blocks} blocks at LBA "
                                    f"{s.start_lba}, volume {s.volume_identifier!r}"
                                    + (" (read)" if s == r.session else ""),
                                    {"index": s.index, "number": s.number, "start_lba": s.start_lba,
                                     "size_blocks": s.size_blocks, "volume_identifier": s.volume_identifier,
                                     "found_by": s.found_by, "chosen": s == r.session}))
    for d in r.descriptors:
        out.append(ISOStructure("iso9660-descriptor", d.offset, 2048, f"volume descriptor: {d.kind} (type {d.type}) "
                                f"at LBA {d.lba}", {"type": d.type, "kind": d.kind, "lba": d.lba}))
    if r.session.descriptor_lba != 16:          # the set at LBA 16 that readers knowing no sessions see
        for lba in range(16, 16 + 8):
            raw = r._sector_or_none(lba)
            if raw is None or raw[1:6] != b"CD001":
                break
            out.append(ISOStructure("iso9660-descriptor", r.lba_offset(lba), 2048,
                                    f"volume descriptor type {raw[0]} at LBA {lba} (the copy at the start, for "
                                    "readers that know no sessions)", {"type": raw[0], "lba": lba, "copy": True}))
            if raw[0] == 255:
                break
    p = r.pvd
    for kind, lba in (("L", p.location_of_type_l_path_table), ("M", p.location_of_type_m_path_table),
                      ("optional L", p.location_of_optional_type_l_path_table),
                      ("optional M", p.location_of_optional_type_m_path_table)):
        if lba:
            out.append(ISOStructure("iso9660-path-table", r.lba_offset(lba), p.path_table_size,
                                    f"type {kind} path table ({p.path_table_size} bytes) at LBA {lba}",
                                    {"type": kind, "lba": lba}))
    if r.svd is not None:
        j = r.svd
        for kind, lba in (("L", j.location_of_type_l_path_table), ("M", j.location_of_type_m_path_table)):
            if lba:
                out.append(ISOStructure("iso9660-path-table", r.lba_offset(lba), j.path_table_size,
                                        f"Joliet type {kind} path table ({j.path_table_size} bytes) at LBA {lba}",
                                        {"type": kind, "lba": lba, "tree": "joliet"}))
    if r.boot_catalog_lba is not None:
        try:
            catalog = r.boot_catalog()
        except InvalidImageError as err:
            r._note("boot catalog", r.lba_offset(r.boot_catalog_lba), str(err))
            catalog = []
        out.append(ISOStructure("eltorito-catalog", r.lba_offset(r.boot_catalog_lba), 2048,
                                f"El Torito boot catalog at LBA {r.boot_catalog_lba}, {len(catalog)} entr"
                                f"{'y' if len(catalog) == 1 else 'ies'}",
                                {"lba": r.boot_catalog_lba, "entries": len(catalog)}))
        for i, e in enumerate(catalog):
            platform = PLATFORMS.get(e.platform_id, f"{e.platform_id:#04x}")
            media = MEDIA.get(e.media_type & 0x0F, f"media type {e.media_type:#04x}")
            fields: dict[str, Any] = {
                "index": i, "platform": platform, "platform_id": e.platform_id, "bootable": e.bootable,
                "boot_indicator": e.boot_indicator, "media_type": e.media_type, "media": media,
                "load_segment": e.load_segment, "system_type": e.system_type, "sector_count": e.sector_count,
                "load_rba": e.load_rba, "catalog_offset": e.catalog_offset, "section": e.section,
                "id_string": e.id_string.decode("latin-1"), "selection_criteria_type": e.selection_criteria_type}
            info = r.boot_info_table(e)
            if info is not None:
                fields["boot_info_table"] = info
            out.append(ISOStructure("eltorito-entry", e.device_offset, e.sector_count * 512,
                                    f"El Torito entry {i}: {platform}, {'bootable' if e.bootable else 'not bootable'},"
                                    f" {media}, {e.sector_count} sectors of 512 at LBA {e.load_rba}", fields))
    return out


def _volume_fields(r: ISO9660Reader, v: VolumeInfo) -> dict[str, Any]:
    out: dict[str, Any] = dict(vars(v))
    out["uuid"] = v.uuid
    out["size_bytes"] = v.size_bytes
    out["views"] = r.view_names
    out["sessions"] = len(r.sessions)
    return out


def directory_structures(reader: ISO9660Reader, limit: int = 100_000) -> list[ISOStructure]:
    """Every directory extent of the primary and Joliet trees (for a map of the image; it
    walks the trees, so it is not part of :func:`open_iso_views`), at most ``limit``."""
    out: list[ISOStructure] = []
    for kind, tree in (("iso9660", "primary"), ("joliet", "Joliet")):
        if kind not in reader.view_names:
            continue
        try:
            for e in ISOView(reader, kind).walk():
                if e.is_dir and e.extents:
                    offset, size = e.extents[0]
                    out.append(ISOStructure(f"{kind}-directory", offset, size, f"{tree} directory {e.path}",
                                            {"path": e.path, "tree": kind}))
                    if len(out) >= limit:
                        return out
        except InvalidImageError as err:
            reader._note("directory", None, f"{tree} tree: {err}")
    return out


def verify(reader: ISO9660Reader, *, read_files: bool = True) -> list[Problem]:
    """Check the whole volume and return every problem seen (``reader.problems``): every
    view walked and (``read_files``) every file read through, zisofs decoded; the type L and
    M path tables against each other and against the primary tree's directories; the El
    Torito catalog (checksum, entries inside the image) and each boot info table (the
    PVD's LBA, the image's LBA, length and checksum)."""
    files_by_offset: dict[int, Stat] = {}
    dir_lbas: set[int] = set()
    for kind in reader.view_names:
        view = ISOView(reader, kind)
        try:
            for e in view.walk():
                if kind == "iso9660" and e.is_dir:
                    dir_lbas.add(e.fields["_dir"][0])
                if not e.is_file:
                    continue
                if kind == "iso9660" and e.extents:
                    files_by_offset.setdefault(e.extents[0][0], e)
                if read_files:
                    try:
                        with view.open(e.path) as f:
                            while f.read(1 << 20):
                                pass
                    except InvalidImageError as err:
                        reader._note("file", e.extents[0][0] if e.extents else None, f"{kind}:{e.path}: {err}")
        except InvalidImageError as err:
            reader._note("directory", None, f"{kind} tree: {err}")
    try:
        tables = [reader.path_table("L"), reader.path_table("M")]
        if tables[0] != tables[1]:
            reader._note("path table", reader.lba_offset(reader.pvd.location_of_type_m_path_table),
                         "the type M path table differs from the type L one")
        listed = {lba for _, lba, _ in tables[0]}
        if dir_lbas and listed != dir_lbas:
            missing, extra = sorted(dir_lbas - listed), sorted(listed - dir_lbas)
            reader._note("path table", reader.lba_offset(reader.pvd.location_of_type_l_path_table),
                         f"the type L path table lists {len(listed)} directories, the tree has {len(dir_lbas)}"
                         + (f"; not listed: blocks {missing[:5]}" if missing else "")
                         + (f"; listed but not in the tree: blocks {extra[:5]}" if extra else ""))
    except InvalidImageError as err:
        reader._note("path table", None, str(err))
    try:
        for entry in reader.boot_catalog():
            image = files_by_offset.get(entry.device_offset)
            info = reader.boot_info_table(entry, image.size if image is not None else None)
            if info is not None and not info["ok"]:
                reader._note("boot info table", entry.device_offset + 8, f"the boot image at LBA {entry.load_rba}: "
                             f"bi_length {info['bi_length']}, bi_csum {info['bi_csum']:#x}; the image has "
                             f"{image.size if image else '?'} bytes, checksum {info.get('checksum', 0):#x}")
    except InvalidImageError as err:
        reader._note("boot catalog", None, str(err))
    return list(reader.problems)
