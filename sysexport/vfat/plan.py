"""The plan of a FAT volume: per-directory columns, the cluster allocation, its check.

A :class:`DirState` hangs on each directory's tree node (``Node.w``) and keeps its
children's state in columns indexed by position among the sorted children (sizes, first
clusters, long-name entry counts), not in one object per file: 100,000 files cost a few
arrays, not 100,000 records.  The sorted children are the directory's own children
mapping, put in sorted order by plan() (the same mapping object: no list of names or
nodes is kept beside it).  A file's node holds its index there (``Node.w``, an int
shared by every file at that index), so that its place is found without a search.  Short
names are not kept: the directory's writer makes them when it writes the entries
(:func:`sysexport.vfat.entries.directory_bytes`); the plan needs only how many entries
each name takes.
"""
from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import accumulate

from ..errors import InternalError
from ..tree import Node
from . import geometry as geo

FAT32_TYPECODE = "I" if array("I").itemsize == 4 else "L"
"""array typecode of an unsigned 32-bit number (FAT32 entries, first clusters, sizes)."""
_ZEROS = array(FAT32_TYPECODE)


@dataclass(slots=True)
class Placement:
    """Where a file or directory lies: ``device_offset`` of its first byte (None for an
    empty file), ``size_bytes`` (0 for a directory), ``first_cluster`` (0 when empty)."""

    name: str
    device_offset: int | None
    size_bytes: int
    first_cluster: int
    cluster_count: int
    is_dir: bool


class DirState:
    """Plan state of one directory (hung on Node.w): its first cluster and cluster count,
    its 32-byte entry count (``slots``), and its children in sorted order (``entries``,
    the directory node's children mapping itself; ``names`` and ``children`` are lists
    made of it on each call) with their columns: ``sizes`` (bytes, 0 for a directory),
    ``firsts`` (first clusters, 0 for a directory or an empty file), ``lfn`` (long-name
    entries of each name, 0 for an 8.3 name) and ``fixed`` (caller-given short names by
    index, or None).  ``max_align`` is the largest ``device_align`` of its files and
    ``pow2_align`` says whether every one is a power of two."""

    __slots__ = ("first", "count", "slots", "entries", "sizes", "firsts", "lfn", "fixed",
                 "max_align", "pow2_align")

    def __init__(self, entries: dict[str, Node]) -> None:
        self.first = 0
        self.count = 0
        self.slots = 0
        self.entries = entries
        self.sizes = _ZEROS
        self.firsts = _ZEROS
        self.lfn = b""
        self.fixed: dict[int, bytes] | None = None
        self.max_align = 1
        self.pow2_align = True

    @property
    def names(self) -> list[str]:
        """The children's names, sorted (a new list)."""
        return list(self.entries)

    @property
    def children(self) -> list[Node]:
        """The children's nodes in name order (a new list)."""
        return list(self.entries.values())


def dir_state(node: Node) -> DirState:
    """The plan state of a planned directory (InternalError before plan())."""
    st = node.w
    if not isinstance(st, DirState):
        raise InternalError(f"{node.path or '/'}: directory not planned")
    return st


def child_index(node: Node, pst: DirState) -> int:
    """A planned entry's position among its parent's sorted children."""
    index = node.w
    if type(index) is int:
        return index
    return bisect_left(pst.names, node.info.basename)


