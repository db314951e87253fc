"""The ``sysexport`` command: build, live, initramfs, inspect, ls, cat, extract, verify, export.

``sysexport build [DIR[:DEST]...] -o OUT`` writes a hybrid ISO9660 + GPT/ESP image of the
DIRs (the bundled demo tree, :data:`DEFAULT_TREE`, when none is given); ``live`` a hybrid
that boots Linux with GRUB.  Their shared options (sources, globs, owners, identifiers,
El Torito, the MBR; live's menu) are in :mod:`sysexport.buildcli`.  :data:`COMMANDS` is the one table of subcommands: each row names the
commands and the function that adds their parsers (here, or in the command's module, imported
only when its parser is built: a run of one command imports that command alone); the table is
checked when the parser is built, so a command cannot go missing silently.
The user's view is in docs/guide.md; the layout in docs/architecture.md.
"""
from __future__ import annotations

import argparse
import os
import stat
import sys
import uuid
from typing import Callable, NoReturn, TypeAlias, cast

from . import __version__
from .errors import InternalError, InvalidInputError, SysExportError, UsageError

# The commands' own modules (the writers, buildcli, progress, output) are imported by the
# functions that need them: a run imports its command's alone (start-up is part of every run).

SubParsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
"""What ``ArgumentParser.add_subparsers()`` returns: each command module adds its parsers to it."""

DEFAULT_TREE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "demo")
"""The bundled demo tree, package data of sysexport (pyproject.toml): ``sysexport build -o
demo.img`` works from an installed wheel too.  (A wheel holds no symlinks: installed, the
tree's ``readme-link`` is a copy of README.txt, in the checkout a symlink.)"""


def _default_tree() -> str:
    """The bundled demo tree (:data:`DEFAULT_TREE`)."""
    if os.path.isdir(DEFAULT_TREE):
        return DEFAULT_TREE
    raise SysExportError(f"{DEFAULT_TREE}: the bundled demo tree is missing (a broken install?); give DIR")


def _partition_type(name: str) -> uuid.UUID:
    from .partition import gpt
    aliases = {"esp": gpt.GPT_TYPE_ESP, "bios": gpt.GPT_TYPE_BIOS_BOOT, "linux": gpt.GPT_TYPE_LINUX_FS,
               "msdata": gpt.GPT_TYPE_MS_BASIC_DATA, "basic": gpt.GPT_TYPE_MS_BASIC_DATA}
    if name.lower() in aliases:
        return aliases[name.lower()]
    try:
        return uuid.UUID(name)
    except ValueError:
        raise UsageError(f"--partition: unknown type {name!r} (use esp, bios, linux, msdata or a GUID)") from None


def input_file(option: str, path: str) -> str:
    """``path``, named on the command line by ``option``, when it is a file that can be read;
    else an InvalidInputError naming the option, the path and what is wrong."""
    try:
        st = os.stat(path)
    except OSError as e:
        raise InvalidInputError(f"{option} {path}: cannot read it: {e.strerror}") from None
    if stat.S_ISDIR(st.st_mode):
        raise InvalidInputError(f"{option} {path}: is a directory, expected a file")
    if not os.access(path, os.R_OK):
        raise InvalidInputError(f"{option} {path}: cannot read it: permission denied")
    return path


def cmd_build(args: argparse.Namespace) -> int:
    from .buildcli import image_options, populate
    from .data import PathData
    from .hybrid import ISO9660Hybrid
    from .output import is_stdout, output_target
    from .progress import emit, progress_for
    opts = image_options(args, args.sources, default_source=None if args.sources else _default_tree())
    src = ", ".join(s.host_dir + (f" as /{s.dest}" if s.dest else "") for s in opts.sources)
    img = ISO9660Hybrid(**output_target(args.output))          # "-": standard output
    img.gpt_backup_at_device_end = args.gpt_at_device_end
    if args.label:
        img.volume_label = args.label
    if args.mbr_boot_code:
        img.mbr_boot_code = input_file("--mbr-boot-code", args.mbr_boot_code)
    for spec in args.partition or []:
        type_name, sep, path = spec.partition(":")
        if not sep or not path:
            raise UsageError(f"--partition {spec!r}: expected TYPE:FILE")
        type_guid = _partition_type(type_name)
        input_file("--partition", path)
        img.add_partition(type_guid, data=PathData(path), name=os.path.basename(path)[:36])
    populate(img, opts)
    with progress_for(args, img.total_data_bytes + _partition_bytes(img), "writing"):
        summary = img.finish()
    report = sys.stderr if is_stdout(args.output) else sys.stdout   # the image may be on stdout
    from .summaries import hybrid_summary
    emit(args, hybrid_summary("build", args.output, [s.host_dir for s in opts.sources], img, summary),
         [f"{args.output}: hybrid ISO9660 + GPT image of {src}"] + ["  " + line for line in summary.lines()], report)
    return 0


