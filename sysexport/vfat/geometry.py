"""Volume geometry: FAT type, cluster size, reserved sectors, FAT size, data-region alignment.

The FAT type is a consequence of the cluster count alone (fatgen103 "FAT Type
Determination": fewer than 4085 clusters is FAT12, fewer than 65525 FAT16, else FAT32),
so the count is chosen first and kept at least ``BOUNDARY_MARGIN`` clusters away from
both limits.  Reserved sectors are padded so that the data region starts at a device
offset aligned to ``max(4096, cluster size)``: then a file that starts a cluster is also
2 KiB / 4 KiB aligned on the device and alignment costs no padding.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..errors import LayoutError
from ..extent import align_up
from ._structs import DIR_ENTRY_BYTES

FAT12_MAX_CLUSTERS = 4084           # fatgen103: < 4085 clusters is FAT12
FAT16_MAX_CLUSTERS = 65524          # < 65525 is FAT16, anything larger FAT32
FAT32_MAX_CLUSTERS = 0x0FFFFFF5 - 2
BOUNDARY_MARGIN = 16                # clusters kept away from each type boundary
SECTORS_PER_TRACK = 63              # BPB_SecPerTrk / BPB_NumHeads: int 13h geometry only; mtools
HEADS = 255                         # 4.0.32 accepts totals that are not whole tracks (tested)
NUM_FATS = 2
ROOT_ENTRIES_DEFAULT = 512          # fatgen103: FAT16 root directories should hold 512
MAX_DATA_ALIGN = 1 << 20            # largest data-region alignment pursued via reserved sectors
ENTRY_BITS = {12: 12, 16: 16, 32: 32}


def cluster_range(fat_type: int) -> tuple[int, int]:
    """Cluster counts a volume of this type may have, boundary margins included."""
    if fat_type == 12:
        return 1, FAT12_MAX_CLUSTERS - BOUNDARY_MARGIN
    if fat_type == 16:
        return FAT12_MAX_CLUSTERS + 1 + BOUNDARY_MARGIN, FAT16_MAX_CLUSTERS - BOUNDARY_MARGIN
    return FAT16_MAX_CLUSTERS + 1 + BOUNDARY_MARGIN, FAT32_MAX_CLUSTERS


def fat_type_of(cluster_count: int) -> int:
    """fatgen103's rule: the type a reader will assume for this cluster count."""
    if cluster_count <= FAT12_MAX_CLUSTERS:
        return 12
    if cluster_count <= FAT16_MAX_CLUSTERS:
        return 16
    return 32


@dataclass
class Geometry:
    """Everything the BPB says about the layout, plus derived byte offsets (in the volume)."""

    fat_type: int
    sector_size: int
    sectors_per_cluster: int
    reserved_sectors: int
    fat_sectors: int                # per FAT
    root_entries: int               # FAT12/16 fixed root directory; 0 on FAT32
    total_sectors: int
    cluster_count: int
    volume_offset: int

    @property
    def cluster_size(self) -> int:
        return self.sectors_per_cluster * self.sector_size

    @property
    def fat_offset(self) -> int:
        return self.reserved_sectors * self.sector_size

    @property
    def root_dir_sectors(self) -> int:
        return (self.root_entries * DIR_ENTRY_BYTES + self.sector_size - 1) // self.sector_size

    @property
    def root_offset(self) -> int:
        """Offset in the volume of the FAT12/16 root directory region."""
        return (self.reserved_sectors + NUM_FATS * self.fat_sectors) * self.sector_size

    @property
    def data_offset(self) -> int:
        return self.root_offset + self.root_dir_sectors * self.sector_size

    @property
    def size_bytes(self) -> int:
        return self.total_sectors * self.sector_size

    def cluster_offset(self, cluster: int) -> int:
        """Offset in the volume of a data cluster (clusters are numbered from 2)."""
        return self.data_offset + (cluster - 2) * self.cluster_size


