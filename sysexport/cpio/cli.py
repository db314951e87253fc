"""``sysexport initramfs SRC_DIR -o OUT [--compress gzip|xz|zstd]``: a directory as a newc
archive the Linux kernel unpacks as its initramfs (registered by :mod:`sysexport.cli`)."""
from __future__ import annotations

import argparse
import os
import sys

from ..output import is_stdout, output_target
from ..progress import add_output_options, emit, progress_for
from ..sources import OWNER_CHOICES, Selection, Source, parse_patterns
from .writer import COMPRESSIONS, CPIO


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
    :func:`sysexport.cli.main` prints as one ``sysexport: error:`` line with exit status 1."""
    selection = Selection(exclude=parse_patterns("--exclude", args.exclude), owner=args.owner,
                          rational=args.rational_rock)
    archive = CPIO(**output_target(args.output), compress=args.compress)     # "-": standard output
    for info in selection.entries([Source(args.src_dir)]):
        archive.add(info)
    total = sum(e.size_bytes for e in archive.plan().entries) if args.compress is None else 0
    with progress_for(args, total, "writing"):          # compressed: the bytes are not counted
        plan = archive.finish()
    from ..summaries import cpio_summary
    size = None if is_stdout(args.output) else os.path.getsize(args.output)
    kind = f"{args.compress}-compressed " if args.compress else ""
    report = sys.stderr if is_stdout(args.output) else sys.stdout   # the archive may be on stdout
    emit(args, cpio_summary(args.output, args.src_dir, plan, size),
         [f"{args.output}: {kind}newc cpio archive of {args.src_dir}: {len(plan.entries) - 1} entries, "
          f"{plan.size_bytes:,} bytes" + (f" ({size:,} compressed)" if args.compress and size is not None else "")],
         report)
    return 0


__all__ = ["add_cli_initramfs", "cli_initramfs"]
