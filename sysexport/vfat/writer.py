"""VFAT writer: FAT12/16/32 with long names, every file one contiguous run of clusters.

Implements the on-disk format of fatgen103 (Microsoft, "FAT: General Overview of On-Disk
Format", 1.03).  ``add()`` records; ``plan()`` computes the whole layout (geometry, the
cluster of every file and directory, how many entries each name takes) without writing
and returns it as a :class:`VFATPlan`; ``write(fd, plan)`` writes it in one pass, leaving
zero regions (the free part of the FAT, free clusters) as holes.  The parts: the plan's
columns and allocation (plan.py), the FAT (table.py), directory entries (entries.py), the
file data (filedata.py), the settings' checks (options.py).
"""
from __future__ import annotations

import os
import stat
from array import array
from collections.abc import Iterator
from typing import Any, BinaryIO

from ..errors import CallOrderError, InternalError, InvalidInputError, LayoutError
from ..fileinfo import FileInfo, check_time, source_date_epoch, to_fileinfo, walk_host_fileinfo
from ..identity import BuildIdentity, content_digest, sde_is_set
from ..output import Output
from ..tree import Node, Tree, subtree
from ..writer import OPEN, Lifecycle
from . import geometry as geo
from ._structs import (ATTR_ARCHIVE, ATTR_HIDDEN, ATTR_READ_ONLY, ATTR_SYSTEM, BOOT_SECTOR_16, BOOT_SECTOR_32,
                       LFN_UNITS_PER_ENTRY)
from .casenames import CaseIndex, case_twin
from .entries import FAT_TIME_MAX, FAT_TIME_MIN, EntryTimes, directory_bytes, fat_datetime  # noqa: F401
from .filedata import write_data
from .names import _short_display, check_label, check_name, fold, lfn_counts, parse_short_name
from .names import short_names as short_names_check
from .options import (MAX_CLUSTER_BYTES, MAX_VOLUME_BYTES, validate_cluster_size, validate_fat_type,  # noqa: F401
                      validate_sector_size, validate_size_bytes, validate_volume_offset)
from .plan import FAT32_TYPECODE, DirState, Placement, VFATPlan, allocator, check_plan, child_index, dir_state
from .table import EOC, MEDIA_FIXED, fat_table, fsinfo, pack_fat  # noqa: F401

__all__ = ["VFAT", "VFATPlan", "Placement", "ATTR_READ_ONLY", "ATTR_HIDDEN", "ATTR_SYSTEM", "ATTR_ARCHIVE",
           "fat_datetime", "fat_table", "pack_fat"]

