"""Filling a writer from a :class:`~.source.Source`: entries, identifiers, El Torito.

Each function takes a fresh writer and adds what the source holds, as file-info records
whose data sources read the source image at write time.  What a format cannot hold is
handled as its own ``add()`` would be asked to: the hybrid stores an entry it cannot share
in the ISO alone (a boot image with a boot info table, a file of 4 GiB or more, symlinks
and devices).
"""
from __future__ import annotations

import stat as _stat
from typing import Any

from ..errors import InvalidInputError
from ..iso9660.eltorito import BOOT_EFI
from .source import Source, SourceBootEntry, SourceEntry, mode_of

LINK_DEV = 0x5245_4D53
"""The ``dev`` of the hard-link groups a remaster makes (``ino`` is the group's number):
any constant, the writers only compare (dev, ino) pairs."""
FOUR_GIB = 1 << 32
VOLUME_FIELDS = (("system", "system_identifier"), ("volume_set", "volume_set_identifier"),
                 ("publisher", "publisher_identifier"), ("preparer", "data_preparer_identifier"),
                 ("application", "application_identifier"))
"""ISO9660 attributes and the source volume's fields they come from (ECMA-119 8.4)."""


def fileinfo(entry: SourceEntry, source: Source, *, hybrid_target: str | None = None,
             namespaces: bool = True) -> dict[str, Any]:
    """The file-info mapping that adds ``entry`` again (metadata, data source, names)."""
    st = entry.stat
    info: dict[str, Any] = {"name": entry.name, "mode": mode_of(st), "uid": st.uid or 0, "gid": st.gid or 0,
                            "mtime": st.mtime, "atime": st.atime, "ctime": st.ctime}
    kind = _stat.S_IFMT(info["mode"])
    if kind == _stat.S_IFREG:
        info["size"] = st.size
        if entry.data is not None:
            info["data"] = entry.data
        if entry.link_group is not None:
            info.update(dev=LINK_DEV, ino=entry.link_group, nlink=max(st.nlink or 1, 2))
    elif kind == _stat.S_IFLNK:
        info["data"] = (st.target or "?").encode("utf-8", "surrogateescape")
    elif kind in (_stat.S_IFCHR, _stat.S_IFBLK):
        info["rdev_major"], info["rdev_minor"] = st.rdev or (0, 0)
    if entry.flags:
        info["ISO9660_flags"] = entry.flags
    if entry.iso_name is not None and _iso_name_ok(entry, info["mode"]):
        info["ISO9660_shortname"] = entry.iso_name
    if namespaces:
        if entry.hidden_from:
            info["hidden_from"] = tuple(entry.hidden_from)
        if entry.joliet_name is not None and _joliet_name_ok(entry):
            info["joliet_name"] = entry.joliet_name
    if hybrid_target is not None:
        info["hybrid_target"] = hybrid_target
    return info


def _iso_name_ok(entry: SourceEntry, mode: int) -> bool:
    """Whether the source's plain ISO 9660 name is one the writer records as given
    (d-characters, the length level 3 allows); else the writer makes its own."""
    from ..iso9660.names import check_iso_override
    name = entry.iso_name or ""
    try:
        check_iso_override(entry.name, name, _stat.S_ISDIR(mode), 3)
    except InvalidInputError:
        return False
    return True


def _joliet_name_ok(entry: SourceEntry) -> bool:
    """Whether the source's Joliet name is one the writer records as given (xorriso writes
    65 characters where the Joliet specification allows 64; the writer then makes its own)."""
    from ..fileinfo import check_joliet_name
    try:
        check_joliet_name(entry.name, entry.joliet_name)
    except InvalidInputError:
        return False
    return True


