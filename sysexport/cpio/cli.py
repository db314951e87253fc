"""``sysexport initramfs SRC_DIR -o OUT [--compress gzip|xz|zstd]``: a directory as a newc
archive the Linux kernel unpacks as its initramfs (registered by :mod:`sysexport.cli`)."""
from __future__ import annotations

import argparse

from ..output import output_target
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
    p.set_defaults(func=cli_initramfs)
    return p


def cli_initramfs(args: argparse.Namespace) -> int:
    """Run ``sysexport initramfs``; returns 0.  Errors are raised as SysExportError (an
    InvalidInputError naming SRC_DIR when it is missing or not a directory), which
    :func:`sysexport.cli.main` prints as one ``sysexport: error:`` line with exit status 1."""
    archive = CPIO(**output_target(args.output), compress=args.compress)     # "-": standard output
    archive.add_tree(args.src_dir)
    archive.finish()
    return 0


__all__ = ["add_cli_initramfs", "cli_initramfs"]
