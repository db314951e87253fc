"""verify's data check on a hostile image: records naming overlapping extents cannot make
it read without bound (sysexport/image/verify.py, DATA_BUDGET_*)."""
from __future__ import annotations

import os
import time

from sysexport import ISO9660
from sysexport.image import open as open_image
from sysexport.image import verify as verify_mod
from sysexport.image.verify import verify
from sysexport.iso9660.reader import ISO9660Reader

BIG_BYTES = 1 << 20


def both(n: int) -> bytes:
    return n.to_bytes(4, "little") + n.to_bytes(4, "big")


def test_overlapping_extents_are_read_within_the_budget(tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    monkeypatch.setattr(verify_mod, "DATA_BUDGET_EXTRA_BYTES", 16 << 20)    # 256 MiB: the same, slower
    count = 40                                    # 40 records of 1 MiB each: past a budget of about 22 MiB
    path = str(tmp_path / "hostile.iso")
    iso = ISO9660(path)
    iso.add(("file", "big", os.urandom(BIG_BYTES)))
    for i in range(count):
        iso.add(("file", f"f{i:03d}", f"{i}".encode()))
    iso.finish()
    with open_image(path) as img:                 # as written: every file read once, no problem
        control = [c for c in verify(img) if c.name == "file data"][0]
    assert control.ok and control.detail == f"{count + 1} files, {BIG_BYTES + sum(len(str(i)) for i in range(count)):,} bytes read"
    raw = bytearray(open(path, "rb").read())
    with ISO9660Reader(path) as r:
        big_lba = r.find("big").extents[0][0] // 2048
        for i in range(count):
            entry = r.find(f"f{i:03d}")
            (offset, size), = entry.extents
            lba = offset // 2048
            old = both(lba) + both(size)
            assert raw.count(old) >= 1
            raw[:] = raw.replace(old, both(big_lba) + both(BIG_BYTES - i))      # each a different size
    with open(path, "wb") as f:
        f.write(raw)
    started = time.monotonic()
    with open_image(path) as img:
        budget = verify_mod.DATA_BUDGET_FACTOR * img.size_bytes + verify_mod.DATA_BUDGET_EXTRA_BYTES
        checks = verify(img)
    data = [c for c in checks if c.name == "file data"][0]
    assert not data.ok and "overlapping extents" in data.problems[-1], data
    read = int(data.detail.split(" files, ")[1].split(" bytes")[0].replace(",", ""))
    assert budget - 2 * BIG_BYTES < read <= budget, (read, budget)
    assert time.monotonic() - started < 30
