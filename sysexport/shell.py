"""``sysexport shell IMAGE``: an interactive explorer over every view of any image.

pycdlib-explorer gives a shell over one ISO; this one works on whatever
:func:`sysexport.open` finds (Rock Ridge, Joliet, ISO 9660, each FAT volume, cpio) through
the read API alone (:class:`~sysexport.image.view.View`), so a format's view needs nothing
shell-specific.  Commands: ``cd``, ``pwd``, ``ls [-l] [-R]``, ``stat``, ``cat``, ``get``,
``tree``, ``views``, ``view NAME``, ``inspect``, ``lcd``/``lpwd``, ``help``, ``exit``; with
``--write`` also those of :mod:`sysexport.shell_write`.

The shell reads commands from a terminal (with readline: completion of commands and paths,
history in ``$XDG_STATE_HOME/sysexport/history`` or ``~/.sysexport_history``), from standard
input when it is not a terminal, or from ``-c "cmd; cmd"``.  Words are split as a POSIX
shell splits them (quotes, backslashes) and ``;`` separates commands.  An error is one line
``sysexport: error: COMMAND: ...`` on stderr, as everywhere in the CLI, and the shell goes
on; a script run exits 1 when any of its commands failed.
"""
from __future__ import annotations

import argparse
import cmd
import dataclasses
import io
import os
import shlex
import sys
import textwrap
import traceback
from collections.abc import Iterator
from typing import IO, Any, TextIO

from .errors import InvalidInputError, SysExportError
from .image import Image
from .image import open as open_image
from .image.commands import _details, _ls_line
from .image.view import Stat, View, normalize
from .shell_words import complete_host, history_path, parse_options, split_commands, stat_lines

HISTORY_LENGTH = 1000
"""Lines of history kept between sessions."""
CHUNK_BYTES = 1 << 20
"""``cat`` streams a file in pieces of this size: memory does not grow with the file."""
WRITE_COMMANDS = ("put", "rm", "mkdir", "add", "mv", "staged", "unstage", "commit")
"""The commands of ``--write`` (:mod:`sysexport.shell_write`)."""
COMPLETER_DELIMS = " \t\n;"
"""Readline splits words only here, so that a path with '/' and '.' completes as one word."""


class Rerooted(View):
    """The subtree of ``base`` at ``top`` seen as a view of its own (``top`` is its "/"), or,
    when ``as_name`` is given, a root holding ``top`` alone under that name.  ``get``
    extracts through it, so that a directory or a file lands where the user asked while
    every rule of :meth:`View.extract` (no link followed, nothing outside the destination)
    still holds."""

    def __init__(self, base: View, top: Stat, as_name: str | None = None) -> None:
        self.name = base.name
        self._base = base
        self._orig: dict[str, Stat] = {}
        self._single: Stat | None = None
        if as_name is None:
            self._top = dataclasses.replace(top, path="/")
            self._orig["/"] = top
        else:
            self._top = Stat(path="/", type="dir")
            self._single = dataclasses.replace(top, path="/" + as_name)
            self._orig[self._single.path] = top

    @property
    def top(self) -> Stat:
        """What to extract: the whole root, or the single renamed entry."""
        return self._single or self._top

    def _root(self) -> Stat:
        return self._top

    def _children(self, directory: Stat) -> list[Stat]:
        if self._single is not None and directory.path == "/":
            return [self._single]
        out = []
        for child in self._base._children(self._orig[directory.path]):
            path = directory.path.rstrip("/") + "/" + child.name
            self._orig[path] = child
            out.append(dataclasses.replace(child, path=path))
        return out

    def _content(self, entry: Stat) -> IO[bytes]:
        return self._base._content(self._orig[entry.path])


