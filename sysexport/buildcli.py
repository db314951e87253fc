"""The options ``sysexport build`` and ``live`` share: what goes in, and how the image boots.

Registered on both parsers by :mod:`sysexport.cli`; :func:`image_options` checks them all
before anything is built (a bad GLOB, a missing file, two options that contradict each
other: one error line), and :func:`populate` applies them to an
:class:`~sysexport.hybrid.ISO9660Hybrid` through its public API (attributes, ``add()``,
``contribute()``):

* sources ``DIR[:DEST]`` (repeatable), ``--exclude GLOB``, ``--iso-only GLOB``,
  ``--owner root``, ``-r``/``--rational-rock`` (:mod:`sysexport.sources`);
* the ISO9660 identifiers ``--publisher``, ``--preparer``, ``--application``, ``--system``
  (ECMA-119 8.4.5, 8.4.20-8.4.22);
* El Torito entries, in the order given: ``--bios-boot PATH`` (a no-emulation x86 image
  of the image, as ``mkisofs -b PATH -no-emul-boot -boot-load-size 4 -boot-info-table``)
  and ``--efi-boot PATH|esp`` (a FAT image of the image, as ``mkisofs -e``; ``esp``: the
  hybrid's own ESP);
* ``--mbr-bootable`` (the protective MBR entry active) and ``--isohybrid-mbr FILE``
  (syslinux's isohdpfx.bin or GRUB's boot_hybrid.img as the MBR's code, patched with the
  address of the first ``--bios-boot`` image: :mod:`sysexport.boot.isohybrid`).
"""
from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .errors import InvalidInputError, UsageError
from .fileinfo import normalize_name
from .sources import OWNER_CHOICES, Selection, Source, parse_patterns

if TYPE_CHECKING:
    from .hybrid import ISO9660Hybrid

EFI_FROM_ESP = "esp"
"""``--efi-boot esp``: the El Torito EFI entry names the hybrid's ESP (UEFI boot from CD)."""
DEFAULT_BIOS_LOAD_SECTORS = 4
"""512-byte sectors the BIOS loads of a no-emulation image (El Torito 2.2; isolinux.bin
and GRUB's cdboot.img load the rest themselves): mkisofs's ``-boot-load-size 4``."""
FAT_MAX_FILE_BYTES = (1 << 32) - 1
"""FAT's file size field is 32 bits: a file of 4 GiB or more can only go to the ISO."""


def _tagged(kind: str) -> Callable[[str], tuple[str, str]]:
    """An argparse ``type`` tagging each value with its option, so that ``--bios-boot`` and
    ``--efi-boot`` share one list that keeps the order they were given in."""
    def tag(value: str) -> tuple[str, str]:
        return kind, value
    tag.__name__ = f"{kind} boot image"
    return tag


def add_source_arguments(p: argparse.ArgumentParser, *, sources_help: str) -> None:
    """``DIR[:DEST]...``, ``--exclude``, ``--iso-only``, ``--owner``, ``-r``."""
    p.add_argument("sources", nargs="*", metavar="DIR[:DEST]", help=sources_help)
    p.add_argument("--exclude", action="append", default=[], metavar="GLOB",
                   help="leave out entries matching GLOB (repeatable): a name pattern ('*.o', any depth) or, "
                        "with a '/', a pattern of the path in the image ('boot/old/*', '/README'); a directory "
                        "takes its contents along")
    p.add_argument("--iso-only", action="append", default=[], metavar="GLOB",
                   help="put entries matching GLOB (same rules as --exclude) in the ISO9660 file system only, "
                        "not in the ESP: files of 4 GiB or more (FAT cannot hold them), anything firmware "
                        "must not see")
    p.add_argument("--owner", choices=OWNER_CHOICES, default="keep",
                   help="root: every entry owned by uid 0, gid 0 (default keep: the host's owners)")
    p.add_argument("-r", "--rational-rock", action="store_true",
                   help="owners and modes as mkisofs -r sets them: uid and gid 0, read for all, execute for "
                        "all where anyone had it, no write, set-id or sticky bits")


