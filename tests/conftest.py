"""Shared test machinery.

Under CI (SYSEXPORT_NO_SKIP=1, set by .ci/run) a missing tool is a failure, and any
skipped test makes the whole run fail: every reader and firmware must really run there.
"""
from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

NO_SKIP = bool(os.environ.get("SYSEXPORT_NO_SKIP"))


def pytest_sessionfinish(session, exitstatus):
    if not NO_SKIP:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if skipped:
        if reporter:
            reporter.write_line(f"SYSEXPORT_NO_SKIP: {len(skipped)} test(s) skipped; failing the run", red=True)
        session.exitstatus = 1


@pytest.fixture
def sde(monkeypatch):
    """A fixed SOURCE_DATE_EPOCH (2023-11-14 22:13:20 UTC) for reproducible builds."""
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    return 1700000000
