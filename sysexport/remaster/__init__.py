"""Remastering: a writer preloaded with everything an existing image holds (issue 13).

``ISO9660.from_image(src, output)``, ``ISO9660Hybrid.from_image(src, output)`` and
``VFAT.from_image(src, output)`` call :func:`iso_from_image`, :func:`hybrid_from_image`
and :func:`vfat_from_image`: the source is read (:mod:`.source`), every entry added again
with its metadata, names per namespace and hard links, its file data left in the source
image and streamed from there at ``finish()`` (:mod:`.data`); the El Torito catalog, the
MBR boot code (re-patched where it names a moved boot image or core) and extra partitions
are carried (:mod:`.load`, :mod:`.boot`, :mod:`.isoarea`).  The caller then changes the
writer as usual (``add()``, ``remove()``, ``rename()``, attributes) and calls ``finish()``.

The source's file stays open until the writer is finished (its data sources hold it).  A
source that is also the output is safe when the output is a regular file (written beside
it and renamed into place); a block device or an open handle of the same file is refused.
The volume's dates are kept (the UUID blkid shows and grub-mkrescue's GRUB searches for)
unless ``default_time`` is changed.
"""
from __future__ import annotations

import dataclasses
import os
import stat as _stat
from typing import IO, Any, BinaryIO

from ..errors import InvalidInputError
from ..fileinfo import FileInfo, to_fileinfo
from ..hybrid import HybridPlan, ISO9660Hybrid
from ..iso9660.writer import ISO9660, ISOPlan
from ..vfat.writer import VFAT
from .source import Source, read_source

__all__ = ["iso_from_image", "hybrid_from_image", "vfat_from_image", "RemasteredISO9660", "RemasteredHybrid",
           "RemasteredVFAT",
           "read_source", "Source"]

Target = str | os.PathLike[str] | BinaryIO | None
"""Where a remastered image goes: a path, a binary file handle, or None (set later)."""


def _target(output: Target) -> dict[str, Any]:
    if output is None:
        return {}
    if isinstance(output, (str, os.PathLike)):
        return {"filename": os.fspath(output)}
    if hasattr(output, "fileno"):
        return {"filehandle": output}
    raise InvalidInputError(f"remaster: output must be a path or a binary file, found {type(output).__name__}")


def check_not_same(source: Source, output: Target) -> None:
    """Refuse an output that would overwrite the source while it is read: the same block
    device, or a file handle open on the source file.  The same regular file by name is
    fine: the output is written to a temporary file beside it and renamed into place."""
    if output is None:
        return
    try:
        src_st = os.fstat(source.file.fileno())
    except (AttributeError, OSError, ValueError):
        return
    try:
        if isinstance(output, (str, os.PathLike)):
            out_st = os.stat(output)
            if _stat.S_ISREG(out_st.st_mode):
                return
        else:
            out_st = os.fstat(output.fileno())
    except OSError:
        return
    if (out_st.st_dev, out_st.st_ino) == (src_st.st_dev, src_st.st_ino) or \
            (_stat.S_ISBLK(out_st.st_mode) and out_st.st_rdev == src_st.st_rdev and _stat.S_ISBLK(src_st.st_mode)):
        raise InvalidInputError(f"remaster: the output is the source image {source.name} itself (a device or an open "
                                "file is written in place, and the source would be overwritten while it is read); "
                                "write to another file")


def _centiseconds(writer_time: float, source: Source) -> int | None:
    when = source.volume_time()
    if when is None or when[0] != writer_time:
        return None
    return when[1]


class RemasteredISO9660(ISO9660):
    """An :class:`~sysexport.iso9660.writer.ISO9660` made by :meth:`ISO9660.from_image`:
    it keeps the source's volume dates (centiseconds too) and writes the source's system
    area anew at ``finish()``: its MBR boot code (re-patched) and partition table, with the
    partitions that named files or followed the ISO (see :mod:`.isoarea`)."""

    remaster_source: Source | None = None
    remaster_notes: list[str]
    remaster_boot_partitions: dict[int, int]
    """{El Torito entry index: source partition number} of entries that name a partition."""

    def plan(self, reserve_after_descriptors: int = 0) -> ISOPlan:
        """ISO9660.plan(), with GRUB's grub2-boot-info re-patched and the source's volume
        date centiseconds (unless ``default_time`` changed)."""
        from .boot import patch_grub2_boot_info
        plan = super().plan(reserve_after_descriptors)
        source = self.remaster_source
        if source is None:
            return plan
        plan = patch_grub2_boot_info(plan, source)
        cs = _centiseconds(self.default_time, source)
        return dataclasses.replace(plan, centiseconds=cs) if cs is not None else plan

    def finish(self) -> ISOPlan:
        """Plan, place and write the ISO with the source's system area anew (:mod:`.isoarea`)."""
        source = self.remaster_source
        if source is None:
            return super().finish()
        from .isoarea import finish_with_system_area
        return finish_with_system_area(self, source)