def add_image_arguments(p: argparse.ArgumentParser, *, isohybrid: bool) -> None:
    """The ISO identifiers, El Torito entries, ``--mbr-bootable`` (and ``--isohybrid-mbr``)."""
    p.add_argument("--publisher", help="ISO9660 publisher identifier (at most 128 characters; mkisofs -publisher)")
    p.add_argument("--preparer", help="ISO9660 data preparer identifier (at most 128 characters; mkisofs -p)")
    p.add_argument("--application", help="ISO9660 application identifier (default SYSEXPORT; mkisofs -A)")
    p.add_argument("--system", help="ISO9660 system identifier (at most 32 characters, default LINUX; "
                                    "mkisofs -sysid)")
    p.add_argument("--bios-boot", dest="eltorito", action="append", default=[], type=_tagged("bios"),
                   metavar="PATH", help="an El Torito entry for BIOS: PATH, a file of the image (e.g. "
                   "isolinux/isolinux.bin), booted without emulation with a boot info table (mkisofs -b PATH "
                   "-no-emul-boot -boot-load-size 4 -boot-info-table); the file goes to the ISO only")
    p.add_argument("--bios-boot-load-size", type=int, default=DEFAULT_BIOS_LOAD_SECTORS, metavar="SECTORS",
                   help="512-byte sectors the BIOS loads of each --bios-boot image (default 4)")
    p.add_argument("--no-boot-info-table", action="store_true",
                   help="do not write a boot info table into the --bios-boot images (their file stays as is)")
    p.add_argument("--efi-boot", dest="eltorito", action="append", type=_tagged("efi"), metavar="PATH|esp",
                   help="an El Torito entry for UEFI: PATH, a FAT image file of the image (mkisofs -e PATH), or "
                        "'esp' for the image's own ESP (holding EFI/BOOT/BOOTX64.EFI); entries go in the order "
                        "given, the first is the default, except that the ESP's entry always comes last (the "
                        "hybrid places it when it lays out the ESP)")
    p.add_argument("--mbr-bootable", action="store_true",
                   help="mark the protective MBR entry active (0x80): some BIOSes boot only such a disk")
    if isohybrid:
        p.add_argument("--isohybrid-mbr", metavar="FILE",
                       help="MBR boot code that starts the first --bios-boot image from a disk: syslinux's "
                            "isohdpfx.bin (/usr/lib/ISOLINUX) or GRUB's boot_hybrid.img, patched with that "
                            "image's address (mkisofs -isohybrid-mbr)")


@dataclass(frozen=True)
class ImageOptions:
    """Every build/live option above, checked: what :func:`populate` applies."""

    sources: tuple[Source, ...]
    selection: Selection
    ids: dict[str, str] = field(default_factory=dict)
    eltorito: tuple[tuple[str, str], ...] = ()
    bios_load_sectors: int = DEFAULT_BIOS_LOAD_SECTORS
    boot_info_table: bool = True
    mbr_bootable: bool = False
    isohybrid_mbr: str | None = None

    @property
    def bios_paths(self) -> tuple[str, ...]:
        return tuple(path for kind, path in self.eltorito if kind == "bios")


def image_options(args: argparse.Namespace, sources: Sequence[str], default_source: str | None = None) -> ImageOptions:
    """Check the options of ``args`` (and the ``DIR[:DEST]`` ``sources``; ``default_source``
    when none is given) before anything is built."""
    specs = list(sources) or ([default_source] if default_source is not None else [])
    parsed = tuple(Source.parse(s) for s in specs)
    eltorito = []
    for kind, value in args.eltorito or ():
        if kind == "efi" and value == EFI_FROM_ESP:
            eltorito.append((kind, value))
            continue
        option = f"--{kind}-boot"
        if not value.strip("/"):
            raise UsageError(f"{option} {value!r}: expected the path of a file in the image")
        eltorito.append((kind, normalize_name(value)))
    load = args.bios_boot_load_size
    if not 1 <= load <= 0xFFFF:
        raise UsageError(f"--bios-boot-load-size {load}: El Torito counts 1..65535 sectors of 512 bytes")
    isohybrid = getattr(args, "isohybrid_mbr", None)
    bios = [path for kind, path in eltorito if kind == "bios"]
    if isohybrid is not None:
        if not bios:
            raise UsageError("--isohybrid-mbr: needs a --bios-boot image for the MBR to start")
        if getattr(args, "mbr_boot_code", None):
            raise UsageError("--isohybrid-mbr and --mbr-boot-code both give the MBR's boot code; choose one")
        from .cli import input_file
        input_file("--isohybrid-mbr", isohybrid)
    ids = {key: getattr(args, key) for key in ("publisher", "preparer", "application", "system")
           if getattr(args, key) is not None}
    selection = Selection(exclude=parse_patterns("--exclude", args.exclude),
                          iso_only=parse_patterns("--iso-only", args.iso_only),
                          iso_only_paths=frozenset(bios) if not args.no_boot_info_table else frozenset(),
                          owner=args.owner, rational=args.rational_rock)
    return ImageOptions(parsed, selection, ids, tuple(eltorito), load, not args.no_boot_info_table,
                        args.mbr_bootable, isohybrid)


