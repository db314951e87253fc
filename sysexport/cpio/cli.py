"""``sysexport initramfs SRC_DIR -o OUT [--compress gzip|xz|zstd]``: a directory as a newc
archive the Linux kernel unpacks as its initramfs (registered by :mod:`sysexport.cli`)."""
from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from ..output import is_stdout, output_target
from ..progress import add_output_options, emit, progress_for
from ..sources import OWNER_CHOICES, Selection, parse_patterns, rational_mode
from .writer import COMPRESSIONS, CPIO, CPIOPlan


def add_cli_initramfs(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Register the ``initramfs`` subcommand on an argparse subparsers object."""
    p = subparsers.add_parser("initramfs", help="write a directory as a newc cpio archive (Linux initramfs)",
                              description="Write SRC_DIR as a newc cpio archive the Linux kernel unpacks "
                                          "as its initramfs (deterministic under SOURCE_DATE_EPOCH).")
    p.add_argument("src_dir", metavar="SRC_DIR", help="directory to archive (becomes the root)")
    p.add_argument("-o", "--output", required=True, metavar="OUT",
                   help="archive to write: a file (replaced atomically, keeping its mode), or - for standard output")
    p.add_argument("--compress", choices=COMPRESSIONS, default=None, help="compress the archive")
    p.add_argument("--exclude", action="append", default=[], metavar="GLOB",
                   help="leave out entries matching GLOB (repeatable): a name pattern ('*.o', any depth) or, "
                        "with a '/', a pattern of the path in the archive ('usr/share/doc/*')")
    p.add_argument("--owner", choices=OWNER_CHOICES, default="keep",
                   help="root: every entry owned by uid 0, gid 0 (default keep: the host's owners)")
    p.add_argument("-r", "--rational-rock", action="store_true",
                   help="owners and modes as mkisofs -r sets them: uid and gid 0, read for all, execute for "
                        "all where anyone had it, no write, set-id or sticky bits")
    add_output_options(p)
    p.set_defaults(func=cli_initramfs)
    return p


def cli_initramfs(args: argparse.Namespace) -> int:
    """Run ``sysexport initramfs``; returns 0.  Errors are raised as SysExportError (an
    InvalidInputError naming SRC_DIR when it is missing or not a directory), which
    :func:`sysexport.cli.main` prints as one ``sysexport: error:`` line with exit status 1.

    The tree is streamed into the archive as it is walked (depth first, siblings sorted;
    an excluded directory is not read), so the progress shows bytes written without a total."""
    selection = Selection(exclude=parse_patterns("--exclude", args.exclude), owner=args.owner,
                          rational=args.rational_rock)
    archive = CPIO(**output_target(args.output), compress=args.compress)     # "-": standard output
    exclude = selection.exclude
    rational = selection.rational
    with progress_for(args, 0, "writing"):
        archive.add_tree(args.src_dir, prune=(lambda name: any(p.matches(name) for p in exclude)) if exclude else None,
                         root_owner=selection.owner == "root" or rational, mode_map=rational_mode if rational else None)
        plan = archive.finish()
    size = None if is_stdout(args.output) else os.path.getsize(args.output)
    kind = f"{args.compress}-compressed " if args.compress else ""
    report = sys.stderr if is_stdout(args.output) else sys.stdout   # the archive may be on stdout
    emit(args, summary(args.output, args.src_dir, plan, size),
         [f"{args.output}: {kind}newc cpio archive of {args.src_dir}: {plan.entry_count} entries, "
          f"{plan.size_bytes:,} bytes" + (f" ({size:,} compressed)" if args.compress and size is not None else "")],
         report)
    return 0


def summary(output: str, source: str, plan: CPIOPlan, size_bytes: int | None) -> dict[str, Any]:
    """What ``initramfs`` prints with ``--json``: the archive's entries by type (the
    trailer not counted), its uncompressed size, ``size`` (the file written, compressed or
    not; None for standard output), bytes of file data, and the compression."""
    return {"command": "initramfs", "output": output, "source": source, "format": "newc",
            "compress": plan.compress, "entries": plan.entry_count, "types": dict(plan.types),
            "uncompressed_size": plan.size_bytes, "size": size_bytes, "data_bytes": plan.data_bytes}


__all__ = ["add_cli_initramfs", "cli_initramfs"]
