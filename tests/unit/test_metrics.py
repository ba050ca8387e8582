"""Units of issue 10: metrics, probes, session records, activation, wrap and daemon helpers."""

from __future__ import annotations

import os
import threading
import time
from http import HTTPStatus
from pathlib import Path

import pytest

from proxy.observe import metrics, probes, sessionlog
from proxy.process import activation, daemon, wrap
from proxy.transport import relay
from proxy.process.cli import parse_cli
from proxy.errors import HandshakeError, TokenError
from proxy.settings import Settings


class Counts:
    def __init__(self, client: int = 0, target: int = 0) -> None:
        self.received_from_client = client
        self.received_from_target = target


# -- metrics ---------------------------------------------------------------------------------


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
    assert time.perf_counter() - started < 0.5


# -- probes ----------------------------------------------------------------------------------


def test_probe_routes_ignore_the_query() -> None:
    s = Settings(health_path="/healthz", metrics_path="/metrics")
    assert probes.route(s, "/healthz?x=1") == probes.HEALTH
    assert probes.route(s, "/metrics") == probes.METRICS
    assert probes.route(s, "/metrics/") is None
    assert probes.route(Settings(), "/healthz") is None


@pytest.mark.parametrize(("draining", "live", "limit", "free", "status", "text"), [
    (False, 1, 100, 1000, 200, "ok"),
    (False, 1, 0, None, 200, "ok"),
    (True, 1, 100, 1000, 503, "draining"),
    (False, 100, 100, 1000, 503, "at connection limit"),
    (False, 1, 100, 5, 503, "few file descriptors left"),
])
def test_health(draining: bool, live: int, limit: int, free: int | None, status: int,
                text: str) -> None:
    assert probes.health(draining, live, limit, free) == probes.Health(HTTPStatus(status), text)


def test_free_fds_is_a_number_here() -> None:
    free = probes.free_fds()
    assert free is None or free > 0


# -- session records -------------------------------------------------------------------------


def test_record_of_a_session() -> None:
    session = sessionlog.Session(peer="10.0.0.1", peer_port=5555, started=0.0,
                                 started_monotonic=100.0)
    session.status, session.target, session.relay = 101, "h:1", Counts(30, 40)
    session.close_code, session.close_reason, session.closed_by_client = 1000, "", True
    rec = sessionlog.record(session, now=101.25)
    assert rec["time"] == "1970-01-01T00:00:00.000Z"
    assert (rec["client"], rec["peer_port"], rec["duration"]) == ("10.0.0.1", 5555, 1.25)
    assert (rec["bytes_from_client"], rec["bytes_from_target"]) == (30, 40)
    assert (rec["closed_by"], rec["failure"]) == ("client", None)


def test_failure_reasons() -> None:
    assert sessionlog.failure_reason(TokenError(HTTPStatus.NOT_FOUND)) == "token"
    assert sessionlog.failure_reason(HandshakeError(HTTPStatus.SERVICE_UNAVAILABLE)) == "limit"
    assert sessionlog.failure_reason(HandshakeError(HTTPStatus.BAD_GATEWAY)) == "target"
    assert sessionlog.failure_reason(HandshakeError(HTTPStatus.BAD_REQUEST)) == "handshake"
    from proxy.access.auth import AuthenticationError
    try:
        raise HandshakeError(HTTPStatus.FORBIDDEN) from AuthenticationError()
    except HandshakeError as exc:
        assert sessionlog.failure_reason(exc) == "auth"


# -- command line ----------------------------------------------------------------------------


