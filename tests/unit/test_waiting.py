"""The tests wait on observable conditions, not on sleeps (issue #17 §3).

A sleep used to let something happen is too long on an idle machine and too short on a busy
one. Tests wait with ``tests/support/waiting.wait_for`` (or a helper built on a condition,
such as ``ProxyProcess.wait_for_log``). The few sleeps that are no synchronisation, a window
a CPU time is measured over or the pace of a slow peer, say so on their line. The helpers in
``tests/support`` are where the polling lives, so they are not checked here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.support.waiting import wait_for

TESTS = Path(__file__).resolve().parents[1]
MARK = "# not a wait:"


def sleep_calls(source: str) -> list[int]:
    """Line numbers of ``time.sleep(...)`` and ``sleep(...)`` calls in ``source``."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            func = node.func
            if (isinstance(func, ast.Attribute) and func.attr == "sleep"
                    and isinstance(func.value, ast.Name) and func.value.id == "time") or \
                    (isinstance(func, ast.Name) and func.id == "sleep"):
                lines.append(node.lineno)
    return lines


def unmarked_sleeps(source: str) -> list[int]:
    text = source.splitlines()
    return [n for n in sleep_calls(source) if MARK not in text[n - 1]]


def test_no_test_sleeps_to_synchronise() -> None:
    offenders = []
    for path in sorted(TESTS.rglob("test_*.py")):
        if "node_modules" in path.parts:
            continue
        source = path.read_text(encoding="utf-8")
        offenders += [f"{path.relative_to(TESTS)}:{n}" for n in unmarked_sleeps(source)]
    assert offenders == [], f"sleeps without '{MARK} ...' (use wait_for): {offenders}"


def test_the_check_finds_a_sleep_and_accepts_a_marked_one() -> None:
    source = ("import time\nfrom time import sleep\ntime.sleep(0.1)\nsleep(1)\n"
              f"time.sleep(1.0)  {MARK} a window\nprint('time.sleep(2)')\n")
    assert unmarked_sleeps(source) == [3, 4]


def test_wait_for_returns_the_first_truthy_value_and_fails_with_what_it_waited_for() -> None:
    values = iter([None, 0, "ready"])
    assert wait_for(lambda: next(values), "the value") == "ready"
    with pytest.raises(AssertionError, match="^timed out waiting for nothing$"):
        wait_for(lambda: None, "nothing", timeout=0.05)
    assert wait_for(lambda: None, "a clean-up", timeout=0.05, default=True) is None
