"""The VFAT writer's settings and their checks (as rust-fatfs checks its
FormatVolumeOptions): each attribute is validated when set, by the same function."""
from __future__ import annotations

from ..errors import InvalidInputError
from ._structs import BYTES_PER_SECTOR as SECTOR_SIZES

MAX_CLUSTER_BYTES = 65536
MAX_VOLUME_BYTES = 0xFFFFFFFF * 4096
"""BPB_TotSec32 is 32 bits: at most 2**32 - 1 sectors of at most 4096 bytes."""


def _int_value(field: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInputError(f"VFAT {field}: expected an integer, found {value!r}")
    return value


def validate_sector_size(value: object) -> int:
    """BPB_BytsPerSec: one of 512, 1024, 2048, 4096 (fatgen103)."""
    size = _int_value("sector_size", value)
    if size not in SECTOR_SIZES:
        raise InvalidInputError(f"VFAT sector_size: must be one of {', '.join(map(str, SECTOR_SIZES))} "
                                f"(fatgen103 BPB_BytsPerSec), found {value!r}")
    return size


def validate_fat_type(value: object) -> int | None:
    """None (chosen by the cluster count) or 12, 16, 32."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value not in (12, 16, 32):
        raise InvalidInputError(f"VFAT fat_type: must be 12, 16, 32 or None, found {value!r}")
    return value


def validate_cluster_size(value: object, sector_size: int) -> int | None:
    """None (chosen) or a power of two from ``sector_size`` to 65536 bytes."""
    if value is None:
        return None
    size = _int_value("cluster_size", value)
    if size & (size - 1) or not sector_size <= size <= MAX_CLUSTER_BYTES:
        raise InvalidInputError(f"VFAT cluster_size: must be a power of two from sector_size ({sector_size}) "
                                f"to {MAX_CLUSTER_BYTES}, found {value!r}")
    return size


def validate_size_bytes(value: object) -> int | None:
    """None (just large enough) or a least volume size, 0 .. 2**32 - 1 sectors of 4096 bytes."""
    if value is None:
        return None
    size = _int_value("size_bytes", value)
    if not 0 <= size <= MAX_VOLUME_BYTES:
        raise InvalidInputError(f"VFAT size_bytes: must be 0..{MAX_VOLUME_BYTES} (BPB_TotSec32 is 32 bits), "
                                f"found {value!r}")
    return size


def validate_volume_offset(value: object, sector_size: int) -> int:
    """Byte offset of the volume on its device: >= 0, a multiple of ``sector_size``."""
    offset = _int_value("volume_offset", value)
    if offset < 0 or offset % sector_size:
        raise InvalidInputError(f"VFAT volume_offset: must be a non-negative multiple of sector_size "
                                f"({sector_size}), found {value!r}")
    return offset
