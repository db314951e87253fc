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
from ..progress import add_output_options, emit, progress_for
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
    """Register ``sysexport mkisofs``.  --json, --progress and --quiet are declared as every
    command's (their help; the JSON schema test finds them), read with the rest."""
    p = subparsers.add_parser("mkisofs", add_help=False, usage=USAGE,
                              help="write an image from an xorriso -as mkisofs command line")
    add_output_options(p)
    _raw_arguments(p)
    return p


def cmd_mkisofs(args: argparse.Namespace) -> int:
    o = parse_mkisofs_args(args.mkisofs_args)
    if o.help:
        print(USAGE, end="")
        return 0
    if not o.output:
        raise UsageError("mkisofs: give -o FILE (the image to write)")
    doc, lines = run_mkisofs(o)
    report = sys.stderr if o.output == "-" else sys.stdout     # the image may be on stdout
    emit(_output_mode(o), doc, lines, report)
    return 0


def _output_mode(o: MkisofsOptions) -> argparse.Namespace:
    """--json, --progress, -quiet as the shared helpers of sysexport.progress read them."""
    return argparse.Namespace(json=o.json, progress=o.progress, quiet=o.quiet)


def run_mkisofs(o: MkisofsOptions) -> tuple[dict[str, Any], list[str]]:
    """Build and write the image the options describe; returns the ``--json`` object and
    the plain summary lines."""
    from ..summaries import hybrid_summary
    from .build import build_mkisofs_image, sources
    from .hybrid import build_hybrid_image
    from .summary import mkisofs_lines, mkisofs_summary
    mode = _output_mode(o)
    hosts = [s.host for s in sources(o)]
    if o.sysexport_hybrid:
        img = build_hybrid_image(o)
        with progress_for(mode, img.total_data_bytes, "writing"):
            summary = img.finish()
        doc = dict(hybrid_summary("mkisofs", o.output or "", hosts, img, summary), mode="hybrid")
        lines = [f"{o.output}: hybrid ISO9660 + GPT (512 and 4096) image, ESP built from the tree"]
        return doc, lines + ["  " + line for line in summary.lines()]
    mk = build_mkisofs_image(o)
    with progress_for(mode, mk.total_data_bytes, "writing"):
        plan = mk.finish()
    return mkisofs_summary(o, hosts, mk, plan), mkisofs_lines(o, mk, plan)
