"""Property tests: random trees (unicode names, dots, spaces, long names, depth, sizes),
written and then read back by fsck.fat, mtools, 7-Zip and The Sleuth Kit."""
from __future__ import annotations

import os
import shutil
import stat
import tempfile

from hypothesis import HealthCheck, given, settings, strategies as st

from sysexport import VFAT
from sysexport.vfat.names import FORBIDDEN_CHARS, fold
from test_vfat_check import check_all

NAME_CHARS = st.one_of(
    st.sampled_from("abcXYZ0189 ._-~!#$%&'()@^`{}+,;=[]"),
    st.sampled_from("éÉüßøÆΩжЖ日本語ファイルĀāǅ"),
    st.characters(min_codepoint=0x20, max_codepoint=0xFFFD,
                  blacklist_categories=("Cs", "Cc", "Co", "Cn", "Zl", "Zp")),
)


def valid(name: str) -> bool:
    return (not any(c in FORBIDDEN_CHARS for c in name) and not name.endswith((".", " "))
            and name not in (".", "..") and len(name.encode("utf-8")) <= 255   # host file system limit
            and len(name.encode("utf-16-le")) // 2 <= 255)


names = st.one_of(
    st.text(NAME_CHARS, min_size=1, max_size=12),
    st.text(NAME_CHARS, min_size=1, max_size=255),
    st.from_regex(r"[a-zA-Z0-9]{1,8}(\.[a-zA-Z0-9]{1,3})?", fullmatch=True),
).filter(valid)


@st.composite
def trees(draw):
    files: dict[str, bytes] = {}
    dirs: set[str] = set()
    folded: dict[str, set[str]] = {}

    def fresh(parent: str) -> str | None:
        name = draw(names)
        key = fold(name)
        seen = folded.setdefault(parent, set())
        if key in seen:
            return None
        seen.add(key)
        return f"{parent}/{name}" if parent else name

    def fill(parent: str, depth: int) -> None:
        for _ in range(draw(st.integers(0, 6 if depth else 8))):
            path = fresh(parent)
            if path is None:
                continue
            if depth < 3 and draw(st.integers(0, 3)) == 0:
                dirs.add(path)
                fill(path, depth + 1)
            else:
                size = draw(st.sampled_from([0, 1, 511, 512, 2048, 4097, 70000]) |
                            st.integers(0, 70000))
                files[path] = bytes([len(path) % 251]) * size
    fill("", 0)
    return files, dirs


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.data_too_large])
@given(tree=trees(), fat_type=st.sampled_from([None, 12, 16, 32]), sector_size=st.sampled_from([512, 4096]),
       align=st.sampled_from([None, 512, 2048, 4096]), volume_offset=st.sampled_from([0, 4096, 1 << 20]))
def test_random_trees(tree, fat_type, sector_size, align, volume_offset):
    files, dirs = tree
    tmp = tempfile.mkdtemp(prefix="vfat-prop-")
    try:
        dev = os.path.join(tmp, "dev.img")
        with open(dev, "wb") as fh:
            v = VFAT(filehandle=fh, volume_label="PROP", fat_type=fat_type, sector_size=sector_size,
                     volume_offset=volume_offset, default_time=1700000000)
            for d in sorted(dirs):
                v.add(("dir", d))
            for name, data in files.items():
                spec = {"name": name, "mode": stat.S_IFREG | 0o644, "data": data}
                if align:
                    spec["device_align"] = align
                v.add(spec)
            v.finish()
        size = v.geometry.size_bytes
        with open(dev, "rb") as fh:
            for name, data in files.items():
                p = v.lookup(name)
                if data:
                    if align:
                        assert p.device_offset % align == 0
                    fh.seek(p.device_offset)
                    assert fh.read(len(data)) == data
        vol = os.path.join(tmp, "vol.img")
        with open(dev, "rb") as src, open(vol, "wb") as dst:
            src.seek(volume_offset)
            shutil.copyfileobj(src, dst)
        assert os.path.getsize(vol) == size
        check_all(vol, files, dirs, "PROP", tmp)
    finally:
        shutil.rmtree(tmp)
