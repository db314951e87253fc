"""FAT12/16/32 with long file names (fatgen103): the :class:`VFAT` writer."""
from __future__ import annotations

from ._structs import ATTR_ARCHIVE, ATTR_HIDDEN, ATTR_READ_ONLY, ATTR_SYSTEM
from .writer import VFAT, Placement

__all__ = ["VFAT", "Placement", "ATTR_READ_ONLY", "ATTR_HIDDEN", "ATTR_SYSTEM", "ATTR_ARCHIVE"]
