"""Every ```python block of docs/guide.md runs as written, and its output files are valid."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from helpers import need, out

DOCS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "guide.md")
BLOCKS = re.findall(r"```python\n(.*?)```", open(DOCS, encoding="utf-8").read(), re.S)


def test_guide_has_examples():
    assert len(BLOCKS) >= 5


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_guide_example_runs(tmp_path, sde, index):
    code = BLOCKS[index]
    root = os.path.dirname(os.path.dirname(DOCS))
    p = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=root))
    assert p.returncode == 0, p.stderr
    for name in os.listdir(tmp_path):
        path = str(tmp_path / name)
        if name.endswith((".img", ".iso")) and name not in ("esp.img", "bad.img", "initrd.img"):
            need("blkid")
            info = out(["blkid", "-p", "-o", "export", path], ok_codes=(0, 2))
            assert "TYPE=" in info or "PTTYPE=" in info, (name, info)
    assert not os.path.exists(tmp_path / "bad.img")