def default_cluster_size(estimate_bytes: int, sector_size: int) -> int:
    """A cluster size for a volume of about ``estimate_bytes``: at least 2 KiB (so that
    2 KiB-aligned files need no padding), FAT16-sized below 260 MiB, then the usual FAT32
    steps (4 KiB up to 8 GiB, 8 KiB to 16 GiB, 16 KiB to 32 GiB, 32 KiB beyond)."""
    if estimate_bytes < 260 << 20:
        cs = 2048
        while cs * 60000 < estimate_bytes:
            cs *= 2
    elif estimate_bytes <= 8 << 30:
        cs = 4096
    elif estimate_bytes <= 16 << 30:
        cs = 8192
    elif estimate_bytes <= 32 << 30:
        cs = 16384
    else:
        cs = 32768
    return max(cs, sector_size)


def compute(fat_type: int, cluster_size: int, sector_size: int, volume_offset: int,
            root_slots: int, min_size_bytes: int, data_align: int,
            allocate: Callable[[int, int], int]) -> Geometry | None:
    """Lay out a volume of ``fat_type`` with ``cluster_size``, or return None if impossible.

    ``allocate(data_device_offset, cluster_size)`` places every file and directory and
    returns how many clusters (from cluster 2, alignment gaps included) they use.
    ``root_slots`` is the number of 32-byte directory entries of the root directory.
    """
    spc = cluster_size // sector_size
    lo, hi = cluster_range(fat_type)
    reserved_min = 1 if fat_type != 32 else max(32 * 512 // sector_size, 8)
    if fat_type == 32:
        root_entries = 0
    else:
        per_sector = sector_size // DIR_ENTRY_BYTES
        root_entries = max(ROOT_ENTRIES_DEFAULT, align_up(root_slots, per_sector))
        if root_entries > 0xFFFF - per_sector + 1:
            return None
    track_lcm = max(1, 4096 // sector_size)        # volume size: a multiple of 4096 bytes
    rounding_clusters = track_lcm // spc + 2
    align = max(4096, cluster_size, min(data_align, MAX_DATA_ALIGN))
    target = lo
    for attempt in range(64):
        fat_entries = target + 2 + rounding_clusters
        fat_sectors = -(-(fat_entries * ENTRY_BITS[fat_type]) // (8 * sector_size))
        root_sectors = (root_entries * DIR_ENTRY_BYTES + sector_size - 1) // sector_size
        meta = reserved_min + NUM_FATS * fat_sectors + root_sectors
        misalign = (volume_offset + meta * sector_size) % align
        reserved = reserved_min + ((align - misalign) % align) // sector_size
        data_sector = reserved + NUM_FATS * fat_sectors + root_sectors
        used = allocate(volume_offset + data_sector * sector_size, cluster_size)
        slack = max(16, used // 64)
        min_total = max(data_sector + (used + slack) * spc, -(-min_size_bytes // sector_size))
        needed = max(lo, (min_total - data_sector + spc - 1) // spc)
        if needed > hi:            # judged with the largest FAT this type can have
            if target == hi:
                return None
            target = hi
            continue
        # Grow to what is needed; early on also shrink, since a larger FAT moves the data
        # region and lowers the count a minimum size needs (a fixed point, found in 2-3 steps).
        if needed > target or (needed < target and attempt < 8):
            target = needed
            continue
        total = align_up(data_sector + target * spc, track_lcm)
        count = (total - data_sector) // spc
        if count > hi:
            return None
        if count + 2 > fat_sectors * sector_size * 8 // ENTRY_BITS[fat_type]:
            target = count
            continue
        if total > 0xFFFFFFFF or reserved > 0xFFFF or (fat_type != 32 and fat_sectors > 0xFFFF):
            return None
        return Geometry(fat_type, sector_size, spc, reserved, fat_sectors, root_entries, total,
                        count, volume_offset)
    raise LayoutError("FAT geometry did not converge (please report this)")