def set_volume(iso: Any, source: Source, label: str | None = None) -> list[str]:
    """The ISO writer's identifiers, Joliet and Rock Ridge as the source had them; the time
    of the source's volume dates (its UUID).  Returns what could not be kept, as notes."""
    notes: list[str] = []
    v = source.volume
    try:
        iso.volume_label = label or v.volume_identifier or "CDROM"
    except InvalidInputError as e:
        if label:
            raise
        notes.append(f"volume label not kept: {e}")
    for attr, key in VOLUME_FIELDS:
        try:
            setattr(iso, attr, getattr(v, key) or "")
        except InvalidInputError as e:
            notes.append(f"{attr} not kept: {e}")
    iso.joliet = source.joliet
    iso.rock_ridge = ("1.12" if source.rock_ridge == "1.12" else "1.09") if source.rock_ridge else None
    when = source.volume_time()
    if when is not None:
        iso.default_time = when[0]
    if source.catalog_path is not None:
        iso.boot_catalog_path = source.catalog_path
    iso.boot_catalog_hidden = source.catalog_hidden
    return notes


def boot_arguments(b: SourceBootEntry, source: Source) -> dict[str, Any] | None:
    """``add_boot_catalog_entry`` arguments for a source entry whose image is a file or
    bytes; None for an entry naming a partition (the coordinator points it)."""
    args: dict[str, Any] = dict(platform=b.platform, media_type=b.media_type, load_segment=b.load_segment,
                                load_size=b.sector_count or None, boot_info_table=b.boot_info_table,
                                system_type=b.system_type, section_id=b.section_id, bootable=b.bootable)
    if b.path is not None:
        args["path"] = b.path
    elif b.data is not None:
        args["data"] = b.data
    else:
        return None
    if b.platform == BOOT_EFI and b.path is not None:
        args["load_size"] = b.sector_count or None
    return args


def partition_image(source: Source, number: int, limit: int = 64 << 20) -> bytes:
    """The bytes of a small partition of the source (an ESP an El Torito entry names)."""
    part = next(p for p in source.partitions if p.number == number)
    if part.size_bytes > limit:
        raise InvalidInputError(f"{source.name}: partition {number} ({part.size_bytes} bytes), which an El Torito "
                                f"entry names, is larger than the {limit} bytes a plain ISO can carry as a boot image")
    source.file.seek(part.device_offset)
    return source.file.read(part.size_bytes)


def load_iso(iso: Any, source: Source, *, namespaces: bool = True) -> tuple[list[str], dict[int, int]]:
    """Add every ISO entry of ``source`` and its El Torito catalog to the ISO9660 writer
    ``iso``.  An entry that named a partition following the ISO (xorriso
    ``-append_partition``, ``-e --interval:appended_partition_2:all::``) is given by
    extent, to be pointed at the partition's new place; one that named another partition
    (the ESP of a hybrid source) gets the partition's bytes as its image.  Returns notes on
    what could not be kept and {catalog entry index: partition number} of the former."""
    from ..extent import Extent
    notes = set_volume(iso, source)
    for entry in source.entries.values():
        if entry.target == "esp":
            continue
        iso.add(fileinfo(entry, source, namespaces=namespaces))
    by_partition: dict[int, int] = {}
    roles = {p.number: p.role for p in source.partitions}
    for b in source.boot:
        args = boot_arguments(b, source)
        if args is None and b.partition is not None and roles.get(b.partition) in ("extra", "esp"):
            args = boot_arguments(_with_data(b, b"\0" * 2048), source)
            if args is not None:
                del args["data"]
                args["extent"] = Extent(0, 0, f"partition {b.partition}")
                by_partition[len(iso.boot_entries)] = b.partition
        elif args is None and b.partition is not None:
            args = boot_arguments(_with_data(b, partition_image(source, b.partition)), source)
        if args is not None:
            iso.add_boot_catalog_entry(**args)
    return notes, by_partition


def _with_data(b: SourceBootEntry, data: bytes) -> SourceBootEntry:
    import dataclasses
    return dataclasses.replace(b, data=data, partition=None)


