"""sysexport: write bootable media from Python.

ISO9660 (Joliet, Rock Ridge, El Torito), VFAT, GPT, MBR, CPIO (initramfs), and
:class:`ISO9660Hybrid`, one image that is at once a CD image and a GPT disk whose EFI
System Partition holds the same files, each file's bytes stored once.

Names are imported lazily so that ``import sysexport`` stays cheap (type checkers see
them as the imports below).  How the package is put together: docs/architecture.md.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from .errors import InternalError, InvalidImageError, InvalidInputError, LayoutError, SysExportError

if TYPE_CHECKING:
    from .cpio import CPIO
    from .export.exporter import Exporter
    from .hybrid import ISO9660Hybrid
    from .image import Image, open
    from .iso9660.eltorito import (BOOT_EFI, BOOT_MAC, BOOT_PPC, BOOT_X86, EMU_FLOPPY12, EMU_FLOPPY144,
                                   EMU_FLOPPY288, EMU_HDD, EMU_NONE)
    from .iso9660.writer import FLAG_HIDDEN, ISO9660
    from .partition.gpt import (GPT, GPT_TYPE_BIOS_BOOT, GPT_TYPE_ESP, GPT_TYPE_LINUX_FS, GPT_TYPE_MS_BASIC_DATA,
                                GPTPartition)
    from .partition.mbr import MBR
    from .vfat.writer import VFAT

__version__ = "0.1.0"

_LAZY = {
    "open": "sysexport.image",
    "Image": "sysexport.image",
    "ISO9660Hybrid": "sysexport.hybrid",
    "ISO9660": "sysexport.iso9660.writer",
    "BOOT_X86": "sysexport.iso9660.eltorito",
    "BOOT_EFI": "sysexport.iso9660.eltorito",
    "BOOT_PPC": "sysexport.iso9660.eltorito",
    "BOOT_MAC": "sysexport.iso9660.eltorito",
    "EMU_NONE": "sysexport.iso9660.eltorito",
    "EMU_FLOPPY12": "sysexport.iso9660.eltorito",
    "EMU_FLOPPY144": "sysexport.iso9660.eltorito",
    "EMU_FLOPPY288": "sysexport.iso9660.eltorito",
    "EMU_HDD": "sysexport.iso9660.eltorito",
    "FLAG_HIDDEN": "sysexport.iso9660.writer",
    "VFAT": "sysexport.vfat.writer",
    "GPT": "sysexport.partition.gpt",
    "GPTPartition": "sysexport.partition.gpt",
    "GPT_TYPE_ESP": "sysexport.partition.gpt",
    "GPT_TYPE_BIOS_BOOT": "sysexport.partition.gpt",
    "GPT_TYPE_LINUX_FS": "sysexport.partition.gpt",
    "GPT_TYPE_MS_BASIC_DATA": "sysexport.partition.gpt",
    "MBR": "sysexport.partition.mbr",
    "CPIO": "sysexport.cpio",
    "Exporter": "sysexport.export.exporter",
}

# ``open`` is not in __all__: ``from sysexport import *`` must not hide the builtin open().
__all__ = ["SysExportError", "InvalidInputError", "LayoutError", "InvalidImageError", "InternalError",
           *(name for name in _LAZY if name != "open")]


def __getattr__(name: str) -> object:
    """Import a public name of :data:`_LAZY` on first use (PEP 562)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'sysexport' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
