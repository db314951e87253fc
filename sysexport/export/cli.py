"""``sysexport export``: programs and files of a source root, with what they need, into an
initramfs, an ISO, a hybrid image or a directory (registered by :mod:`sysexport.cli`).

    sysexport export --src ROOT --add PATH ... [--add-find DIR[:GLOB]] [--skip PATH]
                     [--rewrite SRC=DST] [--user SRC=DST] [--group SRC=DST] [--passwd] [-v]
                     [--format F] -o OUT

OUT's kind comes from ``--format`` or its name: ``.cpio``, ``.cpio.gz``, ``.cpio.xz``,
``.cpio.zst`` (a newc archive, compressed), ``.iso`` (ISO9660 with Rock Ridge and
Joliet), ``.img`` (the hybrid ISO9660 + GPT image), and a directory for a name ending in
'/' or an existing directory (``dir``).
"""
from __future__ import annotations

import argparse
import fnmatch
import logging
import os
import stat
import sys
from typing import Any, Callable

from ..errors import UsageError
from ..output import is_stdout, output_target
from ..progress import add_output_options, emit, progress_for
from .exporter import Exporter

FORMATS = ("cpio", "cpio.gz", "cpio.xz", "cpio.zst", "iso", "img", "dir")
_SUFFIXES = ((".cpio.gz", "cpio.gz"), (".cpio.xz", "cpio.xz"), (".cpio.zst", "cpio.zst"), (".cpio.zstd", "cpio.zst"),
             (".cpio", "cpio"), (".iso", "iso"), (".img", "img"))
_COMPRESS = {"cpio": None, "cpio.gz": "gzip", "cpio.xz": "xz", "cpio.zst": "zstd"}


def output_kind(out: str, fmt: str | None) -> str:
    """The kind of output ``out`` names (see the module docstring); UsageError when its name
    does not tell."""
    if fmt is not None:
        return fmt
    for suffix, kind in _SUFFIXES:
        if out.endswith(suffix):
            return kind
    if out.endswith("/") or os.path.isdir(out):
        return "dir"
    raise UsageError(f"-o {out}: cannot tell the kind of output from its name (.cpio, .cpio.gz, .cpio.xz, "
                     ".cpio.zst, .iso, .img, or a directory ending in '/'); give --format")


def make_destination(kind: str, out: str, args: argparse.Namespace) -> Any:
    """The writer of kind ``kind`` for ``out``."""
    if kind == "dir":
        if is_stdout(out):
            raise UsageError("-o -: a directory cannot go to standard output")
        from .dirdest import DirectoryWriter
        return DirectoryWriter(out.rstrip("/") or "/", allow_nonempty=args.allow_nonempty)
    if kind.startswith("cpio"):
        from ..cpio import CPIO
        return CPIO(**output_target(out), compress=_COMPRESS[kind])
    if kind == "iso":
        from ..iso9660.writer import ISO9660
        iso = ISO9660(**output_target(out))
        if args.label:
            iso.volume_label = args.label
        return iso
    from ..hybrid import ISO9660Hybrid
    img = ISO9660Hybrid(**output_target(out))
    if args.label:
        img.volume_label = args.label
    return img


def _pair(option: str, spec: str) -> tuple[str, str]:
    src, sep, dst = spec.partition("=")
    if not sep or not src or not dst:
        raise UsageError(f"{option} {spec!r}: expected SRC=DST")
    return src, dst


def _find_predicate(top: str, pattern: str | None) -> Callable[[str], bool] | None:
    if pattern is None:
        return None
    base = top.rstrip("/")

    def accept(path: str) -> bool:
        if "/" in pattern:
            rel = path[len(base) + 1:] if path.startswith(base + "/") else path
            return fnmatch.fnmatchcase(rel, pattern)
        return fnmatch.fnmatchcase(path.rsplit("/", 1)[-1], pattern)
    return accept


