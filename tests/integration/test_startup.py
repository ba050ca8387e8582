"""Startup banner, console script, signals and per-connection log lines of the real command."""

from __future__ import annotations

import re
import signal
from pathlib import Path

import pytest

from tests.integration.conftest import StartProxy
from tests.support.backends import EchoBackend
from tests.support.process import ProxyProcess, console_script
from tests.support.wsclient import WSClient

pytestmark = pytest.mark.integration

# "127.0.0.1 - - [26/Nov/2026 09:41:07] " (http.server's log_message prefix)
PREFIX = r"127\.0\.0\.1 - - \[\d{2}/[A-Z][a-z]{2}/\d{4} \d{2}:\d{2}:\d{2}\] "


def banner(port: int, backend_port: int) -> list[str]:
    return [
        "WebSocket server settings:",
        f"  - Listen on 127.0.0.1:{port}",
        "  - No SSL/TLS support (no cert file)",
        f"  - proxying from 127.0.0.1:{port} to 127.0.0.1:{backend_port}",
    ]


def echo_once(port: int, payload: bytes) -> bytes:
    with WSClient.connect(port) as ws:
        ws.send_binary(payload)
        return ws.recv_bytes(len(payload))


def test_the_banner_lists_listen_address_ssl_state_and_target_byte_for_byte(
    start_proxy: StartProxy, echo_backend: EchoBackend
) -> None:
    """Started with default options, the first four stderr lines are the websockify banner."""
    proxy = start_proxy(echo_backend.port)
    lines = proxy.wait_for_lines(4)
    assert lines[:4] == banner(proxy.port, echo_backend.port)
    assert proxy.stdout() == ""


def test_the_installed_console_script_starts_and_proxies(
    tmp_path: Path, echo_backend: EchoBackend
) -> None:
    """The `websockify` script next to sys.executable (not PATH) runs the proxy end to end."""
    script = console_script("websockify")
    assert script.is_file(), f"{script} missing: run pip install -e '.[test]' in the venv"
    with ProxyProcess(tmp_path, echo_backend.port, command=[str(script)]) as proxy:
        assert echo_once(proxy.port, b"smoke test") == b"smoke test"
        assert proxy.wait_for_lines(4)[:4] == banner(proxy.port, echo_backend.port)
        status = proxy.stop()
    assert status == 0


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_termination_signal_logs_in_exit_and_exits_with_status_zero(
    start_proxy: StartProxy, echo_backend: EchoBackend, signum: int
) -> None:
    """SIGTERM or SIGINT to the running command: `In exit` on stderr, exit status 0."""
    proxy = start_proxy(echo_backend.port)
    assert echo_once(proxy.port, b"x") == b"x"
    status = proxy.stop(signum)
    assert status == 0, proxy.stderr()
    assert "In exit" in proxy.stderr_lines()


def test_a_termination_signal_also_stops_a_proxy_with_an_open_connection(
    start_proxy: StartProxy, echo_backend: EchoBackend
) -> None:
    """SIGTERM while a WebSocket session is open: the process still exits 0 and drops TCP."""
    proxy = start_proxy(echo_backend.port)
    with WSClient.connect(proxy.port) as ws:
        ws.send_binary(b"open")
        assert ws.recv_bytes(4) == b"open"
        status = proxy.stop(signal.SIGTERM)
        assert status == 0, proxy.stderr()
        ws.wait_eof()
    assert "In exit" in proxy.stderr_lines()


def test_each_connection_logs_the_plain_ws_line_and_the_target(
    start_proxy: StartProxy, echo_backend: EchoBackend
) -> None:
    """A session logs `<client>: Plain non-SSL (ws://) WebSocket connection`, `connecting to`."""
    proxy = start_proxy(echo_backend.port)
    assert echo_once(proxy.port, b"log me") == b"log me"
    plain = proxy.wait_for_log("Plain non-SSL")
    connecting = proxy.wait_for_log("connecting to:")
    assert re.fullmatch(
        PREFIX + re.escape("127.0.0.1: Plain non-SSL (ws://) WebSocket connection"), plain
    )
    assert re.fullmatch(
        PREFIX + re.escape(f"connecting to: 127.0.0.1:{echo_backend.port}"), connecting
    )
    lines = proxy.stderr_lines()
    assert lines.index(plain) < lines.index(connecting)
    assert not any("Path:" in line for line in lines), "the path / must not be logged"


def test_a_request_path_other_than_slash_is_logged_with_its_query(
    start_proxy: StartProxy, echo_backend: EchoBackend
) -> None:
    """Upgrading on /the/path?x=1 logs `<client>: Path: '/the/path?x=1'`."""
    proxy = start_proxy(echo_backend.port)
    with WSClient.connect(proxy.port, "/the/path?x=1") as ws:
        ws.send_binary(b"p")
        assert ws.recv_bytes(1) == b"p"
    line = proxy.wait_for_log("Path:")
    assert re.fullmatch(PREFIX + re.escape("127.0.0.1: Path: '/the/path?x=1'"), line)


def test_verbose_mode_starts_and_still_prints_the_same_banner(
    start_proxy: StartProxy, echo_backend: EchoBackend
) -> None:
    """`-v` adds debug logging but the banner lines and the proxying are unchanged."""
    proxy = start_proxy(echo_backend.port, "-v")
    assert echo_once(proxy.port, b"verbose") == b"verbose"
    assert proxy.wait_for_lines(4)[:4] == banner(proxy.port, echo_backend.port)
