"""Hostile input at CI size: fuzzing, slowloris and soak against the real command (issue 9).

Full sizes run from ``scripts/fuzz``, ``scripts/slowloris`` and ``scripts/soak``; sizes and
results are in docs/reliability.rst. Each test checks the proxy process itself through
/proc: its open fds and threads return to the baseline taken before the load.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Iterator

import pytest

from tests.conftest import TIMEOUT
from tests.integration.conftest import StartProxy
from tests.support.hostile import (ProcessProbe, SoakBackend, echo_roundtrip, fuzz, slowloris,
                                   soak)
from tests.support.process import ProxyProcess

pytestmark = [pytest.mark.integration, pytest.mark.slow]

#: CI sizes (the issue's); PROXY_FUZZ_CASES etc. shrink or grow them.
FUZZ_CASES = int(os.environ.get("PROXY_FUZZ_CASES", "10000"))
SOAK_CYCLES = int(os.environ.get("PROXY_SOAK_CYCLES", "2000"))
SLOW_CONNECTIONS = int(os.environ.get("PROXY_SLOWLORIS_CONNECTIONS", "200"))
SEED = int(os.environ.get("PROXY_FUZZ_SEED", "9"))
#: Short deadlines make incomplete input end in 408 / close 1000 within a second.
FAST_DEADLINES = ("--handshake-timeout", "1", "--conn-idle-timeout", "1")


@pytest.fixture
def soak_backend() -> Iterator[SoakBackend]:
    with SoakBackend() as backend:
        yield backend
    assert not backend.errors, backend.errors


def _baseline(proxy: ProxyProcess) -> tuple[ProcessProbe, tuple[int, int]]:
    """The proxy's fds and threads once wait_port's probe connection is gone."""
    assert proxy.proc is not None
    probe = ProcessProbe(proxy.proc.pid)
    return probe, probe.idle(proxy.port, TIMEOUT)


def _assert_clean(proxy: ProxyProcess, probe: ProcessProbe, baseline: tuple[int, int]) -> None:
    after = probe.wait_for(baseline, 3 * TIMEOUT)
    assert after[0] <= baseline[0], f"fd leak: {baseline[0]} before, {after[0]} after"
    assert after[1] <= baseline[1], f"thread leak: {baseline[1]} before, {after[1]} after"
    err = proxy.stderr()
    assert "Traceback" not in err and "handler exception" not in err, err[-3000:]


@pytest.mark.timeout(400)
def test_fuzzed_handshakes_and_frames_each_get_an_answer_and_leak_nothing(
    start_proxy: StartProxy, soak_backend: SoakBackend
) -> None:
    proxy = start_proxy(soak_backend.port, *FAST_DEADLINES)
    probe, baseline = _baseline(proxy)
    report = fuzz(proxy.port, FUZZ_CASES, SEED, workers=32, time_limit=300)
    assert report.cases == FUZZ_CASES, f"only {report.cases} cases in {report.seconds:.0f} s"
    assert not report.bad, report.bad[:10]
    # Every case was answered: an HTTP status or a close code (or websockify's silent close).
    assert {label.split()[0] for label in report.outcomes} <= {"http", "close", "silent"}
    assert echo_roundtrip(proxy.port, os.urandom(100000)) < TIMEOUT
    _assert_clean(proxy, probe, baseline)


@pytest.mark.timeout(120)
def test_slowloris_connections_are_all_cut_at_the_deadline_while_good_clients_are_served(
    start_proxy: StartProxy, soak_backend: SoakBackend
) -> None:
    deadline = 3.0
    proxy = start_proxy(soak_backend.port, "--handshake-timeout", str(deadline))
    probe, baseline = _baseline(proxy)
    report = slowloris(proxy.port, SLOW_CONNECTIONS, interval=1.0, time_limit=deadline + 15)
    assert report.not_cut == 0
    assert len(report.cut_after) == SLOW_CONNECTIONS
    assert min(report.cut_after) >= deadline - 0.1
    assert max(report.cut_after) < deadline + 2.0, max(report.cut_after)
    assert report.answers == {"http 408": SLOW_CONNECTIONS}
    assert not report.good_failures, report.good_failures[:5]
    assert len(report.good_rtts) >= 5
    assert max(report.good_rtts) < 1.0, report.good_rtts
    _assert_clean(proxy, probe, baseline)


@pytest.mark.timeout(300)
def test_soak_with_mixed_abrupt_endings_keeps_every_byte_and_returns_to_baseline(
    start_proxy: StartProxy, soak_backend: SoakBackend
) -> None:
    proxy = start_proxy(soak_backend.port)
    probe, baseline = _baseline(proxy)
    report = soak(proxy.port, soak_backend, SOAK_CYCLES, SEED, workers=4, time_limit=240)
    assert report.cycles == SOAK_CYCLES, f"only {report.cycles} cycles in {report.seconds:.0f} s"
    assert not report.failures, report.failures[:10]
    assert report.bytes_checked > 0
    assert min(report.endings.values()) > 0 and len(report.endings) == 5
    assert statistics.mean([echo_roundtrip(proxy.port, b"x" * 1000) for _ in range(5)]) < 1
    _assert_clean(proxy, probe, baseline)
