"""``sysexport remaster SRC -o OUT``: an existing image rebuilt with changes.

Every entry, the El Torito catalog, the MBR boot code and the extra partitions of SRC are
carried (see :mod:`sysexport.remaster`); ``--remove``, ``--replace`` and ``--add-tree``
change the tree, ``--label`` the volume label.  Every change is checked before anything is
written: a path SRC lacks, a replacement file that is missing, one error line and no
output.  The result is a plain ISO for a plain ISO source and a hybrid (ISO + GPT/ESP)
for a hybrid source, unless ``--format`` says otherwise.
"""
from __future__ import annotations

import argparse
import sys
from typing import Any

from ..errors import UsageError
from ..output import is_stdout, output_target
from ..progress import add_output_options, emit, progress_for

DESCRIPTION = """\
Rebuild an existing image (an ISO made by sysexport, xorriso, genisoimage or grub-mkrescue,
or a sysexport hybrid) with changes, keeping what it had: every entry with its metadata
(Rock Ridge names, modes, owners, times, symlinks, devices, hard links; Joliet names and
entries present in one tree only), the El Torito catalog (each boot image, its boot info
table re-patched), the MBR boot code (an isohybrid or GRUB code re-patched for the new
place of what it boots), the partitions that named files or followed the ISO, labels and
identifiers, the volume dates (its UUID). File data is streamed from SRC."""


def _pairs(values: list[str] | None, option: str) -> list[tuple[str, str]]:
    out = []
    for spec in values or []:
        path, sep, host = spec.partition("=")
        if not sep or not path or not host:
            raise UsageError(f"{option} {spec!r}: expected PATH=FILE")
        out.append((path, host))
    return out


def _tree(spec: str) -> tuple[str, str]:
    import os
    host, sep, dest = spec.partition(":")
    if sep and not os.path.isdir(spec):
        return host, dest
    return spec, ""


def cmd_remaster(args: argparse.Namespace) -> int:
    """Read SRC, apply the changes to its model (each checked), load it into the writer of
    the chosen format, write OUT; the source is closed in every case."""
    from ..cli import input_file
    from ..hybrid import ISO9660Hybrid
    from ..iso9660.writer import ISO9660
    from . import edit, read_source
    source = read_source(input_file("SRC", args.src))
    try:
        replacements = _pairs(args.replace, "--replace")
        for path in args.remove or []:
            edit.remove(source, path, "--remove")
        for path, host in replacements:
            edit.replace(source, path, host, "--replace")
        for spec in args.add_tree or []:
            host, dest = _tree(spec)
            edit.add_tree(source, host, dest, "--add-tree")
        fmt = args.format or ("hybrid" if source.hybrid else "iso")
        cls: Any = ISO9660Hybrid if fmt == "hybrid" else ISO9660
        target = output_target(args.output)
        writer = cls.from_image(source, target.get("filename") or target.get("filehandle"))
        if args.label:
            writer.volume_label = args.label
            if fmt == "hybrid":
                writer.esp_label = None         # the ESP's label follows the new one
        total = sum(e.stat.size for e in source.entries.values() if e.is_file)
        with progress_for(args, total, "writing"):
            writer.finish()
    finally:
        source.image.close()
    report = sys.stderr if is_stdout(args.output) else sys.stdout
    kind = "hybrid ISO9660 + GPT image" if fmt == "hybrid" else "ISO9660 image"
    notes = list(getattr(writer, "remaster_notes", []))
    counts = _counts(source)
    summary = {"command": "remaster", "source": args.src, "output": args.output, "format": fmt,
               "label": writer.volume_label, "entries": counts, "notes": notes,
               "removed": list(args.remove or []), "replaced": [p for p, _ in replacements],
               "added_trees": list(args.add_tree or [])}
    lines = [f"{args.output}: {kind} remastered from {args.src}",
             f"  entries    {counts['files']} files, {counts['dirs']} directories, {counts['other']} other",
             f"  label      {writer.volume_label!r}"] + [f"  note       {n}" for n in notes]
    emit(args, summary, lines, report)
    return 0


def _counts(source: Any) -> dict[str, int]:
    out = {"files": 0, "dirs": 0, "other": 0}
    for e in source.entries.values():
        out["files" if e.is_file else "dirs" if e.is_dir else "other"] += 1
    return out


def add_cli_remaster(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``sysexport remaster``."""
    from ..cli import OUTPUT_HELP
    r = subparsers.add_parser("remaster", help="rebuild an existing ISO or hybrid image with changes, keeping "
                              "its boot setup", description=DESCRIPTION)
    r.add_argument("src", metavar="SRC", help="the image to remaster (it is only read)")
    r.add_argument("-o", "--output", required=True, help=OUTPUT_HELP + "; may be SRC itself when it is a file")
    r.add_argument("--add-tree", action="append", metavar="DIR[:DEST]",
                   help="lay a host directory over the image at DEST (default /): new files added, files at the "
                        "same path replaced (repeatable)")
    r.add_argument("--remove", action="append", metavar="PATH",
                   help="remove PATH (a directory with everything in it; repeatable)")
    r.add_argument("--replace", action="append", metavar="PATH=FILE",
                   help="give the file PATH the content of the host FILE (repeatable)")
    r.add_argument("--label", help="new volume label (ISO, and the ESP's FAT label of a hybrid)")
    r.add_argument("--format", choices=("iso", "hybrid"),
                   help="write a plain ISO or a hybrid ISO + GPT/ESP image (default: what SRC is)")
    add_output_options(r)
    r.set_defaults(func=cmd_remaster)
    return r
