"""Close codes, protocol errors, ping/pong and the handshake deadline of the real command."""

from __future__ import annotations

import os
import re
import socket
import time

import pytest
from wsproto.events import Pong

from tests.conftest import TIMEOUT
from tests.integration.conftest import StartProxy
from tests.support.backends import EchoBackend, ScriptedBackend, SinkBackend
from tests.support.process import ProxyProcess, free_port
from tests.support.wsclient import OP_BINARY, OP_CONT, OP_TEXT, WSClient, build_frame

pytestmark = pytest.mark.integration

PREFIX = r"127\.0\.0\.1 - - \[\d{2}/[A-Z][a-z]{2}/\d{4} \d{2}:\d{2}:\d{2}\] "


def test_a_refused_target_gives_close_1011_after_the_101_and_a_log_line(
    start_proxy: StartProxy,
) -> None:
    """Nothing listens on the target port: 101, then close 1011, TCP closed, error logged."""
    dead_port = free_port()
    proxy = start_proxy(dead_port)
    with WSClient.connect(proxy.port) as ws:
        close = ws.recv_close()
        assert (close.code, close.reason) == (1011, "Failed to connect to downstream server")
        ws.reply_close(close)
        assert ws.wait_eof() == b""
    line = proxy.wait_for_log("Failed to connect to")
    assert re.fullmatch(
        PREFIX
        + re.escape(f"Failed to connect to 127.0.0.1:{dead_port}: [Errno 111] Connection refused"),
        line,
    ), line


