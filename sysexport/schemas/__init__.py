"""JSON Schemas of what the commands print with ``--json`` (package data).

One file per command that takes ``--json`` (``build.json``, ``live.json``, ``initramfs.json``,
``export.json``, ``inspect.json``, ``ls.json``, ``extract.json``, ``verify.json``; a new command
adds its own) and two that they refer to
(``hybrid.json``: what a hybrid image got; ``common.json``: entry types and a view's
entries).  Each has an ``$id`` ``urn:sysexport:schema:NAME``; :func:`load` reads one,
:func:`load_all` every one (for a validator's registry: the ``jsonschema`` package is
needed only by whoever validates, the tests here, not by sysexport).
"""
from __future__ import annotations

import json
from importlib import resources
from typing import Any

SCHEMA_ID_PREFIX = "urn:sysexport:schema:"
SHARED_SCHEMAS = ("common", "hybrid")
"""Schemas of pieces the commands' schemas refer to (not of a command)."""


def command_schemas() -> tuple[str, ...]:
    """The commands that have a schema: every ``NAME.json`` here but the shared ones.  A
    command that takes ``--json`` must have one (tests/test_json.py checks both ways)."""
    names = (e.name[:-5] for e in resources.files(__name__).iterdir() if e.name.endswith(".json"))
    return tuple(sorted(n for n in names if n not in SHARED_SCHEMAS))


def load(name: str) -> dict[str, Any]:
    """The schema ``name`` (a command's name, ``hybrid`` or ``common``)."""
    text = resources.files(__name__).joinpath(f"{name}.json").read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def load_all() -> dict[str, dict[str, Any]]:
    """Every schema of the package by its ``$id``."""
    out = {}
    for entry in resources.files(__name__).iterdir():
        if entry.name.endswith(".json"):
            schema = json.loads(entry.read_text(encoding="utf-8"))
            out[schema["$id"]] = schema
    return out


__all__ = ["SCHEMA_ID_PREFIX", "SHARED_SCHEMAS", "command_schemas", "load", "load_all"]
