"""Every writer meets the Writer protocol: plan() returns a frozen plan value, write(fd, plan)
writes it, add() after plan() and a second finish() are refused, a stale plan is refused."""
from __future__ import annotations

import dataclasses
import os

import pytest

from sysexport import CPIO, GPT, GPT_TYPE_LINUX_FS, ISO9660, VFAT, ISO9660Hybrid
from sysexport.errors import CallOrderError, InvalidInputError
from sysexport.writer import Writer

FILE = ("file", "hello.txt", b"hello\n")


def _writers(tmp_path):
    """(name, writer with one entry, how to add another) for every format writer."""
    gpt = GPT(str(tmp_path / "gpt.img"))
    gpt.add_partition(GPT_TYPE_LINUX_FS, 1 << 20, name="a")
    out = [("iso", ISO9660(str(tmp_path / "x.iso")), lambda w: w.add(FILE)),
           ("vfat", VFAT(str(tmp_path / "x.fat")), lambda w: w.add(FILE)),
           ("cpio", CPIO(str(tmp_path / "x.cpio")), lambda w: w.add(FILE)),
           ("hybrid", ISO9660Hybrid(str(tmp_path / "x.img")), lambda w: w.add(FILE)),
           ("gpt", gpt, lambda w: w.add_partition(GPT_TYPE_LINUX_FS, 1 << 20, name="b"))]
    for name, w, _add in out:
        if name != "gpt":
            w.add(("file", "first.txt", b"first\n"))
    return out


@pytest.mark.parametrize("which", ["iso", "vfat", "cpio", "hybrid", "gpt"])
def test_protocol_and_call_order(tmp_path, sde, which):
    (name, w, add), = [t for t in _writers(tmp_path) if t[0] == which]
    assert isinstance(w, Writer)
    plan = w.plan()
    assert dataclasses.is_dataclass(plan) and type(plan).__dataclass_params__.frozen
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(plan, dataclasses.fields(plan)[0].name, None)
    with pytest.raises(CallOrderError, match="already planned"):
        add(w)
    result = w.finish()
    target = [p for p in os.listdir(tmp_path) if not p.startswith(".")]
    assert len(target) == 1 and os.path.getsize(tmp_path / target[0]) > 0, target
    with pytest.raises(CallOrderError, match="already finished"):
        w.finish()
    with pytest.raises(CallOrderError):
        add(w)
    assert result is not None
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".")]     # no temporary file left


def test_stale_plans_are_refused(tmp_path, sde):
    iso = ISO9660()
    iso.add(FILE)
    old = iso.plan()
    iso.plan()
    with pytest.raises(CallOrderError, match="stale"):
        iso.write(0, old)
    fat = VFAT()
    fat.add(FILE)
    old_fat = fat.plan()
    fat.plan(volume_offset=1 << 20)
    with pytest.raises(CallOrderError, match="stale"):
        fat.write(0, old_fat)


def test_lookup_answers_from_the_plan(tmp_path, sde):
    iso = ISO9660()
    iso.add(("file", "a/b.txt", b"x" * 3000))
    with pytest.raises(CallOrderError):
        iso.lookup("a/b.txt")
    iso.plan()
    placed = iso.lookup("a/b.txt")
    assert placed.size_bytes == 3000 and placed.device_offset % 2048 == 0
    fat = VFAT(volume_offset=1 << 20)
    fat.add(("file", "k.txt", b"kernel"))
    with pytest.raises(CallOrderError):
        fat.lookup("k.txt")
    plan = fat.plan()
    assert fat.lookup("k.txt").device_offset >= 1 << 20 and plan.volume_offset == 1 << 20
    with pytest.raises(InvalidInputError):
        fat.lookup("missing")


def test_hybrid_plan_composes_its_parts(tmp_path, sde):
    """The hybrid's plan holds its parts' plans: the ISO points every shared file at its
    bytes in the ESP, both GPTs describe the same partitions, the summary is the plan's."""
    img = ISO9660Hybrid(str(tmp_path / "h.img"))
    img.add(("file", "shared.txt", b"s" * 5000))
    img.add(("file", "iso-only.txt", b"i" * 10), hybrid_target="iso")
    plan = img.plan()
    assert plan.iso.complete and plan.iso.volume_size_bytes == plan.device_size_bytes
    assert img.iso.lookup("shared.txt").device_offset == img.esp.lookup("shared.txt").device_offset
    assert [(p.device_offset, p.size_bytes) for p in plan.gpt4k.partitions] == \
        [(p.device_offset, p.size_bytes) for p in plan.gpt512.partitions]
    assert plan.gpt4k.partitions[0].device_offset == plan.esp.volume_offset
    assert plan.summary.fat_type == plan.esp.fat_type in (12, 16, 32)
    assert img.finish().fat_type == plan.esp.fat_type
