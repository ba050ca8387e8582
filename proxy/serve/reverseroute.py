"""The repeater's side of a request (issue #20 §1; docs/repeater.rst).

Which requests go to a parked server (``repeater_target``), taking that server for a
session (``take``), and the ``--reverse-listen`` sockets with their parking lot
(``Repeater``), opened with the server and closed with it.
"""

from __future__ import annotations

import logging
import socket
from http import HTTPStatus
from typing import Any

from proxy.errors import StartupError, TargetError, TokenError
from proxy.protocol.repeaterid import valid_id
from proxy.protocol.stream import ClientStream
from proxy.serve import askid
from proxy.serve.context import RequestContext
from proxy.settings import Settings, Target
from proxy.transport.httpio import RequestReader
from proxy.transport.parking import ParkingLot
from proxy.transport.reverse import ReverseListener
from proxy.transport.sockio import shut_and_close

log = logging.getLogger("proxy.repeater")
#: A token naming a parked server when a target or token plugin is configured as well.
PREFIX = "reverse:"
#: The repeater ID of a request without a token: asked of the client after the 101.
ASK = ""


class NotParked(TargetError):
    """No server parked under the ID within ``--reverse-wait``: 404 before the 101, or
    after it (the ``repeaterID`` route) a close 1011 whose reason names the ID."""

    status = HTTPStatus.NOT_FOUND

    def __init__(self, repeater_id: str) -> None:
        super().__init__(f"repeater ID {repeater_id} is not parked")
        # A close reason is at most 123 bytes (RFC 6455 §5.5): the ID is cut to fit.
        self.reason = f"Repeater ID {repeater_id[:80]} not parked"


def repeater_target(settings: Settings, token_plugin: Any, token: str | None) -> Target | None:
    """The parked server a request names, or None when it goes the usual way.

    With ``--reverse-listen`` alone every token is an ID; with a target or a token plugin
    as well only a ``reverse:`` token is, so every existing form keeps working.

    Raises:
        TokenError: an ID that cannot be one, or no token where one is needed.
    """
    if not settings.reverse_listen:
        return None
    if token is not None and token.startswith(PREFIX):
        repeater_id = token[len(PREFIX):]
    elif token_plugin is None and not (settings.target_host or settings.unix_target
                                       or settings.wrap_cmd):
        if token is None:
            return Target(repeater_id=ASK)  # noVNC's repeaterID: asked after the 101
        repeater_id = token
    else:
        return None
    if not valid_id(repeater_id):
        raise TokenError(HTTPStatus.NOT_FOUND, "Invalid repeater ID",
                         log_line=f"Invalid repeater ID {repeater_id[:40]!r}")
    return Target(repeater_id=repeater_id)


def pair(context: RequestContext, target: Target, client: socket.socket,
         stream: ClientStream | None, rfile: RequestReader) -> tuple[socket.socket, bytes]:
    """The parked server for ``target`` and what it sent so far; for ``ASK`` the ID is
    asked of the client first (``askid``), and what the client sent after it goes to the
    server.

    Raises:
        TargetError: no valid ID from the client, or nothing parked under the ID.
    """
    settings = context.settings
    if target.repeater_id != ASK:
        return take(context.parking, target, settings.reverse_wait)
    assert stream is not None  # ASK goes after the 101 (handler.do_GET)
    repeater_id, extra = askid.ask_id(client, stream, rfile.take_buffered(),
                                      settings.request_timeout)
    sock, held = take(context.parking, Target(repeater_id=repeater_id), settings.reverse_wait)
    if extra:
        try:
            sock.settimeout(settings.connect_timeout)
            sock.sendall(extra)
            sock.settimeout(None)
        except OSError as exc:
            shut_and_close(sock)
            raise TargetError(str(exc)) from exc
    return sock, held


def take(lot: ParkingLot | None, target: Target, wait: float) -> tuple[socket.socket, bytes]:
    """The socket parked under ``target.repeater_id`` and what its server sent so far.

    Raises:
        NotParked: nothing parked under the ID within ``wait`` seconds.
    """
    assert target.repeater_id is not None
    parked = None if lot is None else lot.take(target.repeater_id, wait)
    if parked is None:
        raise NotParked(target.repeater_id)
    return parked.sock, bytes(parked.held)


class Repeater:
    """The ``--reverse-listen`` sockets and the parking lot they fill."""

    def __init__(self, settings: Settings) -> None:
        self.lot = ParkingLot(settings.reverse_max_parked, settings.reverse_max_parked_per_ip)
        sockets: list[socket.socket] = []
        try:
            for host, port in settings.reverse_listen:
                sockets.append(_bind(host, port))
        except StartupError:
            for sock in sockets:
                sock.close()
            self.lot.close()
            raise
        self.listener = ReverseListener(sockets, self.lot, settings.reverse_allow,
                                        settings.request_timeout)
        self._started = False

    def fds(self) -> list[int]:
        """The listening descriptors, for ``--daemon`` to keep open."""
        return [sock.fileno() for sock in self.listener.sockets]

    def start(self) -> None:
        """Start accepting (idempotent); after any ``--daemon`` fork (``ProxyServer``)."""
        if not self._started:
            self._started = True
            self.lot.start()
            self.listener.start()

    def close(self) -> None:
        self.listener.close()
        self.lot.close()


def _bind(host: str, port: int) -> socket.socket:
    try:
        if not host and socket.has_dualstack_ipv6():
            sock = socket.create_server(("", port), family=socket.AF_INET6, dualstack_ipv6=True)
        else:
            sock = socket.create_server((host, port))
    except OSError as exc:
        raise StartupError(f"Could not listen for reverse connections on {host}:{port}: "
                           f"{exc}") from exc
    log.info("  - Listening for reverse connections on %s:%d", host, sock.getsockname()[1])
    return sock
