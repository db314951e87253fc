"""class ISO9660: an ISO 9660 (ECMA-119) image with Joliet, Rock Ridge and El Torito.

Usage::

    iso = ISO9660("out.iso", volume_label="MYDISK")
    iso.add(("file644", "boot/grub/grub.cfg", b"..."))
    iso.add_tree("/srv/root")
    iso.add_boot_catalog_entry(BOOT_X86, path="boot/grub/eltorito.img", boot_info_table=True, load_size=4)
    iso.finish()

Two phases (DESIGN.md "Plan, then write"): ``plan()`` lays out every structure and file;
``write(fd)`` writes them into an already sized file.  The hybrid writer uses the two
phases directly, with files "placed later" inside its ESP.
"""
from __future__ import annotations

import os
from typing import Any, BinaryIO, Iterator

from construct import Container

from ..errors import InternalError, InvalidInputError, LayoutError
from ..extent import Allocator, Extent, align_up, check_no_overlap
from ..fileinfo import source_date_epoch, to_fileinfo, walk_host_fileinfo
from ..output import Output
from ..tree import Tree
from . import eltorito as _et
from . import layout as _lay
from . import names as _names
from ._structs import (SECTOR_BYTES, SYSTEM_AREA_BYTES, VD_TYPE_PRIMARY, VD_TYPE_SUPPLEMENTARY,
                       BootRecordDescriptor, TerminatorDescriptor, VolumeDescriptor)
from .eltorito import BootEntry
from .layout import (FLAG_ASSOCIATED, FLAG_DIRECTORY, FLAG_HIDDEN, FLAG_MULTI_EXTENT, FLAG_PROTECTION,  # noqa: F401
                     FLAG_RECORD, NodeState, Payload)

__all__ = ["ISO9660", "FLAG_HIDDEN", "FLAG_DIRECTORY", "FLAG_ASSOCIATED", "FLAG_RECORD", "FLAG_PROTECTION",
           "FLAG_MULTI_EXTENT"]

PVD_LBA = 16
FOUR_GIB = 1 << 32
JOLIET_ESCAPE_LEVEL3 = b"%/E"    # Joliet: UCS-2 level 3 escape sequence in the SVD (ECMA-119 8.5.6)
EL_TORITO_ID = b"EL TORITO SPECIFICATION"
DEFAULT_PADDING_BYTES = 300 * 1024
"""finish() adds this many zero bytes (holes) inside the volume after the last file, as
xorriso does: GRUB's El Torito loader (cdboot) reads whole chunks and fails on a medium
that ends right after its core image (measured under SeaBIOS)."""
EXTRA_KEYS = frozenset({"placed_later"})


class _Located:
    """What lookup() returns: where a file's bytes are on the device."""

    def __init__(self, device_offset: int | None, size_bytes: int) -> None:
        self.device_offset = device_offset
        self.size_bytes = size_bytes

    def __repr__(self) -> str:
        return f"Located(device_offset={self.device_offset}, size_bytes={self.size_bytes})"