class Explorer(cmd.Cmd):
    """The shell (see the module docstring).  ``image`` is the path of the image; ``view``
    the view to start in (default: the image's first).  Output goes to ``stdout``, file
    bytes (``cat``) to ``binary`` (default ``stdout.buffer``), errors to ``stderr``.
    :attr:`failures` counts the commands that failed."""

    intro = None
    doc_header = "Commands (help COMMAND for more):"
    ruler = ""

    def __init__(self, image: str, *, view: str | None = None, session: int | None = None,
                 codepage: str = "cp437", interactive: bool = False,
                 stdin: TextIO | None = None, stdout: TextIO | None = None, stderr: TextIO | None = None,
                 binary: IO[bytes] | None = None, debug: bool = False) -> None:
        super().__init__(stdin=stdin, stdout=stdout)
        self.use_rawinput = interactive
        self.interactive = interactive
        self.stderr = stderr or sys.stderr
        self.binary = binary
        self.debug = debug
        self.failures = 0
        self.path = image
        self.session = session
        self.codepage = codepage
        self.image: Image = self._open_image()
        self.view: View = self.image.view(view)
        self.cwd = "/"
        self.host_cwd = os.getcwd()
        self._set_prompt()

    # --- the image ------------------------------------------------------------------------------
    def _open_image(self) -> Image:
        return open_image(self.path, session=self.session, codepage=self.codepage)

    def close(self) -> None:
        self.image.close()

    def _reopen(self) -> None:
        """Read the image again (after it changed, or for another session): views cache
        what they read.  The view is kept, and the directory as far as the new one has it."""
        old_view = self.view
        image = self._open_image()
        self.image.close()
        self.image = image
        self.view = image.view(old_view.name if old_view.name in image.views() else None)
        try:
            if not self.view.stat(self.cwd).is_dir:
                self.cwd = "/"
        except SysExportError:
            self.cwd = "/"

    def _set_prompt(self) -> None:
        self.prompt = f"{self.view.name}:{self.cwd}> " if self.interactive else ""

    def resolve(self, path: str) -> str:
        """``path`` made absolute in the current view ('..' and '.' resolved)."""
        return normalize(path if path.startswith("/") else self.cwd.rstrip("/") + "/" + path)

    def host(self, path: str) -> str:
        """A host path relative to the shell's host directory (``lcd``), '~' expanded."""
        return os.path.normpath(os.path.join(self.host_cwd, os.path.expanduser(path)))

    def entry(self, path: str) -> Stat:
        return self.view.stat(self.resolve(path))

    def children(self, directory: Stat) -> list[Stat]:
        """The entries of a directory with their Stats, read once (not stat'ed by name one
        by one, which would read a large directory once per entry)."""
        return self.view._children(directory)

    # --- running commands -------------------------------------------------------------------------
    def onecmd(self, line: str) -> bool:
        """Run every command of ``line`` (see :func:`split_commands`); an error is reported as
        one line and counted, and the next command still runs.  True when one said exit."""
        try:
            groups = split_commands(line)
        except InvalidInputError as e:
            self.fail(str(e))
            return False
        for words in groups:
            if self.run_words(words):
                return True
        return False

    def run_words(self, words: list[str]) -> bool:
        """Run one command given as words; True when it asked the shell to stop."""
        name = words[0]
        self.lastcmd = ""
        try:
            if name == "?":
                name = "help"
            func = getattr(self, "do_" + name, None) if name.isidentifier() else None
            if func is None and name in WRITE_COMMANDS:
                raise InvalidInputError("the image is open read-only: start the shell with --write")
            if func is None:
                raise InvalidInputError(f"unknown command {name!r} (type 'help' for the list)")
            return bool(func(shlex.join(words[1:])))
        except BrokenPipeError:
            raise                                   # the CLI's main() ends quietly
        except SysExportError as e:
            self.fail(f"{name}: {e}")
        except OSError as e:
            where = f"{e.filename}: " if e.filename is not None else ""
            self.fail(f"{name}: {where}{e.strerror or e}")
        except Exception as e:                      # a bug: say so, and stay usable
            self.fail(f"{name}: internal error, a bug in sysexport (please report it): "
                      f"{type(e).__name__}: {e}")
        finally:
            self._set_prompt()
        return False

    def fail(self, message: str) -> None:
        """Report one failed command the CLI's way and count it."""
        self.failures += 1
        if self.debug:
            traceback.print_exc(file=self.stderr)
        if self.stdout is not None:
            self.stdout.flush()
        print(f"sysexport: error: {' '.join(message.split())}", file=self.stderr)
        self.stderr.flush()

    def emptyline(self) -> bool:
        return False                                # cmd.Cmd would repeat the last command

    def run_script(self, lines: Iterator[str] | list[str]) -> int:
        """Run commands line by line (standard input that is not a terminal, or ``-c``);
        the exit status: 0, or 1 when any command failed."""
        for line in lines:
            if self.onecmd(line):
                break
        return 1 if self.failures else 0

    def run_interactive(self, history: bool = True) -> int:
        """The interactive loop, with readline's completion and history; Ctrl-C abandons
        the line (or the running command) and returns to the prompt."""
        import readline
        readline.set_completer_delims(COMPLETER_DELIMS)
        path = history_path() if history else None
        if path is not None:
            try:
                readline.read_history_file(path)
            except OSError:
                pass
        readline.set_history_length(HISTORY_LENGTH)
        try:
            while True:
                try:
                    self.cmdloop()
                    break
                except KeyboardInterrupt:
                    print("^C", file=self.stdout)
        finally:
            if path is not None:
                try:
                    os.makedirs(os.path.dirname(path), exist_ok=True)
                    readline.write_history_file(path)
                except OSError:
                    pass
        return 0

    # --- moving around ----------------------------------------------------------------------------
    def do_cd(self, arg: str) -> None:
        """cd [PATH]: change the current directory in the view (no PATH: the root)."""
        words = shlex.split(arg)
        if len(words) > 1:
            raise InvalidInputError("expected one directory")
        target = self.entry(words[0] if words else "/")
        if not target.is_dir:
            raise InvalidInputError(f"{self.view.name}:{target.path}: not a directory")
        self.cwd = target.path

    def do_pwd(self, arg: str) -> None:
        """pwd: print the current directory in the view."""
        print(f"{self.cwd}", file=self.stdout)

    def do_views(self, arg: str) -> None:
        """views: list the image's views (rr, joliet, iso9660, fat, fat:N, cpio...); * marks the current."""
        for name in self.image.views():
            print(f"{'*' if name == self.view.name else ' '} {name}", file=self.stdout)

    def do_view(self, arg: str) -> None:
        """view NAME: switch to another view (see views); the current directory follows, as
        far as the new view has it (the same directory record, else the same name, else the
        same name in other case: /docs in rr is /DOCS in iso9660)."""
        words = shlex.split(arg)
        if len(words) != 1:
            raise InvalidInputError(f"expected a view name (this image has: {', '.join(self.image.views())})")
        view = self.image.view(words[0])
        old, self.view = self.view, view
        self.cwd = self._follow(old, view, self.cwd)
        print(f"view {view.name}, in {self.cwd}", file=self.stdout)

    def _follow(self, old: View, new: View, path: str) -> str:
        """The directory of ``new`` that is ``path`` of ``old``, component by component, as
        deep as one matches (see :meth:`do_view`)."""
        here_old, here_new = old.stat("/"), new.stat("/")
        for part in path.strip("/").split("/") if path != "/" else []:
            try:
                want = next(c for c in old._children(here_old) if c.name == part)
                kids = [c for c in new._children(here_new) if c.is_dir]
            except (SysExportError, StopIteration):
                break
            same = ([c for c in kids if want.link_id is not None and c.link_id == want.link_id]
                    or [c for c in kids if c.name == part]
                    or [c for c in kids if c.name.casefold() == part.casefold()])
            if not same:
                break
            here_old, here_new = want, same[0]
        return here_new.path

    def do_session(self, arg: str) -> None:
        """session [N]: list the ISO sessions (* marks the one read), or read session N (0 is the first)."""
        words = shlex.split(arg)
        sessions = self.image.sessions
        if not words:
            if not sessions:
                raise InvalidInputError("this image has no ISO 9660 sessions")
            current = self.session if self.session is not None else len(sessions) - 1
            for s in sessions:
                print(f"{'*' if s.index == current else ' '} {s.index}: {s.size_blocks} blocks at LBA {s.start_lba}, "
                      f"volume {s.volume_identifier!r} ({s.found_by})", file=self.stdout)
            return
        if len(words) != 1 or not words[0].isdigit() or int(words[0]) >= max(len(sessions), 1):
            raise InvalidInputError(f"expected a session number, 0..{max(len(sessions) - 1, 0)}")
        previous = self.session
        self.session = int(words[0])
        try:
            self._reopen()
        except SysExportError:
            self.session = previous
            raise
        print(f"session {self.session}, view {self.view.name}, in {self.cwd}", file=self.stdout)

    def do_lcd(self, arg: str) -> None:
        """lcd [DIR]: change the host directory that get and put use (no DIR: home)."""
        words = shlex.split(arg)
        target = self.host(words[0] if words else "~")
        if not os.path.isdir(target):
            raise InvalidInputError(f"{target}: not a directory on the host")
        self.host_cwd = os.path.realpath(target)

    def do_lpwd(self, arg: str) -> None:
        """lpwd: print the host directory that get and put use."""
        print(self.host_cwd, file=self.stdout)

    # --- looking ----------------------------------------------------------------------------------
    def do_ls(self, arg: str) -> None:
        """ls [-l] [-R] [PATH...]: list directories (-l: mode, links, owner, size, time; -R: every entry below)."""
        flags, paths = parse_options(shlex.split(arg), "lR")
        targets = [self.entry(p) for p in paths] if paths else [self.entry(self.cwd)]
        for i, top in enumerate(targets):
            if "R" in flags:
                for e in self.view.walk(top.path):
                    print(_ls_line(e, "l" in flags, e.path), file=self.stdout)
                continue
            if not top.is_dir:
                print(_ls_line(top, "l" in flags, paths[i] if paths else top.name), file=self.stdout)
                continue
            if len(targets) > 1:
                print(f"{'' if i == 0 else chr(10)}{top.path}:", file=self.stdout)
            entries = self.children(top)
            if "l" in flags:
                for e in entries:
                    print(_ls_line(e, True, e.name), file=self.stdout)
            elif self.interactive and entries:
                self.columnize([e.name + ("/" if e.is_dir else "") for e in entries])
            else:
                for e in entries:
                    print(e.name, file=self.stdout)

    def do_stat(self, arg: str) -> None:
        """stat PATH...: every field of an entry: type, size, mode, owner, times, links, extents
        (where its bytes lie in the image) and what the format adds."""
        paths = shlex.split(arg)
        if not paths:
            raise InvalidInputError("expected a path")
        for p in paths:
            for line in stat_lines(self.entry(p)):
                print(line, file=self.stdout)

    def do_cat(self, arg: str) -> None:
        """cat PATH...: write files to the terminal (streamed, any size)."""
        paths = shlex.split(arg)
        if not paths:
            raise InvalidInputError("expected a file")
        out = self.binary if self.binary is not None else self.stdout.buffer  # type: ignore[attr-defined]
        for p in paths:
            last = b"\n"
            with self.view.open(self.resolve(p)) as f:
                self.stdout.flush()
                while True:
                    chunk = f.read(CHUNK_BYTES)
                    if not chunk:
                        break
                    out.write(chunk)
                    last = chunk[-1:]
            out.flush()
            if self.interactive and last != b"\n":
                print(file=self.stdout)             # the prompt on a line of its own

    def do_tree(self, arg: str) -> None:
        """tree [PATH]: the directory tree below PATH (default: the current directory)."""
        words = shlex.split(arg)
        if len(words) > 1:
            raise InvalidInputError("expected one directory")
        top = self.entry(words[0] if words else self.cwd)
        base = 0 if top.path == "/" else top.path.count("/")
        dirs = files = 0
        for e in self.view.walk(top.path):
            depth = (0 if e.path == "/" else e.path.count("/")) - base
            if depth == 0:
                print(top.path, file=self.stdout)
                continue
            tail = "/" if e.is_dir else (f" -> {e.target}" if e.target is not None else "")
            print(f"{'    ' * (depth - 1)}{e.name}{tail}", file=self.stdout)
            dirs += e.is_dir
            files += not e.is_dir
        print(f"{dirs} director{'y' if dirs == 1 else 'ies'}, {files} other entr{'y' if files == 1 else 'ies'}",
              file=self.stdout)

    def do_inspect(self, arg: str) -> None:
        """inspect [KIND]: the image's structures (MBR, GPTs, partitions, ISO descriptors, El Torito,
        FAT volumes, cpio) with their byte ranges and problems; KIND keeps one kind (e.g. gpt, fat)."""
        words = shlex.split(arg)
        kinds = set(words)
        img = self.image
        print(f"{img.name}: {img.size_bytes:,} bytes; views: {', '.join(img.views()) or 'none'}", file=self.stdout)
        shown = 0
        for s in sorted(img.structures, key=lambda s: (s.offset, -s.size)):
            if kinds and s.kind not in kinds and s.kind.split("-")[0] not in kinds:
                continue
            shown += 1
            print(f"  {s.offset:>14,} .. {s.offset + s.size:>14,}  {s.kind:<20} {s.summary}", file=self.stdout)
            detail = _details(s)
            if detail:
                print(f"  {'':>34}{'':<20} {detail}", file=self.stdout)
        if kinds and not shown:
            have = sorted({s.kind for s in img.structures})
            raise InvalidInputError(f"no structure of kind {', '.join(sorted(kinds))} (this image has: "
                                    f"{', '.join(have)})")
        for p in img.problems:
            print(f"  problem: {p}", file=self.stdout)

    def do_get(self, arg: str) -> None:
        """get [-f] PATH [HOST]: copy a file or a directory out of the image to HOST (default: its
        name in the host directory; into HOST when that is a directory), as extract does: no link
        followed, nothing written outside HOST, an existing file kept unless -f."""
        flags, words = parse_options(shlex.split(arg), "f")
        if len(words) not in (1, 2):
            raise InvalidInputError("expected PATH [HOST]")
        top = self.entry(words[0])
        if top.path == "/" and len(words) == 1:
            raise InvalidInputError("the root needs a HOST directory to go to")
        dest = self.host(words[1] if len(words) == 2 else top.name)
        if os.path.isdir(dest) and not os.path.islink(dest) and len(words) == 2 and top.path != "/":
            dest = os.path.join(dest, top.name)
        from .image.extract import extract_entries
        if top.is_dir:
            view = Rerooted(self.view, top)
            written = extract_entries(view, [view.top], dest, force="f" in flags, devices=False, same_owner=False)
        else:
            parent, name = os.path.split(os.path.normpath(dest))
            if not os.path.isdir(parent):
                raise InvalidInputError(f"{parent}: no such directory on the host")
            view = Rerooted(self.view, top, as_name=name)
            written = extract_entries(view, [view.top], parent, force="f" in flags, devices=False,
                                      same_owner=False)
        print(f"{self.view.name}:{top.path} -> {dest} ({len(written)} entr{'y' if len(written) == 1 else 'ies'})",
              file=self.stdout)

    # --- leaving, help ----------------------------------------------------------------------------
    def do_exit(self, arg: str) -> bool:
        """exit: leave the shell (also quit, or Ctrl-D)."""
        return True

    def do_EOF(self, arg: str) -> bool:
        if self.interactive:
            print(file=self.stdout)
        return bool(self.do_exit(arg))

    def get_names(self) -> list[str]:
        return [n for n in super().get_names() if n not in ("do_EOF",)]

    def do_quit(self, arg: str) -> bool:
        """quit: the same as exit."""
        return bool(self.do_exit(arg))

    def do_help(self, arg: str) -> None:
        """help [COMMAND]: list the commands, or say what one does."""
        words = shlex.split(arg)
        if len(words) > 1:
            raise InvalidInputError("expected one command")
        if words:
            func = getattr(self, "do_" + words[0], None) if words[0].isidentifier() else None
            if func is None or words[0] == "EOF":
                raise InvalidInputError(f"no command {words[0]!r} (type 'help' for the list)")
            print(" ".join((func.__doc__ or words[0]).split()), file=self.stdout)
            return
        print(self.doc_header, file=self.stdout)
        for name in sorted(n[3:] for n in self.get_names() if n.startswith("do_")):
            doc = " ".join((getattr(self, "do_" + name).__doc__ or name).split())
            print(textwrap.fill(doc, width=100, initial_indent="  ", subsequent_indent="      "), file=self.stdout)

    # --- completion -------------------------------------------------------------------------------
    HOST_ARGS: dict[str, tuple[int, ...]] = {"get": (2,), "lcd": (1,), "put": (1,), "add": (1,), "commit": (1,)}
    """The argument positions (1 is the first) that name host paths, completed from the host."""

    def completedefault(self, text: str, line: str, begidx: int, endidx: int) -> list[str]:
        words = line[:begidx].split()
        command = words[0] if words else ""
        position = len([w for w in words[1:] if not w.startswith("-")]) + 1
        if position in self.HOST_ARGS.get(command, ()):
            return complete_host(self.host_cwd, text)
        return self.complete_path(text)

    def completenames(self, text: str, *ignored: Any) -> list[str]:
        return [name + " " for name in super().completenames(text, *ignored) if name != "EOF"]

    def complete_view(self, text: str, *ignored: Any) -> list[str]:
        return [name + " " for name in self.image.views() if name.startswith(text)]

    def complete_help(self, text: str, *ignored: Any) -> list[str]:
        return self.completenames(text)

    def complete_path(self, text: str) -> list[str]:
        """Paths in the current view that begin with ``text`` (directories end in '/', a
        space follows anything else; spaces in names are escaped)."""
        raw = text.replace("\\ ", " ")
        head, _, prefix = raw.rpartition("/")
        try:
            directory = self.entry(head + "/" if head or raw.startswith("/") else ".")
            if not directory.is_dir:
                return []
            entries = self.children(directory)
        except SysExportError:
            return []
        base = head + "/" if head or raw.startswith("/") else ""
        return [(base + e.name).replace(" ", "\\ ") + ("/" if e.is_dir else " ")
                for e in entries if e.name.startswith(prefix)]


