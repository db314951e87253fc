"""The read-side commands: ``inspect``, ``ls``, ``cat``, ``extract``, ``verify`` (any image).

Each opens the image with :func:`sysexport.image.open` and prints plain lines, or with
``--json`` one JSON object whose ``command`` key names the command (``ls``: the entries with
the keys of :meth:`~sysexport.image.view.Stat.to_json`; ``inspect``: the image's structures,
views and problems; ``extract``: what was made; ``verify``: every check with its result;
schemas in sysexport/schemas/).  ``cat`` writes the file's bytes to standard output, so it
has no ``--json``.  ``--progress``/``--quiet`` as every command has them
(:mod:`sysexport.progress`): ``cat``, ``extract`` and ``verify`` count the bytes of file
data they read.  ``verify`` exits 0 only when every check passed, 1 when one failed.
Errors are SysExportErrors, printed as one line by the CLI's main().

A name that is not UTF-8 (a Rock Ridge or CPIO name is bytes; readers decode it with
``surrogateescape``, byte 0xff becoming U+DCFF) is printed as its raw bytes to a pipe or a
file, as coreutils' ``ls`` writes it there and as the ``shell`` does: :func:`names_as_bytes`
sets the standard streams to encode with ``surrogateescape``, so no encoding (``C.UTF-8``,
``PYTHONIOENCODING=utf-8:strict``) can make a listing fail.  To a terminal such bytes, and
control characters (a hostile image's names must not drive the terminal), are shown as
``\\ooo`` octal escapes, as ``ls -b`` shows them (:func:`for_terminal`).  ``--json`` keeps
the escape JSON has for the code point: ``"\\udcff"`` (the output is ASCII; ``os.fsencode``
of the decoded string gives the bytes back), as the schemas describe.
"""
from __future__ import annotations

import argparse
import io
import re
import stat as _stat
import sys
import time
from typing import Any, Callable

from ..data import report_progress
from ..errors import InvalidInputError
from ..progress import add_output_options, emit, progress_for
from . import Image, Structure
from . import open as open_image
from .extract import extract_entries
from .view import Stat

VIEW_HELP = "view to use: rr, joliet, iso9660, fat, fat:N, cpio (default: the first the image has)"


def names_as_bytes() -> None:
    """Make standard output and error write a name that is not UTF-8 as its bytes.

    A name decoded with ``surrogateescape`` holds U+DC80..U+DCFF for its stray bytes;
    under a strict encoding printing it would raise UnicodeEncodeError (an internal
    error instead of a listing).  ``surrogateescape`` on the stream turns each back into
    its byte, so the output holds the name exactly as the image does."""
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper) and stream.errors != "surrogateescape":
            stream.reconfigure(errors="surrogateescape")


_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\udc80-\udcff]")
"""C0 and C1 control characters, DEL, and the surrogates that stand for bytes not UTF-8."""


def _octal(m: re.Match[str]) -> str:
    c = m.group()
    data = bytes([ord(c) - 0xDC00]) if c >= "\udc80" else c.encode("utf-8")
    return "".join(f"\\{b:03o}" for b in data)


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def for_terminal(text: str, stream: Any, *, name: bool = False) -> str:
    """``text`` as it may be written to ``stream``: unchanged to a pipe or a file; to a
    terminal with each control character and each byte that is not UTF-8 as a ``\\ooo``
    octal escape of its bytes (``ls -b``), a backslash doubled when ``text`` is a ``name``
    (so that ``\\377`` cannot be read as a name's own four characters)."""
    if not _is_terminal(stream):
        return text
    if name:
        text = text.replace("\\", "\\\\")
    return _UNPRINTABLE.sub(_octal, text)


def _say(text: str, stream: Any = None) -> None:
    """Print one line of a read command (see :func:`for_terminal`)."""
    out = sys.stdout if stream is None else stream
    print(for_terminal(text, out), file=out)


def _open(args: argparse.Namespace) -> Image:
    names_as_bytes()
    return open_image(args.image, session=getattr(args, "session", None), codepage=getattr(args, "codepage", "cp437"))


def _common(p: argparse.ArgumentParser, view: bool = True) -> None:
    p.add_argument("image", help="the image file (ISO, hybrid, disk image, FAT volume, cpio archive)")
    if view:
        p.add_argument("--view", help=VIEW_HELP)
        p.add_argument("--session", type=int, help="ISO session to read (0 is the first; default: the newest)")
        p.add_argument("--codepage", default="cp437", help="OEM code page of FAT 8.3 names (default cp437)")


# --- inspect ------------------------------------------------------------------------------------

