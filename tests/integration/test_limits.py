"""Limits, timeouts and fault injection against the real command (issue 9).

Each limit ends in a defined answer (an HTTP status before the upgrade, or a close code
with a reason after it) and, where the issue asks for one, a log line; never a traceback
(the ``start_proxy`` fixture fails any test whose proxy printed one). Faults covered
elsewhere are referenced from docs/reliability.rst (test_close.py, test_proxying.py).
"""

from __future__ import annotations

import sys
import socket
import struct
import time
from pathlib import Path

import pytest
from wsproto.connection import ConnectionState
from wsproto.events import BytesMessage, CloseConnection, Ping

from tests.conftest import TIMEOUT, scaled
from tests.integration.conftest import StartProxy
from tests.support.backends import ConnRecord, EchoBackend, NeverReadBackend, TCPBackend
from tests.support.waiting import wait_for
from tests.support.wsclient import HandshakeRejected, WSClient, raw_http, upgrade_request

pytestmark = pytest.mark.integration


def _rejected(port: int, headers: tuple[tuple[str, str], ...] = ()) -> HandshakeRejected:
    with pytest.raises(HandshakeRejected) as info:
        WSClient.connect(port, extra_headers=headers).close_socket()
    return info.value


def _connect_eventually(port: int, headers: tuple[tuple[str, str], ...] = ()) -> WSClient:
    """A client once a slot is free again (the proxy notices a close within a moment)."""
    def attempt() -> WSClient | None:
        try:
            return WSClient.connect(port, extra_headers=headers)
        except HandshakeRejected:
            return None

    return wait_for(attempt, "a free connection slot")


# -- connection limits ------------------------------------------------------------------------


def test_beyond_max_connections_an_upgrade_gets_503_with_retry_after_until_one_closes(
    start_proxy: StartProxy, echo_backend: EchoBackend
) -> None:
    proxy = start_proxy(echo_backend.port, "--max-connections", "2")
    with WSClient.connect(proxy.port) as first, WSClient.connect(proxy.port):
        refused = _rejected(proxy.port)
        assert refused.status == 503
        assert (b"retry-after", b"5") in refused.headers
        assert b"Too many connections" in refused.body
        first.close()
        first.recv_close()
    with _connect_eventually(proxy.port) as again:
        again.send_binary(b"still served")
        assert again.recv_bytes(12) == b"still served"