class TerminalSafe:
    """A text stream to a terminal that writes control characters and bytes that are not
    UTF-8 as ``\\ooo`` escapes and a backslash doubled (``ls -b``; see
    :func:`~sysexport.image.commands.for_terminal`), line by line: a hostile image's names
    cannot send escape sequences to the user's terminal, and a backslash always starts an
    escape.  ``cat`` writes a file's bytes through ``buffer``, unchanged, as cat(1) does."""

    def __init__(self, inner: TextIO) -> None:
        self._inner = inner

    def write(self, text: str) -> int:
        from .image.commands import for_terminal
        self._inner.write("\n".join(for_terminal(line, self._inner, name=True) for line in text.split("\n")))
        return len(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def make_explorer(args: argparse.Namespace, interactive: bool) -> Explorer:
    """The explorer the ``shell`` command's options ask for (writable with ``--write``)."""
    options: dict[str, Any] = dict(view=args.view, session=args.session, codepage=args.codepage,
                                   interactive=interactive, debug=bool(getattr(args, "debug", False)))
    if sys.stdout.isatty():
        options["stdout"] = TerminalSafe(sys.stdout)
    if sys.stderr.isatty():
        options["stderr"] = TerminalSafe(sys.stderr)
    if args.write:
        from .shell_write import WritableExplorer
        return WritableExplorer(args.image, **options)
    return Explorer(args.image, **options)


def cmd_shell(args: argparse.Namespace) -> int:
    """``sysexport shell``: interactive on a terminal, else the commands of ``-c`` or of stdin."""
    interactive = args.commands is None and sys.stdin.isatty() and sys.stdout.isatty()
    for stream in (sys.stdout, sys.stderr):         # a name that is not UTF-8 is written as its bytes
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="surrogateescape")
    shell = make_explorer(args, interactive)
    try:
        if args.commands is not None:
            return shell.run_script(args.commands.splitlines())
        if interactive:
            return shell.run_interactive(history=not args.no_history)
        return shell.run_script(iter(sys.stdin))
    finally:
        shell.close()


