"""Waiting on an observable condition instead of sleeping for a guessed time (issue #17 §3).

A test that sleeps to let something happen either wastes the time or, on a busy machine,
checks too early. ``wait_for`` polls the condition itself, up to a deadline that scales with
PROXY_TEST_TIMEOUT_FACTOR (through TIMEOUT), and returns as soon as it holds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from tests.conftest import TIMEOUT

T = TypeVar("T")

#: Seconds between two looks at the condition: short against every wait in the tests.
POLL = 0.02


def wait_for(probe: Callable[[], T | None], what: str, timeout: float = TIMEOUT,
             default: bool = False) -> T:
    """Poll ``probe`` until it returns something truthy; fail after ``timeout`` seconds.

    With ``default=True`` give up quietly instead (returns None) — for clean-ups.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() >= deadline:
            if default:
                return None  # type: ignore[return-value]
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(POLL)
