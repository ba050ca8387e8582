"""Operations on the real command: metrics, health, JSON session logs, drain, reload, headers,
systemd socket activation (issue 10, docs/operations.rst)."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import TIMEOUT, scaled
from tests.integration.conftest import StartProxy
from tests.support.backends import EchoBackend
from tests.support.process import ProxyProcess, clean_env, stop_popen, wait_port
from tests.support.wsclient import (HTTPResponse, WSClient, echo_session, raw_http,
                                    upgrade_request)
from tests.support.inprocess import wait_for

pytestmark = pytest.mark.integration


def get(port: int, path: str, headers: str = "") -> HTTPResponse:
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}Connection: close\r\n\r\n"
    return raw_http(port, request.encode())


def scrape(port: int, path: str = "/metrics") -> dict[str, float]:
    """The samples of a Prometheus text page: ``name{labels}`` -> value."""
    response = get(port, path)
    assert response.status == 200, response
    assert response.header("Content-Type") == "text/plain; version=0.0.4; charset=utf-8"
    samples = {}
    # A real Prometheus text-format parser (issue #16): every family must parse.
    for family in text_string_to_metric_families(response.body.decode()):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return samples


# -- metrics and stats -----------------------------------------------------------------------


def test_metrics_count_a_known_sequence_of_connections(start_proxy: StartProxy,
                                                       echo_backend: EchoBackend) -> None:
    proxy = start_proxy(echo_backend.port, "--metrics-path", "/metrics")
    echo_session(proxy.port, b"12345")
    echo_session(proxy.port, b"67890")
    bad = raw_http(proxy.port, upgrade_request(headers={"Sec-WebSocket-Key": None}))
    assert bad.status == 400

    def settled() -> dict[str, float] | None:
        samples = scrape(proxy.port)
        done = samples.get('websockify_close_codes_total{code="1000"}') == 2
        # The failed handshake is counted when its connection ends, after the answer.
        failed = samples.get('websockify_handshake_failures_total{status="400"}') == 1
        return samples if done and failed and samples["websockify_sessions_open"] == 0 else None

    samples = wait_for(settled, "both sessions to be counted")
    assert samples["websockify_sessions_total"] == 2
    assert samples['websockify_handshake_failures_total{status="400"}'] == 1
    assert samples['websockify_connections_failed_total{reason="handshake"}'] == 1
    assert samples['websockify_bytes_received_total{from="target"}'] == 10
    # Client bytes include the WebSocket framing (masked frames, the Close frame).
    assert samples['websockify_bytes_received_total{from="client"}'] > 10
    # 3 connections above, the scrapes so far, and this scrape (open now).
    assert samples["websockify_connections_total"] >= 4
    assert samples["websockify_connections_open"] >= 1


def test_metrics_count_bytes_of_a_live_session(start_proxy: StartProxy,
                                               echo_backend: EchoBackend) -> None:
    proxy = start_proxy(echo_backend.port, "--metrics-path", "/metrics")
    with WSClient.connect(proxy.port) as client:
        client.send_binary(b"x" * 1000)
        client.recv_bytes(1000)
        samples = scrape(proxy.port)
        assert samples["websockify_sessions_open"] == 1
        assert samples['websockify_bytes_received_total{from="target"}'] == 1000


def test_stats_interval_logs_one_line(start_proxy: StartProxy, echo_backend: EchoBackend) -> None:
    proxy = start_proxy(echo_backend.port, "--stats-interval", "0.3")
    echo_session(proxy.port, b"abc")
    line = proxy.wait_for_log("stats: ")
    assert re.match(r"stats: open=\d+ total=\d+ sessions=\d+ relaying=\d+ failed=", line), line
    wait_for(lambda: "bytes_from_target=3 " in proxy.stderr(), "the session in a stats line")


# -- health and precedence -------------------------------------------------------------------


def test_health_is_200_and_built_in_paths_win_over_web_files(
        tmp_path: Path, start_proxy: StartProxy, echo_backend: EchoBackend) -> None:
    web = tmp_path / "web"
    web.mkdir()
    (web / "healthz").write_text("a file\n")
    (web / "index.html").write_text("<p>hi</p>\n")
    proxy = start_proxy(echo_backend.port, "--web", str(web), "--health-path", "/healthz",
                        "--metrics-path", "/metrics", "--auth-plugin", "BasicHTTPAuth",
                        "--auth-source", "user:pw", "--web-auth")
    health = get(proxy.port, "/healthz")
    assert (health.status, health.body) == (200, b"ok\n")
    assert health.header("Cache-Control") == "no-store"
    # --web-auth covers files and metrics, not health.
    assert get(proxy.port, "/metrics").status == 401
    assert get(proxy.port, "/index.html").status == 401
    auth = "Authorization: Basic dXNlcjpwdw==\r\n"
    assert get(proxy.port, "/metrics", auth).body.startswith(b"# HELP websockify_")
    assert get(proxy.port, "/index.html", auth).body == b"<p>hi</p>\n"


def test_metrics_without_web_is_served_and_other_paths_stay_405(
        start_proxy: StartProxy, echo_backend: EchoBackend) -> None:
    proxy = start_proxy(echo_backend.port, "--metrics-path", "/metrics")
    assert get(proxy.port, "/metrics").status == 200
    assert get(proxy.port, "/other").status == 405  # websockify's answer without --web


# -- drain -----------------------------------------------------------------------------------


def test_drain_turns_health_503_keeps_sessions_and_exits_when_they_end(
        start_proxy: StartProxy, echo_backend: EchoBackend) -> None:
    proxy = start_proxy(echo_backend.port, "--drain-timeout", "20", "--health-path", "/healthz")
    assert get(proxy.port, "/healthz").status == 200
    with WSClient.connect(proxy.port) as client:
        client.send_binary(b"relaying")  # the session is past the handshake
        assert client.recv_bytes(8) == b"relaying"
        proxy.send_signal(signal.SIGTERM)
        proxy.wait_for_log("Draining: waiting up to 20s for 1 open connection(s)")
        health = get(proxy.port, "/healthz")
        assert (health.status, health.body) == (503, b"draining\n")
        refused = raw_http(proxy.port, upgrade_request())
        assert refused.status == 503
        client.send_binary(b"still here")
        assert client.recv_bytes(10) == b"still here"
        started = time.monotonic()
        client.close(1000)
        client.recv_close()
    assert proxy.wait(TIMEOUT) == 0
    assert time.monotonic() - started < scaled(3)  # the last session ended: no waiting for 20 s


def test_drain_timeout_then_close_1001(start_proxy: StartProxy,
                                       echo_backend: EchoBackend) -> None:
    drain = 1.5
    proxy = start_proxy(echo_backend.port, "--drain-timeout", str(drain))
    with WSClient.connect(proxy.port) as client:
        client.send_binary(b"relaying")  # the session is past the handshake
        assert client.recv_bytes(8) == b"relaying"
        started = time.monotonic()
        proxy.send_signal(signal.SIGTERM)
        close = client.recv_close(timeout=drain + TIMEOUT)
        elapsed = time.monotonic() - started
    assert close.code == 1001
    assert drain - 0.2 <= elapsed < drain + scaled(2.5), elapsed
    assert proxy.wait(TIMEOUT) == 0


def test_without_drain_timeout_sigterm_closes_at_once(start_proxy: StartProxy,
                                                      echo_backend: EchoBackend) -> None:
    proxy = start_proxy(echo_backend.port)
    with WSClient.connect(proxy.port) as client:
        client.send_binary(b"relaying")  # the session is past the handshake
        assert client.recv_bytes(8) == b"relaying"
        started = time.monotonic()
        proxy.send_signal(signal.SIGTERM)
        assert client.recv_close().code == 1001
    assert time.monotonic() - started < scaled(1.5)
    assert proxy.wait(TIMEOUT) == 0


def test_sigterm_right_after_the_101_still_closes_1001(tmp_path: Path,
                                                       echo_backend: EchoBackend) -> None:
    """The 101 can reach the client while the accept loop still waits in Thread.start()
    for the new thread to run; a SIGTERM then interrupted that wait, and socketserver
    closed the connection under its thread: a bare EOF (1006) in about half the runs."""
    codes = []
    for attempt in range(8):
        workdir = tmp_path / f"run{attempt}"
        workdir.mkdir()
        with ProxyProcess(workdir, echo_backend.port) as proxy:
            with WSClient.connect(proxy.port) as client:
                proxy.send_signal(signal.SIGTERM)
                codes.append(client.recv_close().code)
            assert proxy.wait(TIMEOUT) == 0
            assert "Traceback" not in proxy.stderr()
    assert codes == [1001] * 8


# -- JSON session records ----------------------------------------------------------------------


def test_json_record_for_a_known_session(tmp_path: Path, start_proxy: StartProxy,
                                         echo_backend: EchoBackend) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text(f"abc: 127.0.0.1:{echo_backend.port}\n")
    proxy = start_proxy(echo_backend.port, "--log-format", "json", "--token-plugin",
                        "TokenFile", "--token-source", str(tokens), "-v",
                        positionals=["127.0.0.1:{port}"])
    with WSClient.connect(proxy.port, "/?token=abc",
                          extra_headers=[("X-Forwarded-For", "203.0.113.9")]) as client:
        client.send_binary(b"hello")
        assert client.recv_bytes(5) == b"hello"
        time.sleep(0.2)  # not a wait: a known least duration for the record
        client.close(1000, "bye")
        client.recv_close()

    def record() -> dict[str, object] | None:
        for line in proxy.stderr_lines():
            if line.startswith("{") and '"status":101' in line:
                parsed: dict[str, object] = json.loads(line)
                return parsed
        return None

    rec = wait_for(record, "the JSON record")
    assert rec["client"] == "127.0.0.1"
    assert rec["forwarded_for"] == "203.0.113.9"
    assert rec["token"] == "abc"
    assert rec["target"] == f"127.0.0.1:{echo_backend.port}"
    assert rec["bytes_from_target"] == 5
    assert isinstance(rec["bytes_from_client"], int) and rec["bytes_from_client"] > 5
    assert isinstance(rec["duration"], float) and 0.2 <= rec["duration"] < TIMEOUT
    assert (rec["close_code"], rec["close_reason"], rec["closed_by"]) == (1000, "bye", "client")
    assert rec["path"] == "/?token=abc" and rec["websocket"] is True
    # "json" replaces the per-connection lines (the banner stays).
    assert "WebSocket connection" not in proxy.stderr()
    assert "proxying from" in proxy.stderr()


def test_json_records_beside_classic_lines(start_proxy: StartProxy,
                                           echo_backend: EchoBackend) -> None:
    proxy = start_proxy(echo_backend.port, "--log-format", "both")
    assert raw_http(proxy.port, upgrade_request(headers={"Sec-WebSocket-Key": None})).status \
        == 400
    line = proxy.wait_for_log('"failure":"handshake"')
    rec = json.loads(line)
    assert rec["status"] == 400 and rec["target"] is None
    proxy.wait_for_log("code 400")


# -- SIGHUP and headers ------------------------------------------------------------------------


def test_sighup_reloads_token_files(tmp_path: Path, start_proxy: StartProxy,
                                    echo_backend: EchoBackend) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text(f"abc: 127.0.0.1:{echo_backend.port}\n")
    proxy = start_proxy(echo_backend.port, "--token-plugin", "TokenFile",
                        "--token-source", str(tokens), positionals=["127.0.0.1:{port}"])
    tokens.write_text(f"abc: 127.0.0.1:{echo_backend.port}\nxyz: 127.0.0.1:1\n")
    proxy.send_signal(signal.SIGHUP)
    assert proxy.wait_for_log("SIGHUP: ") == f"SIGHUP: reloaded tokens from {tokens} (2 tokens)"
    assert proxy.proc is not None and proxy.proc.poll() is None
    with WSClient.connect(proxy.port, "/?token=abc") as client:
        client.send_binary(b"ok")
        assert client.recv_bytes(2) == b"ok"


def test_response_headers_on_static_error_and_upgrade_responses(
        tmp_path: Path, start_proxy: StartProxy, echo_backend: EchoBackend) -> None:
    web = tmp_path / "web"
    web.mkdir()
    (web / "a.txt").write_text("a\n")
    proxy = start_proxy(echo_backend.port, "--web", str(web),
                        "--response-header", "Cache-Control: no-store",
                        "--response-header", "Strict-Transport-Security: max-age=63072000")
    for response in (get(proxy.port, "/a.txt"), get(proxy.port, "/missing"),
                     raw_http(proxy.port, upgrade_request())):
        assert response.status in (200, 404, 101)
        assert response.header("Cache-Control") == "no-store", response
        assert response.header("Strict-Transport-Security") == "max-age=63072000"


def test_bad_response_header_is_a_usage_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "proxy", "--response-header", "no colon", "1", "h:2"],
        capture_output=True, env=clean_env(), cwd=tmp_path, timeout=2 * TIMEOUT, check=False)
    assert result.returncode == 2
    assert b"expected 'Name: value'" in result.stderr


# -- systemd socket activation ---------------------------------------------------------------

#: What systemd does between fork and exec: the socket at fd 3, LISTEN_PID = the new pid.
ACTIVATE = """
import os, sys
fd = int(sys.argv[1])
os.dup2(fd, 3)
os.close(fd)
os.environ.update(LISTEN_FDS="1", LISTEN_PID=str(os.getpid()))
os.execv(sys.executable, [sys.executable, "-m", "proxy", *sys.argv[2:]])
"""


@pytest.fixture
def activated(tmp_path: Path) -> Iterator[Callable[..., tuple[subprocess.Popen[bytes], int]]]:
    """Start the command as systemd would, with a listening socket passed as fd 3."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(*args: str, env: dict[str, str] | None = None) -> tuple[subprocess.Popen[bytes], int]:
        with socket.create_server(("127.0.0.1", 0)) as listener:
            port = listener.getsockname()[1]
            with open(tmp_path / "activated-stderr.txt", "wb") as err:
                proc = subprocess.Popen(
                    [sys.executable, "-c", ACTIVATE, str(listener.fileno()), *args],
                    pass_fds=(listener.fileno(),), stdin=subprocess.DEVNULL, stdout=err,
                    stderr=err, cwd=tmp_path, env={**clean_env(), **(env or {})},
                    start_new_session=True)
        procs.append(proc)
        wait_port(port, time.monotonic() + 2 * TIMEOUT, proc, tmp_path / "activated-stderr.txt")
        return proc, port

    yield start
    for proc in procs:
        stop_popen(proc)


