"""VFAT writer: FAT12/16/32 with long names, every file one contiguous run of clusters.

Implements the on-disk format of fatgen103 (Microsoft, "FAT: General Overview of On-Disk
Format", 1.03).  ``add()`` records; ``plan()`` computes the whole layout (geometry, the
cluster of every file and directory, short names) without writing and returns it as a
:class:`VFATPlan`; ``write(fd, plan)`` writes it in one pass, leaving zero regions (the
free part of the FAT, free clusters) as holes.
"""
from __future__ import annotations

import calendar
import os
import stat
import sys
import time
from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from ..data import SMALL_FILE_BYTES, PathData, report_progress
from ..errors import CallOrderError, InternalError, InvalidInputError, LayoutError
from ..fileinfo import FileInfo, check_time, source_date_epoch, to_fileinfo, walk_host_fileinfo
from ..identity import BuildIdentity, content_digest, sde_is_set
from ..output import Output
from ..tree import Node, Tree, subtree
from ..writer import Lifecycle
from . import geometry as geo
from ._structs import (ATTR_ARCHIVE, ATTR_DIRECTORY, ATTR_HIDDEN, ATTR_READ_ONLY, ATTR_SYSTEM,
                       ATTR_VOLUME_ID, BOOT_SECTOR_16, BOOT_SECTOR_32, DIR_ENTRY_FAST, FSINFO)
from ._structs import BYTES_PER_SECTOR as SECTOR_SIZES
from .names import (LFN_UNITS_PER_ENTRY, check_label, check_long_name, fold, lfn_entries,
                    make_short_names, parse_short_name)

__all__ = ["VFAT", "VFATPlan", "Placement", "ATTR_READ_ONLY", "ATTR_HIDDEN", "ATTR_SYSTEM", "ATTR_ARCHIVE"]

FAT_FLAGS_ALLOWED = ATTR_READ_ONLY | ATTR_HIDDEN | ATTR_SYSTEM | ATTR_ARCHIVE
MEDIA_FIXED = 0xF8                  # BPB_Media for fixed disks; low byte of FAT[0]
DRIVE_NUMBER = 0x80
EXT_BOOT_SIGNATURE = 0x29
OEM_NAME = b"MSWIN4.1"              # fatgen103 recommends this for compatibility
NO_LABEL = b"NO NAME    "
MAX_FILE_BYTES = 0xFFFFFFFF
MAX_DIR_ENTRIES = 65536             # fatgen103: a directory holds at most 65,536 entries
FAT_TIME_MIN = calendar.timegm((1980, 1, 1, 0, 0, 0))
FAT_TIME_MAX = calendar.timegm((2107, 12, 31, 23, 59, 59))
EOC = {12: 0xFFF, 16: 0xFFFF, 32: 0x0FFFFFFF}
# Boot code of a non-bootable volume: int 18h (boot failure, try the next device), then halt.
BOOT_CODE = b"\xcd\x18\xf4\xeb\xfd"
BATCH_BYTES = 1 << 20               # small files gathered per pwrite
BATCH_GAP_BYTES = 64 << 10          # free space a batch may bridge with zeros
FAT32_TYPECODE = "I" if array("I").itemsize == 4 else "L"
MAX_CLUSTER_BYTES = 65536
MAX_VOLUME_BYTES = 0xFFFFFFFF * 4096
"""BPB_TotSec32 is 32 bits: at most 2**32 - 1 sectors of at most 4096 bytes."""


# --- attribute validation (as rust-fatfs checks its FormatVolumeOptions) ----------------------

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


NEEDS_LFN = 0x80                    # internal mark in _Dir.flags (not an NT case flag)


class _Dir:
    """Plan state of one directory (hung on Node.w); its entries' state is kept here in
    columns indexed by position among the sorted children, not in one object per file:
    short names (11 bytes each), NT case flags (+ NEEDS_LFN), first clusters.  Long-name
    entries are built when the directory is written."""

    __slots__ = ("first", "count", "slots", "children", "names", "shorts", "flags", "firsts")

    def __init__(self) -> None:
        self.first = 0
        self.count = 0
        self.slots = 0
        self.children: list[Node] = []
        self.names: list[str] = []
        self.shorts = b""
        self.flags = b""
        self.firsts = array(FAT32_TYPECODE)