@pytest.mark.parametrize("size", [12, 300 * 1024], ids=["banner", "300KiB"])
def test_target_eof_delivers_pending_data_then_close_1000_target_closed(
    start_proxy: StartProxy, size: int
) -> None:
    """The target sends its script and closes: the client gets every byte, then 1000."""
    script = b"RFB 003.008\n" if size == 12 else bytes(range(256)) * (size // 256)
    with ScriptedBackend(script) as backend:
        proxy = start_proxy(backend.port)
        with WSClient.connect(proxy.port, subprotocols=["binary"]) as ws:
            messages, close = ws.recv_messages_until_close()
            data = b"".join(
                m.data if isinstance(m.data, (bytes, bytearray)) else m.data.encode()
                for m in messages
            )
            assert data == script
            assert (close.code, close.reason) == (1000, "Target closed")
            ws.reply_close(close)
            assert ws.wait_eof() == b""
        assert backend.connection().wait_eof(), "proxy did not close the target socket"


def test_a_ping_is_answered_with_a_pong_carrying_the_same_payload(
    proxy_process: ProxyProcess,
) -> None:
    """Pings with an empty, short and 125-byte payload each get the matching pong."""
    with WSClient.connect(proxy_process.port) as ws:
        for payload in (b"", b"abc", bytes(range(125))):
            ws.ping(payload)
            event = ws.next_event()
            assert isinstance(event, Pong), event
            assert event.payload == payload


@pytest.mark.parametrize(
    ("code", "reason"), [(4001, "bye"), (1000, ""), (3000, "gr\u00fc\u00df")],
    ids=["4001 bye", "1000 no reason", "3000 non-ascii"],
)
def test_a_client_close_is_echoed_and_the_target_sees_eof(
    proxy_process: ProxyProcess, echo_backend: EchoBackend, code: int, reason: str
) -> None:
    """Close after some data: the same code and reason come back; the target gets EOF."""
    with WSClient.connect(proxy_process.port) as ws:
        ws.send_binary(b"before close")
        assert ws.recv_bytes(12) == b"before close"
        ws.close(code, reason)
        close = ws.recv_close()
        assert (close.code, close.reason) == (code, reason)
        rec = echo_backend.connection()
        assert rec.wait_eof(), "the target connection was not closed"
        assert rec.data == b"before close"
        assert ws.wait_eof() == b""


def test_client_data_sent_just_before_the_close_is_flushed_to_the_target(
    start_proxy: StartProxy,
) -> None:
    """2 MiB of binary messages immediately followed by a close frame all reach the target."""
    payload = os.urandom(2 * 1024 * 1024)
    with SinkBackend() as sink:
        proxy = start_proxy(sink.port)
        with WSClient.connect(proxy.port) as ws:
            for i in range(0, len(payload), 65536):
                ws.send_binary(payload[i:i + 65536])
            ws.close(1000, "done")
            close = ws.recv_close(timeout=4 * TIMEOUT)
            assert (close.code, close.reason) == (1000, "done")
        rec = sink.connection()
        assert rec.wait_eof(4 * TIMEOUT), f"target not closed; got {rec.count} bytes"
        assert rec.data == payload


def test_dropping_tcp_without_a_close_frame_closes_the_target(
    proxy_process: ProxyProcess, echo_backend: EchoBackend
) -> None:
    """The client vanishes mid-session: the backend connection gets EOF."""
    ws = WSClient.connect(proxy_process.port)
    ws.send_binary(b"x")
    assert ws.recv_bytes(1) == b"x"
    ws.close_socket()
    assert echo_backend.connection().wait_eof()


def test_text_frames_are_rejected_with_1003_when_configured(
    start_proxy: StartProxy, echo_backend: EchoBackend
) -> None:
    """`--text-frames=reject`: a TEXT frame gets close 1003 with websockify's exact reason."""
    proxy = start_proxy(echo_backend.port, "--text-frames=reject")
    with WSClient.connect(proxy.port) as ws:
        ws.send_text("Hello")
        close = ws.recv_close()
        assert (close.code, close.reason) == (1003, "Unsupported: Text frames are not supported")
    assert all(rec.count == 0 for rec in echo_backend.connections)


def test_binary_frames_still_work_when_text_frames_are_rejected(
    start_proxy: StartProxy, echo_backend: EchoBackend
) -> None:
    """`--text-frames=reject` only affects TEXT frames."""
    proxy = start_proxy(echo_backend.port, "--text-frames=reject")
    with WSClient.connect(proxy.port) as ws:
        ws.send_binary(b"Hello")
        assert ws.recv_bytes(5) == b"Hello"


def test_text_with_invalid_utf8_gets_close_1007_and_is_not_forwarded(
    proxy_process: ProxyProcess, echo_backend: EchoBackend
) -> None:
    """A TEXT frame carrying `\\xff\\xfe` is closed with 1007 (invalid frame payload data)."""
    with WSClient.connect(proxy_process.port) as ws:
        ws.send_raw(build_frame(OP_TEXT, b"ok\xff\xfe"))
        close = ws.recv_close()
        assert close.code == 1007
    assert all(rec.count == 0 for rec in echo_backend.connections)


PROTOCOL_ERRORS = [
    (build_frame(OP_BINARY, b"unmasked", mask=False), 1002, "Procotol error: Frame not masked"),
    (build_frame(OP_CONT, b"orphan"), 1002, "Procotol error: Unexpected continuation frame"),
    (build_frame(0x3, b"x"), 1002, "Unsupported: Unknown opcode 0x03"),
]


@pytest.mark.parametrize(
    ("frame", "code", "reason"), PROTOCOL_ERRORS, ids=["unmasked", "continuation", "opcode 3"]
)
def test_a_protocol_violation_gets_a_close_with_websockifys_reason(
    proxy_process: ProxyProcess, echo_backend: EchoBackend, frame: bytes, code: int,
    reason: str,
) -> None:
    """Unmasked frame, orphan continuation, opcode 3: close code and reason byte for byte."""
    with WSClient.connect(proxy_process.port) as ws:
        ws.send_raw(frame)
        close = ws.recv_close()
        assert (close.code, close.reason) == (code, reason)
    assert all(rec.count == 0 for rec in echo_backend.connections)


@pytest.mark.slow
def test_a_silent_client_is_disconnected_after_about_3_seconds_without_a_response(
    proxy_process: ProxyProcess, echo_backend: EchoBackend
) -> None:
    """Connect and send nothing: after ~3 s the proxy closes TCP and has sent zero bytes."""
    with socket.create_connection(("127.0.0.1", proxy_process.port), timeout=TIMEOUT) as sock:
        start = time.monotonic()
        received = bytearray()
        sock.settimeout(3.0 + TIMEOUT)
        try:
            while chunk := sock.recv(4096):
                received += chunk
        except ConnectionResetError:
            pass
        elapsed = time.monotonic() - start
    assert received == b""
    assert 2.5 <= elapsed <= 3.0 + TIMEOUT, f"closed after {elapsed:.2f} s"
    assert echo_backend.accepted == 0


def test_a_slow_client_handshake_does_not_block_other_clients(
    proxy_process: ProxyProcess,
) -> None:
    """While one client stalls mid-request, another upgrades and echoes normally."""
    with socket.create_connection(("127.0.0.1", proxy_process.port), timeout=TIMEOUT) as stall:
        stall.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        with WSClient.connect(proxy_process.port) as ws:
            ws.send_binary(b"not blocked")
            assert ws.recv_bytes(11) == b"not blocked"
