"""``--workers N`` metrics on the real command (issue #16 part 3,
proxy/observe/metrics.py): whichever
worker answers a scrape reports the whole group, and ``--stats-interval`` logs one view.

As in test_workers, the other worker is stopped (SIGSTOP) while a session or scrape must
land on a given one.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import sys
import time
from contextlib import ExitStack

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import TIMEOUT
from tests.integration.conftest import StartProxy
from tests.integration.test_workers import (only, session_in, two_workers,
                                            wait_past_restart_min, workers_of)
from tests.support.backends import EchoBackend
from tests.support.inprocess import wait_for
from tests.support.wsclient import HTTPResponse, echo_session, raw_http

pytestmark = pytest.mark.integration


def scrape(port: int) -> dict[str, float]:
    """The page parsed by prometheus_client: ``name`` or ``name{k="v"}`` -> value."""
    request = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    response = raw_http(port, request)
    assert response.status == 200, response
    found = {}
    for family in text_string_to_metric_families(response.body.decode()):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            found[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return found


def scrape_via(worker: int, pids: list[int], port: int) -> dict[str, float]:
    with only(worker, pids):
        return scrape(port)


def test_every_worker_reports_the_group_totals(start_proxy: StartProxy,
                                               echo_backend: EchoBackend) -> None:
    """Sessions in both workers; scrapes alternate between them: counters never go back
    (they did: connections_total read 4, 5, 4, 6, ...) and sessions_total is exact."""
    proxy = start_proxy(echo_backend.port, "--workers", "2", "--metrics-path", "/metrics")
    pids = two_workers(proxy)
    seen: list[float] = []
    for round_ in range(3):
        for worker in pids:
            with only(worker, pids):
                echo_session(proxy.port, f"round {round_}".encode())
        for worker in (*pids, *reversed(pids)):
            samples = scrape_via(worker, pids, proxy.port)
            seen.append(samples["websockify_connections_total"])
    assert seen == sorted(seen), seen  # never decreasing, whichever worker answered
    final = wait_for(lambda: (lambda s: s if s['websockify_close_codes_total{code="1000"}'] == 6
                              else None)(scrape(proxy.port)), "six sessions counted")
    assert final["websockify_sessions_total"] == 6
    assert final['websockify_bytes_received_total{from="target"}'] == 6 * len(b"round 0")
    # The per-worker breakdown adds up to the totals (3 sessions each, plus scrapes).
    shares = [final[f'websockify_worker_connections_total{{worker="{n}"}}'] for n in (1, 2)]
    assert sum(shares) == final["websockify_connections_total"]
    assert all(share >= 3 for share in shares), shares


def test_gauges_are_sums_and_live_bytes_reach_the_other_worker(
        start_proxy: StartProxy, echo_backend: EchoBackend) -> None:
    proxy = start_proxy(echo_backend.port, "--workers", "2", "--metrics-path", "/metrics")
    pids = two_workers(proxy)
    with session_in(pids[0], pids, proxy.port) as client:  # one echo of b"ping" done
        client.echo(b"x" * 1000)

        def published() -> dict[str, float] | None:
            samples = scrape_via(pids[1], pids, proxy.port)
            done = samples['websockify_bytes_received_total{from="target"}'] == 1004
            return samples if done else None
        samples = wait_for(published, "worker 1's live bytes in worker 2's scrape")
        assert samples["websockify_sessions_open"] == 1
        assert samples['websockify_worker_sessions_open{worker="1"}'] == 1
        assert samples['websockify_worker_sessions_open{worker="2"}'] == 0
        # The session and this scrape, one in each worker.
        assert samples["websockify_connections_open"] == 2
        client.close(1000)
        client.recv_close()


@pytest.mark.slow  # waits out RESTART_MIN (1 s)
def test_a_restarted_worker_keeps_the_counters(start_proxy: StartProxy,
                                               echo_backend: EchoBackend) -> None:
    proxy = start_proxy(echo_backend.port, "--workers", "2", "--metrics-path", "/metrics")
    first, second = pids = two_workers(proxy)
    for _ in range(2):
        with only(first, pids):
            echo_session(proxy.port, b"before the crash")
    client = session_in(first, pids, proxy.port)  # open when its worker dies
    before = scrape_via(second, pids, proxy.port)
    wait_past_restart_min(first)
    os.kill(first, signal.SIGKILL)
    client.close_socket()
    proxy.wait_for_log("restarting it")
    assert wait_for(lambda: len(workers_of(proxy)) == 2 and first not in workers_of(proxy),
                    "the new worker")
    new = next(pid for pid in workers_of(proxy) if pid != second)
    after = scrape_via(new, workers_of(proxy), proxy.port)
    assert after["websockify_sessions_total"] == before["websockify_sessions_total"] == 3
    assert after["websockify_connections_total"] > before["websockify_connections_total"]
    assert after["websockify_sessions_open"] == 0  # it died with the worker
    assert after['websockify_bytes_received_total{from="target"}'] >= \
        before['websockify_bytes_received_total{from="target"}']


@pytest.mark.slow  # waits for eight stats lines, 0.3 s apart
def test_stats_interval_logs_the_group_once(start_proxy: StartProxy,
                                            echo_backend: EchoBackend) -> None:
    proxy = start_proxy(echo_backend.port, "--workers", "2", "--stats-interval", "0.3")
    pids = two_workers(proxy)
    for worker in pids:
        with only(worker, pids):
            echo_session(proxy.port, b"abc")
    # Each worker logged its own line (sessions=1 twice) before; now one line, the sum.
    line = wait_for(lambda: next((line for line in proxy.stderr_lines()
                                  if "sessions=2 relaying=0 " in line), None),
                    "a stats line with both sessions ended")
    assert re.match(r"stats: open=0 total=\d+ sessions=2 relaying=0 failed=0 "
                    r"bytes_from_client=\d+ bytes_from_target=6 close_codes=1000=2$", line), line

    def stats_after(count: int) -> list[str] | None:
        """The stats lines once ``count`` more have come after ``line``."""
        stats = [line for line in proxy.stderr_lines() if line.startswith("stats: ")]
        later = stats[stats.index(line) + 1:]
        return later if len(later) >= count else None

    later = wait_for(lambda: stats_after(3), "three more stats lines")
    assert not any("sessions=1 " in line for line in later), later
    # One worker logs: one line per 0.3 s, not two. Five more lines take at least four
    # intervals (a busy machine only makes them later); two loggers would take half that.
    started = time.monotonic()
    seen = len(stats_after(0) or [])  # read after the clock: a line in between only adds time
    wait_for(lambda: stats_after(seen + 5), "five more stats lines")
    assert time.monotonic() - started >= 4 * 0.3 - 0.1


#: The command with a hard open-file limit of 120: the automatic --max-connections of
#: each worker is then 120 * 0.9 // 2 = 54 (proxy.access.admission).
LIMITED = ("import resource, runpy; resource.setrlimit(resource.RLIMIT_NOFILE, (120, 120)); "
           "runpy.run_module('proxy', run_name='__main__')")
PER_WORKER_LIMIT = 54
HEALTH = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"


def health_via(worker: int, pids: list[int], port: int) -> HTTPResponse:
    with only(worker, pids):
        return raw_http(port, HEALTH)


def test_health_answers_for_the_group_whichever_worker_is_asked(
        start_proxy: StartProxy, echo_backend: EchoBackend) -> None:
    """One worker at its automatic limit refuses what it takes: health is 503 from both
    (the other worker answered 200 before)."""
    proxy = start_proxy(echo_backend.port, "--workers", "2", "--health-path", "/healthz",
                        command=[sys.executable, "-c", LIMITED])
    full, other = pids = two_workers(proxy)
    assert health_via(other, pids, proxy.port).status == 200
    with ExitStack() as held:
        with only(full, pids):
            # Requests begun and never finished: admitted until the 10 s request timeout.
            for _ in range(PER_WORKER_LIMIT):
                sock = held.enter_context(socket.create_connection(("127.0.0.1", proxy.port),
                                                                   timeout=TIMEOUT))
                sock.sendall(b"G")
            assert wait_for(lambda: raw_http(proxy.port, HEALTH).status == 503,
                            "the full worker's own health 503")
        answer = health_via(other, pids, proxy.port)
    assert (answer.status, answer.body) == (503, b"at connection limit\n")