def add_cli_shell(sub: Any) -> None:
    """Register ``sysexport shell``."""
    p = sub.add_parser("shell", help="explore an image interactively: cd, ls, stat, cat, get, tree, views, "
                       "inspect (--write: put, rm, mkdir, add, mv, commit)",
                       description="An interactive explorer over every view of an image. Type 'help' in it. "
                       "Commands come from the terminal, from -c, or from standard input when it is not one; "
                       "a script run exits 1 when any command failed.")
    p.add_argument("image", help="the image file (ISO, hybrid, disk image, FAT volume, cpio archive)")
    p.add_argument("-c", dest="commands", metavar="COMMANDS",
                   help="run these commands (separated by ';' or newlines) and exit")
    p.add_argument("--view", help="view to start in: rr, joliet, iso9660, fat, fat:N, cpio (default: the first)")
    p.add_argument("--session", type=int, help="ISO session to read (0 is the first; default: the newest)")
    p.add_argument("--codepage", default="cp437", help="OEM code page of FAT 8.3 names (default cp437)")
    p.add_argument("--write", action="store_true",
                   help="allow put (a file changed in place) and rm, mkdir, add, mv staged for commit OUT")
    p.add_argument("--no-history", action="store_true", help="neither read nor write the history file")
    p.set_defaults(func=cmd_shell)


__all__ = ["Explorer", "Rerooted", "add_cli_shell", "cmd_shell", "make_explorer"]