def set_identifiers(img: ISO9660Hybrid, opts: ImageOptions) -> None:
    """The ISO9660 identifiers (checked by the ISO writer: length, characters)."""
    for key, value in opts.ids.items():
        try:
            setattr(img.iso, key, value)
        except InvalidInputError as e:
            raise InvalidInputError(f"--{key}: {e}") from None


def add_sources(img: ISO9660Hybrid, opts: ImageOptions) -> None:
    """Every source's entries, filtered and normalised; a file FAT cannot hold that is not
    ISO-only is refused with the option that fixes it."""
    from .writer import gc_paused
    add, fat_max = img.add, FAT_MAX_FILE_BYTES
    with gc_paused():                   # 100,000 entries: the collector would rescan them all
        for info in opts.selection.entries(opts.sources):
            if info.size > fat_max and info.is_file and info.hybrid_target != "iso":
                raise InvalidInputError(f"{info.name}: {info.size:,} bytes is more than FAT can hold (4 GiB - 1); "
                                        f"give --iso-only '{info.basename}' (or a GLOB matching it) to store it "
                                        "in the ISO only")
            add(info)


def add_boot_entries(img: ISO9660Hybrid, opts: ImageOptions) -> None:
    """The El Torito entries (in order), the MBR options; the files they name must be in
    the image by now."""
    from .boot.isohybrid import isohybrid_contribution
    from .contribution import BootContribution, ElToritoRequest
    from .iso9660.eltorito import BOOT_EFI, BOOT_X86, EMU_NONE
    requests = []
    for kind, path in opts.eltorito:
        if kind == "efi" and path == EFI_FROM_ESP:
            img.efi_boot = True
            continue
        _check_boot_file(img, f"--{kind}-boot", path)
        if kind == "bios":
            requests.append(ElToritoRequest(platform=BOOT_X86, path=path, media_type=EMU_NONE,
                                            load_size=opts.bios_load_sectors, boot_info_table=opts.boot_info_table))
        else:
            requests.append(ElToritoRequest(platform=BOOT_EFI, path=path, media_type=EMU_NONE))
    if requests:
        img.contribute(BootContribution(eltorito=tuple(requests)))
    if opts.mbr_bootable:
        img.mbr_bootable = True
    if opts.isohybrid_mbr is not None:
        try:
            img.contribute(isohybrid_contribution(opts.isohybrid_mbr, opts.bios_paths[0]))
        except InvalidInputError as e:
            raise InvalidInputError(f"--isohybrid-mbr {opts.isohybrid_mbr}: {e}") from None


def _check_boot_file(img: ISO9660Hybrid, option: str, path: str) -> None:
    """The boot image ``path`` is a non-empty regular file of the ISO tree."""
    node = img.iso.tree.find(path)
    if node is None:
        raise InvalidInputError(f"{option} {path}: no such file in the image (a path inside the sources, "
                                "as mkisofs -b and -e take it)")
    if not node.info.is_file or node.info.size == 0:
        raise InvalidInputError(f"{option} {path}: expected a non-empty regular file, found mode "
                                f"{node.info.mode:#o}, {node.info.size} bytes")


def populate(img: ISO9660Hybrid, opts: ImageOptions) -> None:
    """Apply every option to ``img``: identifiers, sources, El Torito entries, the MBR."""
    set_identifiers(img, opts)
    add_sources(img, opts)
    add_boot_entries(img, opts)


# -- live: the GRUB menu ------------------------------------------------------------------------

DEFAULT_TIMEOUT_S = 5