def hybrid_target(entry: SourceEntry, source: Source, iso_only: set[str]) -> str:
    """Where a hybrid stores ``entry``: as the source hybrid did, else in both file systems
    unless FAT cannot hold it or its bytes get patched (a boot info table)."""
    if source.hybrid:
        return entry.target
    st = entry.stat
    if entry.name in iso_only or st.type not in ("file", "dir"):
        return "iso"
    if st.type == "file" and st.size >= FOUR_GIB:
        return "iso"
    return "both"


def load_hybrid(hybrid: Any, source: Source, *, namespaces: bool = True) -> list[str]:
    """Add every entry of ``source`` to the ISO9660Hybrid ``hybrid``, with its El Torito
    entries (an EFI entry that named the ESP names the new ESP).  Boot code and partitions
    are the caller's (:mod:`.boot`).  Returns notes on what could not be kept."""
    notes = set_volume(hybrid.iso, source)
    when = source.volume_time()
    if when is not None:
        hybrid.default_time = when[0]       # the ESP's too: its serial then derives from the content
    if source.fat_label is not None:
        try:
            hybrid.esp_label = source.fat_label
        except InvalidInputError as e:
            notes.append(f"ESP label not kept: {e}")
    iso_only = {b.path for b in source.boot if b.path is not None and (b.boot_info_table or b.grub2_boot_info)}
    for entry in source.entries.values():
        target = hybrid_target(entry, source, iso_only)
        if entry.name == "":
            target = "both"
        hybrid.add(fileinfo(entry, source, hybrid_target=target, namespaces=namespaces))
    if not source.hybrid:
        notes += add_efi_image_files(hybrid, source)
    from ..contribution import BootContribution, ElToritoRequest
    requests = []
    efi_from_esp = False
    for b in source.boot:
        esp = next((p for p in source.partitions if p.number == b.partition and p.role == "esp"), None)
        if b.partition is not None and esp is not None:
            efi_from_esp = True
            continue
        args = boot_arguments(b, source)
        if args is None and b.partition is not None:
            args = boot_arguments(_with_data(b, partition_image(source, b.partition)), source)
        if args is not None:
            requests.append(ElToritoRequest(**args))
    if requests or efi_from_esp:
        hybrid.contribute(BootContribution(eltorito=tuple(requests), efi_from_esp=efi_from_esp))
    return notes


def efi_image_view(source: Source) -> Any:
    """The FAT view of the source's El Torito EFI boot image (grub-mkrescue's /efi.img, an
    appended ESP partition), or None."""
    for b in source.boot:
        if b.platform != BOOT_EFI:
            continue
        for s in source.image.structures:
            if s.kind == "fat" and s.offset == b.device_offset and s.fields.get("view"):
                return source.image.view(str(s.fields["view"]))
    return None


def add_efi_image_files(hybrid: Any, source: Source) -> list[str]:
    """A plain ISO made a hybrid: its ESP, made from the tree, also gets the files of the
    FAT image that the source's El Torito EFI entry boots (EFI/BOOT/BOOTX64.EFI of a
    grub-mkrescue image), so that UEFI finds its loader when the image boots as a disk.  A
    path the tree has already is left to the tree."""
    from .data import ExtentsData
    view = efi_image_view(source)
    if view is None:
        return []
    taken = {key.lower() for key in source.entries}
    added = 0
    for st in view.walk():
        name = st.path.strip("/")
        if not name or name.lower() in taken or st.type not in ("file", "dir"):
            continue
        info: dict[str, Any] = {"name": name, "mode": st.mode or (0o40755 if st.is_dir else 0o100644),
                                "mtime": st.mtime, "hybrid_target": "esp"}
        if st.is_file:
            info["size"] = st.size
            if st.size:
                info["data"] = ExtentsData(source.file, st.extents, st.size, f"{source.name}:{view.name}:{st.path}")
        hybrid.add(info)
        taken.add(name.lower())
        added += 1
    return [f"ESP: {added} entries of the EFI boot image ({view.name}) added to it"] if added else []