FAT_FLAGS_ALLOWED = ATTR_READ_ONLY | ATTR_HIDDEN | ATTR_SYSTEM | ATTR_ARCHIVE
DRIVE_NUMBER = 0x80
EXT_BOOT_SIGNATURE = 0x29
OEM_NAME = b"MSWIN4.1"              # fatgen103 recommends this for compatibility
NO_LABEL = b"NO NAME    "
MAX_FILE_BYTES = 0xFFFFFFFF
MAX_DIR_ENTRIES = 65536             # fatgen103: a directory holds at most 65,536 entries
# Boot code of a non-bootable volume: int 18h (boot failure, try the next device), then halt.
BOOT_CODE = b"\xcd\x18\xf4\xeb\xfd"
_INDEX = list(range(MAX_DIR_ENTRIES))
"""Index ints shared by every file at that position of its directory (set as Node.w)."""
_NO_CASES = CaseIndex()


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
        self.tree: Tree[DirState | int | None] = Tree(check_child=self._check_child)
        self._cases: dict[Node, CaseIndex] = {}     # directories with names not all lower-case ASCII
        self._checked_parent: str | None = None
        self._generation = 0
        self._last_plan: VFATPlan | None = None
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
        """The tree's check of a new entry of ``parent``: its name (explicit entries were
        checked by add()) and no name of ``parent`` equal to it ignoring case."""
        name = info.name.rpartition("/")[2]
        if info.implicit:
            check_name(name, info.name)
        cases = self._cases.get(parent, _NO_CASES)
        if cases is _NO_CASES and name.isascii() and name.lower() == name:
            return      # its only possible twins (other case, other script) would have made an index
        children = parent.children or {}
        if cases.clash(name, children):
            raise InvalidInputError(f"{info.name}: differs only by case from {case_twin(name, children)!r} in "
                                    "the same directory; FAT compares names ignoring case")
        if not name.isascii() or name.lower() != name:
            if cases is _NO_CASES:
                cases = self._cases[parent] = CaseIndex()
            cases.add(name)

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
        if self._stage != OPEN:
            self._require_open("add()")
        info = to_fileinfo(spec)
        if (info.hidden_from or self._hidden_dirs) and self._hidden_is(info):
            return None
        fmt = info.mode & 0o170000
        if fmt != stat.S_IFREG and fmt != stat.S_IFDIR:
            kind = ("a symlink" if info.is_symlink else "a device node" if info.is_device else
                    "a fifo" if stat.S_ISFIFO(info.mode) else "a socket")
            raise InvalidInputError(f"{info.name or '/'}: FAT cannot hold {kind} (mode {info.mode:#o})")
        parent_name, _, base = info.name.rpartition("/")
        if parent_name != self._checked_parent:
            for part in parent_name.split("/") if parent_name else ():
                check_name(part, info.name)     # before the tree creates any implied parent
            self._checked_parent = parent_name
        if base:
            check_name(base, info.name)
        if info.FAT_flags & ~FAT_FLAGS_ALLOWED:
            raise InvalidInputError(f"{info.name or '/'}: FAT_flags {info.FAT_flags:#x} has bits other than "
                                    "ATTR_READ_ONLY, ATTR_HIDDEN, ATTR_SYSTEM, ATTR_ARCHIVE")
        if info.FAT_shortname is not None:
            if not info.name:
                raise InvalidInputError("/: the root directory has no name, so no FAT_shortname")
            parse_short_name(info.FAT_shortname, info.name)
        if info.size > MAX_FILE_BYTES:
            raise InvalidInputError(f"{info.name}: FAT files hold at most {MAX_FILE_BYTES} bytes, found {info.size}")
        return self.tree.add(info)

    # --- remove and rename (issue 13) -----------------------------------------------------------
    def remove(self, path: str) -> None:
        """Take ``path`` out of the volume (a directory with everything under it), while the
        writer is open (CallOrderError after plan()); a missing path is an InvalidInputError."""
        self._require_open("remove()")
        node = self.tree.node_of(path, "VFAT.remove()")
        parent = node.parent
        self.tree.remove(node.path, "VFAT.remove()")
        if parent is not None:                          # keep add()'s case index right
            self._cases.get(parent, _NO_CASES).discard(node.name)
            for sub in subtree(node):
                self._cases.pop(sub, None)
        self._checked_parent = None

    def rename(self, old_path: str, new_path: str) -> None:
        """Move the entry at ``old_path`` (with its subtree) to ``new_path``: the parent must
        exist, the target must not (nor a name differing from one there only by case);
        every attribute is kept (a ``FAT_shortname`` given for the old basename is dropped).
        Only while the writer is open."""
        self._require_open("rename()")
        node = self.tree.node_of(old_path, "VFAT.rename()")

        def check(parent: Node, info: FileInfo) -> None:
            check_name(info.basename, info.name)
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
        if old_parent is not None and node.parent is not None:
            self._cases.get(old_parent, _NO_CASES).discard(old_name)
            self._cases.setdefault(node.parent, CaseIndex()).add(node.name)
        self._checked_parent = None

    def add_tree(self, host_dir: str | os.PathLike, dest: str = "") -> None:
        """Add a host directory recursively (sorted; see fileinfo.walk_host_tree)."""
        for spec in walk_host_fileinfo(host_dir, dest):
            self.add(spec)

    # --- plan -------------------------------------------------------------------------------
    def _assign_names(self) -> list[Node]:
        """Every directory's state (:class:`DirState`): its children sorted, their columns
        and entry counts; directories in breadth-first order (path-table order, as
        Tree.directories_breadth_first), each sorted once."""
        root = self.tree.root
        dirs: list[Node] = [root]
        label_slot = 1 if self._label else 0
        i = 0
        while i < len(dirs):
            d = dirs[i]
            i += 1
            kids = d.children
            if kids is None:
                raise InternalError(f"{d.path}: a directory without children")
            names = sorted(kids)
            children = [kids[k] for k in names]
            if list(kids) != names:     # the mapping itself in sorted order (the tree keeps this object)
                kids.clear()
                kids.update(zip(names, children))
            st = d.w = DirState(kids)
            dirs.extend(c for c in children if c.children is not None)
            self._columns(st, names, children, d.path or "")
            slots = (2 if d.parent is not None else label_slot) + len(names) + sum(st.lfn)
            if slots > MAX_DIR_ENTRIES:
                raise LayoutError(f"{d.path or '/'}: needs {slots} directory entries, FAT allows "
                                  f"{MAX_DIR_ENTRIES}")
            st.slots = slots
        return dirs

    @staticmethod
    def _columns(st: DirState, names: list[str], children: list[Node], where: str) -> None:
        """A directory's columns: sizes, long-name entry counts, caller-given short names
        (checked against the other names now: a clash is an error of plan(), not of
        write()); each file's node gets its index (Node.w)."""
        sizes = array(FAT32_TYPECODE, bytes(4 * len(children)))
        aligns: set[int | None] = set()
        fixed: dict[int, bytes] | None = None
        index = _INDEX
        for i, c in enumerate(children):
            info = c.info
            if c.children is None:
                c.w = index[i]
                if info.size:
                    sizes[i] = info.size
                    aligns.add(info.device_align)
            if info.FAT_shortname is not None:
                if fixed is None:
                    fixed = {}
                fixed[i] = parse_short_name(info.FAT_shortname, c.path)
        st.sizes = sizes
        st.lfn = lfn_counts(names)
        if fixed:
            short_names_check(names, fixed, where)
            counts = bytearray(st.lfn)
            for i, given in fixed.items():
                name = names[i]
                counts[i] = 0 if _short_display(given) == name else -(-len(name.encode("utf-16-le")) //
                                                                        (2 * LFN_UNITS_PER_ENTRY))
            st.lfn = bytes(counts)
            st.fixed = fixed
        aligns.discard(None)
        if aligns:
            st.max_align = max(1, max(a for a in aligns if a is not None))
            st.pow2_align = all(a & (a - 1) == 0 for a in aligns if a is not None)

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
        self._mark_planned()
        dirs = self._assign_names()
        g = self._choose_geometry(dirs, voff, min_size)
        if geo.fat_type_of(g.cluster_count) != g.fat_type:
            raise InternalError(f"FAT{g.fat_type} planned with {g.cluster_count} clusters")
        if g.fat_type != 32:
            root = dir_state(self.tree.root)
            root.first = root.count = 0
        self._generation += 1
        digest = self.digest()
        plan = VFATPlan(self._generation, g, voff, tuple(dirs), self._volume_id(digest), digest)
        check_plan(plan)
        self._last_plan = plan
        return plan

    def _choose_geometry(self, dirs: list[Node], voff: int, min_size: int | None) -> geo.Geometry:
        """The first geometry that fits: the preferred cluster size for the estimated
        content first, then the others; FAT12, 16, 32 in turn (or the forced ones)."""
        max_align = 1
        content = 0
        for d in dirs:
            st = dir_state(d)
            content += st.slots * 32 + sum(st.sizes)
            max_align = max(max_align, st.max_align)
        estimate = max(min_size or 0, content + content // 10)
        ss = self.sector_size
        if self.cluster_size:
            sizes = [self.cluster_size]
        else:
            pref = geo.default_cluster_size(estimate, ss)
            sizes = [pref] + [ss << i for i in range(8) if (ss << i) <= 32768 and (ss << i) != pref]
        types = [self.fat_type] if self.fat_type else [12, 16, 32]
        root_slots = dir_state(self.tree.root).slots
        for cs in sizes:
            for ft in types:
                g = geo.compute(ft, cs, ss, voff, root_slots, min_size or 0, max_align, allocator(dirs, ft))
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
        pst = dir_state(parent)
        index = child_index(node, pst)
        slot = 2 if parent.parent is not None else (1 if self._label else 0)
        slot += index + sum(pst.lfn[:index])
        n = 1 + pst.lfn[index]
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
            info_sector = fsinfo(plan)
            _pwrite(fd, info_sector, voff + ss)
            _pwrite(fd, boot, voff + 6 * ss)
            _pwrite(fd, info_sector, voff + 7 * ss)
        fat = pack_fat(fat_table(plan), g.fat_type)
        fat_bytes = g.fat_sectors * ss
        for i in range(geo.NUM_FATS):
            _pwrite(fd, fat, voff + g.fat_offset + i * fat_bytes)
            if not zeroed:
                _pwrite_zeros(fd, voff + g.fat_offset + i * fat_bytes + len(fat), fat_bytes - len(fat))
        times = EntryTimes(self.default_time)
        for d in plan.dirs:
            data = directory_bytes(d, self._label, times)
            st = dir_state(d)
            if d.parent is None and g.fat_type != 32:
                where, room = voff + g.root_offset, g.root_dir_sectors * ss
            else:
                where, room = plan.cluster_device_offset(st.first), st.count * g.cluster_size
            _pwrite(fd, data, where)
            if not zeroed:
                _pwrite_zeros(fd, where + len(data), room - len(data))
        write_data(fd, plan, zeroed)

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
        return content_digest(self._walk_infos(), "vfat", self._label, self.default_time,
                              self.sector_size, self.fat_type, self.cluster_size)

    def _walk_infos(self) -> Iterator[FileInfo]:
        """Every entry's FileInfo in Tree.walk() order (parents first, siblings sorted),
        from the planned directories' sorted children when planned (no sorting again)."""
        if not isinstance(self.tree.root.w, DirState):
            yield from (n.info for n in self.tree.walk())
            return
        stack = [self.tree.root]
        while stack:
            node = stack.pop()
            yield node.info
            st = node.w
            if isinstance(st, DirState) and st.entries:
                stack.extend(reversed(st.children))

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

    # --- remastering (issue 13) -----------------------------------------------------------------
    @classmethod
    def from_image(cls, src: Any, output: Any = None) -> VFAT:
        """A writer holding every entry of the FAT volume of ``src`` (a FAT image, or the
        ESP of a disk image), file data read from ``src`` at finish().  See
        :mod:`sysexport.remaster`."""
        from ..remaster import vfat_from_image
        return vfat_from_image(cls, src, output)



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
