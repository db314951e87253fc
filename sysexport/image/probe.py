"""Finding the structures and views of an image (the body of :func:`sysexport.image.open`).

Each probe looks for one kind of structure, records what it found as
:class:`~sysexport.image.Structure` values and the views it offers, and records a failure
as a problem without stopping the others (a damaged GPT does not hide the ISO 9660 view).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import InvalidImageError, SysExportError

if TYPE_CHECKING:
    from . import Image

ISO_SECTOR = 2048
SYSTEM_AREA_BYTES = 16 * ISO_SECTOR
GPT_BLOCK_SIZES = (512, 4096)
PROBE_LIMIT = 64
"""At most this many FAT volumes (partitions, El Torito images) are probed."""


def _read(img: Image, offset: int, n: int) -> bytes:
    if offset < 0 or offset >= img.size_bytes:
        return b""
    img.file.seek(offset)
    return img.file.read(min(n, img.size_bytes - offset))


def probe_all(img: Image, *, session: int | None, codepage: str) -> None:
    """Every probe, in an order where the cheap and certain come first."""
    partitions = _probe_partition_tables(img)
    iso_found = _probe_iso(img, session)
    fat_candidates: list[tuple[int, int | None, str, bool]] = []   # (offset, size, view name, is ESP)
    for index, offset, size, is_esp in partitions:
        fat_candidates.append((offset, size, f"fat:{index}", is_esp))
    fat_candidates += _eltorito_fat_candidates(img)
    if not partitions and not iso_found:
        fat_candidates.append((0, None, "fat", True))
    _probe_fats(img, fat_candidates[:PROBE_LIMIT], codepage)
    if not img.views():
        _probe_cpio(img)


# --- partition tables ------------------------------------------------------------------------------

def _probe_partition_tables(img: Image) -> list[tuple[int, int, int, bool]]:
    """MBR and both GPTs; returns (partition number, byte offset, size, is an ESP) of every
    partition (the GPT's when there is one, else the MBR's)."""
    from ..partition.enums import GPT_TYPE_ESP, GPT_TYPE_NAMES, MBR_TYPE_NAMES
    from ..partition.gpt import GPT
    from ..partition.mbr import MBR

    out: list[tuple[int, int, int, bool]] = []
    head = _read(img, 0, 512)
    mbr = None
    if len(head) == 512 and head[510:512] == b"\x55\xaa" and not _is_fat_boot_sector(head):
        try:
            mbr = MBR.parse(head)
        except SysExportError as e:
            img.problems.append(f"MBR: {e}")
    gpts: dict[int, Any] = {}
    for bs in GPT_BLOCK_SIZES:
        if _read(img, bs, 8) != b"EFI PART":
            continue
        try:
            gpts[bs] = GPT.parse(img.file, bs)
        except SysExportError as e:
            img.problems.append(f"GPT ({bs}-byte blocks): {e}")
            try:
                gpts[bs] = GPT.parse(img.file, bs, check_backup=False)
            except SysExportError:
                pass
    if mbr is not None:
        entries = [p for p in mbr.partitions if p is not None]
        protective = any(p.type_id == 0xEE for p in entries)
        img.structures.append(_structure("mbr", 0, 512, f"{'protective' if protective else 'classic'} MBR, "
                                         f"{len(entries)} entr{'y' if len(entries) == 1 else 'ies'}",
                                         disk_signature=f"{mbr.disk_signature:08x}",
                                         boot_code=any(mbr.boot_code),
                                         partitions=[dict(type=f"{p.type_id:#04x}",
                                                          type_name=MBR_TYPE_NAMES.get(p.type_id, "unknown"),
                                                          first_lba=p.first_lba, sector_count=p.sector_count,
                                                          bootable=p.bootable) for p in entries]))
        if not gpts:
            for i, p in enumerate(mbr.partitions, 1):
                if p is None or p.type_id in (0, 0xEE, 0x05, 0x0F, 0x85):
                    continue
                off, size = p.first_lba * 512, p.sector_count * 512
                out.append((i, off, size, p.type_id == 0xEF))
                img.structures.append(_structure("partition", off, size,
                                                 f"MBR partition {i}: {MBR_TYPE_NAMES.get(p.type_id, 'unknown')} "
                                                 f"({p.type_id:#04x})", table="mbr", number=i))
    for bs, gpt in gpts.items():
        lay = gpt
        img.structures.append(_structure(
            "gpt", bs, bs, f"GPT for {bs}-byte blocks, disk {gpt.disk_guid}, {len(gpt.partitions)} partitions",
            block_size=bs, disk_guid=str(gpt.disk_guid), first_usable_lba=lay.first_usable_lba,
            last_usable_lba=lay.last_usable_lba, entry_count=gpt.entry_count,
            primary_entries_offset=gpt.primary_entries_offset, backup_header_offset=gpt.backup_header_offset,
            backup_entries_offset=gpt.backup_entries_offset))
        array_bytes = gpt.entry_count * 128
        for kind, what, off, n in (("gpt-entries", "primary entry array", gpt.primary_entries_offset, array_bytes),
                                   ("gpt-entries", "backup entry array", gpt.backup_entries_offset, array_bytes),
                                   ("gpt-backup", "backup header", gpt.backup_header_offset, bs)):
            if off is not None:
                img.structures.append(_structure(kind, off, n, f"GPT for {bs}-byte blocks: {what}",
                                                 block_size=bs, part=what))
    if gpts:
        bs = 512 if 512 in gpts else 4096
        gpt = gpts[bs]
        for p in gpt.partitions:
            if p.device_offset is None or p.size_bytes is None or p.index is None:
                continue
            name = GPT_TYPE_NAMES.get(p.type_guid, str(p.type_guid))
            out.append((p.index, p.device_offset, p.size_bytes, p.type_guid == GPT_TYPE_ESP))
            img.structures.append(_structure(
                "partition", p.device_offset, p.size_bytes, f"GPT partition {p.index} {p.name!r}: {name}",
                table=f"gpt{bs}", number=p.index, type_guid=str(p.type_guid), type_name=name,
                unique_guid=str(p.unique_guid), name=p.name, attributes=p.attributes))
        if len(gpts) == 2:
            a, b = gpts[512], gpts[4096]
            same = [(p.device_offset, p.size_bytes, p.type_guid) for p in a.partitions] == \
                [(p.device_offset, p.size_bytes, p.type_guid) for p in b.partitions]
            if not same:
                img.problems.append("GPT: the 512-byte and the 4096-byte tables describe different partitions")
    return out


def _is_fat_boot_sector(sector: bytes) -> bool:
    """A FAT boot sector also ends in 0x55AA: tell it from an MBR as libblkid does
    (:func:`sysexport.partition.probe.looks_like_fat`)."""
    from ..partition.probe import looks_like_fat
    return looks_like_fat(sector)


# --- ISO 9660 ---------------------------------------------------------------------------------------

def _probe_iso(img: Image, session: int | None) -> bool:
    if _read(img, SYSTEM_AREA_BYTES + 1, 5) != b"CD001":
        return False
    from ..iso9660.view import open_iso_views
    from . import Structure
    try:
        found = open_iso_views(img.file, img.size_bytes, session=session)
    except InvalidImageError as e:
        img.problems.append(f"ISO 9660: {e}")
        return False
    img.sessions = found.sessions
    for s in found.structures:
        img.structures.append(Structure(s.kind, s.offset, s.size, s.summary, dict(s.fields)))
    img.problems.extend(found.problems)
    for name, make in found.views.items():
        img.add_view(name, make)
    return True


def _eltorito_fat_candidates(img: Image) -> list[tuple[int, int | None, str, bool]]:
    """FAT images named by El Torito entries that are not one of the partitions."""
    out: list[tuple[int, int | None, str, bool]] = []
    parts = {(s.offset) for s in img.structures if s.kind == "partition"}
    for s in img.structures:
        if s.kind != "eltorito-entry":
            continue
        offset = s.offset
        if offset in parts or not _is_fat_boot_sector(_read(img, offset, 512)):
            continue
        out.append((offset, s.size or None, "fat:eltorito" if not out else f"fat:eltorito{len(out)}",
                    s.fields.get("platform") == "EFI"))
    return out


# --- FAT ------------------------------------------------------------------------------------------

def _probe_fats(img: Image, candidates: list[tuple[int, int | None, str, bool]], codepage: str) -> None:
    from ..vfat.view import FATView

    first: str | None = None
    esp: str | None = None
    for offset, size, name, is_esp in candidates:
        head = _read(img, offset, 512)
        if not _is_fat_boot_sector(head):
            continue
        try:
            probe = FATView(img.file, img.size_bytes, offset, codepage, volume_size=size, name=name)
        except InvalidImageError as e:
            img.problems.append(f"FAT at byte {offset} ({name}): {e}")
            continue
        info = probe.info()
        img.structures.append(_structure("fat", offset, int(info.get("size_bytes", size or 0) or 0),
                                         f"FAT{probe.fat_type} volume ({name}), label {probe.label or probe.boot_label!r}",
                                         view=name, **info))

        def make(offset: int = offset, size: int | None = size, name: str = name) -> FATView:
            return FATView(img.file, img.size_bytes, offset, codepage, volume_size=size, name=name)

        img.add_view(name, make)
        first = first or name
        if is_esp and esp is None:
            esp = name
    chosen = esp or first
    if chosen is not None and chosen != "fat":
        img.add_view("fat", img._views[chosen])


# --- cpio -----------------------------------------------------------------------------------------

def _probe_cpio(img: Image) -> None:
    from ..cpio.view import CPIOView, looks_like_cpio

    kind = looks_like_cpio(_read(img, 0, 8))
    if kind is None:
        return
    try:
        view = CPIOView(img.file, img.size_bytes)
    except InvalidImageError as e:
        if kind == "newc":
            img.problems.append(f"cpio: {e}")
        return
    for seg in view.segments:
        img.structures.append(_structure("cpio", seg.start, seg.end - seg.start,
                                         f"cpio archive ({seg.kind})", compression=seg.kind))
    img.problems.extend(view.problems)
    img.add_view("cpio", lambda: view)


def _structure(kind: str, offset: int, size: int, summary: str, **fields: Any) -> Any:
    from . import Structure
    return Structure(kind, offset, size, summary, fields)


__all__ = ["probe_all"]
