"""MkisofsImage: an ISO 9660 image laid out as ``xorriso -as mkisofs`` lays one out.

It composes an :class:`~sysexport.iso9660.writer.ISO9660` (metadata, El Torito, the boot
images), the data of every other file placed by this coordinator in ``-sort`` order, the
appended partitions, and the system area of :mod:`.systemarea` (an isohybrid MBR with its
boot code patched, a protective MBR, a 512-byte GPT)::

    0          MBR (isohybrid code patched with the boot image's LBA, or protective)
    512        GPT header, 248 entries at 1024..32767 (when a GPT is asked for)
    32768      ISO 9660: descriptors (with -partition_offset N, a gap for the partition's
               own descriptors and tree at N * 2048 + 32768), catalog, path tables,
               directories, boot images
    ...        file data, 2 KiB aligned, heaviest -sort weight first
    ...        without appended partitions: 300 KiB of padding (-pad, xorriso's
               default); an isohybrid image then padded to whole 1 MiB cylinders
    ...        appended partitions (-append_partition), each 2 KiB (isohybrid: 1 MiB)
               aligned, in the order of their numbers; then the padding (in a GPT, the
               partition "Gap1", as xorriso lists it)
    end        GPT backup array and header

The ISO volume covers everything when nothing is appended, else the ISO part, as in
xorriso's images.  Plan, then write, as every writer (docs/architecture.md).
"""
from __future__ import annotations

import dataclasses
import os
import struct
from dataclasses import dataclass
from typing import Any, BinaryIO

from .. import __version__
from ..boot.isohybrid import detect_isohybrid_mbr, grub2_boot_info, patch_isohybrid_mbr, read_mbr_code
from ..data import PathData
from ..errors import CallOrderError, InternalError, InvalidInputError
from ..extent import Extent, align_up, check_no_overlap
from ..fileinfo import FileInfo, to_fileinfo
from ..identity import BuildIdentity
from ..iso9660.eltorito import BOOT_EFI, BOOT_X86, EMU_NONE, FLOPPY_BYTES, boot_info_checksum
from ..iso9660.writer import ISO9660, ISOPlan
from ..output import Output
from ..partition.gpt import GPT, GPTLayout
from ..partition.mbr import MBRPartition
from ..tree import Node
from .partition_tree import PartitionTree
from .systemarea import (CYLINDER_BYTES, GPT_BACKUP_BYTES, PlacedAppended, SystemAreaRequest, build_gpt,
                         build_mbr, check_slots, partition_types)

SECTOR = 2048
BOOT_INFO_CHECKSUM_OFFSET = 20
"""bi_csum: bytes 20..23 of a boot image with a boot info table (after bi_pvd, bi_file, bi_length)."""
PAD_BYTES = 300 * 1024
"""xorriso -as mkisofs pads the image by 300 KiB unless -no-pad (old CD drives read ahead)."""


@dataclass(frozen=True)
class BootSpec:
    """One El Torito entry: a file of the image (``path``) or an appended partition."""

    platform: str                   # "bios" or "efi"
    path: str | None
    appended: int | None
    no_emul: bool
    load_size: int | None
    boot_info_table: bool
    gpt_basdat: bool
    grub2_boot_info: bool = False


@dataclass(frozen=True)
class AppendSpec:
    number: int
    mbr_type: int
    type_guid: Any
    source: PathData
    """The file, its size taken when it was named (a file that changes size is an error
    when it is written, not a partition overlapping the next)."""

    @property
    def size_bytes(self) -> int:
        return self.source.size_bytes


@dataclass(frozen=True, eq=False)
class MkisofsPlan:
    """The whole layout: the ISO's plan with every file placed, the appended partitions,
    the system area's MBR and GPT, the image size."""

    device_size_bytes: int
    iso: ISOPlan
    files: tuple[tuple[FileInfo, int], ...]
    appended: tuple[PlacedAppended, ...]
    appended_sources: tuple[PathData, ...]
    mbr: bytes | None
    gpt: GPT | None
    gpt_layout: GPTLayout | None
    boot_lba: int | None
    pieces: tuple[Extent, ...]
    patches: tuple[tuple[int, bytes], ...] = ()
    """(device offset, bytes) written over the ISO's boot images (--grub2-boot-info)."""
    mbr_records: tuple[MBRPartition | None, ...] = ()
    """The MBR's four records as made (type 0x00 ones included, which a parse reads as empty)."""
    mbr_style: str = "none"
    """"isohybrid", "plain", "msdos-label", "protective" or "none" (see .systemarea)."""
    partition_tree: PartitionTree | None = None
    partition_plan: ISOPlan | None = None
    """-partition_offset's second superblock and tree (see .partition_tree)."""


