"""ProxyServer + ProxyRequestHandler in-process on port 0, driven with raw sockets."""

from __future__ import annotations

import base64
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from wsproto import ConnectionType, WSConnection
from wsproto.events import (AcceptConnection, CloseConnection, Event, Message, Request,
                            TextMessage)

from proxy.serve.server import ProxyServer
from tests.conftest import TIMEOUT
from tests.support.wspair import raw_frame
from tests.support.inprocess import running

UPGRADE = (
    "GET /path HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
)


@contextmanager
def echo_backend() -> Iterator[int]:
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(TIMEOUT)

    def serve() -> None:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(TIMEOUT)
            while data := conn.recv(65536):
                conn.sendall(data)

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()
        thread.join(TIMEOUT)


def connect(server: ProxyServer) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT)
    return sock


def read_all(sock: socket.socket) -> bytes:
    data = bytearray()
    while chunk := sock.recv(65536):
        data += chunk
    return bytes(data)


def test_a_silent_client_is_closed_without_a_response() -> None:
    with running(first_byte_timeout=0.2) as server, connect(server) as sock:
        started = time.monotonic()
        assert read_all(sock) == b""
        assert 0.15 < time.monotonic() - started < TIMEOUT


def test_a_request_that_never_completes_gets_408_within_the_deadline() -> None:
    """A slowloris client dribbling header bytes cannot extend the request deadline."""
    with running(request_timeout=0.5) as server, connect(server) as sock:
        started = time.monotonic()
        sock.sendall(b"GET / HTTP/1.1\r\n")
        answer = b""
        for _ in range(100):
            try:
                sock.sendall(b"X")
            except OSError:
                break
            sock.settimeout(0.05)
            try:
                answer += sock.recv(4096)
            except TimeoutError:
                continue
            if answer:
                break
        sock.settimeout(TIMEOUT)
        answer += read_all(sock)
        assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
        assert time.monotonic() - started < 0.5 + TIMEOUT / 5


@pytest.mark.parametrize(
    ("request_line", "status"),
    [
        ("GET / HTTP/1.1", b"HTTP/1.1 405 Method Not Allowed"),
        ("HEAD / HTTP/1.1", b"HTTP/1.1 405 Method Not Allowed"),
        ("POST / HTTP/1.1", b"HTTP/1.1 501 Unsupported method ('POST')"),
        ("BREW / HTTP/1.1", b"HTTP/1.1 501 Unsupported method ('BREW')"),
    ],
)
def test_plain_http_requests_get_websockify_statuses(request_line: str, status: bytes) -> None:
    with running() as server, connect(server) as sock:
        sock.sendall(f"{request_line}\r\nHost: x\r\n\r\n".encode())
        head = read_all(sock).split(b"\r\n\r\n")[0].split(b"\r\n")
        assert head[0] == status
        assert any(line.startswith(b"Server: WebSockify Python/") for line in head)
        assert any(line.startswith(b"Date: ") for line in head)


def test_frames_sent_with_the_request_reach_the_target() -> None:
    with echo_backend() as port, running(target_port=port) as server, connect(server) as sock:
        sock.sendall(UPGRADE.encode() + raw_frame(0x2, b"with the handshake"))
        data = bytearray()
        while b"with the handshake" not in data:
            chunk = sock.recv(65536)
            assert chunk, "connection closed early"
            data += chunk
        assert data.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
        assert data.endswith(b"\x82\x12with the handshake")


def test_an_unreachable_target_gets_close_1011_after_the_101() -> None:
    with socket.create_server(("127.0.0.1", 0)) as reserved:
        port = reserved.getsockname()[1]
    with running(target_port=port) as server, connect(server) as sock:
        ws = WSConnection(ConnectionType.CLIENT)
        sock.sendall(ws.send(Request(host="x", target="/")))
        events: list[Event] = []
        while not any(isinstance(e, CloseConnection) for e in events):
            chunk = sock.recv(65536)
            assert chunk
            ws.receive_data(chunk)
            events.extend(ws.events())
        assert isinstance(events[0], AcceptConnection)
        assert events[-1] == CloseConnection(code=1011,
                                             reason="Failed to connect to downstream server")
        sock.sendall(ws.send(events[-1].response()))
        assert read_all(sock) == b""


def test_base64_subprotocol_round_trip() -> None:
    """Each target read comes back as one base64 text message."""
    with echo_backend() as port, running(target_port=port) as server, connect(server) as sock:
        ws = WSConnection(ConnectionType.CLIENT)
        sock.sendall(ws.send(Request(host="x", target="/", subprotocols=["base64"])))
        payload = os.urandom(3000)
        received = b""
        while len(received) < len(payload):
            data = sock.recv(65536)
            assert data, "connection closed early"
            ws.receive_data(data)
            for event in ws.events():
                if isinstance(event, AcceptConnection):
                    assert event.subprotocol == "base64"
                    sock.sendall(ws.send(Message(data=base64.b64encode(payload).decode())))
                else:
                    assert isinstance(event, TextMessage) and event.message_finished
                    received += base64.b64decode(event.data)
        assert received == payload
        sock.sendall(ws.send(CloseConnection(code=1000)))
