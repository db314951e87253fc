"""The GRUB menu of a live image (``boot/grub/grub.cfg``): entries, title, timeout, serial.

:func:`make_grub_cfg` writes the menu that ``sysexport live`` puts in an image; a user's
own menu (``live --grub-cfg FILE``) replaces it unchanged.  Each :class:`MenuEntry` boots a
kernel with an optional initrd and a command line; the words go through GRUB's quoting
rules (grub-core/lib/cmdline.c) so that the kernel receives the command line as given.
"""
from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import InvalidInputError

KernelSource = str | os.PathLike[str] | bytes
"""A kernel or initrd: a host path, or its bytes."""

_PLAIN_WORD = re.compile(r"[A-Za-z0-9_./:=,+@%^-]+")
_KERNEL_WORD = re.compile(r'(?:[^\s"]+|"[^"]*")+')
MAX_TITLE_CHARS = 200
"""A menu title is one line of the menu; longer ones are refused rather than cut."""


def grub_quote(word: str) -> str:
    """Quote one word for a GRUB script (single quotes keep everything literal)."""
    if _PLAIN_WORD.fullmatch(word):
        return word
    return "'" + word.replace("'", "'\\''") + "'"


def kernel_cmdline_words(cmdline: str) -> list[str]:
    """Split a kernel command line as the kernel does (double quotes group spaces)."""
    if "\n" in cmdline or "\r" in cmdline or "\0" in cmdline:
        raise InvalidInputError(f"cmdline: must be one line without NUL, found {cmdline!r}")
    words = _KERNEL_WORD.findall(cmdline)
    if _KERNEL_WORD.sub("", cmdline).strip():
        raise InvalidInputError(f"cmdline: unbalanced double quote in {cmdline!r}")
    return words


def grub_linux_args(cmdline: str) -> list[str]:
    """The words for GRUB's ``linux`` command that give the kernel ``cmdline``.

    GRUB rebuilds the command line from its arguments (grub-core/lib/cmdline.c): an
    argument with a space is wrapped in double quotes, and every ``\\``, ``'`` and ``"``
    in it gets a backslash, which the kernel does not remove.  So a kernel word's double
    quotes are dropped here and GRUB re-quotes the whole word (``x="a b"`` reaches the
    kernel as ``"x=a b"``, which it parses to the same parameter), and ``'`` and ``\\``
    are refused: they cannot reach the kernel unchanged through GRUB.
    """
    if "'" in cmdline or "\\" in cmdline:
        raise InvalidInputError(f"cmdline: GRUB would hand ' and \\ to the kernel with a backslash added "
                                f"(grub-core/lib/cmdline.c); found in {cmdline!r}")
    return [grub_quote(w.replace('"', "")) for w in kernel_cmdline_words(cmdline)]


def check_title(title: object, where: str = "title") -> str:
    """A menu entry's title: one line of printable text, 1..200 characters."""
    if not isinstance(title, str) or not title.strip():
        raise InvalidInputError(f"{where}: expected a non-empty menu title, found {title!r}")
    if len(title) > MAX_TITLE_CHARS or any(not ch.isprintable() for ch in title):
        raise InvalidInputError(f"{where}: a menu title is one line of at most {MAX_TITLE_CHARS} printable "
                                f"characters, found {title!r}")
    return title


@dataclass(frozen=True)
class MenuEntry:
    """One entry of the generated menu: ``title``, the kernel and initrd (host paths or bytes
    when given to :func:`~sysexport.boot.grub.boot_contribution`, which stores each once and
    names them in the image; image paths in :func:`make_grub_cfg`), the kernel's ``cmdline``."""

    title: str
    kernel: KernelSource
    initrd: KernelSource | None = None
    cmdline: str = ""

    def check(self, where: str = "entry") -> None:
        """Refuse what the menu cannot say: a bad title, a command line GRUB would change."""
        check_title(self.title, f"{where} title")
        grub_linux_args(self.cmdline)

    @classmethod
    def parse(cls, spec: str, option: str = "--entry") -> MenuEntry:
        """``TITLE|KERNEL|INITRD|CMDLINE`` (INITRD may be empty for none; CMDLINE and its '|'
        may be left out; CMDLINE may itself hold '|')."""
        parts = spec.split("|", 3)
        if len(parts) < 2:
            raise InvalidInputError(f"{option} {spec!r}: expected TITLE|KERNEL|INITRD|CMDLINE")
        title, kernel = parts[0], parts[1]
        initrd = parts[2] if len(parts) > 2 and parts[2] else None
        cmdline = parts[3] if len(parts) > 3 else ""
        if not kernel:
            raise InvalidInputError(f"{option} {spec!r}: the KERNEL part is empty (TITLE|KERNEL|INITRD|CMDLINE)")
        entry = cls(title, kernel, initrd, cmdline)
        try:
            entry.check()
        except InvalidInputError as e:
            raise InvalidInputError(f"{option} {spec!r}: {e}") from None
        return entry