def cmd_inspect(args: argparse.Namespace) -> int:
    with _open(args) as img:
        if args.map:
            with open(args.map, "w", encoding="utf-8") as f:
                f.write(layout_svg(img))
        if args.json:
            emit(args, {"command": "inspect", **img.to_json()})
            return 0
        if args.quiet:
            return 0
        _say(f"{img.name}: {img.size_bytes:,} bytes; views: {', '.join(img.views()) or 'none'}")
        for s in sorted(img.structures, key=lambda s: (s.offset, -s.size)):
            _say(f"  {s.offset:>14,} .. {s.offset + s.size:>14,}  {s.kind:<20} {s.summary}")
            detail = _details(s)
            if detail:
                _say(f"  {'':>14}    {'':>14}  {'':<20} {detail}")
        for p in img.problems:
            _say(f"  problem: {p}")
        return 0


DETAIL_FIELDS = (("volume_identifier", "label"), ("joliet_volume_identifier", "Joliet label"), ("uuid", "UUID"),
                 ("label", "label"), ("boot_label", "boot sector label"), ("volume_id", "serial"),
                 ("type_guid", "type"), ("unique_guid", "GUID"), ("disk_guid", "disk GUID"))


def _details(s: Structure) -> str:
    """The fields worth a second line in ``inspect``: labels, UUIDs, serials, types."""
    parts = []
    for key, name in DETAIL_FIELDS:
        value = s.fields.get(key)
        if value in (None, "", 0):
            continue
        if key == "volume_id" and isinstance(value, int):
            value = f"{value >> 16:04X}-{value & 0xFFFF:04X}"
        parts.append(f"{name} {value!r}" if isinstance(value, str) and "label" in name else f"{name} {value}")
    return ", ".join(parts)


MAP_COLOURS = {"mbr": "#d62728", "gpt": "#ff7f0e", "gpt-entries": "#ffbb78", "gpt-backup": "#ff7f0e", "partition": "#1f77b4", "fat": "#2ca02c",
               "iso9660": "#9467bd", "iso9660-descriptor": "#8c564b", "iso9660-path-table": "#e377c2",
               "eltorito-catalog": "#bcbd22", "eltorito-entry": "#17becf", "cpio": "#7f7f7f"}


def layout_svg(img: Image) -> str:
    """A picture of the image's layout: one row per kind of structure, each a bar at its
    byte range on a linear scale of the whole image (tiny structures drawn at least 2 px
    wide), with the byte ranges as tooltips."""
    width, row, left = 1000, 26, 170
    kinds: list[str] = []
    for s in img.structures:
        if s.kind not in kinds:
            kinds.append(s.kind)
    size = max(img.size_bytes, 1)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + width + 20}" '
           f'height="{row * (len(kinds) + 2)}" font-family="sans-serif" font-size="12">',
           f'<text x="4" y="16">{_esc(img.name)}: {img.size_bytes:,} bytes</text>']
    for i, kind in enumerate(kinds):
        y = row * (i + 1) + 6
        out.append(f'<text x="4" y="{y + 14}">{_esc(kind)}</text>')
        out.append(f'<rect x="{left}" y="{y}" width="{width}" height="18" fill="#f4f4f4" stroke="#ccc"/>')
        for s in (s for s in img.structures if s.kind == kind):
            x = left + width * s.offset / size
            w = max(2.0, width * s.size / size)
            colour = MAP_COLOURS.get(kind, "#555")
            out.append(f'<rect x="{x:.2f}" y="{y}" width="{w:.2f}" height="18" fill="{colour}" fill-opacity="0.8">'
                       f'<title>{_esc(s.summary)}: bytes {s.offset:,}..{s.offset + s.size:,}</title></rect>')
    out.append("</svg>\n")
    return "\n".join(out)


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


# --- ls -----------------------------------------------------------------------------------------

def _ls_line(e: Stat, long: bool, name: str, shown: Callable[[str], str] = str) -> str:
    """One line of ``ls`` (``-l``: mode, links, owner, size, time); ``shown`` makes a name
    (and a link's target) printable where the line goes (the shell passes none)."""
    name = shown(name)
    if not long:
        return name
    mode = _stat.filemode(e.mode) if e.mode is not None else {"dir": "d?????????"}.get(e.type, "-?????????")
    mtime = time.strftime("%Y-%m-%d %H:%M", time.gmtime(e.mtime)) if e.mtime is not None else "-" * 16
    owner = f"{e.uid if e.uid is not None else '-'}:{e.gid if e.gid is not None else '-'}"
    tail = f" -> {shown(e.target)}" if e.target is not None else ""
    size = f"{e.rdev[0]},{e.rdev[1]}" if e.rdev is not None else str(e.size)
    return f"{mode} {e.nlink if e.nlink is not None else '-':>3} {owner:>9} {size:>12} {mtime} {name}{tail}"


def cmd_ls(args: argparse.Namespace) -> int:
    with _open(args) as img:
        view = img.view(args.view)
        top = view.stat(args.path)
        if args.recursive:
            entries = list(view.walk(top.path))
        elif top.is_dir:
            entries = [view.stat(top.path.rstrip("/") + "/" + n) for n in view.listdir(top.path)]
        else:
            entries = [top]
        if args.json:
            emit(args, {"command": "ls", "image": args.image, "view": view.name, "path": top.path,
                        "entries": [e.to_json() for e in entries]})
            return 0
        if args.quiet:
            return 0
        for e in entries:
            name = e.path if args.recursive else e.name
            print(_ls_line(e, args.long, name, lambda text: for_terminal(text, sys.stdout, name=True)))
        return 0


