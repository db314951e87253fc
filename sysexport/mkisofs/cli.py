"""``sysexport mkisofs [options] PATH...``: the xorriso -as mkisofs command line.

The subcommand's arguments are not argparse's to read (mkisofs options are single-dash
words, and values such as ``--interval:appended_partition_2:all::`` start with dashes):
the subparser hands them over as they are to :func:`~.options.parse_mkisofs_args`.
"""
from __future__ import annotations

import argparse
import sys
from typing import Any

from ..errors import UsageError
from .options import OPTIONS, MkisofsOptions, parse_mkisofs_args

USAGE = """usage: sysexport mkisofs [options] PATH...

Write an ISO 9660 image from the command line xorriso -as mkisofs takes (archiso's and
live-build's options): Rock Ridge always, Joliet with -J, El Torito with -b/-e, isohybrid
MBRs (-isohybrid-mbr isohdpfx.bin or --grub2-mbr boot_hybrid.img) with the boot image's
address patched, a GPT (-isohybrid-gpt-basdat, -appended_part_as_gpt), appended partitions
(-append_partition N TYPE FILE), SOURCE_DATE_EPOCH for reproducible images.
--sysexport-hybrid: the ESP is built from the tree, every file stored once, with a GPT for
512- and 4096-byte sectors (sysexport's hybrid) instead of copying an ESP image.
An option it does not support is refused by name (exit status 2). See docs/cli.md.

options: """ + " ".join(sorted(OPTIONS)) + " --modification-date=YYYYMMDDhhmmsscc\n"


def _raw_arguments(parser: argparse.ArgumentParser) -> None:
    """Make ``parser`` keep its arguments as they are, in ``mkisofs_args`` (``--debug``,
    which every command takes, is taken out)."""

    def parse_known_args(args: Any = None, namespace: Any = None) -> tuple[argparse.Namespace, list[str]]:
        ns = namespace if namespace is not None else argparse.Namespace()
        raw = list(args or [])
        ns.debug = "--debug" in raw
        ns.mkisofs_args = [a for a in raw if a != "--debug"]
        ns.func = cmd_mkisofs
        return ns, []

    setattr(parser, "parse_known_args", parse_known_args)


def add_cli_mkisofs(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``sysexport mkisofs``."""
    p = subparsers.add_parser("mkisofs", add_help=False, usage=USAGE,
                              help="write an image from an xorriso -as mkisofs command line")
    _raw_arguments(p)
    return p


def cmd_mkisofs(args: argparse.Namespace) -> int:
    o = parse_mkisofs_args(args.mkisofs_args)
    if o.help:
        print(USAGE, end="")
        return 0
    if not o.output:
        raise UsageError("mkisofs: give -o FILE (the image to write)")
    summary = run_mkisofs(o)
    report = sys.stderr if o.output == "-" else sys.stdout
    for line in summary:
        print(line, file=report)
    return 0


def run_mkisofs(o: MkisofsOptions) -> list[str]:
    """Build and write the image the options describe; returns the summary lines."""
    from ..progress import progress_for
    from .build import build_mkisofs_image
    from .hybrid import build_hybrid_image
    auto = argparse.Namespace(progress=False, quiet=False, json=False)
    if o.sysexport_hybrid:
        img, kind = build_hybrid_image(o), "hybrid ISO9660 + GPT (512 and 4096) image, ESP built from the tree"
        with progress_for(auto, img.total_data_bytes, "writing"):
            summary = img.finish()
        return [f"{o.output}: {kind}"] + ["  " + line for line in summary.lines()]
    mk = build_mkisofs_image(o)
    with progress_for(auto, mk.total_data_bytes, "writing"):
        plan = mk.finish()
    size = plan.device_size_bytes
    lines = [f"{o.output}: ISO 9660 image, {size:,} bytes ({size / (1 << 20):.1f} MiB), "
             f"label {mk.iso.pvd_label!r}, {len(plan.files):,} files placed after the metadata"]
    if plan.boot_lba is not None:
        lines.append(f"  isohybrid MBR: boot image at 2048-byte block {plan.boot_lba}")
    for a in plan.appended:
        lines.append(f"  appended partition {a.number}: {a.size_bytes:,} bytes at offset {a.device_offset:,} "
                     f"(MBR type {a.mbr_type:#04x})")
    if plan.gpt_layout is not None:
        lines.append(f"  GPT: {len(plan.gpt_layout.partitions)} partitions")
    return lines
