"""The FAT itself and the FAT32 FSInfo sector of a planned volume (fatgen103 "FAT Data
Structure", "FAT32 FSInfo Sector Structure"), built from the plan's columns."""
from __future__ import annotations

import sys
from array import array

from ..errors import InternalError
from ._structs import FSINFO
from .plan import FAT32_TYPECODE, VFATPlan, dir_state

MEDIA_FIXED = 0xF8                  # BPB_Media for fixed disks; low byte of FAT[0]
EOC = {12: 0xFFF, 16: 0xFFFF, 32: 0x0FFFFFFF}


def _runs(plan: VFATPlan) -> list[tuple[list[int], list[int]]]:
    """The used runs in allocation order, a directory's files at a time: (first clusters,
    last clusters) of the directory chains, then of each directory's non-empty files."""
    chained = [dir_state(d) for d in plan.dirs]
    out = [([st.first for st in chained if st.count], [st.first + st.count - 1 for st in chained if st.count])]
    mask = plan.geometry.cluster_size - 1
    shift = mask.bit_length()
    for st in chained:
        sizes = st.sizes
        firsts = [f for f in st.firsts if f]
        if firsts:
            lasts = [f + ((s + mask) >> shift) - 1 for f, s in zip(st.firsts, sizes) if f]
            out.append((firsts, lasts))
    return out


def fat_table(plan: VFATPlan) -> array:
    """The used part of the FAT (entries 0..last used cluster) as an array of ints: each
    run's clusters point to the next, its last holds end-of-chain, gaps hold 0 (free)."""
    g = plan.geometry
    runs = _runs(plan)
    end = max((lasts[-1] + 1 for _f, lasts in runs if lasts), default=2)
    eoc = EOC[g.fat_type]
    code = FAT32_TYPECODE if g.fat_type == 32 else "H"
    table = array(code, range(1, end + 1))      # every cluster pointing at the next ...
    table[0] = (eoc & ~0xFF) | MEDIA_FIXED
    table[1] = eoc
    prev = 2
    for firsts, lasts in runs:
        if not firsts:
            continue
        gaps = [(last + 1, first) for last, first in zip([prev - 1] + lasts, firsts) if first > last + 1]
        for start, stop in gaps:                # ... but the free ones,
            table[start:stop] = array(code, bytes(table.itemsize * (stop - start)))
        for last in lasts:                      # ... and the last of each run
            table[last] = eoc
        prev = lasts[-1] + 1
    return table


def fsinfo(plan: VFATPlan) -> bytes:
    """The FAT32 FSInfo sector: the free cluster count, and the first free cluster when
    the used ones are one run from cluster 2."""
    g = plan.geometry
    used = 0
    nxt = 2
    contiguous = True
    for firsts, lasts in _runs(plan):
        count = sum(lasts) - sum(firsts) + len(firsts)
        used += count
        if not contiguous or not firsts:
            continue
        if firsts[0] == nxt and lasts[-1] - nxt + 1 == count:     # one run of runs (they never overlap)
            nxt = lasts[-1] + 1
            continue
        for first, last in zip(firsts, lasts):
            if first != nxt:
                break
            nxt = last + 1
        contiguous = False
    if nxt >= g.cluster_count + 2:
        nxt = 0xFFFFFFFF
    return FSINFO.build(dict(FSI_Free_Count=g.cluster_count - used, FSI_Nxt_Free=nxt))


def pack_fat(table: array, fat_type: int) -> bytes:
    """Bytes of a FAT from its entries (fatgen103 "FAT Data Structure"); FAT12 packs pairs."""
    if fat_type == 12:
        vals = list(table)
        if len(vals) % 2:
            vals.append(0)
        out = bytearray(len(vals) // 2 * 3)
        for i in range(0, len(vals), 2):
            a, b = vals[i], vals[i + 1]
            j = i // 2 * 3
            out[j] = a & 0xFF
            out[j + 1] = (a >> 8) | ((b & 0xF) << 4)
            out[j + 2] = b >> 4
        return bytes(out)
    if fat_type == 32 and table.itemsize != 4:
        raise InternalError("FAT32 table needs 4-byte entries")
    if sys.byteorder != "little":
        table = array(table.typecode, table)
        table.byteswap()
    return table.tobytes()
