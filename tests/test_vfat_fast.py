"""The VFAT writer's per-file fast paths (issue 16), checked by readers nobody here wrote.

Small host files are read straight into a buffer per run of clusters and written with one
pwrite; large ones and in-memory data go through their data source; a file placed on a
device boundary above the cluster size leaves free clusters (FAT entries 0) between runs;
short names are made when a directory is written; add() checks case twins with an index
that keeps no copy of all-lower-case names.  fsck.fat, mtools and 7-Zip must see every
file with its bytes, and the FAT and FSInfo must be right.
"""
from __future__ import annotations

import os
import random
import shutil
import stat

import pytest

from sysexport import VFAT
from sysexport.data import SMALL_FILE_BYTES
from sysexport.errors import InvalidInputError, SourceError
from sysexport.vfat.filedata import BATCH_BYTES
from test_vfat_check import check_all

T0 = 1_700_000_000


def _write_tree(root: str, rng: random.Random) -> tuple[dict[str, bytes], set[str]]:
    """A host tree: a directory of 1,200 small files (some empty, some all zeros) whose names
    share one basis, one where small and large files alternate (a batch must end before each
    large file, which is written by its source), and one of names in several cases and
    scripts.  Returns the files' bytes by path and the directories."""
    files: dict[str, bytes] = {}
    for i in range(1200):
        size = rng.choice([0, 1, 511, 1024, 2047, 2048, 2049, 5000])
        data = bytes(size) if i % 97 == 0 else rng.randbytes(size)
        files[f"many/file{i:05d}.txt"] = data
    for i in range(12):
        size = rng.choice([SMALL_FILE_BYTES, SMALL_FILE_BYTES + 1, 3 * SMALL_FILE_BYTES, 700])
        files[f"mixed/part{i:02d}.bin"] = rng.randbytes(size)
    for name in ("Makefile", "README", "\u017ftrange.txt", "caf\u00e9.txt", "x.TXT", "Long File Name.html"):
        files[f"names/{name}"] = rng.randbytes(rng.randrange(1, 3000))
    for path, data in files.items():
        os.makedirs(os.path.join(root, os.path.dirname(path)), exist_ok=True)
        with open(os.path.join(root, path), "wb") as f:
            f.write(data)
        os.utime(os.path.join(root, path), (T0 + rng.random() * 1e6, T0 + rng.random() * 1e6))
    return files, {"many", "mixed", "names"}


@pytest.mark.parametrize("fat_type", [16, 32])
def test_many_small_and_large_host_files(tmp_path, fat_type):
    host = str(tmp_path / "host")
    files, dirs = _write_tree(host, random.Random(fat_type))
    assert sum(len(d) for d in files.values()) > 2 * BATCH_BYTES      # several batches
    img = str(tmp_path / "fat.img")
    w = VFAT(img, volume_label="FAST", fat_type=fat_type, default_time=T0)
    w.add_tree(host)
    plan = w.finish()
    check_all(img, files, dirs, "FAST", str(tmp_path), readers=("fsck", "mtools", "7z"))
    offsets = dict(plan.file_offsets())
    for node in w.tree.walk():
        if node.children is None:
            assert offsets.get(node) == plan.device_offset_of(node) == w.lookup(node.path).device_offset


@pytest.mark.parametrize("fat_type", [12, 32])
def test_files_aligned_above_the_cluster_size_leave_free_clusters(tmp_path, fat_type):
    """device_align 8192 with 2 KiB clusters: free clusters before most files, the FAT
    holds 0 for them, FSInfo counts them free (fsck.fat checks both), every file where
    it says, each aligned."""
    rng = random.Random(7)
    files = {}
    w = VFAT(str(tmp_path / "dev.img"), volume_offset=7 * 512, cluster_size=2048, fat_type=fat_type,
             default_time=T0)
    for i in range(40):
        data = rng.randbytes(rng.choice([100, 2048, 3000, 9000, SMALL_FILE_BYTES + 5]))
        path = f"d{i % 3}/f{i}.dat"
        host = tmp_path / f"src{i}"
        host.write_bytes(data)
        spec = {"name": path, "mode": stat.S_IFREG | 0o644, "data_path": str(host)}
        if i % 4:
            spec["device_align"] = 8192
        w.add(spec)
        files[path] = data
    plan = w.finish()
    for i in range(40):
        if i % 4:
            assert w.lookup(f"d{i % 3}/f{i}.dat").device_offset % 8192 == 0
    with open(tmp_path / "dev.img", "rb") as f:
        f.seek(plan.volume_offset)
        (tmp_path / "vol.img").write_bytes(f.read(plan.size_bytes))
    check_all(str(tmp_path / "vol.img"), files, {"d0", "d1", "d2"}, "", str(tmp_path), readers=("fsck", "mtools"))


def test_a_small_file_changed_or_gone_before_writing(tmp_path):
    """The fast read finds it; the error is the data source's own, naming the file."""
    host = tmp_path / "host"
    host.mkdir()
    for name in ("a.txt", "b.txt", "c.txt"):
        (host / name).write_bytes(b"x" * 100)
    w = VFAT(str(tmp_path / "out.img"))
    w.add_tree(str(host))
    (host / "b.txt").write_bytes(b"x" * 101)
    with pytest.raises(SourceError, match=r"b\.txt.*changed size"):
        w.finish()
    assert not (tmp_path / "out.img").exists()
    w = VFAT(str(tmp_path / "out.img"))
    w.add_tree(str(host))
    (host / "c.txt").unlink()
    with pytest.raises(SourceError, match=r"c\.txt"):
        w.finish()
    assert not (tmp_path / "out.img").exists()
    shutil.rmtree(host)


@pytest.mark.parametrize("first,second,twin", [
    ("d/s.txt", "d/\u017f.txt", "s.txt"),           # long s folds to S
    ("d/\u017f.txt", "d/S.TXT", "\u017f.txt"),
    ("d/Makefile", "d/makefile", "Makefile"),
    ("d/makefile", "d/MAKEFILE", "makefile"),
    ("d/caf\u00e9", "d/CAF\u00c9", "caf\u00e9"),
    ("A/x", "a/y", "A"),                            # an implied directory
    ("d/\u0131x", "d/IX", "\u0131x"),                 # dotless i folds to I
])
def test_case_twins_are_refused_by_add(first, second, twin):
    w = VFAT()
    w.add({"name": first, "mode": stat.S_IFREG | 0o644, "data": b"1"})
    with pytest.raises(InvalidInputError, match=f"differs only by case from {twin!r}"):
        w.add({"name": second, "mode": stat.S_IFREG | 0o644, "data": b"2"})


def test_case_index_follows_remove_and_rename():
    w = VFAT()
    f = stat.S_IFREG | 0o644
    w.add({"name": "d/Makefile", "mode": f, "data": b"1"})
    w.add({"name": "d/k", "mode": f, "data": b"1"})
    w.add({"name": "d/\u212a", "mode": f, "data": b"1"})     # the Kelvin sign does not fold to K
    w.remove("d/Makefile")
    w.add({"name": "d/makefile", "mode": f, "data": b"2"})
    w.rename("d/makefile", "d/GNUmakefile")
    w.add({"name": "d/MAKEFILE", "mode": f, "data": b"3"})
    with pytest.raises(InvalidInputError, match="differs only by case from 'GNUmakefile'"):
        w.add({"name": "d/gnumakefile", "mode": f, "data": b"4"})
    with pytest.raises(InvalidInputError, match="differs only by case from 'k'"):
        w.add({"name": "d/K", "mode": f, "data": b"4"})
