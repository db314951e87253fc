"""Boot loaders for sysexport images.

:mod:`sysexport.boot.grub` makes everything an :class:`~sysexport.hybrid.ISO9660Hybrid`
needs to boot five ways (BIOS from CD, BIOS from disk, UEFI from CD, UEFI from disk with
512- or 4096-byte sectors) from the machine's GRUB installation; with ``secure_boot=True``
the UEFI paths go through the distribution's signed shim and GRUB
(:mod:`sysexport.boot.secureboot`, PE/COFF reading in :mod:`sysexport.boot.pe`), and
``arch=`` makes images for arm64 or riscv64 (:mod:`sysexport.boot.arch`).  See
docs/booting.md.
"""
from __future__ import annotations
