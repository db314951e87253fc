"""``mkisofs --sysexport-hybrid``: the same command line onto :class:`~sysexport.hybrid.ISO9660Hybrid`.

The hybrid builds its ESP from the tree, so an EFI boot image of the command line (``-e
boot/grub/efi.img``, or an appended ESP image named by ``-e
--interval:appended_partition_N:all::``) is not copied as a FAT image: its files are put
in the ESP (the tree's own files win where both have one), the El Torito EFI entry names
the ESP, and the GPTs (512 and 4096 bytes) are the hybrid's.  BIOS boot images stay in
the ISO (their boot info table is written there), with the isohybrid MBR patched, and so
do files of 4 GiB or more, which FAT cannot hold (a large squashfs).
``-partition_offset``, ``-isohybrid-gpt-basdat`` and ``-appended_part_as_gpt`` describe
xorriso's partition tables and have no effect here; other appended partitions follow the
ESP in both GPTs.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import weakref

from ..boot.isohybrid import isohybrid_contribution
from ..data import PathData
from ..errors import InvalidInputError, SysExportError, UsageError
from ..fileinfo import walk_host_fileinfo
from ..hybrid import FOUR_GIB, ISO9660Hybrid
from ..iso9660.eltorito import BOOT_X86, EMU_NONE
from ..output import output_target
from ..partition.enums import GPT_TYPE_ESP, MBR_TYPE_EFI_SYSTEM
from .build import _apply_iso_options, sources, walk
from .options import MkisofsOptions
from .systemarea import partition_types


def _unpack_fat(image_path: str, workdir: str) -> str:
    """The files of the FAT image ``image_path`` extracted below ``workdir`` (read with
    sysexport's own FAT reader, names checked as every extraction)."""
    from .. import image
    dest = os.path.join(workdir, f"esp{len(os.listdir(workdir))}")
    os.mkdir(dest)
    try:
        view = image.open(image_path).view("fat")
    except (SysExportError, OSError) as e:
        raise InvalidInputError(f"--sysexport-hybrid: {image_path}: not a FAT image whose files could go into the "
                                f"ESP ({e})") from None
    view.extract(dest)
    return dest


def build_hybrid_image(o: MkisofsOptions) -> ISO9660Hybrid:
    """An ISO9660Hybrid holding what the options say (not yet written)."""
    if not o.output:
        raise UsageError("mkisofs: give -o FILE (the image to write)")
    h = ISO9660Hybrid(**output_target(o.output))
    _apply_iso_options(h.iso, o)
    if o.volume_id:
        h.volume_label = o.volume_id
    h.mbr_bootable = o.mbr_force_bootable
    workdir = tempfile.mkdtemp(prefix="sysexport-mkisofs-")
    weakref.finalize(h, shutil.rmtree, workdir, True)      # the unpacked ESP images live as long as h
    iso_only = {b.path for b in o.boot if b.platform == "bios" and b.path}
    esp_images: list[str] = []
    appended_esp: set[int] = set()
    for b in o.boot:
        if b.platform == "efi":
            if b.appended is not None:
                appended_esp.add(b.appended)
            elif b.path:
                esp_images.append(b.path)
    added: set[str] = set()
    for src in sources(o):
        for info in walk(o, src):
            if info.name in iso_only or info.is_file and info.size >= FOUR_GIB:
                info.hybrid_target = "iso"      # a boot info table; or more than FAT holds
            h.add(info)
            added.add(info.name.lower())
    for b in o.boot:
        if b.platform == "bios" and b.path:
            h.iso.add_boot_catalog_entry(platform=BOOT_X86, path=b.path, media_type=EMU_NONE,
                                         load_size=b.load_size, boot_info_table=b.boot_info_table)
    hosts = {s.dest: s.host for s in sources(o) if os.path.isdir(s.host)}
    for path in esp_images:
        _add_esp_files(h, _unpack_fat(_host_of(path, hosts), workdir), added)
    for part in o.appended:
        mbr_type, guid = partition_types(part.mbr_type, part.type_guid)
        if part.number in appended_esp or guid == GPT_TYPE_ESP or mbr_type == MBR_TYPE_EFI_SYSTEM:
            _add_esp_files(h, _unpack_fat(part.path, workdir), added)
        else:
            h.add_partition(guid, data=PathData(part.path), name=f"Appended{part.number}")
    if o.boot and any(b.platform == "efi" for b in o.boot):
        h.efi_boot = True
    mbr = o.isohybrid_mbr or o.grub2_mbr
    if mbr:
        bios = next((b.path for b in o.boot if b.platform == "bios" and b.path), None)
        if bios is None:
            raise InvalidInputError("-isohybrid-mbr: needs a BIOS El Torito image (-b)")
        h.contribute(isohybrid_contribution(mbr, bios))
    return h


def _host_of(path: str, hosts: dict[str, str]) -> str:
    """The host file behind the image path ``path`` (an -e image inside a PATH)."""
    for dest, host in sorted(hosts.items(), key=lambda kv: -len(kv[0])):
        if not dest or path == dest or path.startswith(dest + "/"):
            candidate = os.path.join(host, path[len(dest):].lstrip("/"))
            if os.path.isfile(candidate):
                return candidate
    raise InvalidInputError(f"-e {path}: not a file of the PATHs given")


def _add_esp_files(h: ISO9660Hybrid, tree: str, added: set[str]) -> None:
    """The files of an unpacked ESP image into the ESP only, where the tree has none
    (``added`` holds the lower-cased names already there)."""
    for info in walk_host_fileinfo(tree):
        if info.name.lower() in added or not info.name:
            continue                # FAT names are case-insensitive: the tree's file wins
        info.hybrid_target = "esp"
        h.add(info)
        added.add(info.name.lower())