def _dir_state(node: Node) -> _Dir:
    st = node.w
    if not isinstance(st, _Dir):
        raise InternalError(f"{node.path or '/'}: directory not planned")
    return st


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
        voff = self.volume_offset
        if node.children is not None:
            st = _dir_state(node)
            if node.parent is None and g.fat_type != 32:
                return Placement(node.path, voff + g.root_offset, 0, 0, 0, True)
            return Placement(node.path, voff + g.cluster_offset(st.first), 0, st.first, st.count, True)
        if node.parent is None:
            raise InternalError(f"{node.path}: a file without a parent directory")
        pst = _dir_state(node.parent)
        if index is None:
            index = bisect_left(pst.names, node.name)
        first = pst.firsts[index]
        size = node.info.size
        if not first:
            return Placement(node.path, None, size, 0, 0, False)
        return Placement(node.path, voff + g.cluster_offset(first), size, first,
                         -(-size // g.cluster_size), False)

    def device_offset_of(self, node: Node) -> int | None:
        """Device offset of a planned file's first byte (None when empty): placement()'s
        ``device_offset``, without making the Placement (a hybrid asks it of every file)."""
        parent = node.parent
        if node.children is not None or parent is None:
            return self.placement(node).device_offset
        pst = _dir_state(parent)
        first = pst.firsts[bisect_left(pst.names, node.info.basename)]
        return self.volume_offset + self.geometry.cluster_offset(first) if first else None

    def chains(self) -> Iterator[tuple[int, int, Node]]:
        """(first cluster, cluster count, node) of every used run, in allocation order."""
        cs = self.geometry.cluster_size
        for d in self.dirs:
            st = _dir_state(d)
            if st.count:
                yield st.first, st.count, d
        for d in self.dirs:
            st = _dir_state(d)
            firsts = st.firsts
            for i, c in enumerate(st.children):
                first = firsts[i]
                if first and c.children is None:
                    yield first, -(-c.info.size // cs), c


def _allocator(dirs: list[Node], fat_type: int) -> Callable[[int, int], int]:
    """The cluster allocation for one FAT type: directories first (the FAT12/16 root has
    its own region), then files in directory order, each one contiguous run starting at
    a cluster whose device offset honours the file's ``device_align``.  Returns the
    function geometry.compute() calls with (data region device offset, cluster size)."""
    chain_dirs = dirs if fat_type == 32 else dirs[1:]

    def allocate(data_device_offset: int, cluster_size: int) -> int:
        nxt = 2
        for d in chain_dirs:
            st = _dir_state(d)
            n = max(1, -(-(st.slots * 32) // cluster_size))
            st.first, st.count = nxt, n
            nxt += n
        for d in dirs:
            st = _dir_state(d)
            firsts = st.firsts
            for i, c in enumerate(st.children):
                if c.children is not None:
                    continue
                info = c.info
                size = info.size
                if not size:
                    firsts[i] = 0
                    continue
                align = info.device_align or 1
                if align > cluster_size:
                    miss = (data_device_offset + (nxt - 2) * cluster_size) % align
                    if miss:
                        nxt += (align - miss) // cluster_size
                firsts[i] = nxt
                nxt += -(-size // cluster_size)
        return nxt - 2
    return allocate


class VFAT(Lifecycle):
    """Writer of a FAT12/16/32 volume (fatgen103), into a file or inside a larger device.

    ``fat_type`` forces 12/16/32 (checked against the cluster-count rule),
    ``cluster_size`` forces the cluster size in bytes, ``size_bytes`` is a minimum volume
    size, ``volume_offset`` the byte offset of the volume on the device (hidden sectors and
    ``device_align`` are counted from the device start).
    """

    def __init__(self, filename: str | os.PathLike | None = None, *, filehandle: BinaryIO | None = None,
                 volume_label: str = "", volume_offset: int = 0, sector_size: int = 512,
                 fat_type: int | None = None, cluster_size: int | None = None,
                 size_bytes: int | None = None, volume_id: int | None = None,
                 default_time: int | None = None) -> None:
        if filename is not None and filehandle is not None:
            raise InvalidInputError("VFAT: give filename or filehandle, not both")
        self.filename = filename
        self.filehandle = filehandle
        # The geometry attributes are validated properties (validate_* below): the same
        # checks here and whenever one is set later.
        self._cluster_size: int | None = None
        self._volume_offset = 0
        self.sector_size = sector_size
        self.fat_type = fat_type
        self.cluster_size = cluster_size
        self.size_bytes = size_bytes
        if volume_id is not None and not 0 <= volume_id <= 0xFFFFFFFF:
            raise InvalidInputError(f"VFAT: volume_id must be a 32-bit number, found {volume_id}")
        self.volume_id = volume_id
        self.volume_offset = volume_offset
        self._default_time = source_date_epoch()
        self._time_given = False
        if default_time is not None:
            self.default_time = default_time
        self.volume_label = volume_label
        self.tree: Tree[_Dir | None] = Tree(check_child=self._check_child)
        self._folded: dict[int, dict[str, str]] | None = {}
        self._checked_parent: str | None = None
        self._generation = 0
        self._last_plan: VFATPlan | None = None
        self._time_cache: dict[int, tuple[int, int, int]] = {}
        self._hidden_dirs: set[str] = set()     # directories hidden from "fat" (see add())

    @property
    def geometry(self) -> geo.Geometry | None:
        """The geometry of the last plan (None before plan())."""
        return self._last_plan.geometry if self._last_plan is not None else None

    # --- attributes (validated when set, see the validate_* functions) ------------------------
    @property
    def sector_size(self) -> int:
        """BPB_BytsPerSec: 512, 1024, 2048 or 4096."""
        return self._sector_size

    @sector_size.setter
    def sector_size(self, value: int) -> None:
        value = validate_sector_size(value)
        if self._cluster_size is not None:
            validate_cluster_size(self._cluster_size, value)     # the cluster must still hold whole sectors
        validate_volume_offset(self._volume_offset, value)
        self._sector_size = value

    @property
    def fat_type(self) -> int | None:
        """12, 16 or 32 to force the type (checked against the cluster-count rule), None to choose."""
        return self._fat_type

    @fat_type.setter
    def fat_type(self, value: int | None) -> None:
        self._fat_type = validate_fat_type(value)

    @property
    def cluster_size(self) -> int | None:
        """Bytes per cluster to force (a power of two, sector_size..65536), None to choose."""
        return self._cluster_size

    @cluster_size.setter
    def cluster_size(self, value: int | None) -> None:
        self._cluster_size = validate_cluster_size(value, self._sector_size)

    @property
    def size_bytes(self) -> int | None:
        """The least size of the volume in bytes, None for just large enough."""
        return self._size_bytes

    @size_bytes.setter
    def size_bytes(self, value: int | None) -> None:
        self._size_bytes = validate_size_bytes(value)

    @property
    def volume_offset(self) -> int:
        """Byte offset of the volume on the device (a multiple of sector_size)."""
        return self._volume_offset

    @volume_offset.setter
    def volume_offset(self, value: int) -> None:
        self._volume_offset = validate_volume_offset(value, self._sector_size)

    # --- input ------------------------------------------------------------------------------
    @property
    def volume_label(self) -> str:
        """The label as stored, in the BPB and as the root's volume entry: upper case, at
        most 11 characters A-Z 0-9 space !#$%&'()-@^_`{}~ (see names.check_label); "" for none."""
        return self._label

    @volume_label.setter
    def volume_label(self, value: str) -> None:
        self._label = check_label(value)    # InvalidInputError naming the label and the rule

    def _check_child(self, parent: Node, info: FileInfo) -> None:
        name = sys.intern(info.basename)   # the tree's key for it: stored once
        where = info.name
        if info.implicit:
            check_long_name(name, where)    # explicit entries were checked by add()
        if self._folded is None:            # dropped by plan() to save memory: rebuild
            self._folded = {}
            for d in self.tree.directories_breadth_first():
                self._folded[id(d)] = {fold(k): k for k in d.children or ()}
        folded = self._folded.setdefault(id(parent), {})
        key = fold(name)
        other = folded.get(key)
        if other is not None and other != name:
            raise InvalidInputError(f"{where}: differs only by case from {other!r} in the same "
                                    "directory; FAT compares names ignoring case")
        folded[key] = name

    def _hidden_is(self, info: FileInfo) -> bool:
        """True for an entry ``hidden_from`` "fat", or below a directory that is: the volume
        records nothing of it (a FAT volume has one namespace).  Remembered by name, so
        that its subtree stays out too."""
        hidden = self._hidden_dirs
        if "fat" in info.hidden_from:
            if not info.name:
                raise InvalidInputError("/: the root directory cannot be hidden from fat")
            if info.is_dir:
                hidden.add(info.name)
            return True
        if hidden:
            parent = info.name
            while "/" in parent:
                parent = parent.rpartition("/")[0]
                if parent in hidden:
                    return True
        return False

    def add(self, spec: Any) -> Node | None:
        """Record one file or directory (a file-info mapping, shorthand tuple or FileInfo).

        FAT holds only regular files and directories (fatgen103 "FAT Directory Structure").
        Returns the entry's tree node; None for an entry ``hidden_from`` "fat" (or below a
        directory that is), which the volume does not record.
        """
        self._require_open("add()")
        info = to_fileinfo(spec)
        where = info.name or "/"
        if self._hidden_is(info):
            return None
        if not (info.is_file or info.is_dir):
            kind = ("a symlink" if info.is_symlink else "a device node" if info.is_device else
                    "a fifo" if stat.S_ISFIFO(info.mode) else "a socket")
            raise InvalidInputError(f"{where}: FAT cannot hold {kind} (mode {info.mode:#o})")
        parent_name, _, base = info.name.rpartition("/")
        if parent_name != self._checked_parent:
            for part in parent_name.split("/") if parent_name else ():
                check_long_name(part, where)    # before the tree creates any implied parent
            self._checked_parent = parent_name
        if base:
            check_long_name(base, where)
        if info.FAT_flags & ~FAT_FLAGS_ALLOWED:
            raise InvalidInputError(f"{where}: FAT_flags {info.FAT_flags:#x} has bits other than "
                                    "ATTR_READ_ONLY, ATTR_HIDDEN, ATTR_SYSTEM, ATTR_ARCHIVE")
        if info.FAT_shortname is not None:
            if not info.name:
                raise InvalidInputError("/: the root directory has no name, so no FAT_shortname")
            parse_short_name(info.FAT_shortname, where)
        if info.size > MAX_FILE_BYTES:
            raise InvalidInputError(f"{where}: FAT files hold at most {MAX_FILE_BYTES} bytes, found {info.size}")
        return self.tree.add(info)

    # --- remove and rename (issue 13) -----------------------------------------------------------
    def remove(self, path: str) -> None:
        """Take ``path`` out of the volume (a directory with everything under it), while the
        writer is open (CallOrderError after plan()); a missing path is an InvalidInputError."""
        self._require_open("remove()")
        node = self.tree.node_of(path, "VFAT.remove()")
        parent = node.parent
        self.tree.remove(node.path, "VFAT.remove()")
        folded = self._folded
        if folded is not None and parent is not None:      # keep add()'s case-folded names right
            folded.get(id(parent), {}).pop(fold(node.name), None)
            for sub in subtree(node):
                folded.pop(id(sub), None)               # an id may be reused by a later node
        self._checked_parent = None

    def rename(self, old_path: str, new_path: str) -> None:
        """Move the entry at ``old_path`` (with its subtree) to ``new_path``: the parent must
        exist, the target must not (nor a name differing from one there only by case);
        every attribute is kept (a ``FAT_shortname`` given for the old basename is dropped).
        Only while the writer is open."""
        self._require_open("rename()")
        node = self.tree.node_of(old_path, "VFAT.rename()")

        def check(parent: Node, info: FileInfo) -> None:
            check_long_name(info.basename, info.name)
            folded = {fold(k): k for k in parent.children or ()}
            other = folded.get(fold(info.basename))
            if other is not None and not (parent is node.parent and other == node.name):
                raise InvalidInputError(f"VFAT.rename(): {info.name}: differs only by case from {other!r} "
                                        "in the same directory; FAT compares names ignoring case")
            if info.FAT_shortname is not None:
                mine = parse_short_name(info.FAT_shortname, info.name)
                for sib in (parent.children or {}).values():
                    short = sib.info.FAT_shortname
                    if sib is not node and short is not None and parse_short_name(short, sib.path) == mine:
                        raise InvalidInputError(f"VFAT.rename(): {info.name}: its FAT_shortname "
                                                f"{info.FAT_shortname!r} is {sib.path}'s too (one directory, one name)")

        old_parent, old_name = node.parent, node.name
        self.tree.rename(old_path, new_path, "VFAT.rename()", check=check)
        folded = self._folded
        if folded is not None and old_parent is not None and node.parent is not None:
            folded.get(id(old_parent), {}).pop(fold(old_name), None)
            folded.setdefault(id(node.parent), {})[fold(node.name)] = node.name
        self._checked_parent = None

    def add_tree(self, host_dir: str | os.PathLike, dest: str = "") -> None:
        """Add a host directory recursively (sorted; see fileinfo.walk_host_tree)."""
        for spec in walk_host_fileinfo(host_dir, dest):
            self.add(spec)

    # --- plan -------------------------------------------------------------------------------
    def _assign_names(self) -> list[Node]:
        """Short names and entry counts of every directory's children (directories in
        breadth-first order, children sorted)."""
        dirs: list[Node] = self.tree.directories_breadth_first()
        label_slot = 1 if self._label else 0
        for d in dirs:
            st = d.w = _Dir()
            kids = d.children or {}
            names = st.names = sorted(kids)
            children = st.children = [kids[k] for k in names]
            fixed = {i: parse_short_name(c.info.FAT_shortname, c.path)
                     for i, c in enumerate(children) if c.info.FAT_shortname is not None}
            shorts = make_short_names(names, fixed, d.path or "")
            slots = 2 if d.parent is not None else label_slot
            flags = bytearray(len(names))
            for i, (name, (_short, ntres, needs_lfn)) in enumerate(zip(names, shorts)):
                if needs_lfn:
                    ntres |= NEEDS_LFN
                    # one entry per 13 UTF-16 units (fatgen103 "FAT Long Directory Entries")
                    slots += -(-len(name.encode("utf-16-le")) // (2 * LFN_UNITS_PER_ENTRY))
                flags[i] = ntres
                slots += 1
            st.shorts = b"".join(short for short, _n, _l in shorts)
            st.flags = bytes(flags)
            st.firsts = array(FAT32_TYPECODE, bytes(array(FAT32_TYPECODE).itemsize * len(names)))
            if slots > MAX_DIR_ENTRIES:
                raise LayoutError(f"{d.path or '/'}: needs {slots} directory entries, FAT allows "
                                  f"{MAX_DIR_ENTRIES}")
            st.slots = slots
        return dirs

    def plan(self, volume_offset: int | None = None, *, min_size_bytes: int | None = None) -> VFATPlan:
        """Compute the complete layout and return it (:class:`VFATPlan`); nothing is written.

        ``volume_offset`` (default: the attribute) is where the volume starts on the
        device; ``min_size_bytes`` (default: ``size_bytes``) the least volume size.
        Afterwards :meth:`add` is refused and :meth:`lookup` gives every entry's placement.
        """
        self._require_unfinished("plan()")
        voff = self.volume_offset if volume_offset is None else volume_offset
        if not isinstance(voff, int) or voff < 0 or voff % self.sector_size:
            raise LayoutError(f"volume_offset must be a multiple of sector_size {self.sector_size}, "
                              f"found {voff!r}")
        min_size = self.size_bytes if min_size_bytes is None else min_size_bytes
        self._folded = None                 # only add() needs it
        self._mark_planned()
        dirs = self._assign_names()
        g = self._choose_geometry(dirs, voff, min_size)
        if geo.fat_type_of(g.cluster_count) != g.fat_type:
            raise InternalError(f"FAT{g.fat_type} planned with {g.cluster_count} clusters")
        if g.fat_type != 32:
            root = _dir_state(self.tree.root)
            root.first = root.count = 0
        self._generation += 1
        digest = self.digest()
        plan = VFATPlan(self._generation, g, voff, tuple(dirs), self._volume_id(digest), digest)
        _check_plan(plan)
        self._last_plan = plan
        return plan

    def _choose_geometry(self, dirs: list[Node], voff: int, min_size: int | None) -> geo.Geometry:
        """The first geometry that fits: the preferred cluster size for the estimated
        content first, then the others; FAT12, 16, 32 in turn (or the forced ones)."""
        max_align = 1
        content = 0
        for d in dirs:
            st = _dir_state(d)
            content += st.slots * 32
            for c in st.children:
                if c.children is None:
                    info = c.info
                    content += info.size
                    if info.device_align and info.device_align > max_align:
                        max_align = info.device_align
        estimate = max(min_size or 0, content + content // 10)
        ss = self.sector_size
        if self.cluster_size:
            sizes = [self.cluster_size]
        else:
            pref = geo.default_cluster_size(estimate, ss)
            sizes = [pref] + [ss << i for i in range(8) if (ss << i) <= 32768 and (ss << i) != pref]
        types = [self.fat_type] if self.fat_type else [12, 16, 32]
        root_slots = _dir_state(self.tree.root).slots
        for cs in sizes:
            for ft in types:
                g = geo.compute(ft, cs, ss, voff, root_slots, min_size or 0, max_align, _allocator(dirs, ft))
                if g is not None:
                    return g
        raise LayoutError(f"no FAT{self.fat_type or ''} layout fits this content with cluster size "
                          f"{self.cluster_size or 'any'}, size {min_size}: the cluster count "
                          "would cross a FAT type boundary (fatgen103) or the type's limit")

    def _current(self, plan: VFATPlan | None, call: str) -> VFATPlan:
        if plan is None:
            plan = self._last_plan
            if plan is None:
                raise CallOrderError(f"VFAT.{call}: call plan() or finish() first")
        if not isinstance(plan, VFATPlan):
            raise InvalidInputError(f"VFAT.{call}: expected a VFATPlan, found {type(plan).__name__}")
        if plan.generation != self._generation:
            raise CallOrderError(f"VFAT.{call}: this plan is stale (plan() was called again since)")
        return plan

    def lookup(self, name: str) -> Placement:
        """Placement of a planned file or directory, from the last plan."""
        plan = self._current(None, "lookup()")
        key = "/".join(p for p in str(name).split("/") if p not in ("", "."))
        node = self.tree.find(key)
        if node is None:
            raise InvalidInputError(f"{name}: not in this FAT volume")
        return plan.placement(node)

    def entry_location(self, name: str) -> tuple[int, int, str]:
        """Where the directory entries naming a planned file or directory lie: (device
        offset, bytes, long name): its long-name entries and its short entry, 32 bytes
        each (fatgen103 "FAT Long Directory Entries"), as :meth:`write` lays them out."""
        plan = self._current(None, "entry_location()")
        node = self.tree.node_of(name, "VFAT.entry_location()")
        parent = node.parent
        if parent is None:
            raise InvalidInputError(f"VFAT.entry_location(): {name}: the root has no directory entry")
        pst = _dir_state(parent)
        index = bisect_left(pst.names, node.name)
        slot = 2 if parent.parent is not None else (1 if self._label else 0)
        for i in range(index + 1):
            n = 1
            if pst.flags[i] & NEEDS_LFN:
                n += -(-len(pst.names[i].encode("utf-16-le")) // (2 * LFN_UNITS_PER_ENTRY))
            if i < index:
                slot += n
        start = plan.placement(parent).device_offset
        if start is None:
            raise InternalError(f"{parent.path or '/'}: a directory without a place")
        return start + slot * 32, n * 32, node.name

    # --- write ------------------------------------------------------------------------------
    def finish(self) -> VFATPlan:
        """plan(), then write the volume to ``filename`` (atomically) or into ``filehandle``, once."""
        self._require_unfinished("finish()")
        plan = self.plan()
        with Output(filename=self.filename, filehandle=self.filehandle) as out:
            # The volume's bytes read as zeros after prepare() (a fresh file, or a caller's
            # file or device zeroed there, nothing outside touched): zeros stay unwritten.
            out.prepare(plan.size_bytes, start=plan.volume_offset)
            self.write(out.fd, plan, zeroed=True)
        self._mark_finished()
        return plan

    def write(self, fd: int, plan: VFATPlan, *, zeroed: bool = True) -> None:
        """Write the planned volume into ``fd`` at the plan's volume offset.

        With ``zeroed`` (the region reads as zeros, e.g. freshly sized with truncate) zero
        regions are not written and stay holes; otherwise the whole FAT, root region and
        directory clusters are written, zeros included.  Free clusters are never written.
        """
        plan = self._current(plan, "write()")
        g = plan.geometry
        voff = plan.volume_offset
        ss = g.sector_size
        boot = self._boot_sector(g, plan.volume_id)
        _pwrite(fd, boot, voff)
        if g.fat_type == 32:
            fsinfo = _fsinfo(plan)
            _pwrite(fd, fsinfo, voff + ss)
            _pwrite(fd, boot, voff + 6 * ss)
            _pwrite(fd, fsinfo, voff + 7 * ss)
        fat = pack_fat(fat_table(plan), g.fat_type)
        fat_bytes = g.fat_sectors * ss
        for i in range(geo.NUM_FATS):
            _pwrite(fd, fat, voff + g.fat_offset + i * fat_bytes)
            if not zeroed:
                _pwrite_zeros(fd, voff + g.fat_offset + i * fat_bytes + len(fat), fat_bytes - len(fat))
        for d in plan.dirs:
            data = self._dir_bytes(d)
            st = _dir_state(d)
            if d.parent is None and g.fat_type != 32:
                where, room = voff + g.root_offset, g.root_dir_sectors * ss
            else:
                where, room = voff + g.cluster_offset(st.first), st.count * g.cluster_size
            _pwrite(fd, data, where)
            if not zeroed:
                _pwrite_zeros(fd, where + len(data), room - len(data))
        self._write_data(fd, plan, zeroed)

    @staticmethod
    def _write_data(fd: int, plan: VFATPlan, zeroed: bool) -> None:
        """File data, each file at its first cluster.  Small host files are gathered into
        one buffer per run of nearby clusters and written with one pwrite (100,000 small
        files: 100,000 fewer system calls)."""
        g = plan.geometry
        data_base = plan.volume_offset + g.cluster_offset(2)
        cs = g.cluster_size
        batch = bytearray()
        batch_at = 0
        max_gap = BATCH_GAP_BYTES if zeroed else 0      # never overwrite a caller's free space
        for d in plan.dirs:
            st = _dir_state(d)
            firsts = st.firsts
            for i, c in enumerate(st.children):
                first = firsts[i]
                if not first or c.children is not None:
                    continue
                at = data_base + (first - 2) * cs
                source = c.info.source
                if source is None:
                    raise InternalError(f"{c.path}: a file of {c.info.size} bytes with no data source")
                if isinstance(source, PathData) and source.size_bytes <= SMALL_FILE_BYTES:
                    gap = at - (batch_at + len(batch))
                    if not batch or not 0 <= gap <= max_gap or len(batch) >= BATCH_BYTES:
                        _flush_batch(fd, batch, batch_at)
                        batch = bytearray()
                        batch_at, gap = at, 0
                    batch += bytes(gap)
                    batch += source.read_all(SMALL_FILE_BYTES)
                    report_progress(source.size_bytes)
                else:
                    # A batch must never span bytes written directly: its zero gaps would
                    # overwrite them when it is flushed.
                    _flush_batch(fd, batch, batch_at)
                    batch = bytearray()
                    source.write_to(fd, at)
        _flush_batch(fd, batch, batch_at)

    @property
    def default_time(self) -> int:
        """The time of entries without one (SOURCE_DATE_EPOCH when set, else the time the
        writer was made).  Setting it makes the build reproducible (see :attr:`reproducible`)."""
        return self._default_time

    @default_time.setter
    def default_time(self, value: float) -> None:
        value = check_time("VFAT", "default_time", value)     # finite, years 1..9999 (as file times)
        self._default_time = int(value)
        self._time_given = True

    @property
    def reproducible(self) -> bool:
        """True when identifiers derive from the content: SOURCE_DATE_EPOCH is set or
        ``default_time`` was given."""
        return self._time_given or sde_is_set()

    def digest(self) -> bytes | None:
        """A digest of everything added and the settings (see sysexport/identity.py), or
        None when the build is not reproducible."""
        if not self.reproducible:
            return None
        return content_digest((n.info for n in self.tree.walk()), "vfat", self._label, self.default_time,
                              self.sector_size, self.fat_type, self.cluster_size)

    def _volume_id(self, digest: bytes | None) -> int:
        """The serial: ``volume_id`` when given, else from the content digest (reproducible)
        or random (every build its own, as mkfs.fat does)."""
        if self.volume_id is not None:
            return self.volume_id
        return BuildIdentity(digest).u32("FAT volume serial")

    def _boot_sector(self, g: geo.Geometry, volume_id: int) -> bytes:
        label = self._label.encode("ascii").ljust(11) if self._label else NO_LABEL
        small = g.total_sectors < 0x10000 and g.fat_type != 32
        bpb = dict(BS_jmpBoot=b"\xeb\x3c\x90" if g.fat_type != 32 else b"\xeb\x58\x90",
                   BS_OEMName=OEM_NAME, BPB_BytsPerSec=g.sector_size,
                   BPB_SecPerClus=g.sectors_per_cluster, BPB_RsvdSecCnt=g.reserved_sectors,
                   BPB_NumFATs=geo.NUM_FATS, BPB_RootEntCnt=g.root_entries,
                   BPB_TotSec16=g.total_sectors if small else 0, BPB_Media=MEDIA_FIXED,
                   BPB_FATSz16=g.fat_sectors if g.fat_type != 32 else 0,
                   BPB_SecPerTrk=geo.SECTORS_PER_TRACK, BPB_NumHeads=geo.HEADS,
                   BPB_HiddSec=g.volume_offset // g.sector_size,
                   BPB_TotSec32=0 if small else g.total_sectors)
        common = dict(BS_DrvNum=DRIVE_NUMBER, BS_Reserved1=0, BS_BootSig=EXT_BOOT_SIGNATURE,
                      BS_VolID=volume_id, BS_VolLab=label)
        if g.fat_type == 32:
            ext = dict(BPB_FATSz32=g.fat_sectors, BPB_ExtFlags=0, BPB_FSVer=0, BPB_RootClus=2,
                       BPB_FSInfo=1, BPB_BkBootSec=6, BPB_Reserved=bytes(12),
                       BS_FilSysType=b"FAT32   ", **common)
            return BOOT_SECTOR_32.build(dict(bpb=bpb, ext=ext, boot_code=BOOT_CODE.ljust(420, b"\0")))
        ext = dict(BS_FilSysType=b"FAT12   " if g.fat_type == 12 else b"FAT16   ", **common)
        return BOOT_SECTOR_16.build(dict(bpb=bpb, ext=ext, boot_code=BOOT_CODE.ljust(448, b"\0")))

    def _times(self, t: float | None) -> tuple[int, int, int]:
        """fat_datetime(t), cached by whole second (a cache by exact time would hold one
        entry per file: most host files have distinct sub-second times)."""
        if t is None:
            t = self.default_time
        t = min(max(t, FAT_TIME_MIN), FAT_TIME_MAX)
        whole = int(t)
        hit = self._time_cache.get(whole)
        if hit is None:
            if len(self._time_cache) >= 65536:
                self._time_cache.clear()
            hit = self._time_cache[whole] = fat_datetime(whole)
        date, tod, tenth = hit
        if t != whole:
            tenth += min(99, int((t - whole) * 100))
        return date, tod, tenth

    def _dir_bytes(self, d: Node) -> bytes:
        pack = DIR_ENTRY_FAST.pack
        out: list[bytes] = []
        wdate, wtime, tenth = self._times(d.info.mtime)
        if d.parent is None:
            if self._label:
                out.append(pack(self._label.encode("ascii").ljust(11), ATTR_VOLUME_ID, 0, 0, 0, 0,
                                0, 0, wtime, wdate, 0, 0))
        else:
            adate = self._times(d.info.atime if d.info.atime is not None else d.info.mtime)[0]
            attr = ATTR_DIRECTORY | d.info.FAT_flags
            me = _dir_state(d).first
            up = _dir_state(d.parent).first if d.parent.parent is not None else 0
            for nm, cluster in ((b".          ", me), (b"..         ", up)):
                out.append(pack(nm, attr, 0, tenth, wtime, wdate, adate, cluster >> 16, wtime, wdate,
                                cluster & 0xFFFF, 0))
        st = _dir_state(d)
        shorts, flags, firsts, names = st.shorts, st.flags, st.firsts, st.names
        times = self._times
        for i, c in enumerate(st.children):
            info = c.info
            wdate, wtime, tenth = times(info.mtime)
            adate = wdate if info.atime is None else times(info.atime)[0]     # no atime: mtime's date
            if c.children is not None:
                attr, size, first = ATTR_DIRECTORY | info.FAT_flags, 0, _dir_state(c).first
            else:
                attr, size, first = info.FAT_flags or ATTR_ARCHIVE, info.size, firsts[i]
            short = shorts[11 * i: 11 * i + 11]
            ntres = flags[i]
            if ntres & NEEDS_LFN:
                out.append(lfn_entries(names[i].encode("utf-16-le"), short))
                ntres &= ~NEEDS_LFN
            out.append(pack(short, attr, ntres, tenth, wtime, wdate, adate, first >> 16,
                            wtime, wdate, first & 0xFFFF, size))
        return b"".join(out)

    # --- remastering (issue 13) -----------------------------------------------------------------
    @classmethod
    def from_image(cls, src: Any, output: Any = None) -> VFAT:
        """A writer holding every entry of the FAT volume of ``src`` (a FAT image, or the
        ESP of a disk image), file data read from ``src`` at finish().  See
        :mod:`sysexport.remaster`."""
        from ..remaster import vfat_from_image
        return vfat_from_image(cls, src, output)


def _check_plan(plan: VFATPlan) -> None:
    """Every run in the volume, aligned as asked, no overlap.  Allocation is sequential
    (directories, then files in directory order), so the runs come in increasing order."""
    g = plan.geometry
    voff = plan.volume_offset
    end = 2
    for first, count, node in plan.chains():
        if first < end:
            raise InternalError(f"{node.path or '/'}: cluster {first} overlaps an earlier run")
        end = first + count
        if end - 2 > g.cluster_count:
            raise InternalError(f"{node.path}: clusters past the end of the volume")
        align = node.info.device_align
        if align and node.children is None and (voff + g.cluster_offset(first)) % align:
            raise InternalError(f"{node.path}: device offset {voff + g.cluster_offset(first)} "
                                f"not aligned to {align}")
    if g.data_offset + (end - 2) * g.cluster_size > g.size_bytes:
        raise InternalError("FAT plan: data past the end of the volume")


def _fsinfo(plan: VFATPlan) -> bytes:
    """The FAT32 FSInfo sector (fatgen103 "FAT32 FSInfo Sector Structure")."""
    g = plan.geometry
    used = 0
    nxt = 2
    contiguous = True
    for first, count, _node in plan.chains():
        used += count
        if contiguous and first == nxt:
            nxt = first + count
        else:
            contiguous = False
    if nxt >= g.cluster_count + 2:
        nxt = 0xFFFFFFFF
    return FSINFO.build(dict(FSI_Free_Count=g.cluster_count - used, FSI_Nxt_Free=nxt))


def fat_table(plan: VFATPlan) -> array:
    """The used part of the FAT (entries 0..last used cluster) as an array of ints."""
    g = plan.geometry
    end = 2
    for first, count, _node in plan.chains():
        end = max(end, first + count)
    eoc = EOC[g.fat_type]
    code = FAT32_TYPECODE if g.fat_type == 32 else "H"
    table = array(code, bytes(array(code).itemsize * end))
    table[0] = (eoc & ~0xFF) | MEDIA_FIXED
    table[1] = eoc
    for first, count, _node in plan.chains():
        if count > 1:
            table[first:first + count - 1] = array(table.typecode, range(first + 1, first + count))
        table[first + count - 1] = eoc
    return table


def fat_datetime(t: float) -> tuple[int, int, int]:
    """(date, time, tenths) in FAT format (fatgen103 "Date and Time Formats"), UTC,
    clamped to 1980-01-01 .. 2107-12-31; time has 2 s resolution, tenths 10 ms units."""
    t = min(max(t, FAT_TIME_MIN), FAT_TIME_MAX)
    whole = int(t)
    tm = time.gmtime(whole)
    date = ((tm.tm_year - 1980) << 9) | (tm.tm_mon << 5) | tm.tm_mday
    tod = (tm.tm_hour << 11) | (tm.tm_min << 5) | (tm.tm_sec // 2)
    tenth = (tm.tm_sec % 2) * 100 + min(99, int((t - whole) * 100))
    return date, tod, tenth


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


def _flush_batch(fd: int, batch: bytearray, offset: int) -> None:
    if batch and batch.count(0) != len(batch):
        _pwrite(fd, batch, offset)


def _pwrite_zeros(fd: int, offset: int, length: int) -> None:
    chunk = bytes(min(length, 1 << 20))
    while length > 0:
        n = min(length, len(chunk))
        _pwrite(fd, chunk[:n], offset)
        offset += n
        length -= n


def _pwrite(fd: int, data: bytes | bytearray, offset: int) -> None:
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, offset)
        view = view[n:]
        offset += n
