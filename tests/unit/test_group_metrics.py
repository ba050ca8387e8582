"""Units of issue #16 part 3: ``--workers`` metrics in shared memory (proxy.observe.metrics), the
health view of the group (proxy.observe.probes) and the exposition parsed by a real parser."""

from __future__ import annotations

import os
import warnings

from prometheus_client.parser import text_string_to_metric_families

from proxy.observe import metrics, probes


class Counts:
    def __init__(self, client: int = 0, target: int = 0) -> None:
        self.received_from_client = client
        self.received_from_target = target


def samples(text: str) -> dict[str, float]:
    """Every sample of ``text`` as ``name{labels}`` -> value, through prometheus_client."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            found[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return found


def test_every_family_parses_with_a_real_parser() -> None:
    m = metrics.Metrics(workers=2)
    m.attach(1)
    m.connection_started()
    m.session_started()
    m.connection_finished(upgrade=True, status=101, close_code=1000)
    m.connection_started()
    m.connection_finished(failure="surprise", status=418)
    m.connection_started()
    m.connection_finished(failure="token", status=404, close_code=7)  # 7: not a close code
    parsed = samples(metrics.render(m.snapshot()))
    assert parsed["websockify_connections_total"] == 3
    assert parsed['websockify_connections_failed_total{reason="other"}'] == 1
    assert parsed['websockify_connections_failed_total{reason="token"}'] == 1
    assert parsed['websockify_handshake_failures_total{status="418"}'] == 1
    assert parsed['websockify_close_codes_total{code="1000"}'] == 1
    assert parsed['websockify_close_codes_total{code="other"}'] == 1
    assert parsed['websockify_worker_connections_total{worker="1"}'] == 0
    assert parsed['websockify_worker_connections_total{worker="2"}'] == 3
    assert parsed['websockify_worker_connections_open{worker="2"}'] == 0
    assert parsed['websockify_worker_sessions_open{worker="1"}'] == 0


def test_one_process_has_no_worker_families() -> None:
    m = metrics.Metrics()
    m.connection_started()
    text = metrics.render(m.snapshot(open_now=1))
    assert "worker" not in text
    assert samples(text)["websockify_connections_open"] == 1


def test_a_restarted_worker_continues_its_counters_and_ends_its_sessions() -> None:
    m = metrics.Metrics(workers=2)
    m.attach(0)
    relay = Counts(100, 200)
    for _ in range(3):
        m.connection_started()
    m.session_started()
    m.relay_started(relay)
    snap = m.snapshot()  # publishes the live relay's bytes
    assert (snap.total, snap.open, snap.relaying, snap.bytes_from_target) == (3, 3, 1, 200)
    m.attach(0)  # what the restarted worker does: the old one died with 3 open, 1 relaying
    m.connection_started()
    snap = m.snapshot()
    assert (snap.total, snap.open, snap.sessions, snap.relaying) == (4, 1, 1, 0)
    assert (snap.bytes_from_client, snap.bytes_from_target) == (100, 200)  # never lower
    assert snap.workers == (metrics.WorkerCounts(worker=1, open=1, total=4, relaying=0),
                            metrics.WorkerCounts(worker=2, open=0, total=0, relaying=0))


def test_forked_workers_see_each_others_counts() -> None:
    """The block is shared across fork(): what a child counts, the parent reads."""
    m = metrics.Metrics(workers=2)
    with warnings.catch_warnings():  # 3.12+: a DeprecationWarning if a thread is left over
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # the "worker": count into slot 2 and leave without cleanup
        status = 1
        try:
            m.attach(1)
            for _ in range(5):
                m.connection_started()
            m.session_started()
            relay = Counts(7, 9)
            m.relay_started(relay)
            m.publish()
            status = 0
        finally:
            os._exit(status)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    m.attach(0)
    snap = m.snapshot()
    assert (snap.total, snap.sessions, snap.relaying, snap.open) == (5, 1, 1, 5)
    assert (snap.bytes_from_client, snap.bytes_from_target) == (7, 9)


def test_finished_relays_never_lower_published_bytes() -> None:
    m = metrics.Metrics(workers=2)
    m.attach(0)
    first, second = Counts(10, 10), Counts(50, 50)
    m.relay_started(first)
    m.relay_started(second)
    m.publish()  # 60 each
    first.received_from_target += 5
    m.relay_finished(first)  # finished bytes alone (15) are below the published 60
    assert m.snapshot().bytes_from_target == 65


def test_stats_line_sorts_other_last() -> None:
    m = metrics.Metrics()
    m.connection_started()
    m.connection_finished(close_code=6000)
    m.connection_started()
    m.connection_finished(close_code=1001)
    assert "close_codes=1001=1,other=1" in metrics.stats_line(m.snapshot())


def test_health_holds_the_fullest_worker_against_its_limit() -> None:
    shares = tuple(metrics.WorkerCounts(worker=i + 1, open=o, total=o, relaying=0)
                   for i, o in enumerate((3, 9)))
    group = metrics.Snapshot(open=12, total=12, sessions=0, relaying=0, workers=shares)
    assert probes.fullest(2, group) == 9
    assert probes.fullest(2, None) == 2
    one = metrics.Snapshot(open=2, total=2, sessions=0, relaying=0)
    assert probes.fullest(2, one) == 2