class MkisofsImage:
    """The mkisofs front end's image writer (see the module docstring).

    ``iso`` is the ISO9660 part (set its labels, levels, Joliet); :meth:`add` takes file
    infos; :meth:`add_boot` El Torito entries; :meth:`append_partition` partitions after
    the ISO; the system area knobs are attributes: ``isohybrid_mbr`` (a path or bytes:
    syslinux isohdpfx.bin or GRUB boot_hybrid.img), ``gpt_basdat``, ``appended_as_gpt``,
    ``partition_offset`` (2048-byte blocks), ``mbr_force_bootable``,
    ``protective_msdos_label`` (grub-mkrescue's table), ``efi_boot_part_image`` (the EFI
    El Torito image as the GPT's ESP), ``pad``.
    """

    def __init__(self, filename: str | os.PathLike[str] | None = None, *,
                 filehandle: BinaryIO | None = None) -> None:
        self.filename = os.fspath(filename) if filename is not None else None
        self.filehandle = filehandle
        # xorriso's defaults: label ISOIMAGE, no system or application id, the preparer
        # the program that made the image (xorriso names its version, as this does).
        self.iso = ISO9660(volume_label="ISOIMAGE", system="", application="", joliet=False,
                           preparer=f"SYSEXPORT-{__version__}")
        self.isohybrid_mbr: bytes | str | os.PathLike[str] | None = None
        self.gpt_basdat = False
        self.appended_as_gpt = False
        self.partition_offset = 0
        self.mbr_force_bootable = False
        self.protective_msdos_label = False
        self.efi_boot_part_image = False
        self.pad = True
        self.sort_weight: dict[str, int] = {}
        self.volume_centiseconds: int | None = None
        """The centiseconds of the volume dates (the UUID blkid and archiso's
        archisosearchuuid read): None, the ISO writer's choice; xorriso writes 00 under
        SOURCE_DATE_EPOCH and those of --modification-date."""
        self._boot: list[BootSpec] = []
        self.boot_specs = self._boot          # read-only view for the summary
        self._appended: list[AppendSpec] = []
        self._placed_later: list[tuple[Node, FileInfo]] = []
        self._infos: list[FileInfo] = []
        self._boot_paths: set[str] = set()
        self._planned = False
        self.total_data_bytes = 0

    # -- recording -------------------------------------------------------------------------
    def add_boot(self, spec: BootSpec) -> None:
        """Record an El Torito entry (before the files: a boot image stays with the ISO,
        which writes its boot info table)."""
        self._check_open("add_boot()")
        if spec.path is not None:
            self._boot_paths.add(to_fileinfo({"name": spec.path, "mode": 0o100644}).name)
        self._boot.append(spec)

    def add(self, info: FileInfo) -> None:
        """Record one entry; a file's bytes are placed by :meth:`plan` (boot images by the ISO)."""
        self._check_open("add()")
        later = info.is_file and info.size > 0 and info.name not in self._boot_paths
        node = self.iso.add(info, placed_later=later)
        self._infos.append(info)
        if later:
            self._placed_later.append((node, info))
        if info.is_file:
            self.total_data_bytes += info.size

    def append_partition(self, number: int, mbr_type: int | None, type_guid: Any, path: str) -> None:
        """-append_partition: the host file ``path`` as partition ``number`` after the ISO."""
        self._check_open("append_partition()")
        try:
            source = PathData(path)
        except InvalidInputError as e:
            raise InvalidInputError(f"-append_partition {number}: {e}") from None
        if source.size_bytes == 0:
            raise InvalidInputError(f"-append_partition {number} {path}: the file is empty")
        mbr, guid = partition_types(mbr_type, type_guid)
        self._appended.append(AppendSpec(number, mbr, guid, source))
        self.total_data_bytes += source.size_bytes

    def _check_open(self, call: str) -> None:
        if self._planned:
            raise CallOrderError(f"MkisofsImage.{call}: the image is already planned")

    # -- planning --------------------------------------------------------------------------
    def _add_catalog_entries(self) -> dict[int, int]:
        """The El Torito entries in the ISO; returns {entry index: appended partition number}."""
        appended_entries: dict[int, int] = {}
        numbers = {a.number for a in self._appended}
        for spec in self._boot:
            platform = BOOT_X86 if spec.platform == "bios" else BOOT_EFI
            media = EMU_NONE if spec.no_emul else self._emulation(spec)
            if spec.appended is not None:
                if spec.appended not in numbers:
                    raise InvalidInputError(f"-e --interval:appended_partition_{spec.appended}:all:: names no "
                                            f"-append_partition {spec.appended}")
                self.iso.add_boot_catalog_entry(platform=platform, extent=Extent(0, SECTOR, "appended"),
                                                media_type=media, load_size=spec.load_size)
                appended_entries[len(self.iso.boot_entries) - 1] = spec.appended
            else:
                self.iso.add_boot_catalog_entry(platform=platform, path=spec.path, media_type=media,
                                                load_size=spec.load_size, boot_info_table=spec.boot_info_table)
        return appended_entries

    def _emulation(self, spec: BootSpec) -> int:
        """Floppy emulation by the image's size, as mkisofs chooses without -no-emul-boot."""
        node = self.iso.tree.find(to_fileinfo({"name": spec.path or "", "mode": 0o100644}).name) \
            if spec.path else None
        size = node.info.size if node is not None else None
        for media, floppy in FLOPPY_BYTES.items():
            if size == floppy:
                return media
        raise InvalidInputError(f"El Torito image {spec.path or 'appended partition'}: without -no-emul-boot it "
                                f"must be a 1.2, 1.44 or 2.88 MB floppy image, found {size} bytes "
                                "(add -no-emul-boot)")

    def plan(self) -> MkisofsPlan:
        """Lay out everything (see the module docstring); afterwards add() is refused."""
        self._check_open("plan()")
        appended_entries = self._add_catalog_entries()
        self._planned = True
        iso, tree2, plan2 = self._plan_iso()
        files, next_free = self._place_files(iso.end_bytes)
        isohybrid_table = (self.isohybrid_mbr is not None and not self.appended_as_gpt
                           and not self.protective_msdos_label)
        want_gpt = self.gpt_basdat or self.appended_as_gpt or self.efi_boot_part_image
        style = ("msdos-label" if self.protective_msdos_label and not want_gpt
                 else "isohybrid" if isohybrid_table else "protective" if want_gpt
                 else "plain" if self._appended else "none")
        check_slots(style, want_gpt, [a.number for a in self._appended])
        pad = PAD_BYTES if self.pad else 0
        end = align_up(next_free, SECTOR)
        iso_start = self.partition_offset * SECTOR
        tail = GPT_BACKUP_BYTES if want_gpt else 0
        gap = None
        if self._appended:
            # xorriso: the ISO, the appended partitions, then the padding (a GPT's "Gap1").
            iso_end = align_up(end, CYLINDER_BYTES if isohybrid_table else SECTOR)
            appended, end = self._place_appended(iso_end, CYLINDER_BYTES if isohybrid_table else SECTOR)
            if pad and want_gpt and not isohybrid_table:
                gap = (end, pad)
            device_size = align_up(end + pad + tail, SECTOR)
            volume_size = iso_end
        else:
            appended = ()
            device_size = align_up(end + pad + tail, CYLINDER_BYTES if isohybrid_table else SECTOR)
            iso_end = volume_size = device_size
        if iso_start >= iso_end:
            raise InvalidInputError(f"-partition_offset {self.partition_offset}: the ISO ends at block "
                                    f"{iso_end // SECTOR}, before the partition would start")
        boot_extents = {index: next(Extent(a.device_offset, a.size_bytes, f"appended {a.number}")
                                    for a in appended if a.number == number)
                        for index, number in appended_entries.items()}
        iso = self.iso.place(iso, [(node, offset) for node, _info, offset in files],
                             volume_size_bytes=volume_size, boot_extents=boot_extents)
        if self.volume_centiseconds is not None:
            iso = dataclasses.replace(iso, centiseconds=self.volume_centiseconds)
        if tree2 is not None and plan2 is not None:
            offsets = self._file_offsets(files)
            if tree2.catalog is not None and iso.catalog is not None:
                offsets.append((tree2.catalog, iso.catalog.device_offset))
            plan2 = tree2.place(plan2, offsets, volume_size, iso.centiseconds)
        identity = BuildIdentity(iso.content_digest if self.iso.reproducible else None)
        boot_code, boot_lba = self._boot_code()
        marked = tuple(self._marked_efi_extents()) if isohybrid_table else ()
        req = SystemAreaRequest(device_size, iso_start, iso_end, boot_code, style, want_gpt, marked,
                                appended, self.mbr_force_bootable, identity.u32("MBR disk signature"), gap,
                                self._efi_boot_image() if self.efi_boot_part_image else None)
        made = build_mbr(req)
        mbr = made.to_bytes() if made is not None else None
        gpt, gpt_layout = build_gpt(req, identity) if want_gpt else (None, None)
        room = iso.reserved_extent
        pieces = [Extent(0, 512, "MBR"), Extent(32768, room.device_offset - 32768, "ISO descriptors"),
                  Extent(room.end, iso.end_bytes - room.end, "ISO metadata")]
        if tree2 is not None and plan2 is not None:
            pieces.append(tree2.extent(plan2))
        pieces += [Extent(offset, info.size, info.name) for _n, info, offset in files]
        pieces += [Extent(a.device_offset, a.size_bytes, f"appended partition {a.number}") for a in appended]
        if gpt_layout is not None:
            pieces += gpt_layout.extents()
        check_no_overlap(pieces, device_size)
        return MkisofsPlan(device_size, iso, tuple((info, offset) for _n, info, offset in files), appended,
                           tuple(a.source for a in sorted(self._appended, key=lambda a: a.number)),
                           mbr, gpt, gpt_layout, boot_lba, tuple(pieces), self._grub2_patches(iso),
                           tuple(made.partitions) if made is not None else (), style, tree2, plan2)

    def _plan_iso(self) -> tuple[ISOPlan, PartitionTree | None, ISOPlan | None]:
        """The ISO's plan; with -partition_offset, the partition's second tree too, whose
        metadata the ISO leaves room for right after its descriptors."""
        iso = self.iso.plan()
        if not self.partition_offset:
            return iso, None, None
        tree2 = PartitionTree(self.iso, self.partition_offset * SECTOR, self._infos)
        if iso.catalog is not None:
            tree2.add_catalog(self.iso.boot_catalog_path, iso.catalog.size_bytes, self.iso.default_time)
        plan2 = tree2.plan_metadata()
        iso = self.iso.plan(reserve_after_descriptors=tree2.reserve_bytes(plan2, iso.descriptors.end))
        room, wanted = iso.reserved_extent, tree2.extent(plan2)
        if wanted.device_offset < room.device_offset or wanted.end > room.end:
            raise InternalError(f"-partition_offset: the partition's tree {wanted} is not inside the gap {room}")
        return iso, tree2, plan2

    def _file_offsets(self, files: list[tuple[Node, FileInfo, int]]) -> list[tuple[FileInfo, int]]:
        """(info, device offset) of every file with bytes: placed here, or by the ISO (boot
        images; the other names of a hard-link group)."""
        placed = {id(info): offset for _node, info, offset in files}
        out = []
        for info in self._infos:
            if not (info.is_file and info.size > 0):
                continue
            offset = placed.get(id(info))
            if offset is None:
                offset = self.iso.lookup(info.name).device_offset
            if offset is not None:
                out.append((info, offset))
        return out

    def _place_files(self, start: int) -> tuple[list[tuple[Node, FileInfo, int]], int]:
        """Every file the ISO does not place itself, 2 KiB aligned from ``start``, heaviest
        ``-sort`` weight first (then in the tree's order); a hard-link group once."""
        order = sorted(enumerate(self._placed_later),
                       key=lambda item: (-self.sort_weight.get(item[1][1].name, 0), item[0]))
        placed: list[tuple[Node, FileInfo, int]] = []
        seen: set[tuple[int, int]] = set()
        next_free = start
        for _i, (node, info) in order:
            key = info.link_key
            if key is not None:
                if key in seen:
                    continue
                seen.add(key)
            offset = align_up(next_free, SECTOR)
            placed.append((node, info, offset))
            next_free = offset + info.size
        return placed, next_free

    def _place_appended(self, start: int, align: int) -> tuple[tuple[PlacedAppended, ...], int]:
        out = []
        next_free = start
        for a in sorted(self._appended, key=lambda a: a.number):
            offset = align_up(next_free, align)
            size = align_up(a.size_bytes, SECTOR)
            out.append(PlacedAppended(a.number, offset, size, a.mbr_type, a.type_guid))
            next_free = offset + size
        return tuple(out), next_free

    def _boot_code(self) -> tuple[bytes | None, int | None]:
        """The isohybrid code with the BIOS boot image's LBA patched in."""
        if self.isohybrid_mbr is None:
            return None, None
        code = read_mbr_code(self.isohybrid_mbr)
        kind = detect_isohybrid_mbr(code)
        bios = next((b for b in self._boot if b.platform == "bios" and b.path), None)
        if bios is None or bios.path is None:
            raise InvalidInputError("-isohybrid-mbr: needs a BIOS El Torito image (-b, such as isolinux.bin) "
                                    "whose address the MBR code is given")
        located = self.iso.lookup(bios.path)
        if located.device_offset is None:
            raise InvalidInputError(f"-isohybrid-mbr: the boot image {bios.path} is empty")
        lba = located.device_offset // SECTOR
        return patch_isohybrid_mbr(code, lba, kind), lba

    def _grub2_patches(self, iso: ISOPlan) -> tuple[tuple[int, bytes], ...]:
        """--grub2-boot-info: GRUB's El Torito image told its own address (boot/isohybrid.py).
        With -boot-info-table too, the table's checksum is made again over the patched
        image, as xorriso patches before it sums (El Torito boot info table, byte 20)."""
        out = []
        for spec in self._boot:
            if not (spec.grub2_boot_info and spec.path):
                continue
            located = self.iso.lookup(spec.path)
            if located.device_offset is None:
                raise InvalidInputError(f"--grub2-boot-info: the boot image {spec.path} is empty")
            offset, blob = grub2_boot_info(located.device_offset // SECTOR, located.size_bytes)
            out.append((located.device_offset + offset, blob))
            name = to_fileinfo({"name": spec.path, "mode": 0o100644}).name
            patched = next((b for p, b in iso.owned if b is not None and p.info.name == name), None)
            if spec.boot_info_table and patched is not None:
                image = patched[:offset] + blob + patched[offset + len(blob):]
                checksum = struct.pack("<I", boot_info_checksum(image))
                out.append((located.device_offset + BOOT_INFO_CHECKSUM_OFFSET, checksum))
        return tuple(out)

    def _efi_boot_image(self) -> tuple[int, int]:
        """-efi-boot-part --efi-boot-image: the extent of the first EFI El Torito image."""
        spec = next((b for b in self._boot if b.platform == "efi" and b.path), None)
        if spec is None or spec.path is None:
            raise InvalidInputError("-efi-boot-part --efi-boot-image: needs an EFI El Torito image of the tree "
                                    "(-e FILE or --efi-boot FILE)")
        located = self.iso.lookup(spec.path)
        if located.device_offset is None:
            raise InvalidInputError(f"-efi-boot-part --efi-boot-image: {spec.path} is empty")
        return located.device_offset, located.size_bytes

    def _marked_efi_extents(self) -> list[tuple[int, int]]:
        """Boot images (files) marked -isohybrid-gpt-basdat, whatever their platform, as
        xorriso marks them: an 0xEF MBR entry each where a slot is free."""
        out = []
        for spec in self._boot:
            if spec.gpt_basdat and spec.path:
                located = self.iso.lookup(spec.path)
                if located.device_offset is not None:
                    out.append((located.device_offset, located.size_bytes))
        return out

    # -- writing ---------------------------------------------------------------------------
    def write(self, fd: int, plan: MkisofsPlan) -> None:
        """Write ``plan`` into ``fd`` (already sized): the ISO, the file data, the appended
        partitions, the GPT, and the MBR last."""
        self.iso.write(fd, plan.iso)
        if plan.partition_tree is not None and plan.partition_plan is not None:
            plan.partition_tree.write(fd, plan.partition_plan)
        for offset, blob in plan.patches:
            os.pwrite(fd, blob, offset)
        for info, offset in plan.files:
            if info.source is not None:
                info.source.write_to(fd, offset)
        for placed, source in zip(plan.appended, plan.appended_sources):
            source.write_to(fd, placed.device_offset)
        if plan.gpt is not None and plan.gpt_layout is not None:
            plan.gpt.write(fd, plan.gpt_layout, with_data=False)
        if plan.mbr is not None:
            os.pwrite(fd, plan.mbr, 0)

    def finish(self) -> MkisofsPlan:
        """plan(), then write the image to ``filename``/``filehandle`` (atomically)."""
        if self.filename is None and self.filehandle is None:
            raise InvalidInputError("MkisofsImage: give -o FILE")
        plan = self.plan()
        with Output(self.filename, self.filehandle) as out:
            out.prepare(plan.device_size_bytes)
            self.write(out.fd, plan)
        return plan