def cmd_cat(args: argparse.Namespace) -> int:
    with _open(args) as img:
        view = img.view(args.view)
        out = sys.stdout.buffer
        entry = view.stat(args.path)
        with view.open(args.path) as f, progress_for(args, entry.size, "reading"):
            while True:
                chunk = f.read(1 << 20)
                if not chunk:
                    break
                out.write(chunk)
                report_progress(len(chunk))
        out.flush()
        return 0


def cmd_extract(args: argparse.Namespace) -> int:
    with _open(args) as img:
        view = img.view(args.view)
        skipped: list[str] = []
        totals: dict[str, int] = {}
        roots = [view.stat(p) for p in args.paths] if args.paths else [view.stat("/")]
        written = extract_entries(view, roots, args.dest, force=args.force, devices=args.devices,
                                  same_owner=args.same_owner, skipped=skipped, totals=totals,
                                  progress=lambda total: progress_for(args, total, "extracting"))
        if not args.quiet and not args.json:
            for line in skipped:
                _say(line, sys.stderr)
        emit(args, {"command": "extract", "image": args.image, "view": view.name, "dest": args.dest,
                    "paths": [r.path for r in roots], "entries": len(written),
                    "types": {k: v for k, v in sorted(totals.items()) if k != "bytes"},
                    "data_bytes": totals.get("bytes", 0), "skipped": skipped},
             [f"extracted {len(written)} entries from the {view.name} view into {args.dest}"],
             None if args.json else sys.stderr)                # the JSON on stdout, the line beside errors
        return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from .verify import verify

    with _open(args) as img:
        checks = verify(img, data=not args.no_data, progress=lambda total: progress_for(args, total, "verifying"))
    ok = all(c.ok for c in checks)
    if args.json:
        emit(args, {"command": "verify", "image": args.image, "ok": ok, "checks": [c.to_json() for c in checks]})
    else:
        # --quiet: only the failed checks, on stderr (they are the errors).
        out = sys.stderr if args.quiet else sys.stdout
        for c in checks:
            if c.ok and args.quiet:
                continue
            _say(f"{'ok  ' if c.ok else 'FAIL'} {c.name}: {c.detail}", out)
            for p in c.problems[:50]:
                _say(f"       {p}", out)
            if len(c.problems) > 50:
                print(f"       ... and {len(c.problems) - 50} more", file=out)
        if not args.quiet or not ok:
            print("OK: every check passed" if ok else "FAILED: see above", file=out)
    return 0 if ok else 1


def add_cli_commands(sub: Any) -> None:
    """Register inspect, ls, cat, extract and verify."""
    p = sub.add_parser("inspect", help="list every structure of an image with its byte range")
    _common(p, view=False)
    p.add_argument("--map", metavar="FILE.svg", help="also draw the layout as an SVG picture")
    add_output_options(p)
    p.set_defaults(func=cmd_inspect)
    p = sub.add_parser("ls", help="list the files of one view of an image")
    _common(p)
    p.add_argument("path", nargs="?", default="/", help="directory or file in the view (default /)")
    p.add_argument("-R", "--recursive", action="store_true", help="every entry below PATH")
    p.add_argument("-l", "--long", action="store_true", help="mode, links, owner, size, time")
    add_output_options(p)
    p.set_defaults(func=cmd_ls)
    p = sub.add_parser("cat", help="write one file of an image to standard output")
    _common(p)
    p.add_argument("path", help="the file in the view")
    add_output_options(p, json_output=False)       # the output is the file's bytes
    p.set_defaults(func=cmd_cat)
    p = sub.add_parser("extract", help="copy files of one view of an image into a directory")
    _common(p)
    p.add_argument("dest", help="destination directory (made when missing; nothing is written outside it)")
    p.add_argument("paths", nargs="*", metavar="PATH", help="only these files or directories (default: all)")
    p.add_argument("--force", action="store_true", help="replace existing files")
    p.add_argument("--devices", action="store_true", help="make device nodes (they are skipped otherwise)")
    p.add_argument("--same-owner", action="store_true",
                   help="keep owners and setuid/setgid/sticky bits (as root; otherwise they are dropped)")
    add_output_options(p)
    p.set_defaults(func=cmd_extract)
    p = sub.add_parser("verify", help="check an image: tables, file systems, shared extents (exit 1 on a failure)")
    _common(p, view=False)
    p.add_argument("--no-data", action="store_true",
                   help="do not read every file's data to its end (only the structures and directories)")
    add_output_options(p)
    p.set_defaults(func=cmd_verify)


__all__ = ["add_cli_commands", "layout_svg", "names_as_bytes", "for_terminal", "cmd_inspect", "cmd_ls", "cmd_cat", "cmd_extract", "cmd_verify",
           "Structure", "InvalidInputError"]
