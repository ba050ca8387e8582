"""proxy.observe.metrics: the counters, the snapshot and the Prometheus text (issue 10)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from proxy.observe import metrics
from proxy.transport import relay
from tests.conftest import scaled


class Counts:
    """The two byte counters a relay shows to metrics and session records."""

    def __init__(self, client: int = 0, target: int = 0) -> None:
        self.received_from_client = client
        self.received_from_target = target


def test_snapshot_adds_live_relays_to_finished_ones() -> None:
    m = metrics.Metrics()
    done, live = Counts(10, 20), Counts(1, 2)
    m.relay_started(done)
    m.relay_started(live)
    m.relay_finished(done)
    m.relay_finished(done)  # idempotent
    live.received_from_target += 100  # the relay counts on without telling us
    snap = m.snapshot()
    assert (snap.bytes_from_client, snap.bytes_from_target) == (11, 122)


def test_connection_counters_and_render() -> None:
    m = metrics.Metrics()
    for _ in range(3):
        m.connection_started()
    m.session_started()
    m.connection_finished(upgrade=True, status=101, close_code=1000)
    m.connection_finished(failure="token", status=404)
    snap = m.snapshot(open_now=1)
    assert (snap.open, snap.total, snap.sessions, snap.relaying) == (1, 3, 1, 0)
    text = metrics.render(snap)
    assert "# TYPE websockify_connections_total counter\nwebsockify_connections_total 3\n" in text
    assert 'websockify_connections_failed_total{reason="token"} 1\n' in text
    assert 'websockify_handshake_failures_total{status="404"} 1\n' in text
    assert 'websockify_close_codes_total{code="1000"} 1\n' in text
    assert "status=\"101\"" not in text
    for line in text.splitlines():  # every sample line: name{labels} value
        assert line.startswith("# ") or line.split(" ")[-1].isdigit(), line
    assert metrics.stats_line(snap).startswith(
        "stats: open=1 total=3 sessions=1 relaying=0 failed=token=1 ")


def test_counters_are_thread_safe() -> None:
    m = metrics.Metrics()

    def work() -> None:
        for _ in range(2000):
            m.connection_started()
            m.connection_finished(failure="handshake")

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    snap = m.snapshot()
    assert (snap.total, snap.open, snap.failed) == (16000, 0, {"handshake": 16000})


def test_relay_never_sees_the_metrics() -> None:
    """No cost on the data path: the relay neither imports nor calls the metrics."""
    source = Path(relay.__file__).read_text()
    assert "metrics" not in source


def test_a_scrape_of_many_live_sessions_is_cheap() -> None:
    m = metrics.Metrics()
    for _ in range(10000):
        m.relay_started(Counts(1, 1))
    started = time.perf_counter()
    metrics.render(m.snapshot())
    assert time.perf_counter() - started < scaled(0.5)
