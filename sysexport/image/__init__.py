"""Reading images: :func:`open` finds every structure and view of an image (see view.py for
what a view offers)."""
from __future__ import annotations

from .view import ExtentReader, Stat, View, normalize

__all__ = ["ExtentReader", "Stat", "View", "normalize"]