def add_menu_arguments(p: argparse.ArgumentParser) -> None:
    """``live``'s menu options: the user's own grub.cfg, or the generated menu's parts."""
    p.add_argument("--grub-cfg", metavar="FILE",
                   help="your own GRUB menu, used as is as boot/grub/grub.cfg (GRUB has found the medium "
                        "and set $root and $prefix before it runs); --kernel/--initrd/--entry files are still "
                        "added for it to name (/boot/vmlinuz, /boot/initrd.img, /boot/vmlinuz-2, ...)")
    p.add_argument("--title", help="the title of the --kernel menu entry (default 'Linux')")
    p.add_argument("--entry", action="append", default=[], metavar="TITLE|KERNEL|INITRD|CMDLINE",
                   help="a further menu entry (repeatable, in order after the --kernel one): its title, a kernel "
                        "and an initramfs of the host (INITRD may be empty), the kernel command line (may hold "
                        "'|'); each file is stored once, as /boot/vmlinuz-2, /boot/initrd-2.img, ...")
    p.add_argument("--default", type=int, default=0, metavar="N",
                   help="the entry booted when the timeout runs out, counted from 0 as GRUB does (default 0)")
    p.add_argument("--timeout", type=int, default=None, metavar="SECONDS",
                   help=f"GRUB menu timeout in seconds (default {DEFAULT_TIMEOUT_S}; 0 boots at once, "
                        "-1 waits)")
    p.add_argument("--no-serial", action="store_true",
                   help="GRUB on the console only (default: also on serial port 0 at 115200 baud)")


def menu_options(args: argparse.Namespace) -> dict[str, object]:
    """``make_bootable`` keyword arguments of ``live``'s menu options, checked: the files
    named exist, and the generated menu's options are not given with ``--grub-cfg``."""
    from .boot.menu import MenuEntry
    from .cli import input_file
    entries = []
    for spec in args.entry:
        try:
            entry = MenuEntry.parse(spec)
        except InvalidInputError as e:
            raise UsageError(str(e)) from None
        input_file("--entry kernel", str(entry.kernel))
        if entry.initrd is not None:
            input_file("--entry initrd", str(entry.initrd))
        entries.append(entry)
    if args.kernel is None and not entries and args.grub_cfg is None:
        raise UsageError("live: give --kernel (with --initrd), --entry or --grub-cfg: the image boots nothing")
    if args.kernel is None and (args.initrd is not None or args.cmdline):
        raise UsageError("--initrd/--cmdline without --kernel: they belong to the --kernel menu entry "
                         "(an --entry has its own)")
    for option, path in (("--kernel", args.kernel), ("--initrd", args.initrd)):
        if path is not None:
            input_file(option, path)
    kwargs: dict[str, object] = dict(kernel=args.kernel, initrd=args.initrd, cmdline=args.cmdline or "",
                                     entries=tuple(entries))
    if args.grub_cfg is not None:
        given = [o for o, v in (("--title", args.title), ("--timeout", args.timeout), ("--cmdline", args.cmdline),
                                ("--default", args.default or None), ("--no-serial", args.no_serial or None))
                 if v is not None and v != ""]
        if given:
            raise UsageError(f"--grub-cfg and {', '.join(given)}: your grub.cfg is used as is, so the "
                             "generated menu's options have nothing to change")
        with open(input_file("--grub-cfg", args.grub_cfg), "rb") as f:
            kwargs["grub_cfg"] = f.read()
        return kwargs
    if args.title is not None:
        kwargs["title"] = args.title
    timeout = DEFAULT_TIMEOUT_S if args.timeout is None else args.timeout
    if timeout < -1:
        raise UsageError(f"--timeout {timeout}: expected seconds (0 boots at once, -1 waits)")
    count = (args.kernel is not None) + len(entries)
    if not 0 <= args.default < count:
        raise UsageError(f"--default {args.default}: the menu has {count} entries, counted from 0")
    kwargs.update(timeout_s=timeout, serial=not args.no_serial, default_entry=args.default)
    return kwargs


def menu_lines(args: argparse.Namespace) -> list[str]:
    """The summary's lines on the menu: the user's grub.cfg, or each entry booted."""
    lines = [f"  grub.cfg   {args.grub_cfg} (as is)"] if args.grub_cfg is not None else []
    if args.kernel is not None:
        lines += [f"  kernel     {args.kernel}", f"  initrd     {args.initrd or '(none)'}",
                  f"  cmdline    {args.cmdline or ''}"]
    for number, spec in enumerate(args.entry, int(args.kernel is not None)):     # as --default counts
        title, kernel, *rest = spec.split("|", 3)
        lines.append(f"  entry {number}    {title}: {kernel}" + (f" + {rest[0]}" if rest and rest[0] else "")
                     + (f" {rest[1]}" if len(rest) > 1 and rest[1] else ""))
    return lines


__all__ = ["add_menu_arguments", "menu_lines", "menu_options", "ImageOptions", "add_boot_entries", "add_image_arguments", "add_source_arguments", "add_sources",
           "image_options", "populate", "set_identifiers"]
