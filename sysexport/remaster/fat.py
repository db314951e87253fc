"""``VFAT.from_image``: a FAT writer holding every entry of an existing FAT volume.

The volume is a bare FAT image or the FAT view of a disk image (its ESP, see
:func:`sysexport.open`).  Each entry is added again with its long name, its 8.3 name
(when it is one the writer takes), its attributes (read-only, hidden, system, archive:
fatgen103 "FAT Directory Structure") and times; file data stays in the source and is
read from its cluster runs when the new volume is written.
"""
from __future__ import annotations

import os
from typing import IO, Any

from ..errors import InvalidInputError
from ..image import open as open_image
from ..vfat.writer import VFAT
from .data import ExtentsData

FAT_ATTRIBUTES = 0x27
"""ATTR_READ_ONLY | ATTR_HIDDEN | ATTR_SYSTEM | ATTR_ARCHIVE: what a caller may set again."""


def load_vfat(cls: type[VFAT], src: str | os.PathLike[str] | IO[bytes], target: dict[str, Any]) -> VFAT:
    """A ``cls`` writer (``target``: filename or filehandle) with the source's FAT entries."""
    image = open_image(src)
    names = [n for n in image.views() if n == "fat" or n.startswith("fat:")]
    if not names:
        image.close()
        raise InvalidInputError(f"{image.name}: no FAT volume found (it has {', '.join(image.views()) or 'nothing'})")
    view = image.view(names[0])
    fat = cls(**target)
    label = getattr(view, "label", None) or getattr(view, "boot_label", None)
    if isinstance(label, str) and label:
        try:
            fat.volume_label = label
        except InvalidInputError:
            pass
    sector = getattr(view, "bytes_per_sector", None)
    if isinstance(sector, int) and sector in (512, 1024, 2048, 4096):
        fat.sector_size = sector
    for st in view.walk():
        name = st.path.strip("/")
        if st.type not in ("file", "dir"):
            continue
        info: dict[str, Any] = {"name": name, "mode": st.mode or (0o40755 if st.is_dir else 0o100644),
                                "mtime": st.mtime, "atime": st.atime, "ctime": st.ctime}
        flags = int(st.fields.get("attributes", 0)) & FAT_ATTRIBUTES
        if flags and name:
            info["FAT_flags"] = flags
        if st.is_file:
            info["size"] = st.size
            if st.size:
                info["data"] = ExtentsData(image.file, st.extents, st.size, f"{image.name}:{view.name}:{st.path}")
        fat.add(info)
    return fat
