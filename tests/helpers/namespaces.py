"""What each independent reader sees in each namespace of an image (issue 13's tests).

Every function runs a reader nobody here wrote and returns the set of paths it lists
(or {path: bytes} where the reader also reads), so that a test can say exactly which
tree each namespace must show: isoinfo's three views, bsdtar (Rock Ridge), xorriso
(Rock Ridge), pycdlib (iso_path, joliet_path, rr_path), mtools on a FAT volume.
"""
from __future__ import annotations

import io
import os

from . import need, out, run


def isoinfo_paths(image: str, namespace: str) -> set[str]:
    """``isoinfo -f`` in one view: "iso9660" (plain identifiers, ';1' dropped),
    "joliet" (-J, names converted to ISO 8859-1: isoinfo knows no UTF-8) or "rock_ridge"
    (-R); paths without the leading '/'."""
    need("isoinfo")
    flag = {"iso9660": [], "joliet": ["-J", "-j", "iso8859-1"], "rock_ridge": ["-R"]}[namespace]
    raw = run(["isoinfo", "-f", *flag, "-i", image]).stdout
    lines = raw.decode("latin-1" if namespace == "joliet" else "utf-8", "replace").splitlines()
    paths = set()
    for line in lines:
        if not line.strip():
            continue
        p = line.strip().lstrip("/")
        if namespace == "iso9660" and p.endswith(";1"):
            p = p[:-2].rstrip(".")
        paths.add(p)
    return paths


def bsdtar_paths(image: str) -> set[str]:
    """libarchive's listing (Rock Ridge names), directories without their '/'."""
    need("bsdtar")
    return {p.rstrip("/") for p in out(["bsdtar", "-tf", image]).splitlines() if p.rstrip("/") not in ("", ".")}


def bsdtar_read(image: str, path: str) -> bytes:
    """One file's bytes as libarchive extracts them."""
    return run(["bsdtar", "-xOf", image, path]).stdout


def xorriso_paths(image: str) -> set[str]:
    """libisoburn's ``-find /`` (Rock Ridge names), without the root."""
    need("xorriso")
    lines = out(["xorriso", "-indev", image, "-find", "/"]).splitlines()
    paths = set()
    for line in lines:
        line = line.strip()
        if line.startswith("'") and line.endswith("'"):
            p = line[1:-1].lstrip("/")
            if p:
                paths.add(p)
    return paths


def pycdlib_files(image: str, kind: str) -> dict[str, bytes]:
    """{path: bytes} of every regular file pycdlib finds by ``kind`` ("iso_path",
    "joliet_path", "rr_path"); directories as {path/: b""}.  ISO paths keep ';1'."""
    import pycdlib
    iso = pycdlib.PyCdlib()
    iso.open(image)
    try:
        seen: dict[str, bytes] = {}
        for dirpath, dirs, names in iso.walk(**{kind: "/"}):
            for d in dirs:
                seen[(dirpath.rstrip("/") + "/" + d).lstrip("/") + "/"] = b""
            for n in names:
                path = dirpath.rstrip("/") + "/" + n
                rec = iso.get_record(**{kind: path})
                if kind == "rr_path" and rec.rock_ridge is not None and rec.rock_ridge.is_symlink():
                    seen[path.lstrip("/")] = b"->" + rec.rock_ridge.symlink_path()
                    continue
                buf = io.BytesIO()
                iso.get_file_from_iso_fp(buf, **{kind: path})
                seen[path.lstrip("/")] = buf.getvalue()
        return seen
    finally:
        iso.close()


def pycdlib_record(image: str, **path: str) -> tuple[int, int, int | None]:
    """(extent LBA, data length, Rock Ridge link count or None) of one record, by pycdlib."""
    import pycdlib
    iso = pycdlib.PyCdlib()
    iso.open(image)
    try:
        rec = iso.get_record(**path)
        nlink = None
        if rec.rock_ridge is not None and rec.rock_ridge.dr_entries.px_record is not None:
            nlink = rec.rock_ridge.dr_entries.px_record.posix_file_links
        return rec.extent_location(), rec.get_data_length(), nlink
    finally:
        iso.close()


def mtools_paths(fat_image: str, offset: int = 0) -> set[str]:
    """mtools' recursive bare listing of a FAT volume (at ``offset`` bytes in the file)."""
    need("mdir")
    target = f"{fat_image}@@{offset}" if offset else fat_image
    lines = out(["mdir", "-/", "-b", "-i", target, "::"], env_extra={"MTOOLS_SKIP_CHECK": "1"}).splitlines()
    return {line[3:].rstrip("/") for line in lines if line.startswith("::/") and line.rstrip("/") != "::"}


def mtools_read(fat_image: str, path: str, offset: int = 0) -> bytes:
    """One file's bytes as mtools reads them."""
    target = f"{fat_image}@@{offset}" if offset else fat_image
    return run(["mtype", "-i", target, f"::/{path}"], env_extra={"MTOOLS_SKIP_CHECK": "1"}).stdout


def fsck_fat(fat_image: str) -> None:
    """``fsck.fat -n`` must find nothing wrong."""
    need("fsck.fat")
    run(["fsck.fat", "-n", "-V", fat_image])


def with_parents(paths: set[str]) -> set[str]:
    """``paths`` and every directory above them (what a recursive listing shows)."""
    full = set(paths)
    for p in paths:
        parts = p.split("/")
        for i in range(1, len(parts)):
            full.add("/".join(parts[:i]))
    return full


def esp_of(image: str, tmp: str) -> str:
    """The first GPT partition of a hybrid, cut out into ``tmp`` (sgdisk reads the table)."""
    from .hybrid_checks import gpt_partitions
    from . import cut
    start, size = gpt_partitions(image)[0]
    return cut(image, start, size, os.path.join(tmp, "esp.img"))