class ISO9660:
    """Writer of an ISO 9660 image (ECMA-119, 4th edition) with Joliet, Rock Ridge and El Torito.

    Attributes (settable): ``volume_label``, ``system``, ``volume_set``, ``publisher``,
    ``preparer``, ``application``, ``default_time`` (SOURCE_DATE_EPOCH when set; also the
    volume creation/modification dates, which blkid shows as the UUID), ``joliet``,
    ``rock_ridge`` ("1.09", "1.12" or None), ``interchange_level`` (1-3),
    ``boot_catalog_path`` and ``boot_catalog_hidden``, ``padding_bytes`` (zeros that
    finish() adds at the end of the volume; the two-phase API leaves sizing to its caller).
    """

    def __init__(self, filename: str | os.PathLike | None = None, *, filehandle: BinaryIO | None = None,
                 volume_label: str = "CDROM", system: str = "LINUX", volume_set: str = "",
                 publisher: str = "", preparer: str = "", application: str = "SYSEXPORT",
                 default_time: float | None = None, joliet: bool = True, rock_ridge: str | None = "1.09",
                 interchange_level: int = 3, boot_catalog_path: str = "boot.catalog",
                 boot_catalog_hidden: bool = False) -> None:
        self.filename = os.fspath(filename) if filename is not None else None
        self.filehandle = filehandle
        self.volume_label = volume_label
        self.system = system
        self.volume_set = volume_set
        self.publisher = publisher
        self.preparer = preparer
        self.application = application
        self.default_time = source_date_epoch() if default_time is None else default_time
        self.joliet = joliet
        self.rock_ridge = rock_ridge
        self.interchange_level = interchange_level
        self.boot_catalog_path = boot_catalog_path
        self.boot_catalog_hidden = boot_catalog_hidden
        self.tree = Tree()
        self.tree.root.w = NodeState()
        self.boot_entries: list[BootEntry] = []
        self.reserved_extent: Extent | None = None
        self.padding_bytes = DEFAULT_PADDING_BYTES
        self.volume_size_bytes: int | None = None
        self._planned = False
        self._plan: dict[str, Any] = {}
        self._catalog_node = None

    # --- attributes ---------------------------------------------------------------------------
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
        return self._label

    @volume_label.setter
    def volume_label(self, value: str) -> None:
        if not isinstance(value, str) or not value:
            raise InvalidInputError(f"volume_label: expected a non-empty str, found {value!r}")
        self._label = value

    # --- input ----------------------------------------------------------------------------------
    def add(self, spec: Any, *, placed_later: bool = False) -> Any:
        """Record one entry (file-info mapping, shorthand tuple or FileInfo); no data is read.

        ``placed_later=True``: the file's bytes live elsewhere on the device; place_file()
        must point the file at them before write().  Returns the entry's tree node.
        """
        info = to_fileinfo(spec, EXTRA_KEYS)
        where = info.name or "/"
        placed_later = placed_later or bool(info.extra.get("placed_later"))
        if info.is_file and info.size >= FOUR_GIB and self.interchange_level < 3:
            raise InvalidInputError(f"{where}: {info.size} bytes needs multi-extent records, which "
                                    f"interchange level {self.interchange_level} forbids (ECMA-119 10.3)")
        if info.ISO9660_shortname is not None:
            if not info.name:
                raise InvalidInputError("/: the root directory has no name, so no ISO9660_shortname")
            _names.check_iso_override(where, info.ISO9660_shortname, info.is_dir, self.interchange_level)
        if info.ISO9660_flags & ~_lay.USER_FLAGS:
            raise InvalidInputError(f"{where}: ISO9660_flags {info.ISO9660_flags:#x}: only FLAG_HIDDEN and "
                                    "FLAG_ASSOCIATED may be set by the caller (ECMA-119 9.1.6)")
        if info.device_offset is not None:
            if info.device_offset % SECTOR_BYTES or info.device_offset < SYSTEM_AREA_BYTES:
                raise InvalidInputError(f"{where}: device_offset {info.device_offset} must be a multiple of "
                                        f"2048 past the system area ({SYSTEM_AREA_BYTES})")
            if placed_later:
                raise InvalidInputError(f"{where}: a file is either placed at device_offset or placed later")
        if placed_later and not info.is_file:
            raise InvalidInputError(f"{where}: only regular files can be placed later")
        node = self.tree.add(info)
        # No per-entry state until plan(); a shared marker records "placed later".
        node.w = _lay.PLACED_LATER if placed_later else None
        self._planned = False
        return node

    def add_tree(self, host_dir: str | os.PathLike, dest: str = "") -> None:
        """Add a host directory recursively (lstat, sorted; hard links share one extent)."""
        for spec in walk_host_fileinfo(host_dir, dest):
            self.add(spec)

    def add_boot_catalog_entry(self, platform: int = _et.BOOT_X86, data: bytes | None = None,
                               path: str | None = None, extent: Extent | None = None,
                               media_type: int = _et.EMU_NONE, load_segment: int = 0,
                               load_size: int | None = None, boot_info_table: bool = False,
                               system_type: int = 0, section_id: bytes = b"",
                               bootable: bool = True) -> BootEntry:
        """Add an El Torito catalog entry (El Torito 1.0, 2.2-2.4); the first is the default entry.

        The image is ``data`` (stored as an extent in no directory), ``path`` (a file added
        to this image) or ``extent`` (device bytes, settable on the returned entry until
        write()).  ``load_size`` counts 512-byte sectors (default: the whole image, 0 past
        65535).  ``boot_info_table`` patches bytes 8..63 of the image (mkisofs convention).
        """
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
        self.boot_entries.append(entry)
        self._planned = False
        return entry

    # --- plan -----------------------------------------------------------------------------------
    def plan(self, reserve_after_descriptors: int = 0) -> int:
        """Lay out everything (ECMA-119 6.2, 6.8, 6.9; El Torito 2.0); returns the planned end in bytes.

        Order: 16-sector system area, PVD, boot record (with a catalog), Joliet SVD,
        terminator, a reserved gap of ``reserve_after_descriptors`` bytes (never written),
        the catalog, path tables, directories of both trees, continuation areas, boot
        images given as data, then file data (except files placed later).
        """
        end = self._plan_image(reserve_after_descriptors)
        self._planned = True
        return end

    def place_file(self, name: str, device_offset: int) -> None:
        """Point a placed-later file (and its hard links) at its bytes, 2048-aligned."""
        node = self.tree.find(to_fileinfo({"name": name, "mode": 0o40755}).name)
        self.place_node(node, device_offset, name)

    def place_node(self, node: Any, device_offset: int, name: str | None = None) -> None:
        """:meth:`place_file` for a tree node that :meth:`add` returned (no name lookup)."""
        if name is None and node is not None:
            name = node.info.name
        if node is None or not isinstance(node.w, NodeState) or node.w.payload is None:
            raise InvalidInputError(f"place_file({name!r}): no such regular file with data in the image")
        payload: Payload = node.w.payload
        if not payload.placed_later:
            raise InvalidInputError(f"place_file({name!r}): this file was not added with placed_later=True")
        if device_offset % SECTOR_BYTES or device_offset < SYSTEM_AREA_BYTES:
            raise InvalidInputError(f"place_file({name!r}): device_offset {device_offset} must be a multiple of "
                                    f"2048 past the system area")
        payload.extent = Extent(device_offset, payload.size_bytes, name)

    def lookup(self, name: str) -> _Located:
        """Where a file's (or a directory's) bytes are: ``.device_offset``, ``.size_bytes``."""
        node = self.tree.find(to_fileinfo({"name": name, "mode": 0o40755}).name)
        if node is None:
            raise InvalidInputError(f"lookup({name!r}): not in the image")
        st: NodeState = node.w
        if not isinstance(st, NodeState):
            st = NodeState()
        if node.info.is_dir:
            d = st.iso_dir
            if d is None or d.extent is None:
                raise InvalidInputError(f"lookup({name!r}): call plan() first")
            return _Located(d.extent.device_offset, d.extent.size_bytes)
        if st.payload is None:
            return _Located(None, 0)
        ext = st.payload.extent
        return _Located(ext.device_offset if ext is not None else None, st.payload.size_bytes)

    # --- write ----------------------------------------------------------------------------------
    def finish(self) -> None:
        """plan(), then write the whole image to ``filename`` or ``filehandle`` (atomically)."""
        if self.filename is None and self.filehandle is None:
            raise InvalidInputError("ISO9660: set filename or filehandle before finish()")
        end = self.plan()
        size = align_up(end + self.padding_bytes, SECTOR_BYTES)
        self.volume_size_bytes = size
        with Output(self.filename, self.filehandle) as out:
            out.set_size(size)
            self.write(out.fd)

    def write(self, fd: int) -> None:
        """Write descriptors, catalog, boot images, path tables, directories, continuation
        areas and owned file data into ``fd`` (already sized).  Never touches bytes 0..32767
        nor the reserved gap."""
        if not self._planned:
            raise InternalError("ISO9660.write() before plan()")
        for offset, blob in self._structures():      # made one by one, written at once
            self._pwrite(fd, blob, offset)
        for payload, patched in self._plan["owned"]:
            ext = payload.extent
            self._check_region(ext.device_offset, payload.size_bytes)
            if patched is not None:
                self._pwrite(fd, patched, ext.device_offset)
            elif payload.info.source is not None:
                payload.info.source.write_to(fd, ext.device_offset)

    def _check_region(self, offset: int, size: int) -> None:
        if size and offset < SYSTEM_AREA_BYTES:
            raise InternalError(f"ISO9660: write of {size} bytes at {offset} inside the system area")
        r = self.reserved_extent
        if size and r is not None and r.size_bytes and offset < r.end and r.device_offset < offset + size:
            raise InternalError(f"ISO9660: write of {size} bytes at {offset} inside the reserved gap {r}")

    def _pwrite(self, fd: int, blob: bytes, offset: int) -> None:
        self._check_region(offset, len(blob))
        view = memoryview(blob)
        while view:
            n = os.pwrite(fd, view, offset)
            view = view[n:]
            offset += n

    # --- descriptors ----------------------------------------------------------------------------
    def descriptor_bytes(self, joliet: bool, root_record: bytes, path_table: tuple[int, int, int],
                         volume_sectors: int) -> bytes:
        """The primary (ECMA-119 8.4) or Joliet supplementary (8.5) volume descriptor."""
        size, l_lba, m_lba = path_table
        if joliet:
            text = _names.joliet_text
            label = text(self.volume_label, 32)
        else:
            text = _names.a_text
            label = _names.a_text(self.volume_label, 32, d_only=True)
        created = _lay.dec_datetime(self.default_time)
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
    def _rr_module(self) -> Any:
        if self.rock_ridge is None:
            return None
        from . import rockridge
        return rockridge

    def _prepare_nodes(self) -> list[Payload]:
        """Fresh per-node state: payloads (one per hard-link group), inode numbers, link counts."""
        payloads: list[Payload] = []
        by_key: dict[tuple[int, int], Payload] = {}
        inode = 1
        nodes = list(self.tree.walk())
        for node in nodes:
            old = node.w
            later = old.placed_later if isinstance(old, NodeState) else False
            st = node.w = NodeState(placed_later=later)
            info = node.info
            if info.is_file:
                key = info.link_key
                p = by_key.get(key) if key is not None else None
                if p is None:
                    later = later or bool(info.extra.get("placed_later"))
                    p = Payload(info, info.size, placed_later=later and info.size > 0,
                                fixed=info.device_offset is not None, inode=inode)
                    inode += 1
                    payloads.append(p)
                    if key is not None:
                        by_key[key] = p
                elif info.size != p.size_bytes:
                    raise InvalidInputError(f"{info.name}: hard link of {p.info.name} with another size "
                                            f"({info.size} != {p.size_bytes})")
                p.nlink += 1
                st.payload = p
                st.inode = p.inode
            else:
                st.inode = inode
                inode += 1
        for node in nodes:
            st = node.w
            if st.payload is not None:
                st.nlink = st.payload.nlink
            elif node.children is not None:
                st.nlink = 2 + sum(1 for c in node.children.values() if c.children is not None)
        self._next_inode = inode
        return payloads

    def _add_catalog_node(self) -> None:
        want = bool(self.boot_entries) and not self.boot_catalog_hidden
        if self._catalog_node is not None:
            node = self._catalog_node
            if want and node.info.name == to_fileinfo({"name": self.boot_catalog_path, "mode": 0o40755}).name:
                return
            del node.parent.children[node.name]
            self.tree.count -= 1
            self._catalog_node = None
        if want:
            info = to_fileinfo({"name": self.boot_catalog_path, "mode": 0o100444,
                                "mtime": self.default_time})
            self._catalog_node = self.tree.add(info)

    def _plan_image(self, reserve_after_descriptors: int) -> int:
        if reserve_after_descriptors < 0:
            raise InvalidInputError(f"plan(): reserve_after_descriptors must be >= 0, found {reserve_after_descriptors}")
        rr_mod = self._rr_module()
        self._add_catalog_node()
        payloads = self._prepare_nodes()
        catalog_payload = self._catalog_node.w.payload if self._catalog_node is not None else None
        iso_dirs = _lay.build_iso_hierarchy(self.tree, self.interchange_level, rr_mod is not None, self._next_inode)
        joliet_dirs = _lay.build_joliet_hierarchy(self.tree) if self.joliet else []
        t = self.default_time
        dir_sizes = [(d, _lay.size_directory(d, rr_mod, self.rock_ridge, t)) for d in iso_dirs + joliet_dirs]

        fixed = [Extent(p.info.device_offset, align_up(p.size_bytes, SECTOR_BYTES), p.info.name)
                 for p in payloads if p.fixed]
        alloc = Allocator(SYSTEM_AREA_BYTES, reserved=fixed)
        extents: list[Extent] = [Extent(0, SYSTEM_AREA_BYTES, "system area")]
        n_desc = 2 + bool(self.boot_entries) + bool(self.joliet)
        desc = alloc.alloc(n_desc * SECTOR_BYTES, SECTOR_BYTES, "volume descriptors")
        if desc.device_offset != PVD_LBA * SECTOR_BYTES:
            raise LayoutError(f"a file placed at a fixed device_offset overlaps the volume descriptors "
                              f"(sectors 16..{16 + n_desc - 1})")
        self.reserved_extent = alloc.alloc(align_up(reserve_after_descriptors, SECTOR_BYTES), SECTOR_BYTES,
                                           "reserved gap")
        extents += [desc, self.reserved_extent]
        catalog = None
        if self.boot_entries:
            catalog = alloc.alloc(_et.catalog_size_bytes(len(self.boot_entries)), SECTOR_BYTES, "boot catalog")
            extents.append(catalog)
            if catalog_payload is not None:
                catalog_payload.size_bytes = catalog.size_bytes
                catalog_payload.extent = catalog
                catalog_payload.fixed = True
        tables = []
        for dirs in ([iso_dirs] + ([joliet_dirs] if self.joliet else [])):
            size = _lay.path_table_size(dirs)
            l_ext = alloc.alloc(size, SECTOR_BYTES, "L path table")
            m_ext = alloc.alloc(size, SECTOR_BYTES, "M path table")
            extents += [l_ext, m_ext]
            tables.append((dirs, size, l_ext, m_ext))
        n_iso = len(iso_dirs)
        for d, size in dir_sizes[:n_iso]:
            d.extent = alloc.alloc(size, SECTOR_BYTES, f"directory {d.info.name or '/'}")
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
        for entry in self.boot_entries:
            entry.own_extent = None
            if entry.data is not None:
                entry.own_extent = alloc.alloc(len(entry.data), SECTOR_BYTES, "boot image")
                extents.append(entry.own_extent)
        for p in payloads:
            if p is catalog_payload or p.placed_later or p.size_bytes == 0:
                continue
            if p.fixed:
                p.extent = Extent(p.info.device_offset, p.size_bytes, p.info.name)
            else:
                p.extent = alloc.alloc(p.size_bytes, max(SECTOR_BYTES, p.info.device_align or 1), p.info.name)
            extents.append(p.extent)
        end = align_up(max([alloc.next_free] + [e.end for e in extents]), SECTOR_BYTES)
        check_no_overlap(extents)
        patched = self._boot_patches()
        owned = [(p, patched.get(id(p))) for p in payloads
                 if p is not catalog_payload and not p.placed_later and p.size_bytes > 0]
        self._plan = dict(iso_dirs=iso_dirs, joliet_dirs=joliet_dirs, tables=tables, catalog=catalog,
                          owned=owned, rr_mod=rr_mod)
        self.volume_size_bytes = end
        return end

    def _boot_payload(self, entry: BootEntry) -> Payload:
        node = self.tree.find(entry.path)
        if node is None or not node.info.is_file:
            raise InvalidInputError(f"boot catalog entry: path {entry.path!r} is not a regular file of the image")
        if node.info.size == 0:
            raise InvalidInputError(f"boot catalog entry: {entry.path} is empty")
        return node.w.payload

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
                image = p.info.source.read_all(64 << 20)
                out[id(p)] = _et.patch_boot_info_table(image, PVD_LBA, p.extent.device_offset // SECTOR_BYTES)
        return out

    def _locate_boot(self, entry: BootEntry) -> Extent:
        if entry.data is not None:
            return Extent(entry.own_extent.device_offset, len(entry.data))
        if entry.path is not None:
            p = self._boot_payload(entry)
            if p.extent is None:
                raise InternalError(f"boot catalog entry: {entry.path} was never placed")
            return Extent(p.extent.device_offset, p.size_bytes)
        if entry.extent is None:
            raise InternalError("boot catalog entry: extent was never set")
        if entry.extent.device_offset % SECTOR_BYTES:
            raise InvalidInputError(f"boot catalog entry: extent offset {entry.extent.device_offset} is not "
                                    "2048-aligned")
        return entry.extent

    def _structures(self) -> Iterator[tuple[int, bytes]]:
        """Every metadata block with its device offset, built from the plan, one at a time
        (the directories of 100,000 files are not all held in memory at once)."""
        plan = self._plan
        for p, _ in plan["owned"]:
            if p.extent is None:
                raise InternalError(f"{p.info.name}: no extent after plan()")
        rr_mod, t = plan["rr_mod"], self.default_time
        sectors = -(-max(self.volume_size_bytes or 0, 1) // SECTOR_BYTES)
        lba = PVD_LBA
        table_info = [(size, l_ext.device_offset // SECTOR_BYTES, m_ext.device_offset // SECTOR_BYTES)
                      for _dirs, size, l_ext, m_ext in plan["tables"]]
        descriptors = []
        for joliet, dirs in ((False, plan["iso_dirs"]), (True, plan["joliet_dirs"])):
            if joliet and not self.joliet:
                continue
            root = dirs[0]
            root_time = root.info.mtime if root.info.mtime is not None else t
            root_record = _lay.pack_record(b"\x00", root.lba, root.extent.size_bytes, _lay.dir_datetime(root_time),
                                           FLAG_DIRECTORY)
            descriptors.append(self.descriptor_bytes(joliet, root_record, table_info[joliet], sectors))
            if not joliet and plan["catalog"] is not None:
                descriptors.append(self.boot_record_bytes(plan["catalog"].device_offset // SECTOR_BYTES))
        descriptors.append(self.terminator_bytes())
        yield lba * SECTOR_BYTES, b"".join(descriptors)
        if plan["catalog"] is not None:
            yield plan["catalog"].device_offset, _et.build_catalog(self.boot_entries, self._locate_boot)
        for dirs, _size, l_ext, m_ext in plan["tables"]:
            yield l_ext.device_offset, _lay.path_table_bytes(dirs, False)
            yield m_ext.device_offset, _lay.path_table_bytes(dirs, True)
        continuation: dict[int, bytes] = {}
        for d in plan["iso_dirs"] + plan["joliet_dirs"]:
            yield d.extent.device_offset, _lay.directory_bytes(d, rr_mod, self.rock_ridge, t, continuation)
        yield from sorted(continuation.items())
        for entry in self.boot_entries:
            if entry.data is not None:
                data = entry.data
                if entry.boot_info_table:
                    data = _et.patch_boot_info_table(data, PVD_LBA, entry.own_extent.device_offset // SECTOR_BYTES)
                yield entry.own_extent.device_offset, data