def _unbatched(info: FileInfo) -> FileInfo:
    """``info`` with a host file's source wrapped (:class:`.data.HostFileData`): VFAT's
    writer gathers small host files into one buffer whose zero gaps overwrite the source
    image's files it writes between them; wrapped, each is written on its own."""
    from ..data import PathData
    from .data import HostFileData
    if isinstance(info.source, PathData):
        info.source = HostFileData(info.source)
    return info


class RemasteredHybrid(ISO9660Hybrid):
    """An :class:`~sysexport.hybrid.ISO9660Hybrid` made by :meth:`ISO9660Hybrid.from_image`:
    it keeps the source's volume dates (centiseconds too) unless ``default_time`` changes,
    and writes host files added to it each on its own (see :func:`_unbatched`)."""

    remaster_source: Source | None = None
    remaster_notes: list[str]

    def add(self, spec: Any, /, **overrides: Any) -> FileInfo:
        """ISO9660Hybrid.add(), a host file's data written on its own."""
        return super().add(_unbatched(to_fileinfo(spec, **overrides)))

    def plan(self) -> HybridPlan:
        """ISO9660Hybrid.plan(), with the ISO part's grub2-boot-info and centiseconds as
        :meth:`RemasteredISO9660.plan` makes them."""
        from .boot import patch_grub2_boot_info
        plan = super().plan()
        source = self.remaster_source
        if source is None:
            return plan
        iso = patch_grub2_boot_info(plan.iso, source)
        cs = _centiseconds(self.default_time, source)
        if cs is not None:
            iso = dataclasses.replace(iso, centiseconds=cs)
        return dataclasses.replace(plan, iso=iso)


def _namespaces_supported() -> bool:
    from ..fileinfo import COMMON_KEYS
    return "hidden_from" in COMMON_KEYS and "joliet_name" in COMMON_KEYS


def _source(src: str | os.PathLike[str] | IO[bytes] | Source) -> Source:
    return src if isinstance(src, Source) else read_source(src)


def iso_from_image(cls: type[ISO9660], src: str | os.PathLike[str] | IO[bytes] | Source,
                   output: Target = None) -> RemasteredISO9660:
    """An ISO9660 writer holding everything ``src`` holds (see the module docstring)."""
    from .load import load_iso
    source = _source(src)
    check_not_same(source, output)
    iso = RemasteredISO9660(**_target(output))
    iso.remaster_source = source
    iso.remaster_notes, iso.remaster_boot_partitions = load_iso(iso, source, namespaces=_namespaces_supported())
    return iso


def hybrid_from_image(cls: type[ISO9660Hybrid], src: str | os.PathLike[str] | IO[bytes] | Source,
                      output: Target = None) -> RemasteredHybrid:
    """An ISO9660Hybrid holding everything ``src`` holds: a hybrid source as it was (the
    ESP's own files too), a plain ISO with an ESP built from its tree."""
    from .boot import carry_hybrid_boot
    from .load import load_hybrid
    source = _source(src)
    check_not_same(source, output)
    hybrid = RemasteredHybrid(**_target(output))
    hybrid.remaster_source = source
    notes = load_hybrid(hybrid, source, namespaces=_namespaces_supported())
    notes += carry_hybrid_boot(hybrid, source)
    hybrid.remaster_notes = notes
    return hybrid


class RemasteredVFAT(VFAT):
    """A :class:`~sysexport.vfat.writer.VFAT` made by :meth:`VFAT.from_image`: host files
    added to it are written each on its own (see :func:`_unbatched`)."""

    def add(self, spec: Any) -> Any:
        """VFAT.add(), a host file's data written on its own."""
        return super().add(_unbatched(to_fileinfo(spec)))


def vfat_from_image(cls: type[VFAT], src: str | os.PathLike[str] | IO[bytes], output: Target = None) -> VFAT:
    """A VFAT writer holding every entry of the FAT volume of ``src`` (a bare FAT image,
    or the ESP of a disk image): long names, attributes, times, the label."""
    from .fat import load_vfat
    return load_vfat(RemasteredVFAT, src, _target(output))