def test_a_plain_http_request_beyond_the_limit_gets_503_too(
    start_proxy: StartProxy, echo_backend: EchoBackend
) -> None:
    proxy = start_proxy(echo_backend.port, "--max-connections", "1")
    with WSClient.connect(proxy.port):
        response = raw_http(proxy.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert response.status == 503


def test_max_connections_per_ip_refuses_the_second_connection_from_one_address(
    start_proxy: StartProxy, echo_backend: EchoBackend
) -> None:
    proxy = start_proxy(echo_backend.port, "--max-connections-per-ip", "1")
    with WSClient.connect(proxy.port):
        refused = _rejected(proxy.port)
        assert refused.status == 503
        assert b"Too many connections from this address" in refused.body


def test_behind_a_trusted_proxy_the_per_ip_limit_counts_the_forwarded_client(
    start_proxy: StartProxy, echo_backend: EchoBackend
) -> None:
    """The balancer's own address is not the client: two clients behind it get one slot
    each, and every slot is given back when its session ends (no leak under either
    address: five sessions in a row from one client all get in)."""
    proxy = start_proxy(echo_backend.port, "--max-connections-per-ip", "1",
                        "--trusted-proxy", "127.0.0.1")
    alice = (("X-Forwarded-For", "203.0.113.5"),)
    bob = (("X-Forwarded-For", "203.0.113.6"),)
    with WSClient.connect(proxy.port, extra_headers=alice), \
            WSClient.connect(proxy.port, extra_headers=bob):
        refused = _rejected(proxy.port, alice)
        assert (refused.status, refused.body.count(b"Too many connections from this address")) \
            == (503, 1)
    for n in range(5):
        with _connect_eventually(proxy.port, alice) as again:
            again.send_binary(b"turn %d" % n)
            assert again.recv_bytes(6) == b"turn %d" % n
            again.close(1000)
            again.recv_close()


# -- message size and per-session timers ------------------------------------------------------


def test_a_message_over_max_message_size_is_closed_with_1009(
    start_proxy: StartProxy, echo_backend: EchoBackend
) -> None:
    proxy = start_proxy(echo_backend.port, "--max-message-size", "1000")
    with WSClient.connect(proxy.port) as ws:
        ws.send_binary(b"a" * 1000)
        assert ws.recv_bytes(1000) == b"a" * 1000
        ws.send_binary(b"b" * 1001)
        close = ws.recv_close()
        assert (close.code, close.reason) == (1009, "Message too big")


@pytest.mark.slow
def test_conn_idle_timeout_closes_a_silent_session_with_1000_and_logs_it(
    start_proxy: StartProxy, echo_backend: EchoBackend
) -> None:
    proxy = start_proxy(echo_backend.port, "--conn-idle-timeout", "0.5")
    with WSClient.connect(proxy.port) as ws:
        start = time.monotonic()
        for _ in range(4):  # data keeps it open
            ws.send_binary(b"x")
            assert ws.recv_bytes(1) == b"x"
            time.sleep(0.2)  # not a wait: the pace of a client under the idle timeout
        close = ws.recv_close()
        assert (close.code, close.reason) == (1000, "Idle timeout")
        # The last data went at about 0.6 s; the close comes 0.5 s later.
        assert 0.6 + 0.45 <= time.monotonic() - start < 0.6 + scaled(2.0)
        ws.reply_close(close)
    proxy.wait_for_log("Closing: 1000 Idle timeout")


@pytest.mark.slow
def test_max_session_time_closes_even_a_busy_session_with_1001(
    start_proxy: StartProxy, echo_backend: EchoBackend
) -> None:
    proxy = start_proxy(echo_backend.port, "--max-session-time", "0.6")
    # Taken before the handshake: the proxy starts the clock after its 101, so no close
    # can come sooner than 0.6 s after this, however late this process reads the 101.
    start = time.monotonic()
    with WSClient.connect(proxy.port) as ws:
        while True:
            if ws.ws.state is ConnectionState.OPEN:
                ws.send_binary(b"busy")
            event = ws.next_event()
            if isinstance(event, CloseConnection):
                break
            assert time.monotonic() - start < TIMEOUT
        assert (event.code, event.reason) == (1001, "Session time limit reached")
        assert 0.6 <= time.monotonic() - start < 0.6 + scaled(1.5)
    proxy.wait_for_log("Closing: 1001 Session time limit reached")


@pytest.mark.slow
def test_heartbeat_timeout_closes_a_client_that_never_answers_pings_with_1011(
    start_proxy: StartProxy, echo_backend: EchoBackend
) -> None:
    proxy = start_proxy(echo_backend.port, "--heartbeat-timeout", "0.6")
    with WSClient.connect(proxy.port) as ws:
        start = time.monotonic()
        pings = 0
        while True:  # wsproto does not answer pings by itself: this client never does
            event = ws.next_event()
            if isinstance(event, Ping):
                pings += 1
                continue
            assert isinstance(event, CloseConnection), event
            break
        assert (event.code, event.reason) == (1011, "No pong within the heartbeat timeout")
        assert pings >= 1
        assert 0.6 <= time.monotonic() - start < 0.3 + 0.6 + scaled(1.5)
    proxy.wait_for_log("Closing: 1011 No pong within the heartbeat timeout")


@pytest.mark.slow
def test_a_client_that_answers_pings_outlives_the_heartbeat_timeout(
    start_proxy: StartProxy, echo_backend: EchoBackend
) -> None:
    proxy = start_proxy(echo_backend.port, "--heartbeat-timeout", "0.4")
    with WSClient.connect(proxy.port) as ws:
        end = time.monotonic() + 1.6
        pings = 0
        while time.monotonic() < end:
            event = ws.next_event()
            assert isinstance(event, Ping), event
            ws.send_event(event.response())
            pings += 1
        assert pings >= 5
        ws.send_binary(b"alive")
        assert ws.recv_bytes(5) == b"alive"


# -- request head limits ----------------------------------------------------------------------


@pytest.mark.parametrize(("extra", "status"), [
    ({f"X-Big-{n}": "a" * 8000 for n in range(9)}, 431),  # 72 KB of headers in all
    ({f"X-Many-{n}": "1" for n in range(101)}, 431),  # http.server: at most 100 headers
    ({"X-Long": "a" * 70000}, 431),  # one header line over 64 KiB
], ids=["over-64KiB-in-all", "over-100-headers", "one-line-over-64KiB"])
def test_a_request_head_over_the_limits_gets_431(
    start_proxy: StartProxy, echo_backend: EchoBackend, extra: dict[str, str | None],
    status: int,
) -> None:
    proxy = start_proxy(echo_backend.port)
    assert raw_http(proxy.port, upgrade_request(headers=extra)).status == status


def test_a_request_line_over_64KiB_gets_414_and_a_smaller_head_limit_applies(
    start_proxy: StartProxy, echo_backend: EchoBackend
) -> None:
    proxy = start_proxy(echo_backend.port, "--max-request-head", "2000")
    assert raw_http(proxy.port, upgrade_request(path="/" + "a" * 70000)).status == 414
    assert raw_http(proxy.port, upgrade_request(headers={"X-A": "a" * 2000})).status == 431
    with WSClient.connect(proxy.port) as ws:
        ws.send_binary(b"ok")
        assert ws.recv_bytes(2) == b"ok"


# -- fault injection ----------------------------------------------------------------------------


class ResetBackend(TCPBackend):
    """Accepts, then resets the connection at once (SO_LINGER 0)."""

    def handle(self, rec: ConnRecord) -> None:
        rec.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        rec.sock.close()


def test_a_target_that_accepts_then_resets_gives_close_1000_and_a_log_line(
    start_proxy: StartProxy,
) -> None:
    with ResetBackend() as backend:
        proxy = start_proxy(backend.port, "-v")
        with WSClient.connect(proxy.port) as ws:
            close = ws.recv_close()
        # Usually the relay reads the reset: 1000. When the reset beats the socket
        # options set right after connect(), the connect fails: 1011. Both are defined.
        if (close.code, close.reason) == (1000, "Target closed"):
            proxy.wait_for_log("Target closed connection")
        else:
            assert (close.code, close.reason) == (1011, "Failed to connect to downstream server")
            proxy.wait_for_log("Failed to connect to")
        assert "handler exception" not in proxy.stderr()


@pytest.mark.slow
def test_a_target_that_never_reads_ends_with_the_idle_timeout(
    start_proxy: StartProxy,
) -> None:
    """Backpressure stops the client; with --conn-idle-timeout the session still ends."""
    with NeverReadBackend() as backend:
        proxy = start_proxy(backend.port, "--conn-idle-timeout", "1")
        with WSClient.connect(proxy.port) as ws:
            ws.sock.settimeout(0.5)
            chunk = ws.ws.send(BytesMessage(data=b"z" * 65536))
            try:
                for _ in range(400):  # at most 26 MB; the proxy stops reading long before
                    ws.sock.sendall(chunk)
            except TimeoutError:
                pass
            close = ws.recv_close(timeout=TIMEOUT)
            assert (close.code, close.reason) == (1000, "Idle timeout")
        proxy.wait_for_log("Closing: 1000 Idle timeout", timeout=2 * TIMEOUT)


def test_a_client_that_vanishes_mid_session_closes_the_target(
    start_proxy: StartProxy, echo_backend: EchoBackend
) -> None:
    proxy = start_proxy(echo_backend.port, "-v")
    ws = WSClient.connect(proxy.port)
    ws.send_binary(b"before")
    assert ws.recv_bytes(6) == b"before"
    ws.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    ws.close_socket()  # RST, no Close frame
    (record,) = echo_backend.wait_connections(1)
    assert record.wait_eof(TIMEOUT)
    proxy.wait_for_log("Client closed connection")


#: ``python -m proxy`` with a 4 KiB file size limit: writes past it fail (EFBIG), as on a
#: full disk. --record refuses a symlink to /dev/full (issue #15), hence the limit.
SMALL_FILES = [sys.executable, "-c",
               "import resource, runpy, sys; "
               "resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096)); "
               "sys.argv[0] = 'proxy'; runpy.run_module('proxy', run_name='__main__')"]


def test_a_failing_write_under_record_stops_the_recording_not_the_session(
    start_proxy: StartProxy, echo_backend: EchoBackend, tmp_path: Path
) -> None:
    proxy = start_proxy(echo_backend.port, "--record", str(tmp_path / "rec"),
                        command=SMALL_FILES)
    with WSClient.connect(proxy.port) as ws:
        for _ in range(6):  # about 2 KiB recorded each way per message: past 4 KiB
            ws.send_binary(b"data" * 250)
            assert ws.recv_bytes(1000) == b"data" * 250
        ws.close()
        assert ws.recv_close().code == 1000
    line = proxy.wait_for_log("stopped: [Errno 27] File too large")
    assert "recording to" in line
    assert "handler exception" not in proxy.stderr()


def test_a_full_disk_under_log_file_is_reported_once_without_a_traceback(
    start_proxy: StartProxy, echo_backend: EchoBackend
) -> None:
    proxy = start_proxy(echo_backend.port, "-v", "--log-file", "/dev/full")
    for _ in range(2):
        with WSClient.connect(proxy.port) as ws:
            ws.send_binary(b"ok")
            assert ws.recv_bytes(2) == b"ok"
            ws.close()
            ws.recv_close()
    proxy.wait_for_log("cannot write to log file /dev/full: [Errno 28]")
    err = proxy.stderr()
    assert err.count("cannot write to log file") == 1
    assert "Logging error" not in err and "Traceback" not in err
