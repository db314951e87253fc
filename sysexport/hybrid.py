"""ISO9660Hybrid: one image that is a CD image and a GPT disk, every file stored once.

The image (byte offsets from its start)::

    0        protective MBR; bytes 0..439 are the caller's legacy boot code
    512      GPT header for 512-byte sectors            \\
    4096     GPT header for 4096-byte sectors            | the ISO9660 system area
    8192     4K GPT entry array (16 KiB, 128 entries)    | (16 sectors of 2048 bytes)
    32768    ISO9660 volume descriptors (PVD, boot record, Joliet SVD, terminator)
    ...      512-byte GPT entry array (16 KiB), in a gap the ISO writer leaves
    ...      ISO metadata: boot catalog, path tables, directories, RR continuation areas,
             the data of files that live only in the ISO
    ESP      partition 1, 4 KiB aligned: a FAT file system holding every shared file;
             each file is one contiguous run starting on a 2 KiB device boundary, and the
             ISO directory records point at the very same bytes
    ...      further partitions, if any
    end      backup arrays and headers of both GPTs (the 512-byte backup header lies in the
             last 512 bytes of the 4K backup header's block)

Booting (El Torito entries, MBR boot code, GRUB) is added by :mod:`sysexport.boot.grub`.
"""
from __future__ import annotations

import contextvars
import gc
import os
import re
import stat
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, BinaryIO, Callable, Iterator

from .errors import InternalError, InvalidInputError, LayoutError
from .extent import Extent, align_up, check_no_overlap
from .fileinfo import FileInfo, to_fileinfo, walk_host_fileinfo
from .output import Output

FOUR_GIB = 1 << 32
ISO_SECTOR_BYTES = 2048
SYSTEM_AREA_BYTES = 16 * ISO_SECTOR_BYTES
GPT_ARRAY_BYTES = 16384
"""UEFI 2.x 5.3.1: at least 16,384 bytes are reserved for each GPT partition entry array."""
GPT4K_HEADER_OFFSET = 4096
GPT4K_ARRAY_OFFSET = 8192
GPT512_HEADER_OFFSET = 512
BACKUP_AREA_BYTES = 4096 + 2 * GPT_ARRAY_BYTES
"""Bytes at the end of the device for both backup arrays and the shared backup header block."""
DEFAULT_PARTITION_ALIGN = 4096
SHARED_FILE_ALIGN = ISO_SECTOR_BYTES
"""Every shared file starts on a 2 KiB device boundary so that an ISO extent can name it."""


