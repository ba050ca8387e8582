"""The opening handshake of ``websockify-client`` (issue #20 §2), pure: no sockets.

``parse_url`` reads the ``ws://``/``wss://`` URL (user info becomes Basic credentials),
``request`` builds the upgrade request with wsproto in the client role, and ``answer``
reads the server's response head: the open connection, or ``HandshakeRefused`` with the
status line for the one-line error report.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import h11
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, RejectConnection, RejectData, Request
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

__all__ = ["Endpoint", "HandshakeRefused", "answer", "parse_url", "request"]

#: The subprotocol offered unless told otherwise (websockify's only mode since 0.9).
DEFAULT_SUBPROTOCOL = "binary"


class HandshakeRefused(Exception):
    """The server answered the upgrade with something other than a 101."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status} {reason}".rstrip() if status else reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class Endpoint:
    """Where and how to open the WebSocket."""

    secure: bool
    host: str
    port: int
    resource: str  # path and query, as sent in the request line
    user: str | None = None
    password: str | None = None

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.secure else 80
        return host if self.port == default else f"{host}:{self.port}"


def parse_url(url: str) -> Endpoint:
    """Read a ``ws://`` or ``wss://`` URL.

    Raises:
        ValueError: with a message fit for a usage error.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss"):
        raise ValueError(f"URL must start with ws:// or wss://: {url}")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"bad port in URL: {url}") from None
    if not parts.hostname:
        raise ValueError(f"no host in URL: {url}")
    secure = parts.scheme == "wss"
    resource = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    user = unquote(parts.username) if parts.username is not None else None
    password = unquote(parts.password) if parts.password is not None else None
    return Endpoint(secure, parts.hostname, port or (443 if secure else 80), resource,
                    user, password)


def request(endpoint: Endpoint, headers: list[tuple[str, str]],
            subprotocols: list[str]) -> tuple[WSConnection, bytes]:
    """A client-role connection and the bytes of its upgrade request.

    Raises:
        ValueError: a header h11 refuses to send (a bad name, a control character).
    """
    extra = list(headers)
    if endpoint.user is not None and not any(k.lower() == "authorization" for k, _ in extra):
        token = f"{endpoint.user}:{endpoint.password or ''}".encode()
        extra.append(("Authorization", "Basic " + base64.b64encode(token).decode("ascii")))
    ws = WSConnection(ConnectionType.CLIENT)
    try:
        data = ws.send(Request(host=endpoint.host_header, target=endpoint.resource,
                               subprotocols=subprotocols,
                               extra_headers=[(k.encode(), v.encode()) for k, v in extra]))
    except (h11.LocalProtocolError, LocalProtocolError) as exc:  # a bad header name or value
        raise ValueError(f"cannot send this handshake: {exc}") from None
    return ws, data


def answer(ws: WSConnection, head: bytes) -> AcceptConnection:
    """Feed the response head (through its blank line, nothing after it) to ``ws``.

    Raises:
        HandshakeRefused: any answer but a valid 101, with the status line's code and reason.
    """
    try:
        ws.receive_data(head)
        for event in ws.events():
            if isinstance(event, AcceptConnection):
                return event
            if isinstance(event, (RejectConnection, RejectData)):
                break
    except RemoteProtocolError as exc:  # not HTTP, or a 101 without the right headers
        status, reason = _status_line(head)
        raise HandshakeRefused(status, reason or str(exc)) from exc
    raise HandshakeRefused(*_status_line(head))


def _status_line(head: bytes) -> tuple[int, str]:
    line = head.split(b"\r\n", 1)[0].decode("latin-1")
    fields = line.split(" ", 2)
    try:
        status = int(fields[1])
    except (IndexError, ValueError):
        return 0, f"not an HTTP response: {line[:80]!r}"
    return status, fields[2] if len(fields) > 2 else ""
