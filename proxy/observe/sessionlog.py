"""Per-connection facts for ``--log-format json`` and the metrics (one record per connection).

``Session`` is filled in by the handler thread that owns it (never shared), fact by fact
as the handler learns them; ``record`` turns it into the JSON object that
``--log-format json`` logs when the connection ends. ``failure_reason`` is the one place
a rejected request is classified for both. No sockets here, and nothing of the stages
this observes (protocol, access): the handler hands over plain facts (#17 §2).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from proxy.observe import jsonlog, probes
from proxy.errors import (AuthError, RequestError, RequestHeadTooLarge, RequestTimeout,
                          TargetError, TokenError)
from proxy.observe.metrics import ByteCounts, Metrics
from proxy.settings import Settings

#: The logger of the JSON records (same root handlers as every other line).
log = logging.getLogger("proxy.sessions")

LOG_FORMATS = ("classic", "json", "both")


@dataclass
class Session:
    """What one connection did; owned by its handler thread."""

    peer: str
    peer_port: int | None = None
    started: float = field(default_factory=time.time)
    started_monotonic: float = field(default_factory=time.monotonic)
    #: The client as the logs name it (a trusted proxy's X-Forwarded-For, else the peer).
    client: str = ""
    forwarded_for: str | None = None
    tls: bool = False
    method: str | None = None
    path: str | None = None
    #: A WebSocket upgrade was asked for.
    websocket: bool = False
    status: int | None = None
    token: str | None = None
    target: str | None = None
    #: The subprotocol answered in the 101 (issue #21: the admin API lists it too).
    subprotocol: str | None = None
    relay: ByteCounts | None = None
    close_code: int | None = None
    close_reason: str | None = None
    closed_by_client: bool | None = None
    failure: str | None = None
    #: The connection closed (or timed out) before sending a byte: a port probe.
    silent: bool = False

    @property
    def upgraded(self) -> bool:
        return self.status == HTTPStatus.SWITCHING_PROTOCOLS

    def reject(self, exc: RequestError) -> None:
        self.failure = failure_reason(exc) or self.failure


def failure_reason(exc: RequestError) -> str | None:
    """The metrics label of a rejected request; None for a request that never was one
    (408, 431: http.server's answers, not counted as failed sessions)."""
    if isinstance(exc, (RequestTimeout, RequestHeadTooLarge)):
        return None
    if isinstance(exc, TokenError):
        return "token"
    if isinstance(exc, AuthError):
        return "auth"
    if isinstance(exc, TargetError):
        return "target"
    if exc.status in (HTTPStatus.SERVICE_UNAVAILABLE, HTTPStatus.TOO_MANY_REQUESTS):
        return "limit"
    if exc.status in (HTTPStatus.BAD_GATEWAY, HTTPStatus.GATEWAY_TIMEOUT):
        return "target"
    return "handshake"


def record(session: Session, now: float | None = None) -> dict[str, Any]:
    """The JSON object logged for ``session`` (``now``: a ``time.monotonic()`` value)."""
    ended = time.monotonic() if now is None else now
    relay = session.relay
    closed_by = None
    if session.closed_by_client is not None:
        closed_by = "client" if session.closed_by_client else "server"
    return {
        "time": jsonlog.iso_time(session.started),
        "client": session.client or session.peer,
        "peer": session.peer,
        "peer_port": session.peer_port,
        "forwarded_for": session.forwarded_for,
        "tls": session.tls,
        "method": session.method,
        "path": session.path,
        "websocket": session.websocket,
        "status": session.status,
        "token": session.token,
        "target": session.target,
        "subprotocol": session.subprotocol,
        "bytes_from_client": relay.received_from_client if relay else 0,
        "bytes_from_target": relay.received_from_target if relay else 0,
        "duration": round(ended - session.started_monotonic, 3),
        "close_code": session.close_code,
        "close_reason": session.close_reason,
        "closed_by": closed_by,
        "failure": session.failure,
    }


def emit(session: Session, level: int = logging.INFO) -> None:
    """Log ``session`` as one JSON line (the fields ride along for ``proxy.observe.jsonlog``)."""
    if log.isEnabledFor(level):
        fields = record(session)
        log.log(level, "%s", jsonlog.dumps(fields), extra={jsonlog.FIELDS: fields})


def is_probe(session: Session, settings: Settings) -> bool:
    """A port probe (closed before sending a byte) or a ``--health-path``/``--metrics-path``
    request: no record at the default verbosity, ``-v`` shows them (issue #16); the metrics
    count them anyway. Load-balancer checks must not drown the session records."""
    return session.silent or (session.path is not None
                              and probes.route(settings, session.path) is not None)


def start(client_address: Any, metrics: Metrics) -> Session:
    """A new connection's ``Session`` (counted in ``metrics`` at once)."""
    metrics.connection_started()
    if isinstance(client_address, tuple) and len(client_address) >= 2:
        return Session(peer=str(client_address[0]), peer_port=int(client_address[1]))
    return Session(peer="unix")


def finish(session: Session, metrics: Metrics, settings: Settings) -> None:
    """The connection ended: count it, and log the JSON record unless ``--log-format
    classic``."""
    if session.relay is not None:
        metrics.relay_finished(session.relay)
    metrics.connection_finished(
        failure=session.failure, status=session.status if session.websocket else None,
        upgrade=session.upgraded, close_code=session.close_code)
    if settings.log_format != "classic":
        emit(session, logging.DEBUG if is_probe(session, settings) else logging.INFO)