@dataclass
class HybridSummary:
    """What finish() built: for the CLI's summary and for scripts."""

    image_size_bytes: int
    iso_metadata_end: int
    esp_offset: int
    esp_size_bytes: int
    fat_type: int | None
    partitions: list[tuple[str, int, int]]
    file_count: int
    shared_file_count: int
    data_bytes: int

    def lines(self) -> list[str]:
        mib = 1 << 20
        out = [f"image      {self.image_size_bytes:>14,} bytes ({self.image_size_bytes / mib:.1f} MiB)",
               f"ISO meta   {self.iso_metadata_end:>14,} bytes before the first partition",
               f"ESP        {self.esp_size_bytes:>14,} bytes at offset {self.esp_offset:,}"
               + (f" (FAT{self.fat_type})" if self.fat_type else ""),
               f"files      {self.file_count:>14,} ({self.shared_file_count:,} stored once for both "
               f"file systems, {self.data_bytes:,} bytes of data)"]
        for i, (name, off, size) in enumerate(self.partitions, 1):
            out.append(f"partition {i} {name!r}: {size:,} bytes at offset {off:,}")
        return out


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while records are made in bulk.

    Adding 100,000 files creates over a million long-lived objects; the collector would
    scan them again and again (about 12% of a build's time, measured) to find no garbage.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class ISO9660Hybrid:
    """An image that is both an ISO9660 file system and a GPT disk with one VFAT ESP.

    A port of Perl's Sys::Export::ISO9660Hybrid.  Every file added goes into both file
    systems (unless its ``hybrid_target`` says "iso" or "esp"); its bytes are stored once,
    inside the ESP, and the ISO9660 (and Joliet) directory records point at them.
    Symlinks, devices, fifos and sockets go to the ISO (Rock Ridge) only.

    ``ISO9660Hybrid(filename)``, ``ISO9660Hybrid(filehandle=fh)`` or keyword attributes.
    """

    def __init__(self, filename: str | os.PathLike | None = None, *, filehandle: BinaryIO | None = None,
                 **attrs: Any) -> None:
        from .iso9660.writer import ISO9660
        from .partition.gpt import GPT, GPT_TYPE_ESP
        from .vfat.writer import VFAT

        self.filename = os.fspath(filename) if filename is not None else None
        self.filehandle = filehandle
        self.iso = ISO9660()
        self.esp = VFAT()
        self.gpt = GPT(block_size=4096, alignment_bytes=DEFAULT_PARTITION_ALIGN)
        # Placeholder size: plan() fixes the ESP's extent once the FAT is laid out.
        self.esp_partition = self.gpt.add_partition(GPT_TYPE_ESP, size_bytes=4096, name="EFI System Partition")
        self.mbr_boot_code: bytes | None = None
        self.mbr_bootable = False
        self.efi_boot = False
        self.esp_min_size_bytes = 0
        self.partition_align_bytes = DEFAULT_PARTITION_ALIGN
        self.before_write: list[Callable[[ISO9660Hybrid], None]] = []
        self.efi_catalog_entry = None
        self.summary: HybridSummary | None = None
        self.gpt512 = None
        self._shared: list[Any] = []       # ESP tree nodes of the files stored once for both
        self._files = 0
        self.total_data_bytes = 0
        self._finished = False
        self.volume_label = "ISOHYBRID"
        for key, value in attrs.items():
            if key in ("filename", "filehandle"):
                setattr(self, key, value)
            elif key in ("volume_label", "mbr_boot_code", "mbr_bootable", "efi_boot",
                         "esp_min_size_bytes", "partition_align_bytes", "default_time"):
                setattr(self, key, value)
            else:
                raise InvalidInputError(f"ISO9660Hybrid: unknown attribute {key!r}")

    # -- attributes --------------------------------------------------------------------
    @property
    def volume_label(self) -> str:
        """The ISO volume label; setting it sets the ESP's FAT label too."""
        return self.iso.volume_label

    @volume_label.setter
    def volume_label(self, label: str) -> None:
        if not isinstance(label, str) or not label:
            raise InvalidInputError(f"volume_label: expected a non-empty str, found {label!r}")
        self.iso.volume_label = label
        fat_label = re.sub(r"[^A-Z0-9 _\-]", "_", label.upper())[:11].rstrip() or "ESP"
        self.esp.volume_label = fat_label

    @property
    def default_time(self):
        return self.iso.default_time

    @default_time.setter
    def default_time(self, value) -> None:
        self.iso.default_time = value
        self.esp.default_time = value

    @property
    def partitions(self):
        """Shortcut for ``self.gpt.partitions`` (the ESP is the first)."""
        return self.gpt.partitions

    # -- adding --------------------------------------------------------------------------
    def add(self, spec: Any, **overrides: Any) -> FileInfo:
        """Add a file-info record (mapping or shorthand) to both file systems.

        ``hybrid_target`` chooses "both" (default), "iso" or "esp".  Symlinks, devices,
        fifos and sockets go to the ISO only; a file of 4 GiB or more must be marked
        ``hybrid_target="iso"`` (FAT cannot hold it).
        """
        if self._finished:
            raise InvalidInputError("add(): this image was already finished")
        info = to_fileinfo(spec, **overrides)
        where = info.name or "/"
        target = info.hybrid_target
        fmt = info.mode & 0o170000
        is_file = fmt == stat.S_IFREG
        is_dir = fmt == stat.S_IFDIR
        if not (is_file or is_dir):
            if target == "esp":
                raise InvalidInputError(f"{where}: FAT cannot hold mode {info.mode:#o}; "
                                        "only regular files and directories can go to the ESP")
            target = "iso"
        if is_file and info.size >= FOUR_GIB and target != "iso":
            raise InvalidInputError(f"{where}: {info.size} bytes is more than FAT can hold (4 GiB - 1); "
                                    "mark it hybrid_target='iso' to store it in the ISO only")
        fat_node = None
        if target in ("both", "esp"):
            if is_file and target == "both" and (info.device_align or 1) < SHARED_FILE_ALIGN:
                # One FileInfo serves both writers: the ISO ignores device_align of a file
                # placed later, the ESP puts the file on a 2 KiB device boundary.
                info.device_align = SHARED_FILE_ALIGN
            fat_node = self.esp.add(info)
        if target in ("both", "iso"):
            shared = target == "both" and is_file and info.size > 0
            self.iso.add(info, placed_later=shared)
            if shared:
                self._shared.append(fat_node)
        if not is_dir:
            self._files += 1
        if is_file:
            self.total_data_bytes += info.size
        return info

    def add_tree(self, host_dir: str | os.PathLike, dest: str = "") -> None:
        """Add a host directory tree (lstat, sorted; symlinks kept, hard links recognised)."""
        with _gc_paused():
            for info in walk_host_fileinfo(host_dir, dest):
                self.add(info)

    # -- layout ----------------------------------------------------------------------------
    def plan(self) -> int:
        """Compute the whole layout (ISO, GPTs, ESP, partitions); returns the image size."""

        from .iso9660.eltorito import BOOT_EFI
        from .partition.gpt import GPT

        if self.efi_boot and self.efi_catalog_entry is None:
            self.efi_catalog_entry = self.iso.add_boot_catalog_entry(
                platform=BOOT_EFI, extent=Extent(0, ISO_SECTOR_BYTES, "ESP"))
        # 1. ISO metadata, with a gap after the descriptors for the 512-byte GPT array.
        iso_end = self.iso.plan(reserve_after_descriptors=GPT_ARRAY_BYTES)
        gap = self.iso.reserved_extent
        if gap.size_bytes < GPT_ARRAY_BYTES or gap.device_offset % 512:
            raise InternalError(f"ISO reserved gap {gap} cannot hold a 16 KiB GPT array")
        # 2. Partitions after the ISO metadata: the ESP first, then the caller's.
        align = self.partition_align_bytes
        if align % 4096:
            raise InvalidInputError(f"partition_align_bytes: must be a multiple of 4096, found {align}")
        esp_offset = align_up(iso_end, align)
        esp_size = align_up(self.esp.plan(volume_offset=esp_offset), 4096)
        if esp_size < self.esp_min_size_bytes:
            self.esp.size_bytes = self.esp_min_size_bytes
            esp_size = align_up(self.esp.plan(volume_offset=esp_offset), 4096)
        self.esp_partition.set_extent(esp_offset, esp_size)
        next_free = esp_offset + esp_size
        for part in self.gpt.partitions:
            if part is self.esp_partition:
                continue
            size = part.size_bytes
            if part.size_rule == "fill" or size is None:
                raise InvalidInputError(f"partition {part.name!r}: give size_bytes or data "
                                        "(the hybrid places extra partitions after the ESP)")
            if part.size_rule == "data":
                size = align_up(part.data.size_bytes, 4096)
            offset = align_up(next_free, align) if part.auto_offset else part.device_offset
            part.set_extent(offset, align_up(size, 4096))
            if part.device_offset % 4096 or part.size_bytes % 4096:
                raise LayoutError(f"partition {part.name!r}: offset {part.device_offset} and size "
                                  f"{part.size_bytes} must be multiples of 4096 (both GPTs describe it)")
            next_free = max(next_free, part.device_offset + part.size_bytes)
        device_size = align_up(next_free, 4096) + BACKUP_AREA_BYTES
        # 3. Both GPTs: 4K arrays in the system area and before the backup header block,
        #    512-byte arrays in the ISO's gap and below the 4K backup array.
        first_usable = align_up(gap.end, 4096)
        last_usable_end = device_size - BACKUP_AREA_BYTES
        g4 = self.gpt
        g4.primary_entries_offset = GPT4K_ARRAY_OFFSET
        g4.backup_header_offset = device_size - 4096
        g4.backup_entries_offset = device_size - 4096 - GPT_ARRAY_BYTES
        g4.first_usable_lba = first_usable // 4096
        g4.last_usable_lba = last_usable_end // 4096 - 1
        g4.layout(device_size)
        g5: GPT = g4.derive(512)
        g5.primary_entries_offset = gap.device_offset
        g5.backup_header_offset = device_size - 512
        g5.backup_entries_offset = device_size - 4096 - 2 * GPT_ARRAY_BYTES
        g5.first_usable_lba = first_usable // 512
        g5.last_usable_lba = last_usable_end // 512 - 1
        g5.layout(device_size)
        self.gpt512 = g5
        # 4. Point every shared ISO file at its FAT extent; the EFI entry at the ESP.
        placed: dict[tuple[int, int], int] = {}
        place_node = getattr(self.iso, "place_node", None)
        for fat_node in self._shared:
            info = fat_node.info
            offset = self.esp.device_offset_of(fat_node)
            if offset is None or offset % SHARED_FILE_ALIGN:
                raise InternalError(f"{info.name}: FAT placed it at {offset}, not 2 KiB aligned")
            key = info.link_key
            if key is not None and key in placed:
                continue
            if key is not None:
                placed[key] = offset
            if place_node is not None:      # no name normalisation per file
                place_node(self.iso.tree.find(info.name), offset, info.name)
            else:
                self.iso.place_file(info.name, offset)
        if self.efi_catalog_entry is not None:
            self.efi_catalog_entry.extent = Extent(esp_offset, esp_size, "ESP")
        self.iso.volume_size_bytes = device_size
        self._check_layout(device_size, gap, iso_end)
        self.device_size_bytes = device_size
        self.summary = HybridSummary(
            image_size_bytes=device_size, iso_metadata_end=iso_end, esp_offset=esp_offset,
            esp_size_bytes=esp_size, fat_type=getattr(self.esp, "fat_type", None),
            partitions=[(p.name, p.device_offset, p.size_bytes) for p in self.gpt.partitions],
            file_count=self._files, shared_file_count=len(self._shared),
            data_bytes=sum(n.info.size for n in self._shared))
        return device_size

    def _check_layout(self, device_size: int, gap: Extent, iso_end: int) -> None:
        pieces = [Extent(0, 512, "protective MBR"),
                  Extent(GPT512_HEADER_OFFSET, 512, "512-byte GPT header"),
                  Extent(GPT4K_HEADER_OFFSET, 4096, "4K GPT header"),
                  Extent(GPT4K_ARRAY_OFFSET, GPT_ARRAY_BYTES, "4K GPT entry array"),
                  Extent(gap.device_offset, GPT_ARRAY_BYTES, "512-byte GPT entry array"),
                  Extent(SYSTEM_AREA_BYTES, gap.device_offset - SYSTEM_AREA_BYTES, "ISO descriptors"),
                  Extent(gap.end, iso_end - gap.end, "ISO metadata and ISO-only files"),
                  Extent(device_size - 4096 - 2 * GPT_ARRAY_BYTES, GPT_ARRAY_BYTES, "512-byte backup array"),
                  Extent(device_size - 4096 - GPT_ARRAY_BYTES, GPT_ARRAY_BYTES, "4K backup array"),
                  Extent(device_size - 4096, 4096, "backup GPT headers")]
        pieces += [Extent(p.device_offset, p.size_bytes, f"partition {p.name!r}") for p in self.gpt.partitions]
        check_no_overlap(pieces, device_size)

    # -- writing ---------------------------------------------------------------------------
    def finish(self) -> HybridSummary:
        """Lay out and write the image (see the module docstring for the layout)."""
        if self._finished:
            raise InvalidInputError("finish(): this image was already finished")
        if self.filename is None and self.filehandle is None:
            raise InvalidInputError("ISO9660Hybrid: set filename or filehandle before finish()")
        self._boot_code()                   # bad boot code: an error before any work
        with _gc_paused():
            return self._finish()

    def _finish(self) -> HybridSummary:
        from .partition.mbr import MBR

        device_size = self.plan()
        for hook in self.before_write:
            hook(self)
        boot_code = self._boot_code()
        with Output(self.filename, self.filehandle) as out:
            out.set_size(device_size)
            fd = out.fd
            self._write_iso_and_esp(fd)
            self.gpt.write(fd)                      # 4K GPT (and data of the caller's partitions)
            for offset, blob in self.gpt512.structures():  # then the 512-byte one
                os.pwrite(fd, blob, offset)
            mbr = MBR.protective(device_size, 512, bootable=self.mbr_bootable)
            if boot_code:
                mbr.set_boot_code(boot_code)
            os.pwrite(fd, mbr.to_bytes(), 0)
        self._finished = True
        return self.summary

    def _write_iso_and_esp(self, fd: int) -> None:
        """Write the ISO metadata and the ESP (with the file data) at the same time.

        They fill disjoint parts of the device, so the order does not matter; the ESP's
        thread spends most of its time in system calls reading source files (the GIL is
        released there) while this thread builds ISO directories: about 10% less wall time
        with 100,000 small files.
        """
        failure: list[BaseException] = []
        context = contextvars.copy_context()        # the progress callback lives in a ContextVar

        def write_esp() -> None:
            try:
                context.run(self.esp.write, fd)
            except BaseException as e:              # re-raised in the calling thread
                failure.append(e)

        worker = threading.Thread(target=write_esp, name="sysexport-esp-write")
        worker.start()
        try:
            self.iso.write(fd)
        finally:
            worker.join()
        if failure:
            raise failure[0]

    def _boot_code(self) -> bytes | None:
        code = self.mbr_boot_code
        if code is None:
            return None
        if isinstance(code, (str, os.PathLike)):
            with open(code, "rb") as f:
                code = f.read(512)
        code = bytes(code)
        if len(code) > 440 and any(code[440:min(len(code), 510)]):
            raise InvalidInputError(f"mbr_boot_code: {len(code)} bytes with data past byte 440; only 440 bytes "
                                    "of boot code fit before the partition table (disk signature and "
                                    "entries at 440..511 belong to the MBR)")
        return code[:440]
