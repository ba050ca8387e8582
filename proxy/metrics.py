"""Live counters for ``--metrics-path`` (Prometheus text) and ``--stats-interval`` (a log line).

Thread-safe and off the data path: the relay is never touched per read. A handler
registers its ``Relay`` when relaying starts; a scrape adds the byte counters of the live
relays (plain ints, read without a lock: a scrape may be one read behind) to the totals
of finished ones. Everything else is counted once per connection, when it ends.
No I/O here.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Protocol

PREFIX = "websockify"
#: The Content-Type of the Prometheus text exposition format.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class ByteCounts(Protocol):
    """What a ``Relay`` exposes: bytes received from each side so far."""

    received_from_client: int
    received_from_target: int


@dataclass(frozen=True)
class Snapshot:
    """The counters at one instant (see ``Metrics.snapshot``)."""

    open: int
    total: int
    sessions: int
    relaying: int  # sessions open (101 sent, connection not finished)
    failed: dict[str, int] = field(default_factory=dict)
    handshake_failures: dict[int, int] = field(default_factory=dict)
    close_codes: dict[int, int] = field(default_factory=dict)
    bytes_from_client: int = 0
    bytes_from_target: int = 0


class Metrics:
    """Server-wide counters; every method may be called from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # Everything below is guarded by _lock.
        self._started = 0
        self._finished = 0
        self._sessions = 0  # connections that got a 101
        self._sessions_ended = 0
        self._failed: Counter[str] = Counter()
        self._handshake: Counter[int] = Counter()
        self._closes: Counter[int] = Counter()
        self._bytes_client = 0  # finished relays only; live ones are summed per scrape
        self._bytes_target = 0
        self._live: dict[int, ByteCounts] = {}

    def connection_started(self) -> None:
        with self._lock:
            self._started += 1

    def session_started(self) -> None:
        """A 101 was sent (the session counts as open until its connection finishes)."""
        with self._lock:
            self._sessions += 1

    @property
    def open_sessions(self) -> int:
        with self._lock:
            return self._sessions - self._sessions_ended

    def connection_finished(self, *, failure: str | None = None, status: int | None = None,
                            upgrade: bool = False, close_code: int | None = None) -> None:
        """Count one ended connection.

        Args:
            failure: why it failed (``token``, ``auth``, ``handshake``, ``target``, ...).
            status: the HTTP status answered to a WebSocket request (>= 400 counts as a
                handshake failure).
            upgrade: a 101 was sent (``session_started`` was called).
            close_code: the WebSocket close code the session ended with.
        """
        with self._lock:
            self._finished += 1
            if failure:
                self._failed[failure] += 1
            if status is not None and status >= 400:
                self._handshake[status] += 1
            if upgrade:
                self._sessions_ended += 1
            if close_code is not None:
                self._closes[close_code] += 1

    def relay_started(self, relay: ByteCounts) -> None:
        with self._lock:
            self._live[id(relay)] = relay

    def relay_finished(self, relay: ByteCounts) -> None:
        """Move the relay's byte counts into the totals (once; idempotent)."""
        with self._lock:
            if self._live.pop(id(relay), None) is not None:
                self._bytes_client += relay.received_from_client
                self._bytes_target += relay.received_from_target

    def snapshot(self, open_now: int | None = None) -> Snapshot:
        """The counters now; ``open_now`` overrides the open-connection gauge (the server's
        own count also covers connections that failed before a handler was set up)."""
        with self._lock:
            live = list(self._live.values())
            return Snapshot(
                open=self._started - self._finished if open_now is None else open_now,
                total=self._started,
                sessions=self._sessions,
                relaying=self._sessions - self._sessions_ended,
                failed=dict(self._failed),
                handshake_failures=dict(self._handshake),
                close_codes=dict(self._closes),
                bytes_from_client=self._bytes_client + sum(r.received_from_client for r in live),
                bytes_from_target=self._bytes_target + sum(r.received_from_target for r in live),
            )


def _family(lines: list[str], name: str, kind: str, text: str) -> str:
    full = f"{PREFIX}_{name}"
    lines.append(f"# HELP {full} {text}")
    lines.append(f"# TYPE {full} {kind}")
    return full


def render(snap: Snapshot) -> str:
    """The Prometheus text exposition (version 0.0.4) of ``snap``."""
    lines: list[str] = []
    name = _family(lines, "connections_open", "gauge", "Connections being handled now.")
    lines.append(f"{name} {snap.open}")
    name = _family(lines, "connections_total", "counter", "Connections accepted.")
    lines.append(f"{name} {snap.total}")
    name = _family(lines, "sessions_total", "counter", "WebSocket upgrades answered with 101.")
    lines.append(f"{name} {snap.sessions}")
    name = _family(lines, "sessions_open", "gauge", "WebSocket sessions relaying now.")
    lines.append(f"{name} {snap.relaying}")
    name = _family(lines, "connections_failed_total", "counter",
                   "Connections that failed, by reason.")
    for reason, count in sorted(snap.failed.items()):
        lines.append(f'{name}{{reason="{reason}"}} {count}')
    name = _family(lines, "bytes_received_total", "counter",
                   "Bytes received, by side (client bytes include WebSocket framing).")
    lines.append(f'{name}{{from="client"}} {snap.bytes_from_client}')
    lines.append(f'{name}{{from="target"}} {snap.bytes_from_target}')
    name = _family(lines, "handshake_failures_total", "counter",
                   "WebSocket requests answered with an HTTP error, by status.")
    for status, count in sorted(snap.handshake_failures.items()):
        lines.append(f'{name}{{status="{status}"}} {count}')
    name = _family(lines, "close_codes_total", "counter", "Ended sessions, by close code.")
    for code, count in sorted(snap.close_codes.items()):
        lines.append(f'{name}{{code="{code}"}} {count}')
    return "\n".join(lines) + "\n"


def stats_line(snap: Snapshot) -> str:
    """The same counters as one log line (``--stats-interval``)."""
    failed = ",".join(f"{k}={v}" for k, v in sorted(snap.failed.items())) or "0"
    closes = ",".join(f"{k}={v}" for k, v in sorted(snap.close_codes.items())) or "-"
    return (f"stats: open={snap.open} total={snap.total} sessions={snap.sessions} "
            f"relaying={snap.relaying} failed={failed} "
            f"bytes_from_client={snap.bytes_from_client} "
            f"bytes_from_target={snap.bytes_from_target} close_codes={closes}")
