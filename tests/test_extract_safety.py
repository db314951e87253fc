"""View.extract never writes outside its destination, whatever names and links an image holds.

The views here are built in memory from hostile entry lists (what a crafted image's
directories would give a format's view), so that every trap is reached exactly."""
from __future__ import annotations

import io
import os
import stat

import pytest

from sysexport.errors import InvalidImageError, SysExportError
from sysexport.image import Stat, View


class MemoryView(View):
    """A view over entries listed per directory: an entry whose path is ``/dir/name`` is a
    child of ``/dir``; a hostile name (``..``) stays as the format would report it."""

    name = "memory"

    def __init__(self, entries: list[Stat], data: dict[str, bytes] | None = None) -> None:
        self.entries = entries
        self.data = data or {}

    def _root(self) -> Stat:
        return Stat("/", "dir", mode=0o40755)

    def _children(self, directory: Stat) -> list[Stat]:
        return [e for e in self.entries if (e.path.rsplit("/", 1)[0] or "/") == directory.path and e is not directory]

    def _content(self, entry: Stat):
        return io.BytesIO(self.data.get(entry.path, b""))


def _outside(tmp_path, dest):
    """Every file below tmp_path that is not below dest (the destination)."""
    found = []
    for root, dirs, files in os.walk(tmp_path):
        for n in dirs + files:
            p = os.path.join(root, n)
            if not (p + "/").startswith(str(dest) + "/"):
                found.append(p)
    return found


def test_dotdot_and_absolute_names(tmp_path):
    dest = tmp_path / "dest"
    for hostile in ("/..", "/.", "/sub/.."):
        entries = [Stat("/ok.txt", "file", 2), Stat("/sub", "dir"), Stat(hostile, "dir"),
                   Stat(hostile + "/evil.txt", "file", 4)]
        v = MemoryView(entries, {"/ok.txt": b"ok", hostile + "/evil.txt": b"evil"})
        with pytest.raises(InvalidImageError, match="leave the destination"):
            v.extract(dest, force=True)
        assert _outside(tmp_path, dest) == []


def test_symlink_out_then_entry_below_it(tmp_path):
    """A symlink pointing outside, then a file 'under' it: the file must not land outside."""
    dest = tmp_path / "dest"
    outside = tmp_path / "outside"
    outside.mkdir()
    v = MemoryView([Stat("/link", "symlink", target=str(outside)), Stat("/link", "dir"),
                    Stat("/link/pwned.txt", "file", 5)], {"/link/pwned.txt": b"pwned"})
    with pytest.raises(SysExportError, match="not a directory|symlink is never followed"):
        v.extract(dest)
    assert os.listdir(outside) == []
    assert os.path.islink(dest / "link")


def test_symlink_planted_as_file_name(tmp_path):
    """An earlier symlink entry named like a later file: the file is not written through it."""
    dest = tmp_path / "dest"
    target = tmp_path / "victim"
    target.write_bytes(b"keep")
    v = MemoryView([Stat("/a", "symlink", target=str(target)), Stat("/a", "file", 3)], {"/a": b"new"})
    with pytest.raises(SysExportError, match="already exists"):
        v.extract(dest)
    assert target.read_bytes() == b"keep"
    # With force the symlink itself is replaced, its target untouched.
    dest2 = tmp_path / "dest2"
    v.extract(dest2, force=True)
    assert target.read_bytes() == b"keep" and (dest2 / "a").read_bytes() == b"new"
    assert not os.path.islink(dest2 / "a")


def test_devices_setuid_owners_and_hard_links(tmp_path):
    dest = tmp_path / "dest"
    v = MemoryView([Stat("/bin", "dir", mode=0o40755),
                    Stat("/bin/su", "file", 2, mode=0o104755, uid=1234, gid=1234, link_id=7),
                    Stat("/bin/su2", "file", 2, mode=0o104755, uid=1234, gid=1234, link_id=7),
                    Stat("/null", "chardev", mode=0o20666, rdev=(1, 3)),
                    Stat("/fifo", "fifo", mode=0o10644)], {"/bin/su": b"su", "/bin/su2": b"su"})
    written = v.extract(dest)
    st = os.stat(dest / "bin" / "su")
    assert stat.S_IMODE(st.st_mode) == 0o755               # no setuid without same_owner
    assert st.st_uid == os.getuid()                         # no owner without same_owner
    assert os.stat(dest / "bin" / "su2").st_ino == st.st_ino     # a hard link stays one
    assert not os.path.exists(dest / "null") and "null" not in written   # no device without devices
    assert stat.S_ISFIFO(os.lstat(dest / "fifo").st_mode)
    if os.getuid() == 0:
        dest2 = tmp_path / "dest2"
        v.extract(dest2, devices=True, same_owner=True)
        st2 = os.stat(dest2 / "bin" / "su")
        assert stat.S_IMODE(st2.st_mode) == 0o4755 and st2.st_uid == 1234
        dev = os.lstat(dest2 / "null")
        assert stat.S_ISCHR(dev.st_mode) and (os.major(dev.st_rdev), os.minor(dev.st_rdev)) == (1, 3)
    assert [p for p in _outside(tmp_path, dest) if "dest2" not in p] == []


def test_existing_files_need_force(tmp_path):
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "x").write_bytes(b"old")
    v = MemoryView([Stat("/x", "file", 3)], {"/x": b"new"})
    with pytest.raises(SysExportError, match="already exists"):
        v.extract(dest)
    assert (dest / "x").read_bytes() == b"old"
    v.extract(dest, force=True)
    assert (dest / "x").read_bytes() == b"new"


def test_directory_loop_is_an_error(tmp_path):
    class Loop(MemoryView):
        def _children(self, directory):
            return [Stat(directory.path.rstrip("/") + "/again", "dir", link_id="same")]
    with pytest.raises(InvalidImageError, match="loop"):
        list(Loop([]).walk())