def _partition_bytes(img: object) -> int:
    """Bytes of data the caller's partitions hold (the progress bar counts them too)."""
    from .hybrid import ISO9660Hybrid
    if not isinstance(img, ISO9660Hybrid):
        return 0
    return sum(getattr(p.data, "size_bytes", 0) for p in img.gpt.partitions if p.data is not None)


def cmd_live(args: argparse.Namespace) -> int:
    from .boot.grub import make_bootable
    from .buildcli import add_boot_entries, add_sources, image_options, menu_lines, menu_options, set_identifiers
    from .hybrid import ISO9660Hybrid
    from .output import is_stdout, output_target
    from .progress import emit, progress_for
    opts = image_options(args, list(args.sources) + list(args.add_tree or []))
    menu = menu_options(args)
    img = ISO9660Hybrid(**output_target(args.output))          # "-": standard output
    img.gpt_backup_at_device_end = args.gpt_at_device_end
    if args.label:
        img.volume_label = args.label
    set_identifiers(img, opts)
    add_sources(img, opts)
    setup = make_bootable(img, arch=args.arch, secure_boot=args.secure_boot, package_root=args.package_root,
                          **menu)  # type: ignore[arg-type]  # checked by menu_options
    add_boot_entries(img, opts)       # after GRUB's: GRUB's BIOS entry stays the default
    with progress_for(args, img.total_data_bytes + _partition_bytes(img), "writing"):
        summary = img.finish()
    report = sys.stderr if is_stdout(args.output) else sys.stdout   # the image may be on stdout
    firmware = "BIOS and UEFI" if setup.mbr_boot_code is not None else f"UEFI ({setup.arch})"
    lines = [f"{args.output}: live image ({firmware}, CD and disk, 512 and 4096-byte sectors)"]
    lines += ["  " + line for line in summary.lines()]
    lines += menu_lines(args) + [f"  marker     {setup.marker} (GRUB finds the medium by this file)"]
    if setup.signed is not None:
        lines.append(f"  secure boot {setup.efi_loader} = {setup.signed.shim} (shim), "
                     f"{', '.join(f'{n} = {p}' for n, p in setup.signed.files()[1:])}")
    from .summaries import hybrid_summary, live_boot
    doc = hybrid_summary("live", args.output, [s.host_dir for s in opts.sources], img, summary)
    doc["boot"] = live_boot(setup, kernel=args.kernel, initrd=args.initrd, cmdline=args.cmdline or "",
                            entries=menu["entries"], grub_cfg=args.grub_cfg)  # type: ignore[arg-type]
    emit(args, doc, lines, report)
    return 0


OUTPUT_HELP = ("where to write the image: a file (replaced atomically, keeping its mode), a block device "
               "such as a USB stick (written in place; refused while mounted), or - for standard output")
GPT_AT_END_HELP = ("on a device larger than the image, put the backup GPTs at the end of the device "
                   "(default: at the end of the image, as in the image file)")


