"""class ISO9660: an ISO 9660 (ECMA-119) image with Joliet, Rock Ridge and El Torito.

Usage::

    iso = ISO9660("out.iso", volume_label="MYDISK")
    iso.add(("file644", "boot/grub/grub.cfg", b"..."))
    iso.add_tree("/srv/root")
    iso.add_boot_catalog_entry(BOOT_X86, path="boot/grub/eltorito.img", boot_info_table=True, load_size=4)
    iso.finish()

Two phases (docs/architecture.md, "Plan, then write"): ``plan()`` lays out every
structure and file and returns an :class:`ISOPlan`; ``write(fd, plan)`` writes it into an
already sized file.  The hybrid writer uses the two phases directly, with files "placed
later" inside its ESP: :meth:`ISO9660.place` turns the plan into one whose placed-later
files, catalog entries and volume size are known.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import stat
from collections.abc import Iterable, Mapping
from typing import Any, BinaryIO, Iterator

from construct import Container

from ..errors import CallOrderError, InternalError, InvalidInputError, LayoutError
from ..extent import Allocator, Extent, align_up, check_no_overlap
from ..fileinfo import FileInfo, check_time, source_date_epoch, to_fileinfo, walk_host_fileinfo
from ..identity import BuildIdentity, content_digest, sde_is_set
from ..output import Output
from ..tree import Node, Tree
from ..writer import Lifecycle
from . import eltorito as _et
from . import dirbytes as _dirbytes
from . import entries as _entries
from . import hierarchy as _hier
from . import layout as _lay
from . import names as _names
from . import nodes as _nodes
from .checks import (LINUX_MAJOR_MAX, LINUX_MINOR_MAX, LONG_ID_CHARS, MAX_PADDING_BYTES,  # noqa: F401
                     SYSTEM_ID_CHARS, check_pn_device, linux_pn_view, validate_boot_catalog_path, validate_flag,
                     validate_identifier, validate_padding_bytes)
from ._structs import (SECTOR_BYTES, SYSTEM_AREA_BYTES, VD_TYPE_PRIMARY, VD_TYPE_SUPPLEMENTARY,
                       BootRecordDescriptor, TerminatorDescriptor, VolumeDescriptor)
from ._structs import FIRST_DESCRIPTOR_LBA as PVD_LBA
from .eltorito import BootEntry
from .enums import (EL_TORITO_ID, FLAG_ASSOCIATED, FLAG_DIRECTORY, FLAG_HIDDEN, FLAG_MULTI_EXTENT,  # noqa: F401
                    FLAG_PROTECTION, FLAG_RECORD, JOLIET_ESCAPE_LEVEL3)
from .isoplan import ISOPlan, Located, PathTable, RecordPlace, _extent  # noqa: F401  (RecordPlace: importable here)
from .layout import NodeState, Payload

__all__ = ["ISO9660", "ISOPlan", "FLAG_HIDDEN", "FLAG_DIRECTORY", "FLAG_ASSOCIATED", "FLAG_RECORD", "FLAG_PROTECTION",
           "FLAG_MULTI_EXTENT"]

FOUR_GIB = 1 << 32
DEFAULT_PADDING_BYTES = 300 * 1024
"""finish() adds this many zero bytes (holes) inside the volume after the last file, as
xorriso does: GRUB's El Torito loader (cdboot) reads whole chunks and fails on a medium
that ends right after its core image (measured under SeaBIOS)."""
EXTRA_KEYS = frozenset({"placed_later"})


class ISO9660(Lifecycle):
    """Writer of an ISO 9660 image (ECMA-119, 4th edition) with Joliet, Rock Ridge and El Torito.

    Attributes (settable): ``volume_label``, ``system``, ``volume_set``, ``publisher``,
    ``preparer``, ``application``, ``default_time`` (SOURCE_DATE_EPOCH when set; also the
    volume creation/modification dates, which blkid shows as the UUID), ``joliet``,
    ``rock_ridge`` ("1.09", "1.12" or None), ``interchange_level`` (1-3),
    ``boot_catalog_path`` and ``boot_catalog_hidden``, ``padding_bytes`` (zeros that
    finish() adds at the end of the volume; the two-phase API leaves sizing to its caller),
    ``relocate_deep_dirs`` (False: with Rock Ridge, directories past ECMA-119's eight levels
    stay in place, as xorriso writes them; True: they move to RR_MOVED, see
    :mod:`.hierarchy`).  Read-only: ``pvd_label`` and ``joliet_label``, what each volume
    descriptor records of ``volume_label``.

    While open, entries can be taken out (:meth:`remove`), moved (:meth:`rename`), given
    more names sharing their bytes (:meth:`add_link`, :meth:`remove_link`), and named per
    namespace (the file-info keys ``hidden_from`` and ``joliet_name``, see :mod:`.entries`);
    after :meth:`plan`, :meth:`lookup` tells where every record and extent lies.
    """

    def __init__(self, filename: str | os.PathLike | None = None, *, filehandle: BinaryIO | None = None,
                 volume_label: str = "CDROM", system: str = "LINUX", volume_set: str = "",
                 publisher: str = "", preparer: str = "", application: str = "SYSEXPORT",
                 default_time: float | None = None, joliet: bool = True, rock_ridge: str | None = "1.09",
                 interchange_level: int = 3, boot_catalog_path: str = "boot.catalog",
                 boot_catalog_hidden: bool = False, relocate_deep_dirs: bool = False) -> None:
        self.filename = os.fspath(filename) if filename is not None else None
        self.filehandle = filehandle
        self.volume_label = volume_label
        self.system = system
        self.volume_set = volume_set
        self.publisher = publisher
        self.preparer = preparer
        self.application = application
        self._default_time: float = source_date_epoch()
        self._time_given = False
        if default_time is not None:
            self.default_time = default_time
        self.joliet = joliet
        self.rock_ridge = rock_ridge
        self.interchange_level = interchange_level
        self.boot_catalog_path = boot_catalog_path
        self.boot_catalog_hidden = boot_catalog_hidden
        self.relocate_deep_dirs = relocate_deep_dirs
        self.tree: Tree[NodeState | Payload | None] = Tree()
        self.tree.root.w = NodeState()
        self.boot_entries: list[BootEntry] = []
        self.padding_bytes = DEFAULT_PADDING_BYTES
        self._generation = 0
        self._last_plan: ISOPlan | None = None
        self._catalog_node: Node | None = None
        self._next_inode = 1

    # --- attributes ---------------------------------------------------------------------------
    @property
    def default_time(self) -> float:
        """The time of entries without one and of the volume descriptors (SOURCE_DATE_EPOCH
        when set, else the time the writer was made).  Setting it makes the build
        reproducible (see :attr:`reproducible`)."""
        return self._default_time

    @default_time.setter
    def default_time(self, value: float) -> None:
        value = check_time("ISO9660", "default_time", value)     # finite, years 1..9999 (as file times)
        self._default_time = value
        self._time_given = True

    @property
    def reproducible(self) -> bool:
        """True when the volume's identifiers derive from the content: SOURCE_DATE_EPOCH is
        set or ``default_time`` was given."""
        return self._time_given or sde_is_set()

    @property
    def system(self) -> str:
        """System Identifier (ECMA-119 8.4.5), 32 characters (see :func:`validate_identifier`)."""
        return self._system

    @system.setter
    def system(self, value: str) -> None:
        self._system = validate_identifier("system", value, SYSTEM_ID_CHARS)

    @property
    def volume_set(self) -> str:
        """Volume Set Identifier (ECMA-119 8.4.13), 128 characters."""
        return self._volume_set

    @volume_set.setter
    def volume_set(self, value: str) -> None:
        self._volume_set = validate_identifier("volume_set", value, LONG_ID_CHARS)

    @property
    def publisher(self) -> str:
        """Publisher Identifier (ECMA-119 8.4.14), 128 characters."""
        return self._publisher

    @publisher.setter
    def publisher(self, value: str) -> None:
        self._publisher = validate_identifier("publisher", value, LONG_ID_CHARS)

    @property
    def preparer(self) -> str:
        """Data Preparer Identifier (ECMA-119 8.4.15), 128 characters."""
        return self._preparer

    @preparer.setter
    def preparer(self, value: str) -> None:
        self._preparer = validate_identifier("preparer", value, LONG_ID_CHARS)

    @property
    def application(self) -> str:
        """Application Identifier (ECMA-119 8.4.16), 128 characters."""
        return self._application

    @application.setter
    def application(self, value: str) -> None:
        self._application = validate_identifier("application", value, LONG_ID_CHARS)

    @property
    def joliet(self) -> bool:
        """Write a Joliet tree and supplementary volume descriptor (True or False)."""
        return self._joliet

    @joliet.setter
    def joliet(self, value: bool) -> None:
        self._joliet = validate_flag("joliet", value)

    @property
    def boot_catalog_path(self) -> str:
        """Where the El Torito catalog appears in the trees (a file name, not the root)."""
        return self._boot_catalog_path

    @boot_catalog_path.setter
    def boot_catalog_path(self, value: str) -> None:
        self._boot_catalog_path = validate_boot_catalog_path(value)

    @property
    def boot_catalog_hidden(self) -> bool:
        """Leave the catalog out of every directory (True or False)."""
        return self._boot_catalog_hidden

    @boot_catalog_hidden.setter
    def boot_catalog_hidden(self, value: bool) -> None:
        self._boot_catalog_hidden = validate_flag("boot_catalog_hidden", value)

    @property
    def padding_bytes(self) -> int:
        """Zero bytes finish() adds inside the volume after the last file (>= 0)."""
        return self._padding_bytes

    @padding_bytes.setter
    def padding_bytes(self, value: int) -> None:
        self._padding_bytes = validate_padding_bytes(value)

    @property
    def rock_ridge(self) -> str | None:
        return self._rock_ridge

    @rock_ridge.setter
    def rock_ridge(self, value: str | bool | None) -> None:
        if value is True:
            value = "1.09"
        if value in (None, False):
            value = None
        elif value not in ("1.09", "1.12"):
            raise InvalidInputError(f"rock_ridge: expected '1.09', '1.12' or None, found {value!r}")
        self._rock_ridge = value

    @property
    def interchange_level(self) -> int:
        return self._level

    @interchange_level.setter
    def interchange_level(self, value: int) -> None:
        if value not in (1, 2, 3):
            raise InvalidInputError(f"interchange_level: expected 1, 2 or 3 (ECMA-119 10), found {value!r}")
        if value < 3 and any(n.info.is_file and n.info.size >= FOUR_GIB for n in getattr(self, "tree", Tree()).walk()):
            raise InvalidInputError(f"interchange_level {value}: the image holds a file of 4 GiB or more, "
                                    "which needs level 3 (ECMA-119 10.3)")
        self._level = value

    @property
    def volume_label(self) -> str:
        """The volume label: at most 32 bytes of UTF-8, no control characters (what xorriso's
        ``-volid`` takes).  The primary descriptor records it as given, the Joliet one its
        first 16 characters (:attr:`pvd_label`, :attr:`joliet_label`)."""
        return self._label

    @volume_label.setter
    def volume_label(self, value: str) -> None:
        self._label = _names.check_volume_label(value)

    @property
    def pvd_label(self) -> str:
        """The label the primary volume descriptor records (what isoinfo and blkid read
        there): :attr:`volume_label` as given, trailing spaces aside."""
        return _names.pvd_volume_id(self._label).decode("utf-8").rstrip(" ")

    @property
    def joliet_label(self) -> str | None:
        """The label the Joliet descriptor records (the first 16 characters, case and spaces
        kept; what Windows and GRUB show), or None without Joliet."""
        return _names.joliet_label(self._label).rstrip(" ") if self.joliet else None

    @property
    def relocate_deep_dirs(self) -> bool:
        """With Rock Ridge, move directories past level 8 to RR_MOVED (RRIP 1.12 4.1.5)
        instead of writing them in place (the default, as xorriso does)."""
        return self._relocate_deep_dirs

    @relocate_deep_dirs.setter
    def relocate_deep_dirs(self, value: bool) -> None:
        if not isinstance(value, bool):
            raise InvalidInputError(f"relocate_deep_dirs: expected True or False, found {value!r}")
        self._relocate_deep_dirs = value

    # --- input ----------------------------------------------------------------------------------
    def add(self, spec: Any, *, placed_later: bool = False) -> Any:
        """Record one entry (file-info mapping, shorthand tuple or FileInfo); no data is read.

        ``placed_later=True``: the file's bytes live elsewhere on the device; :meth:`place`
        points the file at them before write().  Returns the entry's tree node (the handle
        :meth:`place` takes).
        """
        self._require_open("add()")
        info = to_fileinfo(spec, EXTRA_KEYS)
        placed_later = placed_later or bool(info.extra_value("placed_later"))
        self.check_entry(info, placed_later)
        return self.add_checked(info, placed_later)

    def add_checked(self, info: FileInfo, placed_later: bool) -> Node:
        """:meth:`add` of a FileInfo that :meth:`check_entry` accepted with the same
        ``placed_later``: a coordinator that checked it before adding it elsewhere (the
        hybrid) does not pay for the checks twice."""
        self._require_open("add()")
        node = self.tree.add(info)
        # No per-entry state until plan(); a shared marker records "placed later".
        node.w = _lay.PLACED_LATER if placed_later else None
        return node

    def check_entry(self, info: FileInfo, placed_later: bool = False) -> None:
        """Refuse (InvalidInputError naming the path, the field and the rule) what this
        image cannot hold, recording nothing: :meth:`add` calls it, and a coordinator that
        adds one record to several writers (the hybrid) calls it before adding anywhere."""
        where = info.name or "/"
        mode = info.mode & 0o170000                 # info.is_file, is_device, inlined (100,000 times)
        is_file = mode == stat.S_IFREG
        if is_file and info.size >= FOUR_GIB and self._level < 3:
            raise InvalidInputError(f"{where}: {info.size} bytes needs multi-extent records, which "
                                    f"interchange level {self._level} forbids (ECMA-119 10.3)")
        if info.ISO9660_shortname is not None:
            if not info.name:
                raise InvalidInputError("/: the root directory has no name, so no ISO9660_shortname")
            _names.check_iso_override(where, info.ISO9660_shortname, info.is_dir, self._level)
        if info.ISO9660_flags & ~_lay.USER_FLAGS:
            raise InvalidInputError(f"{where}: ISO9660_flags {info.ISO9660_flags:#x}: only FLAG_HIDDEN and "
                                    "FLAG_ASSOCIATED may be set by the caller (ECMA-119 9.1.6)")
        if (mode == stat.S_IFCHR or mode == stat.S_IFBLK) and self._rock_ridge is not None:
            check_pn_device(where, info.rdev_major, info.rdev_minor)
        if info.device_offset is not None:
            if info.device_offset % SECTOR_BYTES or info.device_offset < SYSTEM_AREA_BYTES:
                raise InvalidInputError(f"{where}: device_offset {info.device_offset} must be a multiple of "
                                        f"2048 past the system area ({SYSTEM_AREA_BYTES})")
            if placed_later:
                raise InvalidInputError(f"{where}: a file is either placed at device_offset or placed later")
        if placed_later and not is_file:
            raise InvalidInputError(f"{where}: only regular files can be placed later")
        if self._rock_ridge is None:
            _hier.check_without_rock_ridge(info)      # plan() checks again: rock_ridge may change

    def add_tree(self, host_dir: str | os.PathLike, dest: str = "") -> None:
        """Add a host directory recursively (lstat, sorted; hard links share one extent)."""
        for spec in walk_host_fileinfo(host_dir, dest):
            self.add(spec)

    # --- remove and rename (issue 13) -----------------------------------------------------------
    def remove(self, path: str) -> None:
        """Take ``path`` out of the image (a directory with everything under it), while the
        writer is open (CallOrderError after plan()).  A missing path is an
        InvalidInputError naming it; so is a file an El Torito entry names by ``path``
        (the entry would lose its image: the error names both), or a directory holding one.
        Hard links of a removed file keep its bytes (their Rock Ridge link count drops)."""
        self._require_open("remove()")
        node = self.tree.node_of(path, "ISO9660.remove()")
        self.check_removable(node, "ISO9660.remove()")
        self.tree.remove(node.path, "ISO9660.remove()")

    def check_removable(self, node: Node, call: str) -> None:
        """Refuse to remove an El Torito boot image given by ``path`` (or a directory
        holding one): the error names the catalog entry and the path."""
        _entries.check_removable(self, node, call)

    def rename(self, old_path: str, new_path: str) -> None:
        """Move the entry at ``old_path`` (with its subtree) to ``new_path``: the parent must
        exist, the target must not; every attribute is kept (names given for the old
        basename are dropped, see :meth:`Tree.rename`).  El Torito entries naming a moved
        file follow it.  Only while the writer is open."""
        self._require_open("rename()")
        node = self.tree.node_of(old_path, "ISO9660.rename()")
        placed_later = node.w is not None and node.w.placed_later
        old = node.path
        def check(parent: Node, info: FileInfo) -> None:
            self.check_entry(info, placed_later)
            _entries.check_names_free(self, parent, info, node, "ISO9660.rename()")

        moved = self.tree.rename(old, new_path, "ISO9660.rename()", check=check)
        _entries.follow_rename(self, old, moved.path)

    def add_link(self, existing_path: str, new_path: str, *, namespace: str | None = None) -> None:
        """A new name for the regular file at ``existing_path``, sharing its extent (one copy
        of the bytes; Rock Ridge link count and PX serial number shared): in ``namespace``
        ("iso9660", with Rock Ridge, or "joliet") or in both (None).  When ``new_path`` is
        already a name of that file hidden from ``namespace``, it is shown there.  A
        directory, another entry at ``new_path`` or namespace "fat" (FAT cannot hold two
        names for one cluster chain) is an InvalidInputError.  Only while open."""
        self._require_open("add_link()")
        _entries.add_link(self, existing_path, new_path, namespace)

    def remove_link(self, path: str, *, namespace: str | None = None) -> None:
        """Drop the name ``path`` from ``namespace`` (None: every namespace).  When no
        namespace names the file any more, it goes, and its bytes with its last name;
        but while an El Torito entry names it by path it stays, reachable from El Torito
        only (pycdlib's rm_hard_link of a boot file's ISO name).  Only while open."""
        self._require_open("remove_link()")
        _entries.remove_link(self, path, namespace)

    def add_boot_catalog_entry(self, platform: int = _et.BOOT_X86, data: bytes | None = None,
                               path: str | None = None, extent: Extent | None = None,
                               media_type: int = _et.EMU_NONE, load_segment: int = 0,
                               load_size: int | None = None, boot_info_table: bool = False,
                               system_type: int = 0, section_id: bytes = b"",
                               bootable: bool = True) -> BootEntry:
        """Add an El Torito catalog entry (El Torito 1.0, 2.2-2.4); the first is the default entry.

        The image is ``data`` (stored as an extent in no directory), ``path`` (a file added
        to this image) or ``extent`` (device bytes; ``Extent(0, 0)`` or any placeholder when
        a coordinator gives the real one to :meth:`place`).  ``load_size`` counts 512-byte sectors (default: the whole image, 0 past
        65535).  ``boot_info_table`` patches bytes 8..63 of the image (mkisofs convention).
        """
        self._require_open("add_boot_catalog_entry()")
        if isinstance(data, str):
            data = data.encode()
        if path is not None:
            path = to_fileinfo({"name": path, "mode": 0o40755}).name
        entry = BootEntry(platform=platform, data=bytes(data) if data is not None else None, path=path,
                          extent=extent, media_type=media_type, load_segment=load_segment, load_size=load_size,
                          boot_info_table=boot_info_table, system_type=system_type,
                          section_id=bytes(section_id), bootable=bootable)
        entry.check()
        if entry.boot_info_table and entry.data is not None and len(entry.data) < 64:
            raise InvalidInputError("boot catalog entry: a boot info table needs an image of at least 64 bytes")
        if entry.data is not None:
            entry.check_emulation(len(entry.data), entry.data[:_et.MBR_BYTES])
        self.boot_entries.append(entry)
        return entry

    # --- plan -----------------------------------------------------------------------------------
    def plan(self, reserve_after_descriptors: int = 0) -> ISOPlan:
        """Lay out everything (ECMA-119 6.2, 6.8, 6.9; El Torito 2.0); returns the :class:`ISOPlan`.

        Order: 16-sector system area, PVD, boot record (with a catalog), Joliet SVD,
        terminator, a reserved gap of ``reserve_after_descriptors`` bytes (never written),
        the catalog, path tables, directories of both trees, continuation areas, boot
        images given as data, then file data (except files placed later).  After it,
        :meth:`add` is refused; ``plan()`` itself may be called again (a new plan).
        """
        self._require_unfinished("plan()")
        plan = self._plan_image(reserve_after_descriptors)
        self._mark_planned()
        self._last_plan = plan
        return plan

    def place(self, plan: ISOPlan, files: Iterable[tuple[Node, int]] = (), *,
              volume_size_bytes: int | None = None,
              boot_extents: Mapping[int, Extent] | None = None) -> ISOPlan:
        """The plan with its placed-later files at their bytes, for a coordinator.

        ``files``: (node that :meth:`add` returned, device offset) for files added with
        ``placed_later=True`` (a hard link places its whole group).  ``volume_size_bytes``:
        the Volume Space Size to record (the hybrid records its whole device).
        ``boot_extents``: {index in :attr:`boot_entries`: Extent} for catalog entries given
        by ``extent`` (the hybrid points its EFI entry at the ESP).  Returns a new plan.
        """
        self._check_current(plan, "place()")
        for node, device_offset in files:
            payload = node.w if node is not None else None
            if (isinstance(payload, Payload) and payload.placed_later
                    and not device_offset % SECTOR_BYTES and device_offset >= SYSTEM_AREA_BYTES):
                payload.offset = device_offset      # _place_node(), inlined: 100,000 times
            else:
                self._place_node(node, device_offset)
        changes: dict[str, Any] = {}
        if volume_size_bytes is not None:
            if volume_size_bytes < plan.end_bytes or volume_size_bytes % SECTOR_BYTES:
                raise InvalidInputError(f"ISO9660.place(): volume_size_bytes {volume_size_bytes} must be a "
                                        f"multiple of 2048 and at least the planned end {plan.end_bytes}")
            changes["volume_size_bytes"] = volume_size_bytes
        if boot_extents:
            located = list(plan.boot_extents)
            for index, extent in boot_extents.items():
                if not 0 <= index < len(located) or self.boot_entries[index].extent is None:
                    raise InvalidInputError(f"ISO9660.place(): boot catalog entry {index} is not one given "
                                            "by extent")
                if extent.device_offset % SECTOR_BYTES:
                    raise InvalidInputError(f"boot catalog entry {index}: extent offset "
                                            f"{extent.device_offset} is not 2048-aligned")
                located[index] = extent
            changes["boot_extents"] = tuple(located)
        new = dataclasses.replace(plan, **changes) if changes else plan
        self._last_plan = new
        return new

    def _place_node(self, node: Node, device_offset: int) -> None:
        name = node.info.name if node is not None else "?"
        payload = node.w if node is not None else None
        if not isinstance(payload, Payload):
            raise InvalidInputError(f"place({name!r}): no such regular file with data in the image")
        if not payload.placed_later:
            raise InvalidInputError(f"place({name!r}): this file was not added with placed_later=True")
        if device_offset % SECTOR_BYTES or device_offset < SYSTEM_AREA_BYTES:
            raise InvalidInputError(f"place({name!r}): device_offset {device_offset} must be a multiple of "
                                    f"2048 past the system area")
        payload.offset = device_offset

    def _check_current(self, plan: ISOPlan, call: str) -> None:
        if not isinstance(plan, ISOPlan):
            raise InvalidInputError(f"ISO9660.{call}: expected an ISOPlan, found {type(plan).__name__}")
        if plan.generation != self._generation:
            raise CallOrderError(f"ISO9660.{call}: this plan is stale (plan() was called again since)")

    def lookup(self, name: str, namespace: str | None = None) -> Located:
        """Where an entry is, from the last plan (after :meth:`place`, too): its bytes
        (``.device_offset``, None for an empty or not yet placed file, ``.size_bytes``) and
        ``.records``, the directory records naming it in each namespace ("iso9660",
        "joliet"), or only in ``namespace``.  They stay right until the image is written:
        every change after plan() is refused (CallOrderError)."""
        if self._last_plan is None:
            raise CallOrderError(f"lookup({name!r}): call plan() first")
        wanted = _entries.namespaces_of(f"lookup({name!r})", namespace)
        node = self.tree.find(to_fileinfo({"name": name, "mode": 0o40755}).name)
        if node is None:
            raise InvalidInputError(f"lookup({name!r}): not in the image")
        st = node.w
        if not isinstance(st, (NodeState, Payload)) or st is _lay.PLACED_LATER:
            return Located(None, 0)
        records = tuple(r for ns in wanted for r in _entries.record_places(self, self._last_plan, node, ns))
        if isinstance(st, NodeState):
            if not node.info.is_dir:
                return Located(None, 0, records)
            d = st.iso_dir or st.joliet_dir
            if d is None or d.extent is None:
                return Located(None, 0, records)
            return Located(d.extent.device_offset, d.extent.size_bytes, records)
        return Located(st.offset if st.offset >= 0 else None, st.size_bytes, records)

    # --- write ----------------------------------------------------------------------------------
    def finish(self) -> ISOPlan:
        """plan(), then write the whole image to ``filename`` or ``filehandle`` (atomically), once."""
        self._require_unfinished("finish()")
        if self.filename is None and self.filehandle is None:
            raise InvalidInputError("ISO9660: set filename or filehandle before finish()")
        plan = self.plan()
        size = align_up(plan.end_bytes + self.padding_bytes, SECTOR_BYTES)
        plan = self.place(plan, volume_size_bytes=size)
        with Output(self.filename, self.filehandle) as out:
            out.prepare(size)           # sized, and zeroed where the target held old bytes
            self.write(out.fd, plan)
        self._mark_finished()
        return plan

    def write(self, fd: int, plan: ISOPlan) -> None:
        """Write descriptors, catalog, boot images, path tables, directories, continuation
        areas and owned file data into ``fd`` (already sized).  Never touches bytes 0..32767
        nor the reserved gap."""
        self._check_current(plan, "write()")
        for p in plan.waiting:
            if p.offset < 0:
                raise InternalError(f"{p.info.name}: added with placed_later=True but never placed")
        for offset, blob in self._structures(plan):      # made one by one, written at once
            self._pwrite(fd, blob, offset, plan)
        for payload, patched in plan.owned:
            offset = payload.offset
            if offset < 0:
                raise InternalError(f"{payload.info.name}: no extent after plan()")
            self._check_region(offset, payload.size_bytes, plan)
            if patched is not None:
                self._pwrite(fd, patched, offset, plan)
            elif payload.info.source is not None:
                payload.info.source.write_to(fd, offset)

    @staticmethod
    def _check_region(offset: int, size: int, plan: ISOPlan) -> None:
        if size and offset < SYSTEM_AREA_BYTES:
            raise InternalError(f"ISO9660: write of {size} bytes at {offset} inside the system area")
        r = plan.reserved_extent
        if size and r.size_bytes and offset < r.end and r.device_offset < offset + size:
            raise InternalError(f"ISO9660: write of {size} bytes at {offset} inside the reserved gap {r}")

    def _pwrite(self, fd: int, blob: bytes, offset: int, plan: ISOPlan) -> None:
        self._check_region(offset, len(blob), plan)
        view = memoryview(blob)
        while view:
            n = os.pwrite(fd, view, offset)
            view = view[n:]
            offset += n

    # --- descriptors ----------------------------------------------------------------------------
    def descriptor_bytes(self, joliet: bool, root_record: bytes, path_table: tuple[int, int, int],
                         volume_sectors: int, centiseconds: int = 0) -> bytes:
        """The primary (ECMA-119 8.4) or Joliet supplementary (8.5) volume descriptor.

        ``centiseconds`` go into the creation and modification dates (8.4.26.1), which
        blkid and udev show as the volume's UUID: they make two images made in the same
        second (or two reproducible images of different content) tell apart."""
        size, l_lba, m_lba = path_table
        if joliet:
            text = _names.joliet_text
            label = _names.joliet_volume_id(self.volume_label)
        else:
            text = _names.a_text
            label = _names.pvd_volume_id(self.volume_label)
        created = _lay.dec_datetime(self.default_time)
        if not 0 <= centiseconds <= 99:
            raise InternalError(f"volume date centiseconds {centiseconds}")
        created = created[:14] + b"%02d" % centiseconds + created[16:]
        return VolumeDescriptor.build(dict(
            volume_descriptor_type=VD_TYPE_SUPPLEMENTARY if joliet else VD_TYPE_PRIMARY,
            volume_descriptor_version=1, volume_flags=0,
            system_identifier=text(self.system, 32), volume_identifier=label,
            volume_space_size=volume_sectors,
            escape_sequences=(JOLIET_ESCAPE_LEVEL3 if joliet else b"").ljust(32, b"\x00"),
            volume_set_size=1, volume_sequence_number=1, logical_block_size=SECTOR_BYTES,
            path_table_size=size, location_of_type_l_path_table=l_lba,
            location_of_optional_type_l_path_table=0, location_of_type_m_path_table=m_lba,
            location_of_optional_type_m_path_table=0, directory_record_for_root_directory=root_record,
            volume_set_identifier=text(self.volume_set, 128), publisher_identifier=text(self.publisher, 128),
            data_preparer_identifier=text(self.preparer, 128),
            application_identifier=text(self.application, 128),
            copyright_file_identifier=text("", 37), abstract_file_identifier=text("", 37),
            bibliographic_file_identifier=text("", 37),
            volume_creation_date_and_time=Container(digits=created[:16], offset_from_gmt=0),
            volume_modification_date_and_time=Container(digits=created[:16], offset_from_gmt=0),
            volume_expiration_date_and_time=Container(digits=b"0" * 16, offset_from_gmt=0),
            volume_effective_date_and_time=Container(digits=b"0" * 16, offset_from_gmt=0),
            file_structure_version=1, application_use=bytes(512)))

    @staticmethod
    def boot_record_bytes(catalog_lba: int) -> bytes:
        """El Torito 2.0 boot record volume descriptor (sector 17)."""
        return BootRecordDescriptor.build(dict(boot_system_identifier=EL_TORITO_ID.ljust(32, b"\x00"),
                                               boot_identifier=bytes(32), boot_catalog_pointer=catalog_lba))

    @staticmethod
    def terminator_bytes() -> bytes:
        return TerminatorDescriptor.build({})



    # --- layout (the body of plan()) -------------------------------------------------------------
    def digest(self) -> bytes | None:
        """A digest of everything added and the settings (see sysexport/identity.py), or
        None when the build is not reproducible."""
        if not self.reproducible:
            return None
        # Names per namespace (issue 13) count only where given, so that digests (and the
        # identifiers derived from them) of images without any stay as they were.
        names = [(n.path, sorted(n.info.hidden_from), n.info.joliet_name) for n in self.tree.walk()
                 if n.info.hidden_from or n.info.joliet_name is not None]
        return content_digest((n.info for n in self.tree.walk()), "iso9660", *([names] if names else []),
                              self.volume_label, self.default_time,
                              self.system, self.volume_set, self.publisher, self.preparer, self.application,
                              self.joliet, self.rock_ridge, self.interchange_level,
                              [(e.platform, e.path, e.media_type, e.load_size, e.boot_info_table,
                                hashlib.sha256(e.data).hexdigest() if e.data is not None else None)
                               for e in self.boot_entries])

    def _rr_module(self) -> Any:
        if self.rock_ridge is None:
            return None
        from . import rockridge
        return rockridge

    def _prepare_nodes(self) -> list[Payload]:
        """Fresh per-node state (:func:`.nodes.prepare_nodes`)."""
        payloads, self._next_inode = _nodes.prepare_nodes(self.tree, self.rock_ridge)
        return payloads

    def _add_catalog_node(self) -> None:
        want = bool(self.boot_entries) and not self.boot_catalog_hidden
        if self._catalog_node is not None:
            node = self._catalog_node
            if want and node.info.name == to_fileinfo({"name": self.boot_catalog_path, "mode": 0o40755}).name:
                return
            parent = node.parent
            if parent is None or parent.children is None:
                raise InternalError("the boot catalog node has no parent directory")
            del parent.children[node.name]
            self.tree.count -= 1
            self._catalog_node = None
        if want:
            info = to_fileinfo({"name": self.boot_catalog_path, "mode": 0o100444,
                                "mtime": self.default_time})
            self._catalog_node = self.tree.add(info)

    def _plan_image(self, reserve_after_descriptors: int) -> ISOPlan:
        if not isinstance(reserve_after_descriptors, int) or reserve_after_descriptors < 0:
            raise InvalidInputError(f"plan(): reserve_after_descriptors must be >= 0, found {reserve_after_descriptors}")
        rr_mod = self._rr_module()
        self._add_catalog_node()
        payloads = self._prepare_nodes()
        catalog_payload = _lay.payload_of(self._catalog_node) if self._catalog_node is not None else None
        iso_dirs = _hier.build_iso_hierarchy(self.tree, self.interchange_level, rr_mod is not None, self._next_inode,
                                             relocate=self.relocate_deep_dirs)
        joliet_dirs = _hier.build_joliet_hierarchy(self.tree) if self.joliet else []
        self._check_boot_images()
        t = self.default_time
        version = self.rock_ridge or ""
        dir_sizes = [(d, _dirbytes.size_directory(d, rr_mod, version, t)) for d in iso_dirs + joliet_dirs]

        fixed = [Extent(p.info.device_offset, align_up(p.size_bytes, SECTOR_BYTES), p.info.name)
                 for p in payloads if p.fixed and p.info.device_offset is not None]
        alloc = Allocator(SYSTEM_AREA_BYTES, reserved=fixed)
        extents: list[Extent] = [Extent(0, SYSTEM_AREA_BYTES, "system area")]
        n_desc = 2 + bool(self.boot_entries) + bool(self.joliet)
        desc = alloc.alloc(n_desc * SECTOR_BYTES, SECTOR_BYTES, "volume descriptors")
        if desc.device_offset != PVD_LBA * SECTOR_BYTES:
            raise LayoutError(f"a file placed at a fixed device_offset overlaps the volume descriptors "
                              f"(sectors 16..{16 + n_desc - 1})")
        reserved = alloc.alloc(align_up(reserve_after_descriptors, SECTOR_BYTES), SECTOR_BYTES, "reserved gap")
        extents += [desc, reserved]
        catalog = None
        if self.boot_entries:
            catalog = alloc.alloc(_et.catalog_size_bytes(len(self.boot_entries)), SECTOR_BYTES, "boot catalog")
            extents.append(catalog)
            if catalog_payload is not None:
                catalog_payload.size_bytes = catalog.size_bytes
                catalog_payload.extent = catalog
        tables = self._alloc_directories(alloc, extents, iso_dirs, joliet_dirs, dir_sizes)
        boot_own = self._alloc_data(alloc, extents, payloads, catalog_payload)
        end = align_up(max([alloc.next_free] + [e.end for e in extents]), SECTOR_BYTES)
        check_no_overlap(extents)
        patched = self._boot_patches()
        owned = tuple((p, patched.get(id(p))) for p in payloads
                      if p is not catalog_payload and not p.placed_later and p.size_bytes > 0)
        self._generation += 1
        digest = self.digest()
        return ISOPlan(generation=self._generation, end_bytes=end, volume_size_bytes=end,
                       centiseconds=BuildIdentity(digest).below("ISO volume date centiseconds", 100),
                       content_digest=digest,
                       reserved_extent=reserved, descriptors=desc, catalog=catalog,
                       iso_dirs=tuple(iso_dirs), joliet_dirs=tuple(joliet_dirs), tables=tuple(tables),
                       owned=owned, waiting=tuple(p for p in payloads if p.placed_later),
                       boot_extents=tuple(e.extent for e in self.boot_entries), boot_own=tuple(boot_own),
                       rr_mod=rr_mod, extents=tuple(extents))

    def _alloc_directories(self, alloc: Allocator, extents: list[Extent], iso_dirs: list[_lay.DirOut],
                           joliet_dirs: list[_lay.DirOut],
                           dir_sizes: list[tuple[_lay.DirOut, int]]) -> list[PathTable]:
        """Path tables, ISO directories, their continuation areas, then Joliet directories."""
        tables: list[PathTable] = []
        for dirs in ([iso_dirs] + ([joliet_dirs] if self.joliet else [])):
            size = _lay.path_table_size(dirs)
            l_ext = alloc.alloc(size, SECTOR_BYTES, "L path table")
            m_ext = alloc.alloc(size, SECTOR_BYTES, "M path table")
            extents += [l_ext, m_ext]
            tables.append((tuple(dirs), size, l_ext, m_ext))
        n_iso = len(iso_dirs)
        iso_sizes = {id(d): size for d, size in dir_sizes[:n_iso]}
        for d in _hier.extent_order(iso_dirs):      # path table order, or RR_MOVED's tree first
            d.extent = alloc.alloc(iso_sizes[id(d)], SECTOR_BYTES, f"directory {d.info.name or '/'}")
            extents.append(d.extent)
        cursor = 0
        conts = [c for d in iso_dirs if d.conts for c in d.conts.values()]
        for rec in conts:
            if cursor % SECTOR_BYTES + rec[0] > SECTOR_BYTES:
                cursor = align_up(cursor, SECTOR_BYTES)
            rec[1] = cursor
            cursor += rec[0]
        if conts:
            area = alloc.alloc(align_up(cursor, SECTOR_BYTES), SECTOR_BYTES, "continuation areas")
            extents.append(area)
            for rec in conts:
                rec[1] += area.device_offset
        # Joliet directories after the continuation areas: libarchive (bsdtar) ignores a
        # continuation area that lies past the Joliet directories (measured).
        for d, size in dir_sizes[n_iso:]:
            d.extent = alloc.alloc(size, SECTOR_BYTES, f"Joliet directory {d.info.name or '/'}")
            extents.append(d.extent)
        return tables

    def _alloc_data(self, alloc: Allocator, extents: list[Extent], payloads: list[Payload],
                    catalog_payload: Payload | None) -> list[Extent | None]:
        """Boot images given as data (returned, per catalog entry), then the file data this
        image owns: at its fixed device_offset or allocated, aligned to 2048 or more."""
        boot_own: list[Extent | None] = []
        for entry in self.boot_entries:
            own = None
            if entry.data is not None:
                own = alloc.alloc(len(entry.data), SECTOR_BYTES, "boot image")
                extents.append(own)
            boot_own.append(own)
        for p in payloads:
            if p is catalog_payload or p.placed_later or p.size_bytes == 0:
                continue
            if p.fixed and p.info.device_offset is not None:
                p.extent = Extent(p.info.device_offset, p.size_bytes, p.info.name)
            else:
                p.extent = alloc.alloc(p.size_bytes, max(SECTOR_BYTES, p.info.device_align or 1), p.info.name)
            extents.append(p.extent)
        return boot_own

    def _boot_payload(self, entry: BootEntry) -> Payload:
        node = self.tree.find(entry.path) if entry.path is not None else None
        if node is None or not node.info.is_file:
            raise InvalidInputError(f"boot catalog entry: path {entry.path!r} is not a regular file of the image")
        if node.info.size == 0:
            raise InvalidInputError(f"boot catalog entry: {entry.path} is empty")
        st = node.w
        if not isinstance(st, Payload):
            raise InternalError(f"boot catalog entry: {entry.path} has no payload after plan()")
        return st

    def _check_boot_images(self) -> None:
        """Catalog entries given by path: the image a floppy or hard-disk emulation entry
        names must be one the BIOS can emulate (:meth:`BootEntry.check_emulation`)."""
        for entry in self.boot_entries:
            if entry.path is None or entry.media_type == _et.EMU_NONE:
                continue
            source = self._boot_payload(entry).info.source
            head = b""
            if source is not None and entry.media_type == _et.EMU_HDD:
                chunks = source.iter_chunks(_et.MBR_BYTES)
                head = next(iter(chunks), b"")
                close = getattr(chunks, "close", None)
                if close is not None:
                    close()
            entry.check_emulation(self._boot_payload(entry).size_bytes, head)

    def _boot_patches(self) -> dict[int, bytes]:
        """Boot images given by path that get a boot info table: their patched bytes."""
        out: dict[int, bytes] = {}
        for entry in self.boot_entries:
            if entry.path is None:
                continue
            p = self._boot_payload(entry)
            if entry.boot_info_table:
                if p.placed_later:
                    raise InvalidInputError(f"boot catalog entry: {entry.path} gets a boot info table, so it "
                                            "cannot be placed later (shared with another file system)")
                if p.info.source is None or p.extent is None:
                    raise InternalError(f"boot catalog entry: {entry.path} has no data or no extent")
                image = p.info.source.read_all(64 << 20)
                out[id(p)] = _et.patch_boot_info_table(image, PVD_LBA, p.extent.device_offset // SECTOR_BYTES)
        return out

    def _locate_boot(self, entry: BootEntry, plan: ISOPlan) -> Extent:
        index = self.boot_entries.index(entry)
        own = plan.boot_own[index]
        if entry.data is not None and own is not None:
            return Extent(own.device_offset, len(entry.data))
        if entry.path is not None:
            p = self._boot_payload(entry)
            if p.extent is None:
                raise InternalError(f"boot catalog entry: {entry.path} was never placed")
            return Extent(p.extent.device_offset, p.size_bytes)
        extent = plan.boot_extents[index]
        if extent is None:
            raise InternalError("boot catalog entry: extent was never set")
        return extent

    def _structures(self, plan: ISOPlan) -> Iterator[tuple[int, bytes]]:
        """Every metadata block with its device offset, built from the plan, one at a time
        (the directories of 100,000 files are not all held in memory at once)."""
        rr_mod, t = plan.rr_mod, self.default_time
        sectors = -(-max(plan.volume_size_bytes, 1) // SECTOR_BYTES)
        lba = PVD_LBA
        table_info = [(size, l_ext.device_offset // SECTOR_BYTES, m_ext.device_offset // SECTOR_BYTES)
                      for _dirs, size, l_ext, m_ext in plan.tables]
        descriptors = []
        for joliet, dirs in ((False, plan.iso_dirs), (True, plan.joliet_dirs)):
            if joliet and not self.joliet:
                continue
            root = dirs[0]
            root_time = root.info.mtime if root.info.mtime is not None else t
            root_record = _lay.pack_record(b"\x00", root.lba, _extent(root).size_bytes,
                                           _lay.dir_datetime(root_time), FLAG_DIRECTORY)
            descriptors.append(self.descriptor_bytes(joliet, root_record, table_info[joliet], sectors,
                                                     plan.centiseconds))
            if not joliet and plan.catalog is not None:
                descriptors.append(self.boot_record_bytes(plan.catalog.device_offset // SECTOR_BYTES))
        descriptors.append(self.terminator_bytes())
        yield lba * SECTOR_BYTES, b"".join(descriptors)
        if plan.catalog is not None:
            yield plan.catalog.device_offset, _et.build_catalog(self.boot_entries,
                                                                lambda e: self._locate_boot(e, plan))
        for dirs, _size, l_ext, m_ext in plan.tables:
            yield l_ext.device_offset, _lay.path_table_bytes(list(dirs), False)
            yield m_ext.device_offset, _lay.path_table_bytes(list(dirs), True)
        continuation: dict[int, bytes] = {}
        version = self.rock_ridge or ""
        for d, data in _dirbytes.directories_bytes(plan.iso_dirs, plan.joliet_dirs, rr_mod, version, t, continuation):
            yield _extent(d).device_offset, data
        yield from sorted(continuation.items())
        for entry, own in zip(self.boot_entries, plan.boot_own):
            if entry.data is not None and own is not None:
                data = entry.data
                if entry.boot_info_table:
                    data = _et.patch_boot_info_table(data, PVD_LBA, own.device_offset // SECTOR_BYTES)
                yield own.device_offset, data

    # --- remastering (issue 13) -----------------------------------------------------------------
    @classmethod
    def from_image(cls, src: Any, output: Any = None) -> ISO9660:
        """A writer holding every entry, the El Torito catalog, the MBR boot code and the
        partitions of the image ``src`` (a path or binary file), its file data read from
        ``src`` at finish(); ``output`` a path or binary file (or set ``filename`` later).
        See :mod:`sysexport.remaster`."""
        from ..remaster import iso_from_image
        return iso_from_image(cls, src, output)
