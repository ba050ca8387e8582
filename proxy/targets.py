"""Open the connection to the target; socket options for both ends are set here.

``relay`` must not set socket options (it is tested over AF_UNIX socketpairs), so
TCP_NODELAY and SO_KEEPALIVE live in this module (spec §6).
"""

from __future__ import annotations

import socket

from proxy.errors import TargetError


def tune_tcp(sock: socket.socket) -> None:
    """TCP_NODELAY for interactive latency and SO_KEEPALIVE to notice dead peers (§6)."""
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)


def open_target(host: str, port: int, timeout: float) -> socket.socket:
    """Connect to ``host:port``, trying every resolved address in turn.

    websockify tries only the first address and has no connect timeout (spec §4.3,
    §7.7); a bounded connect keeps one dead target from holding a thread for minutes.

    Raises:
        TargetError: the target could not be reached; ``__cause__`` holds the OSError.
    """
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError as exc:
        raise TargetError(str(exc)) from exc
    try:
        tune_tcp(sock)
        sock.settimeout(None)
    except OSError as exc:
        sock.close()
        raise TargetError(str(exc)) from exc
    return sock


def open_unix_target(path: str, timeout: float) -> socket.socket:
    """Connect to the Unix stream socket at ``path`` (``--unix-target``, spec §7.8).

    Raises:
        TargetError: the socket could not be reached.
    """
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(path)
        sock.settimeout(None)
    except OSError as exc:
        sock.close()
        raise TargetError(str(exc)) from exc
    return sock