def add_cli_build(subparsers: SubParsers) -> argparse.ArgumentParser:
    """Register ``sysexport build``."""
    from .buildcli import add_image_arguments, add_source_arguments
    from .progress import add_output_options
    b = subparsers.add_parser("build", help="write a hybrid ISO9660 + GPT/ESP image of a directory tree")
    add_source_arguments(b, sources_help="directories to put in the image, DIR's contents at DEST (default the "
                                         "root); several are merged in order (default: the bundled demo tree)")
    b.add_argument("-o", "--output", required=True, help=OUTPUT_HELP)
    b.add_argument("--gpt-at-device-end", action="store_true", help=GPT_AT_END_HELP)
    b.add_argument("--label", help="volume label (ISO, and the ESP's FAT label)")
    b.add_argument("--mbr-boot-code", metavar="FILE", help="legacy BIOS boot code for the first 440 bytes")
    b.add_argument("--partition", action="append", metavar="TYPE:FILE",
                   help="an extra GPT partition holding FILE (TYPE: esp, bios, linux, msdata or a GUID)")
    add_image_arguments(b, isohybrid=True)
    add_output_options(b)
    b.set_defaults(func=cmd_build)
    return b


def add_cli_live(subparsers: SubParsers) -> argparse.ArgumentParser:
    """Register ``sysexport live``."""
    from .buildcli import add_image_arguments, add_menu_arguments, add_source_arguments
    from .progress import add_output_options
    lv = subparsers.add_parser("live", help="write a hybrid image that boots a Linux kernel five ways with GRUB")
    lv.add_argument("--kernel", help="the kernel of the first menu entry (e.g. /boot/vmlinuz-...), stored as "
                                     "/boot/vmlinuz; needed unless --entry or --grub-cfg is given")
    lv.add_argument("--initrd", help="its initramfs (see `sysexport initramfs`), stored as /boot/initrd.img")
    lv.add_argument("--cmdline", default="", help="its kernel command line")
    add_source_arguments(lv, sources_help="directories to put in both file systems, DIR's contents at DEST "
                                          "(default the root)")
    lv.add_argument("--add-tree", action="append", metavar="DIR[:DEST]",
                    help="a directory to put in both file systems (repeatable; the same as a DIR[:DEST] source)")
    lv.add_argument("--label", help="volume label (ISO, and the ESP's FAT label)")
    add_menu_arguments(lv)
    add_image_arguments(lv, isohybrid=False)
    lv.add_argument("-o", "--output", required=True, help=OUTPUT_HELP)
    lv.add_argument("--gpt-at-device-end", action="store_true", help=GPT_AT_END_HELP)
    from .boot.arch import ARCHITECTURES
    lv.add_argument("--arch", choices=sorted(ARCHITECTURES), default="amd64",
                    help="target architecture (default amd64; arm64 and riscv64 boot UEFI only)")
    lv.add_argument("--secure-boot", action="store_true",
                    help="boot UEFI through the distribution's signed shim and GRUB (Debian: shim-signed, "
                         "grub-efi-<arch>-signed); the kernel must be signed")
    lv.add_argument("--package-root", metavar="DIR",
                    help="find GRUB and shim under DIR (the target's packages unpacked with dpkg-deb -x) "
                         "instead of /")
    add_output_options(lv)
    lv.set_defaults(func=cmd_live)
    return lv


def _lazy(module: str, function: str) -> Callable[[SubParsers], object]:
    """The parser-adding ``function`` of ``module``, imported when a parser needs it: a command
    run imports its own module only (about half of the start-up of a short run went to
    importing every command's writers)."""
    def add(subparsers: SubParsers) -> object:
        import importlib
        return getattr(importlib.import_module(module), function)(subparsers)
    add.__module__, add.__name__, add.__qualname__ = module, function, function
    return add


