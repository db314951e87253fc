"""What ``sysexport mkisofs`` reports: the plain lines and the ``--json`` object.

The object's shape is ``sysexport/schemas/mkisofs.json``: with ``--sysexport-hybrid`` it is
``build``'s (the hybrid image: ISO 9660, ESP, GPT partitions, files) with ``"mode":
"hybrid"``; otherwise ``"mode": "mkisofs"`` and what xorriso's reports show: the ISO
volume, the El Torito entries, the system area (MBR style, isohybrid code, every MBR and
GPT partition) and the files.
"""
from __future__ import annotations

from typing import Any

from ..boot.isohybrid import detect_isohybrid_mbr
from ..iso9660.eltorito import BOOT_X86
from .image import MkisofsImage, MkisofsPlan
from .options import MkisofsOptions

MIB = 1 << 20


def mkisofs_summary(o: MkisofsOptions, sources: list[str], mk: MkisofsImage, plan: MkisofsPlan) -> dict[str, Any]:
    """The ``--json`` object of an image written by :class:`MkisofsImage`."""
    iso = plan.iso
    entries: list[dict[str, Any]] = []
    for entry, extent, spec in zip(mk.iso.boot_entries, iso.boot_extents, mk.boot_specs):
        offset = extent.device_offset if extent is not None else None
        if offset is None and entry.path:
            offset = mk.iso.lookup(entry.path).device_offset
        entries.append({"platform": "bios" if entry.platform == BOOT_X86 else "efi", "path": entry.path,
                        "appended_partition": spec.appended, "offset": offset})
    mbr_partitions = [{"number": number, "type": r.type_id, "bootable": r.bootable,
                       "offset": r.first_lba * 512, "size": r.sector_count * 512}
                      for number, r in enumerate(plan.mbr_records, 1) if r is not None]
    gpt_partitions = []
    if plan.gpt_layout is not None:
        for g in plan.gpt_layout.partitions:
            gpt_partitions.append({"number": g.index, "name": g.name, "type_guid": str(g.type_guid).upper(),
                                   "offset": g.device_offset, "size": g.size_bytes})
    return {
        "command": "mkisofs", "mode": "mkisofs", "output": o.output or "", "sources": sources,
        "image_size": plan.device_size_bytes,
        "iso9660": {"label": mk.iso.pvd_label, "joliet_label": mk.iso.joliet_label,
                    "volume_size": iso.volume_size_bytes, "metadata_end": iso.end_bytes},
        "eltorito": entries,
        "system_area": {"mbr_style": plan.mbr_style,
                        "isohybrid": (None if plan.boot_lba is None else
                                      {"kind": detect_isohybrid_mbr(plan.mbr or b""), "boot_lba": plan.boot_lba}),
                        "mbr_partitions": mbr_partitions, "gpt_partitions": gpt_partitions},
        "files": {"count": len(plan.files), "data_bytes": mk.total_data_bytes},
    }


def mkisofs_lines(o: MkisofsOptions, mk: MkisofsImage, plan: MkisofsPlan) -> list[str]:
    """The plain summary lines."""
    size = plan.device_size_bytes
    lines = [f"{o.output}: ISO 9660 image, {size:,} bytes ({size / MIB:.1f} MiB), label {mk.iso.pvd_label!r}, "
             f"{len(plan.files):,} files after the metadata, system area: {plan.mbr_style}"]
    if plan.boot_lba is not None:
        lines.append(f"  isohybrid MBR: boot image at 2048-byte block {plan.boot_lba}")
    for a in plan.appended:
        lines.append(f"  appended partition {a.number}: {a.size_bytes:,} bytes at offset {a.device_offset:,} "
                     f"(MBR type {a.mbr_type:#04x})")
    if plan.gpt_layout is not None:
        names = ", ".join(p.name for p in plan.gpt_layout.partitions)
        lines.append(f"  GPT (512-byte blocks): {len(plan.gpt_layout.partitions)} partitions ({names})")
    return lines
