"""The text of ``sysexport shell``: splitting what is typed into commands and words, options,
completing host paths, and what ``stat`` prints.  Nothing here touches an image; the
explorer itself is :mod:`sysexport.shell`."""
from __future__ import annotations

import datetime
import os
import shlex
import stat as _stat

from .errors import InvalidInputError
from .image.view import Stat


def split_commands(line: str) -> list[list[str]]:
    """The commands of one input line: words split as a POSIX shell does, ``;`` between
    commands (quoted, it is part of a word); a line starting with ``#`` is a comment.
    An unclosed quote is an InvalidInputError."""
    if line.lstrip().startswith("#"):
        return []
    lexer = shlex.shlex(line, posix=True, punctuation_chars=";")
    lexer.whitespace_split = True
    lexer.commenters = ""
    groups: list[list[str]] = [[]]
    try:
        for token in lexer:
            if token and set(token) == {";"}:
                groups.append([])
            else:
                groups[-1].append(token)
    except ValueError as e:
        raise InvalidInputError(f"cannot split the line: {str(e).lower()}") from None
    return [g for g in groups if g]


def parse_options(words: list[str], allowed: str) -> tuple[set[str], list[str]]:
    """Single-letter flags (``-l``, ``-lR``) before the operands; ``--`` ends them."""
    flags: set[str] = set()
    rest = list(words)
    while rest and rest[0].startswith("-") and rest[0] != "-":
        word = rest.pop(0)
        if word == "--":
            break
        if word == "--force" and "f" in allowed:
            flags.add("f")
            continue
        for letter in word[1:]:
            if letter not in allowed:
                raise InvalidInputError(f"unknown option -{letter} (this command takes: "
                                        f"{' '.join('-' + a for a in allowed) or 'none'})")
            flags.add(letter)
    return flags, rest


def when(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    try:
        return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).isoformat()
    except (OverflowError, ValueError, OSError):
        return str(seconds)


def history_path() -> str:
    """Where the shell keeps its history: ``$XDG_STATE_HOME/sysexport/history`` when that
    variable is set, else ``~/.sysexport_history``."""
    state = os.environ.get("XDG_STATE_HOME")
    if state:
        return os.path.join(state, "sysexport", "history")
    return os.path.join(os.path.expanduser("~"), ".sysexport_history")


def complete_host(cwd: str, text: str) -> list[str]:
    """Host paths (relative to ``cwd``) that begin with ``text``, as :meth:`Explorer.complete_path`."""
    raw = os.path.expanduser(text.replace("\\ ", " "))
    head, _, prefix = raw.rpartition("/")
    where = os.path.join(cwd, head or ("/" if raw.startswith("/") else "."))
    try:
        names = sorted(os.listdir(where))
    except OSError:
        return []
    base = head + "/" if head or raw.startswith("/") else ""
    return [(base + n).replace(" ", "\\ ") + ("/" if os.path.isdir(os.path.join(where, n)) else " ")
            for n in names if n.startswith(prefix) and (prefix.startswith(".") or not n.startswith("."))]


def stat_lines(e: Stat) -> list[str]:
    """What ``stat`` prints of one entry: one field a line, a field the view lacks left out."""
    lines = [f"  path: {e.path}", f"  type: {e.type}", f"  size: {e.size:,} bytes"]
    if e.mode is not None:
        lines.append(f"  mode: {_stat.filemode(e.mode)} ({e.mode & 0o7777:04o})")
    if e.uid is not None or e.gid is not None:
        lines.append(f"  owner: uid {e.uid if e.uid is not None else '-'}, gid {e.gid if e.gid is not None else '-'}")
    for name in ("mtime", "atime", "ctime"):
        value = getattr(e, name)
        if value is not None:
            lines.append(f"  {name}: {when(value)}")
    for name in ("nlink", "inode", "target"):
        value = getattr(e, name)
        if value is not None:
            lines.append(f"  {name}: {value}")
    if e.rdev is not None:
        lines.append(f"  device: {e.rdev[0]}, {e.rdev[1]}")
    for offset, size in e.extents:
        lines.append(f"  extent: bytes {offset:,} .. {offset + size:,} ({size:,} bytes)")
    if e.link_id is not None:
        lines.append(f"  link id: {e.link_id}")
    for key, value in e.fields.items():
        if not str(key).startswith("_"):
            lines.append(f"  {key}: {value}")
    return lines


__all__ = ["complete_host", "history_path", "parse_options", "split_commands", "stat_lines", "when"]
