"""The JSON objects the building commands print with ``--json`` (build, live, initramfs,
export), made from what their writers return.

Each is a plain dict of JSON types whose shape ``sysexport/schemas/<command>.json``
declares (the tests validate every command's output against it).  Byte offsets and sizes
are integers in bytes of the image; labels are what each file system holds (trailing
padding removed), so a script can compare them with ``isoinfo -d``, ``blkid`` or
``sgdisk -p`` without parsing our plain lines.
"""
from __future__ import annotations

import os
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .boot.grub import BootSetup
    from .boot.menu import MenuEntry
    from .cpio.writer import CPIOPlan
    from .hybrid import HybridSummary, ISO9660Hybrid
    from .tree import Tree

CPIO_TRAILER = "TRAILER!!!"
"""The name of the newc archive's last entry, which marks its end (not counted)."""
GPT_BLOCK_SIZES = (512, 4096)
"""The hybrid has a GPT for each of these logical block sizes, with the same partitions."""


def hybrid_summary(command: str, output: str, sources: list[str], img: ISO9660Hybrid,
                   summary: HybridSummary) -> dict[str, Any]:
    """What ``build`` (and, with more keys, ``live``) prints with ``--json``: the image's
    size, what the ISO 9660 volume and the ESP got (labels, offsets, sizes, the FAT type),
    the GPT's disk GUID and every partition (index, name, type and unique GUIDs, byte offset
    and size, and the first and last LBA in each GPT's block size; GUIDs upper case, as
    ``sgdisk -p``/``-i`` print them), and the files (how many, how many stored once for both
    file systems, bytes of data)."""
    types: dict[int, uuid.UUID] = {p.index: p.type_guid for p in img.gpt.partitions if p.index is not None}
    partitions = []
    for index, (name, offset, size) in enumerate(summary.partitions, 1):
        type_guid = types.get(index)
        unique = summary.partition_guids[index - 1] if index <= len(summary.partition_guids) else None
        partitions.append({
            "index": index, "name": name, "type_guid": str(type_guid).upper() if type_guid else None,
            "unique_guid": _guid(unique),
            "offset": offset, "size": size,
            "lba": {str(b): {"first": offset // b, "last": (offset + size) // b - 1} for b in GPT_BLOCK_SIZES},
        })
    return {
        "command": command,
        "output": output,
        "sources": list(sources),
        "image_size": summary.image_size_bytes,
        "disk_guid": _guid(summary.disk_guid),
        "iso9660": {"label": summary.iso_label, "joliet_label": summary.joliet_label,
                    "volume_size": summary.image_size_bytes, "metadata_end": summary.iso_metadata_end,
                    "entries": _entries(img.iso.tree)},
        "esp": {"label": summary.fat_label, "fat_type": summary.fat_type, "offset": summary.esp_offset,
                "size": summary.esp_size_bytes, "partition": _esp_index(img), "entries": _entries(img.esp.tree)},
        "partitions": partitions,
        "files": {"count": summary.file_count, "stored_once": summary.shared_file_count,
                  "stored_once_bytes": summary.data_bytes, "data_bytes": img.total_data_bytes},
    }


def _guid(value: uuid.UUID | None) -> str | None:
    return str(value).upper() if value is not None else None


def _entries(tree: Tree[Any]) -> dict[str, int]:
    """What one file system of the hybrid holds: its entries by type (the root not
    counted) and the bytes of its files' data (shared files counted in both).

    Counted directory by directory in no particular order (the counts do not depend on
    it): no sorting and no node-by-node walk, a few hundredths of a second at 100,000 files."""
    files = directories = symlinks = other = data_bytes = 0
    stack = [tree.root]
    while stack:
        children = stack.pop().children
        if not children:
            continue
        for child in children.values():
            info = child.info
            kind = info.mode & 0o170000
            if kind == 0o100000:                # S_IFREG
                files += 1
                data_bytes += info.size
            elif kind == 0o040000:              # S_IFDIR
                directories += 1
                stack.append(child)
            elif kind == 0o120000:              # S_IFLNK
                symlinks += 1
            else:
                other += 1
    return {"files": files, "directories": directories, "symlinks": symlinks, "other": other,
            "data_bytes": data_bytes}


def _esp_index(img: ISO9660Hybrid) -> int | None:
    return img.esp_partition.index


def live_boot(setup: BootSetup, *, kernel: str | None, initrd: str | None, cmdline: str,
              entries: Sequence[MenuEntry] = (), grub_cfg: str | None = None) -> dict[str, Any]:
    """The ``boot`` member of ``live``'s JSON: what GRUB boots (``entries``: the ``--entry``
    ones, host paths; ``grub_cfg``: the user's own menu), how it finds the medium (the
    marker file), and the files the boot loader added (paths in the image)."""
    menu = [{"title": e.title, "kernel": os.fsdecode(e.kernel) if not isinstance(e.kernel, bytes) else "(bytes)",
             "initrd": None if e.initrd is None else os.fsdecode(e.initrd) if not isinstance(e.initrd, bytes)
             else "(bytes)", "cmdline": e.cmdline} for e in entries]
    return {"firmware": ["bios", "uefi"] if setup.mbr_boot_code is not None else ["uefi"], "arch": setup.arch,
            "kernel": kernel, "initrd": initrd, "cmdline": cmdline, "entries": menu, "grub_cfg": grub_cfg,
            "marker": setup.marker,
            "files": list(setup.files), "efi_loader": setup.efi_loader, "secure_boot": setup.secure_boot,
            "bios_boot_partition": setup.bios_boot_partition.index if setup.bios_boot_partition else None}


def cpio_summary(output: str, source: str, plan: CPIOPlan, size_bytes: int | None) -> dict[str, Any]:
    """What ``initramfs`` prints with ``--json``: the archive's entries by type (the
    trailer not counted), its uncompressed size, ``size`` (the file written, compressed or
    not; None for standard output), bytes of file data, and the compression."""
    kinds: dict[str, int] = {}
    data_bytes = 0
    entries = [e for e in plan.entries if e.name != CPIO_TRAILER]
    for e in entries:
        kind = _cpio_kind(e.mode)
        kinds[kind] = kinds.get(kind, 0) + 1
        data_bytes += e.size_bytes if kind == "file" else 0
    return {"command": "initramfs", "output": output, "source": source, "format": "newc",
            "compress": plan.compress, "entries": len(entries), "types": kinds,
            "uncompressed_size": plan.size_bytes, "size": size_bytes, "data_bytes": data_bytes}


def _cpio_kind(mode: int) -> str:
    import stat
    for test, name in ((stat.S_ISREG, "file"), (stat.S_ISDIR, "dir"), (stat.S_ISLNK, "symlink"),
                       (stat.S_ISCHR, "chardev"), (stat.S_ISBLK, "blockdev"), (stat.S_ISFIFO, "fifo"),
                       (stat.S_ISSOCK, "socket")):
        if test(mode):
            return name
    return "other"


__all__ = ["cpio_summary", "hybrid_summary", "live_boot"]
