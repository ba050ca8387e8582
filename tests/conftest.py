"""Shared test configuration: the TIMEOUT scale, scaled() bounds and a thread-leak check.

Markers (``integration``, ``slow``, ``node``) are declared in setup.cfg.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator

import pytest

#: Slow machines (CI under load, valgrind, coverage) set PROXY_TEST_TIMEOUT_FACTOR: it scales
#: every wait and every elapsed-time or CPU-time bound in the tests.
TIMEOUT_FACTOR = float(os.environ.get("PROXY_TEST_TIMEOUT_FACTOR", "1"))

#: Base timeout for every socket, ``Event.wait`` and ``join`` in the tests.
TIMEOUT = 5.0 * TIMEOUT_FACTOR


def scaled(seconds: float) -> float:
    """An elapsed-time or CPU-time bound that holds on an idle machine, scaled like TIMEOUT,
    so that a busy 2-core CI machine cannot make it fail (issue #17 §3)."""
    return seconds * TIMEOUT_FACTOR


def _live_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.is_alive()}


@pytest.fixture(autouse=True)
def no_thread_leak() -> Iterator[None]:
    """Fail a test that leaves threads running (CPython's threading_setup/threading_cleanup).

    Threads get up to TIMEOUT to finish after the test body and its fixtures return.
    """
    before = _live_threads()
    yield
    deadline = time.monotonic() + TIMEOUT
    leaked = _live_threads() - before
    while leaked and time.monotonic() < deadline:
        for thread in leaked:
            thread.join(timeout=max(0.0, min(0.05, deadline - time.monotonic())))
        leaked = {t for t in leaked if t.is_alive()}
    assert not leaked, f"threads still running after the test: {sorted(t.name for t in leaked)}"