def test_operation_options_reach_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    s = parse_cli(["--daemon", "--pid-file", "p.pid", "--metrics-path", "/m", "--health-path",
                   "/h", "--stats-interval", "2.5", "--log-format", "both", "--drain-timeout",
                   "3", "--response-header", "X-A: 1", "--response-header", "Cache-Control:no",
                   "--wrap-mode", "respawn", "6080", "h:1"])
    assert (s.daemon, s.pid_file) == (True, str(tmp_path / "p.pid"))
    assert (s.metrics_path, s.health_path, s.stats_interval) == ("/m", "/h", 2.5)
    assert (s.log_format, s.drain_timeout, s.wrap_mode) == ("both", 3.0, "respawn")
    assert s.response_headers == (("X-A", "1"), ("Cache-Control", "no"))


@pytest.mark.parametrize("args", [
    ["--response-header", "Bad Name: x"],
    ["--response-header", "novalue"],
    ["--metrics-path", "metrics"],
    ["--drain-timeout", "-1"],
    ["--log-format", "xml"],
])
def test_bad_operation_options_are_usage_errors(args: list[str],
                                                capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse_cli([*args, "6080", "h:1"])
    assert exit_info.value.code == 2
    assert "websockify: error: option " in capsys.readouterr().err


def test_listen_fd_takes_the_place_of_the_listen_address() -> None:
    s = parse_cli(["--listen-fd", "3", "h:1"])
    assert (s.listen_fd, s.target_host, s.target_port) == (3, "h", 1)
    assert s.listen_display == "fd 3"


# -- activation, wrap, daemon helpers --------------------------------------------------------


@pytest.mark.parametrize(("env", "fds"), [
    ({"LISTEN_PID": "42", "LISTEN_FDS": "2"}, [3, 4]),
    ({"LISTEN_PID": "41", "LISTEN_FDS": "2"}, []),
    ({"LISTEN_FDS": "1"}, []),
    ({"LISTEN_PID": "42", "LISTEN_FDS": "x"}, []),
    ({}, []),
])
def test_listen_fds(env: dict[str, str], fds: list[int]) -> None:
    assert activation.listen_fds(env, 42) == fds


def test_child_env_strips_activation_and_chains_ld_preload() -> None:
    env = wrap.child_env({"LISTEN_FDS": "1", "LISTEN_PID": "9", "LD_PRELOAD": "/a.so",
                          "PATH": "/bin"}, "/c/rebind.so", 6080, 40000, 7, 99)
    assert env == {"LD_PRELOAD": "/c/rebind.so:/a.so", "PATH": "/bin",
                   "REBIND_OLD_PORT": "6080", "REBIND_NEW_PORT": "40000", "REBIND_FD": "7",
                   "REBIND_PARENT_PID": "99"}


def test_find_compiler(tmp_path: Path) -> None:
    assert wrap.find_compiler({"PATH": str(tmp_path)}) is None
    assert wrap.find_compiler({"PATH": str(tmp_path), "CC": "nonexistent-cc -O1"}) is None
    cc = tmp_path / "cc"
    cc.write_text("#!/bin/sh\n")
    cc.chmod(0o755)
    assert wrap.find_compiler({"PATH": str(tmp_path)}) == [str(cc)]
    assert wrap.find_compiler({"PATH": str(tmp_path), "CC": "cc -m64"}) == ["cc", "-m64"]


def test_private_port_refuses_until_a_child_listens() -> None:
    private = wrap.PrivatePort()
    try:
        import socket
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", private.port), timeout=1).close()
        child = private.socket_for_child()  # same port, while the reservation holds it
        try:
            assert child.getsockname() == ("127.0.0.1", private.port)
            child.listen()
            socket.create_connection(("127.0.0.1", private.port), timeout=1).close()
        finally:
            child.close()
    finally:
        private.close()


def test_pid_file_helpers(tmp_path: Path) -> None:
    path = str(tmp_path / "x.pid")
    daemon.write_pid_file(path)
    assert Path(path).read_text() == f"{os.getpid()}\n"
    Path(path).write_text("1\n")  # a successor's file stays
    daemon.remove_pid_file(path)
    assert Path(path).exists()
    daemon.write_pid_file(path)
    daemon.remove_pid_file(path)
    assert not Path(path).exists()
