"""``sysexport mkisofs``: the command line of ``xorriso -as mkisofs``, onto sysexport's writers.

:func:`~.options.parse_mkisofs_args` reads the options, :func:`~.build.build_mkisofs_image`
maps them onto a :class:`~.image.MkisofsImage` (or, with ``--sysexport-hybrid``, an
:class:`~sysexport.hybrid.ISO9660Hybrid`), :mod:`.cli` is the command.
"""
from __future__ import annotations

from .build import build_mkisofs_image
from .image import MkisofsImage, MkisofsPlan
from .options import MkisofsOptions, parse_mkisofs_args

__all__ = ["MkisofsImage", "MkisofsOptions", "MkisofsPlan", "build_mkisofs_image", "parse_mkisofs_args"]