def make_grub_cfg(*, marker: str, kernel: str | None = "boot/vmlinuz", initrd: str | None = "boot/initrd.img",
                  cmdline: str = "", serial: bool = True, timeout_s: int = 5, title: str = "Linux",
                  entries: Sequence[MenuEntry] = (), default_entry: int = 0) -> str:
    """A grub.cfg with a menu entry booting ``/kernel`` with ``/initrd`` and ``cmdline``
    (titled ``title``), then one per :class:`MenuEntry` of ``entries`` (image paths);
    ``default_entry`` is the one booted when ``timeout_s`` runs out (0: the first, as GRUB's
    ``set default`` counts).  ``serial``: GRUB's terminal on serial port 0 (115200 baud) as
    well as the console.

    It first reports on the console (and serial port 0) which platform GRUB runs on and
    the root device it found (``sysexport-boot: platform=pc root=cd END``), then
    ``sysexport-boot: marker ok END`` when the marker file is there: boot tests read these
    lines (short, so that GRUB's terminal never wraps them).
    """
    from .grub import check_marker
    check_marker(marker)
    if isinstance(timeout_s, bool) or not isinstance(timeout_s, int) or timeout_s < -1:
        raise InvalidInputError(f"timeout_s: expected an int >= -1, found {timeout_s!r}")
    menu = ([MenuEntry(check_title(title), kernel, initrd, cmdline)] if kernel is not None else []) + list(entries)
    if isinstance(default_entry, bool) or not isinstance(default_entry, int) \
            or not 0 <= default_entry < max(1, len(menu)):
        raise InvalidInputError(f"default entry {default_entry!r}: the menu has {len(menu)} entries, "
                                f"counted from 0")
    lines = ["# grub.cfg written by sysexport", f"set timeout={timeout_s}", f"set default={default_entry}"]
    if serial:
        lines += ["serial --unit=0 --speed=115200", "terminal_input serial console",
                  "terminal_output serial console"]
    lines += ['echo "sysexport-boot: platform=${grub_platform} root=${root} END"',
              f'if [ -f {marker} ]; then echo "sysexport-boot: marker ok END"; fi']
    for index, entry in enumerate(menu):
        lines += _entry_lines(entry, "sysexport-linux" if index == 0 else f"sysexport-linux-{index}")
    return "\n".join(lines) + "\n"


def _entry_lines(entry: MenuEntry, entry_id: str) -> list[str]:
    """One ``menuentry`` block: ``linux`` with the command line's words, ``initrd``."""
    entry.check()
    if not isinstance(entry.kernel, str) or (entry.initrd is not None and not isinstance(entry.initrd, str)):
        raise InvalidInputError(f"menu entry {entry.title!r}: kernel and initrd must be paths in the image here")
    words = grub_linux_args(entry.cmdline)
    out = [f"menuentry {grub_quote(entry.title)} --id {entry_id} {{",
           "  " + " ".join(["linux", grub_quote("/" + entry.kernel.lstrip("/")), *words])]
    if entry.initrd is not None:
        out.append(f"  initrd {grub_quote('/' + entry.initrd.lstrip('/'))}")
    out.append("}")
    return out


__all__ = ["MenuEntry", "check_title", "grub_linux_args", "grub_quote", "kernel_cmdline_words", "make_grub_cfg"]