def add_cli_export(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Register the ``export`` subcommand on an argparse subparsers object."""
    p = subparsers.add_parser(
        "export", help="export programs and files of a root with their libraries (initramfs, ISO, image, directory)",
        description="Export paths of a source root with everything they need: symlink chains, ELF interpreters "
                    "and libraries (read from the ELF files, never run), #! interpreters, parent directories; "
                    "renamed and re-owned as asked; into OUT, whose kind comes from its name or --format.")
    p.add_argument("--src", default="/", metavar="ROOT", help="the source root (default /)")
    p.add_argument("--add", action="extend", nargs="+", default=[], metavar="PATH",
                   help="a path of the source root to export (repeatable; a directory with its contents); "
                        "a name without '/' is looked up on PATH inside the root")
    p.add_argument("--add-find", action="append", default=[], metavar="DIR[:GLOB]",
                   help="every entry below DIR (or those matching GLOB: a name pattern, or a pattern of the "
                        "path below DIR when it has a '/')")
    p.add_argument("--skip", action="append", default=[], metavar="PATH", help="never export PATH or below it")
    p.add_argument("--rewrite", action="append", default=[], metavar="SRC=DST",
                   help="export what is at or below SRC as DST (names and symlink targets)")
    p.add_argument("--user", action="append", default=[], metavar="SRC=DST",
                   help="files of user SRC (name or number, of ROOT/etc/passwd) are owned by DST")
    p.add_argument("--group", action="append", default=[], metavar="SRC=DST",
                   help="files of group SRC (name or number, of ROOT/etc/group) belong to DST")
    p.add_argument("--passwd", action="store_true",
                   help="add a minimal /etc/passwd, /etc/group and /etc/shadow for the owners exported")
    p.add_argument("--on-collision", choices=("error", "overwrite", "ignore"), default="error",
                   help="two different sources for one name: fail (default), the last wins, the first stays")
    p.add_argument("--foreign-arch", choices=("error", "warn"), default="error",
                   help="an ELF program of another architecture than the first one exported")
    p.add_argument("--bad-elf", choices=("error", "warn"), default="error", help="an ELF file that cannot be read")
    p.add_argument("--strict", action="store_true",
                   help="a file found in a directory (--add DIR, --add-find) whose interpreter or library is "
                        "missing fails the export (default: exported without it, with a warning)")
    p.add_argument("--format", choices=FORMATS, help="the kind of OUT (default: from its name)")
    p.add_argument("--label", help="volume label (iso, img)")
    p.add_argument("--allow-nonempty", action="store_true",
                   help="dir: merge into a directory that is not empty (each file replaced atomically)")
    p.add_argument("-v", "--verbose", action="store_true", help="log every entry added and why (on stderr)")
    p.add_argument("-o", "--output", required=True, metavar="OUT",
                   help="where to write: a file (replaced atomically), a directory, or - (cpio kinds)")
    add_output_options(p)
    p.set_defaults(func=cli_export)
    return p


class _Handler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        print(f"sysexport: {record.getMessage()}", file=sys.stderr)


def cli_export(args: argparse.Namespace) -> int:
    """Run ``sysexport export``; returns 0.  Errors are SysExportError (printed by
    :func:`sysexport.cli.main` as one line)."""
    if not args.add and not args.add_find:
        raise UsageError("nothing to export: give --add PATH or --add-find DIR")
    kind = output_kind(args.output, args.format)
    if is_stdout(args.output) and not kind.startswith("cpio") and kind not in ("iso", "img"):
        raise UsageError("-o -: give --format")
    log = logging.getLogger("sysexport.export")
    handler = _Handler(logging.INFO if args.verbose else logging.WARNING)
    old_level = log.level
    log.addHandler(handler)
    log.setLevel(logging.INFO if args.verbose else logging.WARNING)
    log.propagate = False
    try:
        exporter = Exporter(args.src, None, on_collision=args.on_collision, foreign_arch=args.foreign_arch,
                            bad_elf=args.bad_elf, tree_errors="error" if args.strict else "warn")
        for spec in args.rewrite:
            exporter.rewrite_path(*_pair("--rewrite", spec))
        for spec in args.user:
            exporter.rewrite_user(*_pair("--user", spec))
        for spec in args.group:
            exporter.rewrite_group(*_pair("--group", spec))
        for path in args.skip:
            exporter.skip(path)
        for path in args.add:
            if "/" not in path:
                found = exporter.which(path)
                if found is None:
                    raise UsageError(f"--add {path}: no program {path!r} on PATH ({exporter.path}) in the source "
                                     f"root {exporter.src.top}; give a path")
                path = found
            exporter.add(path)
        for spec in args.add_find:
            top, sep, pattern = spec.partition(":")
            exporter.add_find(top, _find_predicate(top, pattern if sep else None))
        if args.passwd:
            exporter.add_passwd()
        exporter.dst = make_destination(kind, args.output, args)
        total = sum(e.info.size for e in exporter.entries if stat.S_ISREG(e.info.mode))
        with progress_for(args, total, "writing"):
            result = exporter.finish()
    finally:
        log.removeHandler(handler)
        log.setLevel(old_level)
        log.propagate = True
    counts: dict[str, int] = {}
    data_bytes = 0
    for e in exporter.entries:
        counts[e.kind] = counts.get(e.kind, 0) + 1
        if stat.S_ISREG(e.info.mode):
            data_bytes += e.info.size
    report = sys.stderr if is_stdout(args.output) else sys.stdout
    what = {"dir": "directory", "img": "hybrid image", "iso": "ISO9660 image"}.get(kind, f"{kind} archive")
    parts = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
    doc: dict[str, Any] = {"command": "export", "output": args.output, "format": kind, "source": exporter.src.top,
                           "entries": len(exporter.entries), "types": dict(sorted(counts.items())),
                           "data_bytes": data_bytes, "image": None}
    if kind == "img":
        from ..summaries import hybrid_summary
        image = hybrid_summary("export", args.output, [exporter.src.top], exporter.dst, result)
        doc["image"] = {k: v for k, v in image.items() if k not in ("command", "output", "sources")}
    emit(args, doc, [f"{args.output}: {what} of {len(exporter.entries)} entries from {exporter.src.top} ({parts}; "
                     f"{data_bytes} bytes of file data)"], report)
    return 0


__all__ = ["add_cli_export", "cli_export", "output_kind", "FORMATS"]