COMMANDS: tuple[tuple[tuple[str, ...], Callable[[SubParsers], object]], ...] = (
    (("build",), add_cli_build),
    (("live",), add_cli_live),
    (("initramfs",), _lazy("sysexport.cpio.cli", "add_cli_initramfs")),
    (("inspect", "ls", "cat", "extract", "verify"), _lazy("sysexport.image.commands", "add_cli_commands")),
    (("export",), _lazy("sysexport.export.cli", "add_cli_export")),
    (("remaster",), _lazy("sysexport.remaster.cli", "add_cli_remaster")),
    (("shell",), _lazy("sysexport.shell", "add_cli_shell")),
    (("mkisofs",), _lazy("sysexport.mkisofs.cli", "add_cli_mkisofs")),
)
"""Every subcommand, in ``--help`` order: (the commands it adds, the function adding their parsers)."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse, with a usage error as one line (``sysexport: error: ...``) and exit status 2,
    like every other error of the command."""

    def error(self, message: str) -> NoReturn:
        command = self.prog.partition(" ")[2]      # "" for the top level, "build" for `sysexport build`
        where = f"{command}: " if command else ""
        print(f"sysexport: error: {where}{one_line(message)} (see '{self.prog} --help')", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
"""Exit statuses: success, an error (bad input, a missing file, a failing disk; a bug), a
usage error (the command line itself), interrupted (Ctrl-C: 128 + SIGINT)."""


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The ``sysexport`` argument parser with every command of :data:`COMMANDS` (with
    ``only``, the row of that command alone: what :func:`main` needs to run it)."""
    p = ArgumentParser(prog="sysexport", description="Write bootable media: ISO9660, VFAT, GPT, CPIO, "
                       "and hybrid ISO/GPT images that store every file once.")
    p.add_argument("--version", action="version", version=f"sysexport {__version__}")
    p.add_argument("--debug", action="store_true", help="on an error, show the Python traceback too")
    # Subparsers are ArgumentParser (this module's) too: one-line usage errors in every command.
    sub = cast(SubParsers, p.add_subparsers(dest="command", required=True))
    for names, add in COMMANDS:
        if only is not None and only not in names:
            continue
        before = set(sub.choices)
        add(sub)
        added = set(sub.choices) - before
        if added != set(names):
            raise InternalError(f"sysexport: {add.__module__}.{add.__name__} registered {sorted(added)}, "
                                f"the command table says {sorted(names)}")
    for command in sub.choices.values():    # --debug after the command too
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return p


def one_line(text: str) -> str:
    """An error message as one line (the CLI prints each error on exactly one)."""
    return " ".join(str(text).split())


def _report(message: str, debug: bool) -> None:
    from .image.commands import for_terminal, names_as_bytes
    names_as_bytes()                        # a path that is not UTF-8 as its bytes, never a second error
    if debug:
        import traceback
        traceback.print_exc()
    print(f"sysexport: error: {for_terminal(one_line(message), sys.stderr)}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Run the ``sysexport`` command; returns its exit status (see :data:`EXIT_OK` and the
    others).  Every error is one line ``sysexport: error: ...`` on stderr; ``--debug`` adds
    the traceback before it."""
    words = sys.argv[1:] if argv is None else argv
    command = next((w for w in words if not w.startswith("-")), None)   # top-level options take no value
    known = {n for names, _ in COMMANDS for n in names}
    try:                                    # the command's modules are imported here
        parser = build_parser(command if command in known else None)
        args = parser.parse_args(words)
    except KeyboardInterrupt:
        _report("interrupted", False)
        return EXIT_INTERRUPTED
    debug = bool(getattr(args, "debug", False))
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        status = func(args)
        sys.stdout.flush()                  # a closed pipe shows here, not at exit
        return status
    except BrokenPipeError:
        # `sysexport ls IMG | head`: the reader went away; not an error of ours.
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return EXIT_OK
    except KeyboardInterrupt:
        _report("interrupted", debug)
        return EXIT_INTERRUPTED
    except UsageError as e:
        _report(f"{e} (see 'sysexport {args.command} --help')", debug)
        return EXIT_USAGE
    except InternalError as e:
        _report(f"internal error, a bug in sysexport (please report it): {e}"
                + ("" if debug else "; run with --debug for the traceback"), debug)
        return EXIT_ERROR
    except SysExportError as e:
        _report(str(e), debug)
        return EXIT_ERROR
    except OSError as e:                    # the machine, not the input: a disk, a permission
        where = f"{e.filename}: " if e.filename is not None else ""
        _report(f"{where}{e.strerror or e}", debug)
        return EXIT_ERROR
    except Exception as e:                  # anything else is a bug
        _report(f"internal error, a bug in sysexport (please report it): {type(e).__name__}: {e}"
                + ("" if debug else "; run with --debug for the traceback"), debug)
        return EXIT_ERROR


if __name__ == "__main__":
    raise SystemExit(main())
