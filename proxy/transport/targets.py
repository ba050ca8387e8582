"""Open the connection to the target; socket options for both ends are set here.

``relay`` must not set socket options (it is tested over AF_UNIX socketpairs), so
TCP_NODELAY and SO_KEEPALIVE live in this module (spec §6).
"""

from __future__ import annotations

import functools
import socket
import ssl
from collections.abc import Callable

from proxy.transport import tls
from proxy.errors import TargetError
from proxy.settings import Settings, Target


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
    family = numeric_family(host)
    try:
        if family is None:
            sock = socket.create_connection((host, port), timeout=timeout)
        else:
            sock = _connect_numeric(family, host, port, timeout)
    except (OSError, OverflowError) as exc:  # OverflowError: a port over 65535 (connect())
        raise TargetError(str(exc)) from exc
    try:
        tune_tcp(sock)
        sock.settimeout(None)
    except OSError as exc:
        sock.close()
        raise TargetError(str(exc)) from exc
    return sock


@functools.lru_cache(maxsize=256)
def numeric_family(host: str) -> int | None:
    """AF_INET or AF_INET6 for an IP address literal, None for a name to resolve.

    A fixed numeric target needs no getaddrinfo() per connection (issue #19). Forms
    inet_pton() does not take (``127.1``, ``fe80::1%eth0``) go through getaddrinfo().
    """
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
        except (OSError, ValueError):
            continue
        return family
    return None


def _connect_numeric(family: int, host: str, port: int, timeout: float) -> socket.socket:
    """``socket.create_connection`` for one known address: the same errors, no lookup."""
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect((host, port))
    except BaseException:
        sock.close()
        raise
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


def dial(target: Target, settings: Settings, context: ssl.SSLContext | None,
         preamble: bytes, log: Callable[..., None]) -> socket.socket:
    """Open ``target`` as configured, logging websockify's lines with ``log`` (spec §3.3).

    Args:
        context: the ``--ssl-target`` client context, or None for plain TCP.
        preamble: bytes sent first, before any TLS (the PROXY protocol header), or b"".

    Raises:
        TargetError: the target could not be reached (``__cause__`` holds the error).
    """
    timeout = settings.connect_timeout
    if target.unix_socket:
        log("connecting to unix socket: %s", target.unix_socket)
        return _send_preamble(open_unix_target(target.unix_socket, timeout), preamble)
    # websockify also logs "(using SSL)" for a Unix target but does not use TLS there
    # (spec §7.6); we neither wrap nor claim it.
    using_ssl = " (using SSL)" if context else ""
    if settings.wrap_cmd:
        log("connecting to command: '%s' (port %d)%s", " ".join(settings.wrap_cmd),
            target.port, using_ssl)
    else:
        log("connecting to: %s%s", target.display, using_ssl)
    sock = _send_preamble(open_target(target.host, target.port, timeout), preamble)
    if context is None:
        return sock
    return tls.connect_target(sock, context, target.host, timeout)


def _send_preamble(sock: socket.socket, preamble: bytes) -> socket.socket:
    """Send ``preamble`` (if any) on a fresh target connection; close it on failure."""
    if preamble:
        try:
            sock.sendall(preamble)
        except OSError as exc:
            sock.close()
            raise TargetError(str(exc)) from exc
    return sock
