"""What a boot loader (or any other party) contributes to a hybrid image's plan.

A :class:`BootContribution` is a value: files to add, El Torito entries, whether the
El Torito EFI entry names the ESP, GPT partitions, legacy MBR boot code, and a
``finalize`` function that, once the layout is known, returns the byte patches that
depend on it (GRUB's boot.img and core image must name the LBA of the BIOS boot
partition; an isohybrid MBR the LBA of the El Torito boot image, a file it asks to
``locate``).  :meth:`sysexport.hybrid.ISO9660Hybrid.contribute` takes it; the hybrid's
plan then holds the patched bytes.  Nothing edits the hybrid's parts behind its back.
"""
from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import InvalidInputError
from .partition.mbr import BOOT_CODE_MAX_BYTES


@dataclass(frozen=True)
class ElToritoRequest:
    """One El Torito catalog entry (the arguments of ISO9660.add_boot_catalog_entry)."""

    platform: int
    path: str | None = None
    data: bytes | None = None
    media_type: int = 0
    load_segment: int = 0
    load_size: int | None = None
    boot_info_table: bool = False
    system_type: int = 0
    section_id: bytes = b""
    bootable: bool = True

    def arguments(self) -> dict[str, Any]:
        """Keyword arguments for ``ISO9660.add_boot_catalog_entry``."""
        return dict(platform=self.platform, path=self.path, data=self.data, media_type=self.media_type,
                    load_segment=self.load_segment, load_size=self.load_size,
                    boot_info_table=self.boot_info_table, system_type=self.system_type,
                    section_id=self.section_id, bootable=self.bootable)


@dataclass(frozen=True)
class PartitionRequest:
    """One GPT partition placed by the hybrid after the ESP (4 KiB aligned)."""

    type_guid: uuid.UUID
    size_bytes: int
    name: str = ""
    data: bytes | None = None


@dataclass(frozen=True)
class PlacedBoot:
    """What ``finalize`` is told once the hybrid is laid out: the byte extent
    ``(device_offset, size_bytes)`` of each of the contribution's partitions, in the
    order of :attr:`BootContribution.partitions`, and the image size."""

    partitions: tuple[tuple[int, int], ...]
    device_size_bytes: int
    files: tuple[tuple[int | None, int], ...] = ()
    """``(device_offset, size_bytes)`` of each path of :attr:`BootContribution.locate`, in
    its order (device_offset None: an empty file, which has no bytes): an isohybrid MBR
    names the El Torito boot image's address."""


@dataclass(frozen=True)
class BootPatches:
    """What ``finalize`` returns: the MBR boot code (None: keep the contribution's) and
    each partition's final data (None: keep the request's), in request order."""

    mbr_boot_code: bytes | None = None
    partition_data: tuple[bytes | None, ...] = ()


@dataclass(frozen=True)
class BootContribution:
    """Everything one boot loader adds to a hybrid image (see the module docstring)."""

    files: tuple[Mapping[str, Any], ...] = ()
    eltorito: tuple[ElToritoRequest, ...] = ()
    efi_from_esp: bool = False
    partitions: tuple[PartitionRequest, ...] = ()
    mbr_boot_code: bytes | None = None
    finalize: Callable[[PlacedBoot], BootPatches] | None = field(default=None, compare=False)
    locate: tuple[str, ...] = ()
    """Image paths (files added to the image, by the contribution or before it) whose
    final extents ``finalize`` is told in :attr:`PlacedBoot.files`."""

    def check(self) -> None:
        """Reject a contribution the hybrid cannot hold."""
        if self.mbr_boot_code is not None and len(self.mbr_boot_code) > BOOT_CODE_MAX_BYTES:
            raise InvalidInputError(f"boot contribution: mbr_boot_code of {len(self.mbr_boot_code)} bytes; "
                                    f"at most {BOOT_CODE_MAX_BYTES} fit before the MBR's disk signature")
        for req in self.partitions:
            if req.data is not None and len(req.data) > req.size_bytes:
                raise InvalidInputError(f"boot contribution: partition {req.name!r} holds {req.size_bytes} bytes, "
                                        f"its data has {len(req.data)}")
        for path in self.locate:
            if not isinstance(path, str) or not path.strip("/"):
                raise InvalidInputError(f"boot contribution: locate names image paths, found {path!r}")
        if self.locate and self.finalize is None:
            raise InvalidInputError("boot contribution: locate without a finalize to tell the extents to")