@dataclass(frozen=True, eq=False)
class VFATPlan:
    """The complete layout of a FAT volume (what :meth:`VFAT.plan` returns).

    ``geometry`` is the BPB's view (type, cluster size, FAT and root sizes);
    ``volume_offset`` where the volume starts on the device; ``dirs`` every directory in
    allocation order (breadth first), whose children carry their first clusters.  The
    per-directory allocation belongs to this plan; a later ``plan()`` of the same writer
    makes a new one (and this plan is then stale).
    """

    generation: int
    geometry: geo.Geometry
    volume_offset: int
    dirs: tuple[Node, ...]
    volume_id: int = 0
    """BS_VolID, the volume serial (blkid's UUID): given, derived or random (see identity.py)."""
    content_digest: bytes | None = None
    """Digest of everything added (reproducible builds only), for a coordinator's identifiers."""
    cluster2_device_offset: int = field(init=False, repr=False)
    """Device offset of cluster 2, the first of the data region."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "cluster2_device_offset", self.volume_offset + self.geometry.data_offset)

    @property
    def size_bytes(self) -> int:
        """The volume's size in bytes (a multiple of 4096)."""
        return self.geometry.size_bytes

    @property
    def fat_type(self) -> int:
        """12, 16 or 32: the type the cluster count makes it (fatgen103)."""
        return self.geometry.fat_type

    def placement(self, node: Node, index: int | None = None) -> Placement:
        """Where a planned entry lies (``index``: its position among its parent's sorted children)."""
        g = self.geometry
        if node.children is not None:
            st = dir_state(node)
            if node.parent is None and g.fat_type != 32:
                return Placement(node.path, self.volume_offset + g.root_offset, 0, 0, 0, True)
            return Placement(node.path, self.cluster_device_offset(st.first), 0, st.first, st.count, True)
        if node.parent is None:
            raise InternalError(f"{node.path}: a file without a parent directory")
        pst = dir_state(node.parent)
        first = pst.firsts[child_index(node, pst) if index is None else index]
        size = node.info.size
        if not first:
            return Placement(node.path, None, size, 0, 0, False)
        return Placement(node.path, self.cluster_device_offset(first), size, first,
                         -(-size // g.cluster_size), False)

    def cluster_device_offset(self, cluster: int) -> int:
        """Device offset of a data cluster (numbered from 2)."""
        return self.cluster2_device_offset + (cluster - 2) * self.geometry.cluster_size

    def device_offset_of(self, node: Node) -> int | None:
        """Device offset of a planned file's first byte (None when empty): placement()'s
        ``device_offset``, without making the Placement (a hybrid asks it of every file)."""
        parent = node.parent
        index = node.w
        if type(index) is not int or parent is None:
            return self.placement(node).device_offset
        pst = parent.w
        if not isinstance(pst, DirState):
            raise InternalError(f"{parent.path or '/'}: directory not planned")
        first = pst.firsts[index]
        return self.cluster2_device_offset + (first - 2) * self.geometry.cluster_size if first else None

    def file_offsets(self) -> Iterator[tuple[Node, int]]:
        """(node, device offset) of every planned non-empty file, in allocation order: what
        device_offset_of() gives for each, in one pass."""
        base = self.cluster2_device_offset - 2 * self.geometry.cluster_size
        cs = self.geometry.cluster_size
        for d in self.dirs:
            st = dir_state(d)
            children = st.children
            for i, first in enumerate(st.firsts):
                if first:
                    yield children[i], base + first * cs

    def chains(self) -> Iterator[tuple[int, int, Node]]:
        """(first cluster, cluster count, node) of every used run, in allocation order."""
        for d in self.dirs:
            st = dir_state(d)
            if st.count:
                yield st.first, st.count, d
        mask = self.geometry.cluster_size - 1
        shift = mask.bit_length()
        for d in self.dirs:
            st = dir_state(d)
            children, sizes = st.children, st.sizes
            for i, first in enumerate(st.firsts):
                if first:
                    yield first, (sizes[i] + mask) >> shift, children[i]


def allocator(dirs: list[Node], fat_type: int) -> Callable[[int, int], int]:
    """The cluster allocation for one FAT type: directories first (the FAT12/16 root has
    its own region), then files in directory order, each one contiguous run starting at
    a cluster whose device offset honours the file's ``device_align``.  Returns the
    function geometry.compute() calls with (data region device offset, cluster size).

    compute() calls it again and again while the FAT size settles; when no file asks for
    an alignment above the cluster size the result depends on the cluster size alone, so
    a repeated call with the same one only returns the count it found (the columns hold
    that allocation already)."""
    chain_dirs = dirs if fat_type == 32 else dirs[1:]
    max_align = max(dir_state(d).max_align for d in dirs)
    last_key: tuple[int, int] = (0, -1)
    last_count = 0

    def allocate(data_device_offset: int, cluster_size: int) -> int:
        nonlocal last_key, last_count
        key = (cluster_size, data_device_offset if max_align > cluster_size else 0)
        if key == last_key:
            return last_count
        nxt = 2
        for d in chain_dirs:
            st = dir_state(d)
            n = max(1, -(-(st.slots * 32) // cluster_size))
            st.first, st.count = nxt, n
            nxt += n
        for d in dirs:
            st = dir_state(d)
            if st.max_align > cluster_size:
                nxt = _allocate_aligned(st, nxt, data_device_offset, cluster_size)
            else:
                nxt = _allocate_packed(st, nxt, cluster_size)
        last_key, last_count = key, nxt - 2
        return last_count
    return allocate


def _allocate_packed(st: DirState, nxt: int, cluster_size: int) -> int:
    """Files back to back from cluster ``nxt`` (no alignment beyond a cluster); returns
    the next free cluster.  Prefix sums over the column, no loop in Python per file."""
    sizes = st.sizes
    if not sizes:
        return nxt
    mask = cluster_size - 1
    shift = mask.bit_length()
    counts = [(s + mask) >> shift for s in sizes]
    starts = list(accumulate(counts, initial=nxt))
    st.firsts = array(FAT32_TYPECODE, [start if n else 0 for start, n in zip(starts, counts)])
    return starts[-1]


def _allocate_aligned(st: DirState, nxt: int, data_device_offset: int, cluster_size: int) -> int:
    """Files in order from cluster ``nxt``, each moved up to its ``device_align``."""
    firsts = st.firsts = array(FAT32_TYPECODE, bytes(4 * len(st.sizes)))
    sizes = st.sizes
    for i, c in enumerate(st.children):
        size = sizes[i]
        if not size:
            continue
        align = c.info.device_align or 1
        if align > cluster_size:
            miss = (data_device_offset + (nxt - 2) * cluster_size) % align
            if miss:
                nxt += (align - miss) // cluster_size
        firsts[i] = nxt
        nxt += -(-size // cluster_size)
    return nxt


def check_plan(plan: VFATPlan) -> None:
    """Every run in the volume, aligned as asked, no overlap.  Allocation is sequential
    (directories, then files in directory order), so the runs come in increasing order.
    Checked from the columns, apart from the allocator's own arithmetic."""
    g = plan.geometry
    cs = g.cluster_size
    end = 2
    for d in plan.dirs:
        st = dir_state(d)
        if st.count:
            if st.first < end:
                raise InternalError(f"{d.path or '/'}: cluster {st.first} overlaps an earlier run")
            end = st.first + st.count
    base = plan.cluster2_device_offset - 2 * cs
    for d in plan.dirs:
        st = dir_state(d)
        firsts, sizes = st.firsts, st.sizes
        for i, first in enumerate(firsts):
            if first:
                if first < end:
                    raise InternalError(f"{st.names[i]}: cluster {first} overlaps an earlier run")
                end = first + -(-sizes[i] // cs)
        if st.max_align > 1 and not (st.pow2_align and cs % st.max_align == 0 and base % st.max_align == 0):
            _check_aligned(st, base, cs)
    if end - 2 > g.cluster_count:
        raise InternalError("FAT plan: clusters past the end of the volume")
    if g.data_offset + (end - 2) * cs > g.size_bytes:
        raise InternalError("FAT plan: data past the end of the volume")


def _check_aligned(st: DirState, base: int, cluster_size: int) -> None:
    """Each file of a directory at a device offset that is a multiple of its device_align
    (skipped by check_plan when every cluster is: power-of-two alignments dividing both
    the cluster size and the data region's device offset)."""
    children = st.children
    for i, first in enumerate(st.firsts):
        if first:
            node = children[i]
            align = node.info.device_align
            at = base + first * cluster_size
            if align and at % align:
                raise InternalError(f"{node.path}: device offset {at} not aligned to {align}")
