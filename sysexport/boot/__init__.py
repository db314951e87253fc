"""Boot loaders for sysexport images.

:mod:`sysexport.boot.grub` makes everything an :class:`~sysexport.hybrid.ISO9660Hybrid`
needs to boot five ways (BIOS from CD, BIOS from disk, UEFI from CD, UEFI from disk with
512- or 4096-byte sectors) from the machine's GRUB installation.  See docs/booting.md.
"""
from __future__ import annotations