def test_socket_activation_serves_the_passed_socket(
        tmp_path: Path, activated: Callable[..., tuple[subprocess.Popen[bytes], int]],
        echo_backend: EchoBackend) -> None:
    # No listen positional, as with --inetd: the only positional is the target.
    proc, port = activated(f"127.0.0.1:{echo_backend.port}")
    echo_session(port, b"activated")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(TIMEOUT) == 0
    err = (tmp_path / "activated-stderr.txt").read_text()
    assert "  - proxying from fd 3 to 127.0.0.1:" in err, err


def test_listen_variables_for_another_pid_are_ignored(tmp_path: Path) -> None:
    env = {**clean_env(), "LISTEN_FDS": "1", "LISTEN_PID": "1"}
    result = subprocess.run([sys.executable, "-m", "proxy", "h:2"], capture_output=True,
                            env=env, cwd=tmp_path, timeout=2 * TIMEOUT, check=False)
    assert result.returncode == 2  # "h:2" is read as the listen address: a usage error
    assert b"Too few arguments" in result.stderr or b"Error parsing" in result.stderr


def test_process_proxy_fixture_still_clean(proxy_process: ProxyProcess) -> None:
    """The options above leave the default command unchanged (no new startup lines)."""
    lines = proxy_process.wait_for_lines(3)
    assert lines[0] == "WebSocket server settings:"
    assert not any(line.startswith("{") for line in lines)
    assert os.path.exists(proxy_process.stderr_path)
