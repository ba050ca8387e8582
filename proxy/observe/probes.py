"""Built-in operational paths: ``--health-path`` and ``--metrics-path`` (plain GET/HEAD).

They take precedence over ``--web`` files of the same path. ``--web-auth`` applies to
metrics but not to health: load balancers probe without credentials. ``health`` and
``route`` are pure; ``respond`` writes through the handler.
"""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler

from proxy.observe import metrics, parkingmetrics
from proxy.transport.parking import ParkingLot
from proxy.settings import Settings

HEALTH = "health"
METRICS = "metrics"
#: Health turns 503 when fewer descriptors than this are left (2 per new connection).
FD_RESERVE = 32


def route(settings: Settings, target: str) -> str | None:
    """``HEALTH``, ``METRICS`` or None for the request target ``target``."""
    path = target.split("?", 1)[0].split("#", 1)[0]
    if settings.health_path is not None and path == settings.health_path:
        return HEALTH
    if settings.metrics_path is not None and path == settings.metrics_path:
        return METRICS
    return None


@dataclass(frozen=True)
class Health:
    """The answer of the health path: ``ok`` or why not."""

    status: HTTPStatus
    text: str


def health(draining: bool, live: int, limit: int, free_fds: int | None) -> Health:
    """200 when serving; 503 while draining, at the connection limit or short of fds.

    Args:
        live: connections being handled, this probe included.
        limit: ``--max-connections`` in effect; 0 = none.
        free_fds: descriptors left below the soft limit; None = unknown.
    """
    if draining:
        return Health(HTTPStatus.SERVICE_UNAVAILABLE, "draining")
    if limit and live >= limit:  # the next connection would be refused
        return Health(HTTPStatus.SERVICE_UNAVAILABLE, "at connection limit")
    if free_fds is not None and free_fds < FD_RESERVE:
        return Health(HTTPStatus.SERVICE_UNAVAILABLE, "few file descriptors left")
    return Health(HTTPStatus.OK, "ok")


def fullest(live: int, group: metrics.Snapshot | None) -> int:
    """The connection count to hold against a per-worker limit: with ``--workers`` and no
    shared ``--max-connections`` (``group``), the fullest worker's, so every worker's
    health answer is the same (issue #16); a connection that worker takes is refused."""
    if group is None or not group.workers:
        return live
    return max(share.open for share in group.workers)


def free_fds() -> int | None:
    """Descriptors this process may still open (soft RLIMIT_NOFILE minus open ones)."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return None
    try:
        used = len(os.listdir("/proc/self/fd"))
    except OSError:
        return None
    return int(soft) - used


def respond(handler: BaseHTTPRequestHandler, kind: str, head: bool, *, draining: bool,
            live: int, limit: int, snapshot: metrics.Snapshot | None,
            parking: ParkingLot | None = None) -> None:
    """Answer a ``route`` hit (``snapshot`` is needed for ``METRICS``); ``parking``: the
    ``--reverse-listen`` servers, whose counters follow (issue #20 §1)."""
    if kind == METRICS:
        assert snapshot is not None
        text = metrics.render(snapshot) + (parkingmetrics.render(parking) if parking else "")
        _send(handler, HTTPStatus.OK, text.encode(), metrics.CONTENT_TYPE, head)
        return
    answer = health(draining, live, limit, free_fds())
    _send(handler, answer.status, f"{answer.text}\n".encode(), "text/plain; charset=utf-8", head)


def _send(handler: BaseHTTPRequestHandler, status: HTTPStatus, body: bytes, ctype: str,
          head: bool) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", ctype)
    handler.send_header("Content-Length", str(len(body)))
    handler.send_header("Cache-Control", "no-store")
    handler.end_headers()
    if not head:
        handler.wfile.write(body)
