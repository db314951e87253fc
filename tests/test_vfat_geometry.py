"""Geometry invariants over many sizes: the cluster count decides the type (fatgen103) and
stays clear of the boundaries, the FATs cover every cluster, the data region is aligned."""
from __future__ import annotations

from hypothesis import given, settings, strategies as st

from sysexport.vfat import geometry as geo


def no_content(data_device_offset: int, cluster_size: int) -> int:
    return 1


@settings(max_examples=300, deadline=None)
@given(size_bytes=st.integers(0, 3 << 30), sector_size=st.sampled_from([512, 4096]),
       cs_shift=st.integers(0, 6), fat_type=st.sampled_from([12, 16, 32]),
       volume_offset_sectors=st.integers(0, 5000))
def test_geometry_invariants(size_bytes, sector_size, cs_shift, fat_type, volume_offset_sectors):
    cluster_size = sector_size << cs_shift
    if cluster_size > 65536:
        return
    voff = volume_offset_sectors * sector_size
    g = geo.compute(fat_type, cluster_size, sector_size, voff, 1, size_bytes, 1, no_content)
    if g is None:
        lo, hi = geo.cluster_range(fat_type)
        # impossible only when the minimum size needs more clusters than the type allows
        assert size_bytes > hi * cluster_size or fat_type == 32 and size_bytes > (1 << 40)
        return
    assert geo.fat_type_of(g.cluster_count) == g.fat_type == fat_type
    lo, hi = geo.cluster_range(fat_type)
    assert lo <= g.cluster_count <= hi
    if fat_type != 12:
        assert g.cluster_count >= geo.FAT12_MAX_CLUSTERS + 1 + geo.BOUNDARY_MARGIN
    entries = g.fat_sectors * sector_size * 8 // geo.ENTRY_BITS[fat_type]
    assert entries >= g.cluster_count + 2
    assert g.size_bytes % 4096 == 0 and g.size_bytes >= size_bytes
    assert g.data_offset + g.cluster_count * g.cluster_size <= g.size_bytes
    assert g.size_bytes - (g.data_offset + g.cluster_count * g.cluster_size) < max(4096, cluster_size)
    assert (voff + g.data_offset) % max(4096, cluster_size) == 0
    assert g.reserved_sectors >= (8 if fat_type == 32 else 1)


def test_default_cluster_size():
    assert geo.default_cluster_size(1 << 20, 512) == 2048
    assert geo.default_cluster_size(1 << 20, 4096) == 4096
    assert geo.default_cluster_size(1 << 30, 512) == 4096
    assert geo.default_cluster_size(20 << 30, 512) == 16384
