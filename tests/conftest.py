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


THREAD_PREFIX = "sysexport-"
"""The library names its worker threads so (the CPIO compressor, the hybrid's ESP writer)."""


def _sysexport_threads() -> set:
    """Those running: with a frame (is_alive() says False of a running thread whose join
    was interrupted by a signal handler's exception, CPython issue 90882)."""
    import threading
    running = sys._current_frames()
    return {t for t in threading.enumerate() if t.name.startswith(THREAD_PREFIX) and t.ident in running}


@pytest.fixture(autouse=True)
def no_thread_outlives_its_call():
    """Fail a test that leaves a sysexport thread running: a worker must be joined before
    the call that owns its descriptor returns (or, for a writer dropped unfinished, when it
    is collected), else it may write into a closed descriptor whose number another file
    has taken since (seen: compressed bytes in a later test's subprocess pipe)."""
    before = _sysexport_threads()
    yield
    left = _sysexport_threads() - before
    if left:
        import gc
        gc.collect()                    # a writer dropped in a reference cycle stops its thread
        left = _sysexport_threads() - before
    if left:
        pytest.fail(f"sysexport thread(s) still running after the test: {sorted(t.name for t in left)}",
                    pytrace=False)
