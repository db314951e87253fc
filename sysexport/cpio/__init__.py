"""CPIO "newc" archives, as the Linux kernel unpacks them into its initramfs.

Linux ``Documentation/driver-api/early-userspace/buffer-format.rst`` and
``init/initramfs.c``; the newc variant of SVR4 cpio.  The package is split like the other
formats (docs/architecture.md):

* :mod:`._structs`: the 110-byte header declared with construct and ``FAST_CODECS`` for the
  property test; :mod:`.newc`: the format's constants and the writer's fast headers, without
  construct (the writer's path imports no construct: ``NEWC_HEADER``, ``HEX8`` and
  ``iter_newc`` are imported here when first used);
* :mod:`.writer`: :class:`CPIO` (the :class:`~sysexport.writer.Writer`), streaming; its
  records in :mod:`.entries` (:class:`CPIOPlan`, :class:`CPIOEntry`), the checks of what newc
  and the kernel hold in :mod:`.rules`, what it remembers (bounded) in :mod:`.namespace`,
  the host-tree walk in :mod:`.walk`, the output and the compressing thread in :mod:`.sink`,
  :meth:`CPIO.from_image` in :mod:`.remaster`;
* :mod:`.reader`: :func:`iter_newc`, the entries of an uncompressed archive;
* :mod:`.cli`: the ``sysexport initramfs`` command.

Everything is re-exported here: ``from sysexport.cpio import CPIO`` and friends.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .cli import add_cli_initramfs, cli_initramfs
from .newc import (FIELD_NAMES, MAX_FIELD, NEWC_ALIGN_BYTES, NEWC_HEADER_BYTES, NEWC_MAGIC, TRAILER_NAME,
                   build_header_fast)
from .writer import COMPRESSIONS, CPIO, GZIP_LEVEL, WINDOW_ENTRIES, XZ_PRESET, ZSTD_LEVEL, CPIOEntry, CPIOPlan

if TYPE_CHECKING:
    from ._structs import HEX8, NEWC_HEADER
    from .reader import iter_newc

_WITH_CONSTRUCT = {"HEX8": "._structs", "NEWC_HEADER": "._structs", "iter_newc": ".reader"}
"""Names whose modules import construct: imported when first used, so that writing an
archive (``sysexport initramfs``) starts without it."""


def __getattr__(name: str) -> Any:
    if name in _WITH_CONSTRUCT:
        import importlib
        value = getattr(importlib.import_module(_WITH_CONSTRUCT[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["CPIO", "CPIOPlan", "CPIOEntry", "NEWC_HEADER", "build_header_fast", "iter_newc",
           "add_cli_initramfs", "cli_initramfs", "COMPRESSIONS", "FIELD_NAMES", "HEX8", "MAX_FIELD",
           "NEWC_ALIGN_BYTES", "NEWC_HEADER_BYTES", "NEWC_MAGIC", "TRAILER_NAME", "GZIP_LEVEL", "XZ_PRESET",
           "ZSTD_LEVEL", "WINDOW_ENTRIES"]
