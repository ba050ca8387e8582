"""WebSocket clients for the tests.

- :class:`WSClient`: a raw-socket client on wsproto (``ConnectionType.CLIENT``). It can do a
  handshake with custom headers and subprotocols, send well-formed messages, and send raw bytes
  (``build_frame``) for protocol-violation tests. It receives events with a timeout.
- :func:`raw_http`: send arbitrary request bytes and parse the HTTP response (for handshake
  rejections).
- :class:`DrainingClient`: simple_websocket.Client that also delivers frames received together
  with the 101 (notes/libraries.md §1.7).
"""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import simple_websocket
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Event,
    Message,
    Ping,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)

from tests.conftest import TIMEOUT

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def build_frame(
    opcode: int,
    payload: bytes = b"",
    *,
    fin: bool = True,
    mask: bool = True,
    rsv: int = 0,
    mask_key: bytes | None = None,
) -> bytes:
    """Encode one WebSocket frame by hand (any opcode, masked or not)."""
    head = bytearray([(0x80 if fin else 0) | (rsv & 0x7) << 4 | (opcode & 0xF)])
    n = len(payload)
    mask_bit = 0x80 if mask else 0
    if n < 126:
        head.append(mask_bit | n)
    elif n < 1 << 16:
        head.append(mask_bit | 126)
        head += struct.pack("!H", n)
    else:
        head.append(mask_bit | 127)
        head += struct.pack("!Q", n)
    if not mask:
        return bytes(head) + payload
    key = mask_key if mask_key is not None else os.urandom(4)
    head += key
    if not payload:
        return bytes(head)
    repeated = (key * (n // 4 + 1))[:n]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(n, "big")
    return bytes(head) + masked


class HandshakeRejected(AssertionError):
    """The server answered the upgrade with something other than 101."""

    def __init__(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        super().__init__(f"handshake rejected: {status} {headers!r} {body[:200]!r}")
        self.status = status
        self.headers = headers
        self.body = body


class WSClient:
    """A blocking WebSocket client over a plain socket, driven by wsproto.

    Every socket operation has a timeout (default TIMEOUT). Use as a context manager, or call
    ``close_socket()``.
    """

    def __init__(self, sock: socket.socket, ws: WSConnection) -> None:
        self.sock = sock
        self.ws = ws
        self._events: list[Event] = []
        self.accept: AcceptConnection | None = None
        self.eof = False

    @classmethod
    def connect(
        cls,
        port: int,
        path: str = "/",
        *,
        subprotocols: Sequence[str] = (),
        extra_headers: Iterable[tuple[str, str]] = (),
        host: str = "127.0.0.1",
        timeout: float = TIMEOUT,
    ) -> WSClient:
        sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        client = cls(sock, WSConnection(ConnectionType.CLIENT))
        try:
            client.handshake(path, subprotocols, extra_headers, host)
        except BaseException:
            sock.close()
            raise
        return client

    def handshake(
        self,
        path: str,
        subprotocols: Sequence[str],
        extra_headers: Iterable[tuple[str, str]],
        host: str,
    ) -> AcceptConnection:
        request = Request(
            host=host,
            target=path,
            subprotocols=list(subprotocols),
            extra_headers=[(k.encode(), v.encode()) for k, v in extra_headers],
        )
        self.sock.sendall(self.ws.send(request))
        reject: RejectConnection | None = None
        body = bytearray()
        while True:
            event = self.next_event()
            if isinstance(event, AcceptConnection):
                self.accept = event
                return event
            if isinstance(event, RejectConnection):
                reject = event
                if not event.has_body:
                    break
            elif isinstance(event, RejectData):
                body += event.data
                if event.body_finished:
                    break
            else:
                raise AssertionError(f"unexpected event during handshake: {event!r}")
        assert reject is not None
        raise HandshakeRejected(reject.status_code, list(reject.headers), bytes(body))

    # -- context manager ---------------------------------------------------------------------

    def __enter__(self) -> WSClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close_socket()

    def close_socket(self) -> None:
        self.sock.close()

    # -- sending -----------------------------------------------------------------------------

    def send_event(self, event: Event) -> None:
        self.sock.sendall(self.ws.send(event))

    def send_binary(self, data: bytes, fin: bool = True) -> None:
        self.send_event(BytesMessage(data=data, message_finished=fin))

    def send_text(self, text: str, fin: bool = True) -> None:
        self.send_event(TextMessage(data=text, message_finished=fin))

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def ping(self, payload: bytes = b"") -> None:
        self.send_event(Ping(payload=payload))

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Send a close frame (not the TCP close)."""
        self.send_event(CloseConnection(code=code, reason=reason))

    # -- receiving ---------------------------------------------------------------------------

    def _fill(self, timeout: float) -> None:
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(262144)
        finally:
            self.sock.settimeout(TIMEOUT)
        if not data:
            self.eof = True
            self.ws.receive_data(None)
        else:
            self.ws.receive_data(data)
        self._events.extend(self.ws.events())

    def next_event(self, timeout: float = TIMEOUT) -> Event:
        """The next event; raises TimeoutError, or AssertionError on EOF without an event."""
        while not self._events:
            if self.eof:
                raise AssertionError("connection closed (EOF) while waiting for an event")
            self._fill(timeout)
        return self._events.pop(0)

    def recv_bytes(self, n: int, timeout: float = TIMEOUT) -> bytes:
        """Collect ``n`` bytes of message data across any number of messages.

        Text messages count as their UTF-8 bytes. Any other event fails the assertion.
        """
        buf = bytearray()
        while len(buf) < n:
            event = self.next_event(timeout)
            if isinstance(event, BytesMessage):
                buf += event.data
            elif isinstance(event, TextMessage):
                buf += event.data.encode()
            else:
                raise AssertionError(f"got {event!r} after {len(buf)} of {n} bytes")
        assert len(buf) == n, f"got {len(buf)} bytes, expected {n}"
        return bytes(buf)

    def echo(self, payload: bytes = b"ping") -> None:
        """One binary message to an echo target and its bytes back."""
        self.send_binary(payload)
        assert self.recv_bytes(len(payload)) == payload

    def recv_messages_until_close(
        self, timeout: float = TIMEOUT
    ) -> tuple[list[Message[Any]], CloseConnection]:
        """All data messages up to the close frame (pings and pongs are skipped)."""
        messages: list[Message[Any]] = []
        while True:
            event = self.next_event(timeout)
            if isinstance(event, CloseConnection):
                return messages, event
            if isinstance(event, Message):
                messages.append(event)

    def recv_close(self, timeout: float = TIMEOUT) -> CloseConnection:
        """The next event must be a close frame (data messages before it fail the test)."""
        event = self.next_event(timeout)
        assert isinstance(event, CloseConnection), f"expected a close frame, got {event!r}"
        return event

    def reply_close(self, event: CloseConnection) -> None:
        """Answer the server's close frame (completing the closing handshake)."""
        self.send_event(event.response())

    def wait_eof(self, timeout: float = TIMEOUT) -> bytes:
        """Read until the server closes TCP; return any bytes that came first."""
        extra = bytearray()
        self.sock.settimeout(timeout)
        try:
            while True:
                try:
                    data = self.sock.recv(65536)
                except ConnectionResetError:
                    break
                if not data:
                    break
                extra += data
        finally:
            self.sock.settimeout(TIMEOUT)
        self.eof = True
        return bytes(extra)


# -- raw HTTP -----------------------------------------------------------------------------------


@dataclass
class HTTPResponse:
    status_line: bytes
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    @property
    def status(self) -> int:
        return int(self.status_line.split(b" ", 2)[1])

    @property
    def reason(self) -> str:
        parts = self.status_line.split(b" ", 2)
        return parts[2].decode("latin-1") if len(parts) > 2 else ""

    def header(self, name: str) -> str | None:
        values = self.all(name)
        return values[0] if values else None

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]


def echo_session(port: int, payload: bytes) -> None:
    """A whole session with an echo target: connect, one echo, Close 1000 both ways."""
    with WSClient.connect(port) as client:
        client.echo(payload)
        client.close(1000)
        assert isinstance(client.recv_close(), CloseConnection)


def raw_http(port: int, request: bytes, timeout: float = TIMEOUT) -> HTTPResponse:
    """Send ``request`` verbatim and parse the response.

    For a 101 it returns right after the headers; otherwise it reads the body (by
    Content-Length, else until the server closes).
    """
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        buf = bytearray()
        while b"\r\n\r\n" not in buf:
            data = sock.recv(65536)
            if not data:
                raise AssertionError(f"connection closed before the end of the headers: {buf!r}")
            buf += data
        head, _, rest = bytes(buf).partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        headers = []
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers.append((name.decode("latin-1"), value.strip().decode("latin-1")))
        response = HTTPResponse(lines[0], headers)
        if response.status == 101:
            response.body = rest
            return response
        body = bytearray(rest)
        length = response.header("Content-Length")
        if length is not None and request.split(b" ", 1)[0] != b"HEAD":
            while len(body) < int(length):
                data = sock.recv(65536)
                if not data:
                    break
                body += data
        elif length is None:
            while data := sock.recv(65536):
                body += data
        response.body = bytes(body)
        return response


def upgrade_request(
    *,
    method: str = "GET",
    path: str = "/",
    version: str = "HTTP/1.1",
    headers: dict[str, str | None] | None = None,
) -> bytes:
    """A WebSocket upgrade request; ``headers`` overrides (None removes) the defaults."""
    base: dict[str, str | None] = {
        "Host": "127.0.0.1",
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version": "13",
    }
    base.update(headers or {})
    lines = [f"{method} {path} {version}"]
    lines += [f"{k}: {v}" for k, v in base.items() if v is not None]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


# -- simple-websocket ---------------------------------------------------------------------------


class DrainingClient(simple_websocket.Client):  # type: ignore[misc]
    """simple_websocket.Client that also delivers frames received together with the 101."""

    def handshake(self) -> None:
        super().handshake()
        self._handle_events()  # queue whatever wsproto already parsed
