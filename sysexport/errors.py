"""Exceptions raised by sysexport.

Every error a caller can see is a :class:`SysExportError`.  Messages name the path or
field concerned, what was expected and what was found.
"""
from __future__ import annotations


class SysExportError(Exception):
    """Base class of every error sysexport raises on purpose."""


class InvalidInputError(SysExportError, ValueError):
    """The caller asked for something the format cannot hold (bad name, mode, key...)."""


class CallOrderError(InvalidInputError):
    """Calls came in an order the writer cannot honour: add() after plan(), finish() twice,
    write() with a plan from before the last plan()."""


class LayoutError(SysExportError):
    """The requested content does not fit the requested layout (size, alignment, overlap)."""


class InvalidImageError(SysExportError):
    """An image being read does not follow its format's rules."""


class InternalError(SysExportError):
    """A check of sysexport's own invariants failed: a bug, please report it."""
