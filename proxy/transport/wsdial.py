"""Open the WebSocket of ``websockify-client`` (issue #20 §2): TCP, TLS, the handshake.

Every wait is bounded by one deadline and the response head by ``MAX_HEAD``; the
socket is closed on every failure. Bytes the server sent after its 101 (an RFB banner
in the same segment) are returned for the relay to feed first.
"""

from __future__ import annotations

import socket
import ssl
import time

from wsproto import WSConnection

from proxy.errors import TargetError
from proxy.protocol.clienthandshake import Endpoint, HandshakeRefused, answer, request
from proxy.transport.sockio import recv_within
from proxy.transport.targets import open_target

__all__ = ["MAX_HEAD", "client_context", "open_websocket"]

#: Largest response head we read before giving up on the server.
MAX_HEAD = 64 * 1024  # bytes


def client_context(cafile: str | None = None, cert: str | None = None,
                   key: str | None = None, insecure: bool = False) -> ssl.SSLContext:
    """Verification on by default (system store or ``cafile``); off only by ``insecure``."""
    context = ssl.create_default_context(cafile=cafile)
    if cert:
        context.load_cert_chain(cert, key)
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def open_websocket(endpoint: Endpoint, headers: list[tuple[str, str]], subprotocols: list[str],
                   context: ssl.SSLContext | None, timeout: float
                   ) -> tuple[socket.socket, WSConnection, bytes]:
    """Connect, handshake and return ``(socket, open connection, bytes after the 101)``.

    Raises:
        TargetError: the server could not be reached, or TLS failed.
        HandshakeRefused: the server answered without a 101.
    """
    deadline = time.monotonic() + timeout
    sock = open_target(endpoint.host, endpoint.port, timeout)
    try:
        sock.settimeout(timeout)
        if endpoint.secure:
            assert context is not None
            try:
                sock = context.wrap_socket(sock, server_hostname=endpoint.host)
            except (OSError, ssl.SSLError) as exc:
                raise TargetError(f"TLS: {exc}") from exc
        ws, data = request(endpoint, headers, subprotocols)
        sock.sendall(data)
        head, rest = _read_head(sock, deadline)
        answer(ws, head)
        sock.settimeout(None)
        return sock, ws, rest
    except OSError as exc:
        sock.close()
        raise TargetError(str(exc)) from exc
    except (TargetError, HandshakeRefused):
        sock.close()
        raise


def _read_head(sock: socket.socket, deadline: float) -> tuple[bytes, bytes]:
    buf = b""
    while True:
        end = buf.find(b"\r\n\r\n")
        if end >= 0:
            return buf[:end + 4], buf[end + 4:]
        if len(buf) > MAX_HEAD:
            raise HandshakeRefused(0, f"response head over {MAX_HEAD} bytes")
        try:
            chunk = recv_within(sock, 16384, deadline)
        except TimeoutError as exc:
            raise TargetError("timed out waiting for the handshake response") from exc
        if not chunk:
            raise HandshakeRefused(0, "connection closed before the handshake response")
        buf += chunk
